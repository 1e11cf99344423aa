"""What a provider can say about a number: the two answer shapes and the two unknowns."""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol, runtime_checkable

import attrs

__all__ = ["Answer", "ChangedSince", "LastChange", "NoData", "NotCovered", "Provider"]


def _optional_date(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (type(value) is not dt.date):
        raise TypeError(f"{attribute.name} must be a datetime.date or None")


def _plain_date(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not dt.date:
        raise TypeError(f"{attribute.name} must be a datetime.date")


@attrs.frozen
class LastChange:
    """Date-shaped answer: the last reissue or deactivation the provider recorded.

    ``on`` is that date, or ``None`` when the provider recorded none;
    ``covered_since`` is the date from which the provider tracks the number
    (``None``: it claims to know the whole history).
    """

    on: dt.date | None = attrs.field(validator=_optional_date)
    covered_since: dt.date | None = attrs.field(default=None, validator=_optional_date)


@attrs.frozen
class ChangedSince:
    """Boolean-shaped answer: whether the number changed hands on or after ``since``."""

    since: dt.date = attrs.field(validator=_plain_date)
    changed: bool = attrs.field(validator=attrs.validators.instance_of(bool))


@attrs.frozen
class NoData:
    """The provider has no data on this number."""


@attrs.frozen
class NotCovered:
    """The provider cannot evaluate the number for the date asked about."""


#: Every answer a provider may return from ``lookup``.
Answer = LastChange | ChangedSince | NoData | NotCovered

ANSWER_TYPES = (LastChange, ChangedSince, NoData, NotCovered)


@runtime_checkable
class Provider(Protocol):
    """The seam between the Guard and a data source.

    ``lookup`` receives an E.164 number and the date to ask about, and returns
    an :data:`Answer` or raises a :class:`~recyclecheck.ProviderError`.  It may
    block; the Guard runs it on a bounded worker pool under a deadline, which
    :func:`recyclecheck.providers.remaining_time` exposes to the provider.

    Optional, not part of this protocol's checks: a provider with a batch
    endpoint may also offer ``lookup_many(items) -> list[Answer | ProviderError]``,
    where ``items`` is a sequence of ``(number, since)`` pairs (E.164, plain
    ``date``; each item its own ``since``).  It returns one result per item, in
    order: the answer, or the ``ProviderError`` standing for that item (a failed
    request is the error of each of its items), and raises only for bad input,
    before any I/O.  The whole batch runs under the deadline in force; an
    answer about a number or date not asked is never returned.  Sweeps call
    ``recyclecheck._batch.lookup_many(provider, items)``, which uses it where
    it exists and calls ``lookup`` item by item where it does not.
    ``RndProvider`` and ``TwilioProvider`` have one.
    """

    name: str

    def lookup(self, number: str, since: dt.date) -> Answer:
        """Say whether ``number`` was reissued or deactivated on or after ``since``."""
        ...
