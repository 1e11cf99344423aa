"""A provider wrapper: a binding proven in the last few weeks needs no lookup.

Why the demo needs it.  After a step-up the app moves ``bound_at`` to now.  A
provider with dated records then answers "no change since yesterday", and the
next SMS-code login goes straight through.  But a provider with *no data* on a
number answers "no data" whatever the date, so that customer would be asked for
a second factor at every login.

Carriers hold a cancelled number for 45 (US) to 90 days (China) before they
give it to anyone else.  So a number whose holder proved, within the last
``days`` days (30 by default, under every quarantine period), that they own the
account cannot have changed hands since: this wrapper answers
``ChangedSince(since, False)`` for such a binding without asking the provider,
and asks the wrapped provider about everything older.  ``bound_at`` moves only
after a step-up, at account creation or at a re-bind, so only those bindings
get this answer, never a plain SMS-code login.

The Guard still makes the decision (the policy maps the answer to ``allow``);
the wrapper only contributes a fact.  ``DEMO_FRESH_BINDING_DAYS = 0`` turns it off.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable

import recyclecheck
from recyclecheck.providers import Answer, ChangedSince, Provider

__all__ = ["FreshBindingProvider"]

_log = logging.getLogger(__name__)


class FreshBindingProvider:
    """Answers "no change" for bindings younger than ``days``; asks ``inner`` otherwise.

    ``name`` is the wrapped provider's, so decisions, logs, metrics and cache
    entries keep their names whether or not the shortcut answered.
    """

    def __init__(
        self, inner: Provider, *, days: int, clock: Callable[[], float] = time.time
    ) -> None:
        if isinstance(days, bool) or not isinstance(days, int) or not 0 < days <= 45:
            raise recyclecheck.ConfigurationError(
                "DEMO_FRESH_BINDING_DAYS must be an int from 1 to 45 (0 turns the shortcut off)"
            )
        self.inner = inner
        self.name = inner.name
        self.days = days
        self._clock = clock

    def lookup(self, number: str, since: dt.date) -> Answer:
        """``ChangedSince(since, False)`` for a fresh binding, else the inner provider's answer."""
        today = dt.datetime.fromtimestamp(self._clock(), dt.timezone.utc).date()
        if since >= today - dt.timedelta(days=self.days):
            _log.debug("fresh binding for %s: provider not asked", recyclecheck.mask(number))
            return ChangedSince(since, False)
        return self.inner.lookup(number, since)

    def close(self) -> None:
        """Close the wrapped provider."""
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()

    def __repr__(self) -> str:
        return f"<FreshBindingProvider days={self.days} inner={self.inner!r}>"
