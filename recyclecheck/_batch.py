"""Many lookups in one call: a provider's batch endpoint where it has one, else one at a time.

A provider may offer the optional ``lookup_many(items)`` beside ``lookup`` (see
:class:`~recyclecheck.providers.Provider`): ``items`` is a sequence of
``(E.164 number, since)`` pairs and the result holds one :data:`Result` per
item, in order: the answer, or the :class:`ProviderError` that stands for it.
:func:`lookup_many` here calls it where the provider has it and calls
``lookup`` item by item where it has not, so a sweep always calls one function.

Rules this module keeps (and the adapters' batch methods keep too):

- **One result per item, in order.**  A provider's ``lookup_many`` that answers
  a different number of items, or anything but an answer or a ProviderError,
  has every item (or that item) answered by a :class:`ProviderResponseError`:
  a broken batch never reads as an allow.
- **Failures are values.**  Only bad caller input raises (``InvalidInput``,
  before any I/O); a provider's failure is that item's ProviderError.
- **One deadline for the batch.**  Everything runs under the deadline in force
  (:func:`recyclecheck._deadline.remaining_time`), or under ``timeout`` seconds
  from the call when that is sooner.  Once it has passed, the items not yet
  asked are answered by :class:`ProviderTimeout` without a call.
- **No numbers held by errors.**  Errors stored as results carry no traceback,
  so no frame (and none of the numbers in it) outlives the call.

:func:`plan` is the chunking both batch adapters share: identical questions
are asked once, each request holds at most ``limit`` entries and never two
with the same key (Twilio refuses a number twice in one request; the RND's
replies are matched to questions by number).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import re
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

from ._answers import ANSWER_TYPES, Answer, Provider
from ._deadline import current_deadline, deadline_scope, remaining_time
from .exceptions import (
    ConfigurationError,
    InvalidInput,
    InvalidPhoneNumber,
    ProviderError,
    ProviderResponseError,
    ProviderTimeout,
    ProviderUnavailable,
)

__all__ = [
    "Item",
    "Result",
    "as_result",
    "check_items",
    "lookup_many",
    "plan",
    "send_planned",
]

#: One question of a batch: an E.164 number and the date to ask about.
Item = tuple[str, dt.date]
#: One item's outcome: the answer, or the failure that stands for it.
Result = Answer | ProviderError

K = TypeVar("K", bound=Hashable)
Q = TypeVar("Q", bound=Hashable)

# The adapters' own rule (providers._wire), kept here so the core loads no adapter.
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


class _WrongItems(InvalidInput, TypeError):
    """Batch items of the wrong shape: an InvalidInput that is also a TypeError."""


def check_items(items: object) -> list[Item]:
    """Return ``items`` as a list of checked ``(number, since)`` pairs.

    Raises :class:`~recyclecheck.InvalidInput` (``InvalidPhoneNumber`` for a
    number that is not E.164), never echoing a number, for anything but a
    sequence of pairs of an E.164 string and a plain ``date``.
    """
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise _WrongItems("items must be a sequence of (E.164 number, date) pairs")
    checked: list[Item] = []
    for item in items:
        if not isinstance(item, tuple) or len(item) != 2:
            raise _WrongItems("items must be a sequence of (E.164 number, date) pairs")
        number, since = item
        if not isinstance(number, str) or not _E164.fullmatch(number):
            raise InvalidPhoneNumber("each number must be an E.164 string: + and 7 to 15 digits")
        if type(since) is not dt.date:
            raise _WrongItems("each since must be a datetime.date")
        checked.append((number, since))
    return checked


def as_result(error: ProviderError) -> ProviderError:
    """``error`` without its traceback, ready to be stored as an item's result."""
    return error.with_traceback(None)


def lookup_many(
    provider: Provider, items: Sequence[Item], *, timeout: float | None = None
) -> list[Result]:
    """Ask ``provider`` about every ``(number, since)`` of ``items``; one result per item.

    Uses ``provider.lookup_many`` when the provider has one, else
    ``provider.lookup`` item by item on the calling thread.  ``timeout``
    (seconds) bounds the whole call when sooner than the deadline in force.
    A custom provider's ``lookup`` that ignores the deadline can still block
    its own item: run this on a worker thread, as a sweep does.
    """
    checked = check_items(items)
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0
    ):
        raise ConfigurationError("timeout must be a positive number of seconds")
    if not checked:
        return []
    with _deadline(timeout):
        batch = getattr(provider, "lookup_many", None)
        if callable(batch):
            return _batched(provider, batch, checked)
        return [_one(provider, number, since) for number, since in checked]


def _deadline(timeout: float | None) -> contextlib.AbstractContextManager[None]:
    """The deadline in force, or ``timeout`` seconds from now when that is sooner."""
    current = current_deadline()
    if timeout is None or not math.isfinite(timeout):
        return contextlib.nullcontext()
    wanted = time.monotonic() + timeout
    return deadline_scope(wanted if current is None else min(current, wanted))


def _name(provider: object) -> str:
    name = getattr(provider, "name", None)
    return name if isinstance(name, str) else type(provider).__name__


def _batched(
    provider: Provider, batch: Callable[[list[Item]], object], items: list[Item]
) -> list[Result]:
    """Call a provider's own ``lookup_many`` and vouch for the shape of what it returned."""
    name = _name(provider)
    try:
        results = batch(items)
    except ProviderError as exc:
        return [as_result(exc)] * len(items)
    except Exception as exc:  # a custom provider's own: its text may hold anything
        failure = ProviderUnavailable(
            f"provider raised {type(exc).__name__}", provider=name, retryable=False
        )
        return [failure] * len(items)
    if not isinstance(results, list) or len(results) != len(items):
        broken = ProviderResponseError(
            "lookup_many did not return one result per item", provider=name
        )
        return [broken] * len(items)
    return [_vouched(result, name) for result in results]


def _vouched(result: object, name: str) -> Result:
    if isinstance(result, ProviderError):
        return as_result(result)
    if isinstance(result, ANSWER_TYPES):
        return result
    return ProviderResponseError(
        f"lookup_many returned {type(result).__name__}, not an Answer", provider=name
    )


def _one(provider: Provider, number: str, since: dt.date) -> Result:
    """One ``lookup``, its failures as values; none once the deadline has passed."""
    left = remaining_time()
    if left is not None and left <= 0:
        return ProviderTimeout(
            "deadline passed before this item was asked", provider=_name(provider)
        )
    try:
        answer = provider.lookup(number, since)
    except ProviderError as exc:
        return as_result(exc)
    except Exception as exc:  # a custom provider's own: its text may hold anything
        return ProviderUnavailable(
            f"provider raised {type(exc).__name__}", provider=_name(provider), retryable=False
        )
    return _vouched(answer, _name(provider))


class Entry(Generic[K, Q]):
    """One question of a request: its key, the question itself and the items asking it."""

    __slots__ = ("indices", "key", "question")

    def __init__(self, key: K, question: Q, index: int) -> None:
        self.key = key
        self.question = question
        self.indices = [index]

    def __repr__(self) -> str:  # never the key or question: they hold the number
        return f"<Entry for {len(self.indices)} item(s)>"


def plan(questions: Sequence[tuple[int, K, Q]], limit: int) -> list[list[Entry[K, Q]]]:
    """Group ``(index, key, question)`` triples into requests of at most ``limit`` entries.

    A question asked by several items is one entry listing them all (equal
    questions must have equal keys); a key appears at most once per request,
    so the same key with another question (the same number, another date)
    goes to a later request.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    entries: dict[Q, Entry[K, Q]] = {}
    requests: list[dict[K, Entry[K, Q]]] = []
    first_open = 0  # every request before this one is full
    for index, key, question in questions:
        entry = entries.get(question)
        if entry is not None:
            entry.indices.append(index)
            continue
        entry = entries[question] = Entry(key, question, index)
        _home(requests, first_open, key, limit)[key] = entry
        while first_open < len(requests) and len(requests[first_open]) >= limit:
            first_open += 1
    return [list(request.values()) for request in requests]


def send_planned(
    requests: Sequence[list[Entry[K, Q]]],
    results: list[Result],
    send: Callable[[list[Entry[K, Q]]], tuple[list[Result], ProviderError | None]],
) -> int:
    """Send planned requests in turn, filling ``results`` (by item index); return how many went.

    ``send`` answers one request: a result per entry, and the failure that ends
    the batch (a rate limit, refused credentials), if any; every later request's
    entries then get that same failure without being sent.
    """
    stop: ProviderError | None = None
    sent = 0
    for entries in requests:
        if stop is None:
            outcome, stop = send(entries)
            sent += 1
        else:
            outcome = [stop] * len(entries)
        for entry, result in zip(entries, outcome, strict=True):
            for index in entry.indices:
                results[index] = result
    return sent


def _home(
    requests: list[dict[K, Entry[K, Q]]], start: int, key: K, limit: int
) -> dict[K, Entry[K, Q]]:
    """The first request from ``start`` with room and without ``key``; a new one if none."""
    for position in range(start, len(requests)):
        request = requests[position]
        if key not in request and len(request) < limit:
            return request
    requests.append({})
    return requests[-1]
