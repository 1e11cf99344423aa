"""ScriptedSandbox: a sandbox provider a test re-scripts between checks.

It answers like :class:`~recyclecheck.providers.SandboxProvider` (it delegates
to one, rebuilt on every change), and adds what an app's tests need on top:
outages, slow and hung lookups that end at the check's deadline as a real
adapter's would, a record of every lookup, and Guards that forget what they
cached whenever the script changes.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

import attrs

from .._cache import seconds as _seconds
from .._deadline import remaining_time
from .._guard import Guard
from .._phone import mask
from ..exceptions import ConfigurationError, ProviderError, ProviderTimeout, ProviderUnavailable
from ..providers._answers import Answer, LastChange, NoData, NotCovered
from ..providers._sandbox import SandboxProvider, Scripted
from ._backend import normalise_number

__all__ = ["RecordedLookup", "ScriptedSandbox"]

#: How long a script change waits for an isolated Guard's lookups to land.
_SETTLE_TIMEOUT = 2.0
_SETTLE_POLL = 0.001
#: How long before a check's deadline a slow or hung lookup gives up.
_DEADLINE_MARGIN = 0.01


@attrs.frozen
class RecordedLookup:
    """One ``lookup`` a :class:`ScriptedSandbox` received: the E.164 ``number`` and ``since``.

    The ``repr`` shows only the masked number.
    """

    number: str = attrs.field(repr=False)
    since: dt.date

    @property
    def masked(self) -> str:
        """The number, masked for display (``+86 138****8000``)."""
        return mask(self.number)

    def __repr__(self) -> str:
        return f"<RecordedLookup number={self.masked} since={self.since}>"


@attrs.frozen
class _Outage:
    """What a lookup does before (or instead of) answering."""

    error: ProviderError | None = None
    delay: float = 0.0


def _day(value: object, what: str) -> dt.date:
    if isinstance(value, dt.datetime):
        raise ConfigurationError(f"{what} must be a date, not a datetime")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ConfigurationError(f"{what} must be a YYYY-MM-DD date") from None
    raise ConfigurationError(f"{what} must be a date or a YYYY-MM-DD string")


def _optional_day(value: object, what: str) -> dt.date | None:
    return None if value is None else _day(value, what)


class ScriptedSandbox:
    """A sandbox provider whose script a test changes while it runs.

    Pass it to a ``Guard`` as its provider, or get a ready Guard from
    :meth:`guard`.  Numbers start as ``numbers`` (anything
    :class:`~recyclecheck.providers.SandboxProvider` accepts); unlisted numbers
    have no data.  Script them with :meth:`reissued`, :meth:`never_reissued`,
    :meth:`no_data`, :meth:`not_covered` or :meth:`script`; take the provider
    (or one number) down with :meth:`down`, :meth:`slow` or :meth:`hang`, and
    back up with :meth:`up`.  Every lookup is recorded in :attr:`lookups`.

    It is thread-safe: the Guard calls ``lookup`` on its worker threads.
    The ``pytest`` fixture ``recyclecheck_sandbox`` gives a fresh one per test.
    """

    def __init__(
        self, numbers: Mapping[str, Scripted] | None = None, *, name: str = "sandbox"
    ) -> None:
        # SandboxProvider validates both the name and every scripted value.
        sandbox = SandboxProvider(numbers or {}, name=name)
        self.name = name
        self._lock = threading.Lock()
        self._sandbox = sandbox
        self._script: dict[str, Answer | ProviderError] = dict(sandbox.scripted)
        self._outages: dict[str | None, _Outage] = {}
        self._lookups: list[RecordedLookup] = []
        self._release = threading.Event()
        self._isolated: weakref.WeakSet[Guard] = weakref.WeakSet()

    def __repr__(self) -> str:
        with self._lock:
            numbers, outages = len(self._script), len(self._outages)
        return f"<ScriptedSandbox name={self.name!r} numbers={numbers} outages={outages}>"

    # -- answers -------------------------------------------------------------------------

    def script(self, number: str, value: Scripted) -> None:
        """Script one number with any value ``SandboxProvider`` accepts.

        A ``date`` (reissued that day), ``None`` (never reissued), an ``Answer``
        (``ChangedSince(...)`` for a yes/no provider), or a ``ProviderError``
        raised on every lookup of the number.
        """
        self.update({number: value})

    def update(self, numbers: Mapping[str, Scripted]) -> None:
        """Script several numbers at once (e.g. ``update(SandboxProvider.demo().scripted)``)."""
        validated = SandboxProvider(numbers, name=self.name).scripted
        with self._lock:
            self._script.update(validated)
            self._sandbox = SandboxProvider(self._script, name=self.name)
        self._changed()

    def reissued(
        self,
        number: str,
        *,
        on: dt.date | str,
        covered_since: dt.date | str | None = None,
    ) -> None:
        """The number last changed hands ``on`` this day (a ``date`` or ``"YYYY-MM-DD"``).

        Logins on accounts bound before ``on`` step up (``reissued_after_binding``);
        accounts bound after it are allowed.
        """
        when = _day(on, "on")
        self.script(number, LastChange(when, _optional_day(covered_since, "covered_since")))

    def never_reissued(self, number: str, *, covered_since: dt.date | str | None = None) -> None:
        """No change recorded for the number: logins are allowed (``not_reissued``).

        With ``covered_since``, the provider only vouches from that day on: accounts
        bound before it step up (``not_covered``).
        """
        self.script(number, LastChange(None, _optional_day(covered_since, "covered_since")))

    def no_data(self, number: str) -> None:
        """The provider knows nothing about the number: step up (``no_data``)."""
        self.script(number, NoData())

    def not_covered(self, number: str) -> None:
        """The provider cannot evaluate the number: step up (``not_covered``)."""
        self.script(number, NotCovered())

    # -- outages -------------------------------------------------------------------------

    def down(
        self,
        number: str | None = None,
        *,
        error: type[ProviderError] | ProviderError = ProviderUnavailable,
    ) -> None:
        """Fail every lookup (or only ``number``'s) at once with ``error``.

        ``error`` is a :class:`~recyclecheck.ProviderError` subclass or instance
        (``ProviderUnavailable`` by default; ``ProviderTimeout``,
        ``ProviderRateLimited``, ``ProviderAuthError``...).  The Guard steps up
        with ``provider_unavailable``.  The number's script is kept for :meth:`up`.
        To spend the deadline first, as an unreachable service does, use :meth:`hang`.
        """
        if isinstance(error, type) and issubclass(error, ProviderError):
            failure = error("scripted outage", provider=self.name)
        elif isinstance(error, ProviderError):
            failure = error
        else:
            raise ConfigurationError("error must be a ProviderError subclass or instance")
        self._set_outage(number, _Outage(error=failure))

    def slow(self, seconds: float | dt.timedelta, *, number: str | None = None) -> None:
        """Answer every lookup (or only ``number``'s) after ``seconds`` (or a ``timedelta``).

        Inside a check, a delay that reaches the deadline ends there with
        ``ProviderTimeout``, as a real adapter's socket timeout does; a shorter
        one delays the scripted answer.
        """
        delay = _seconds(seconds, name="seconds")
        self._set_outage(number, _Outage(delay=delay))

    def hang(self, number: str | None = None) -> None:
        """Never answer lookups (or only ``number``'s) before the deadline.

        Each lookup fails with ``ProviderTimeout`` when its check's deadline
        runs out, as a real adapter's does against a silent service: the Guard
        answers ``provider_unavailable`` within its ``timeout``.  Outside a
        check (no deadline), ``lookup`` raises ``ProviderTimeout`` at once.
        """
        self._set_outage(number, _Outage(delay=math.inf))

    def up(self, number: str | None = None) -> None:
        """End the outages set by :meth:`down`, :meth:`slow` and :meth:`hang`.

        Without ``number`` every outage ends; with it, only that number's (an
        outage of the whole provider stays).  Scripted answers are untouched.
        """
        key = None if number is None else normalise_number(number)
        with self._lock:
            if key is None:
                self._outages.clear()
            else:
                self._outages.pop(key, None)
        self._changed()

    def _set_outage(self, number: str | None, outage: _Outage) -> None:
        key = None if number is None else normalise_number(number)
        with self._lock:
            self._outages[key] = outage
        self._changed()

    def release(self) -> None:
        """End every lookup still waiting in :meth:`slow` or :meth:`hang`.

        Each fails at once with ``ProviderTimeout`` (not retried).  Any script
        change does this too, and the ``recyclecheck_sandbox`` fixture does it
        when its test ends.
        """
        with self._lock:
            release, self._release = self._release, threading.Event()
        release.set()

    def reset(self) -> None:
        """Forget every scripted number, outage and recorded lookup."""
        with self._lock:
            self._script.clear()
            self._sandbox = SandboxProvider({}, name=self.name)
            self._outages.clear()
            self._lookups.clear()
        self._changed()

    # -- records -------------------------------------------------------------------------

    @property
    def lookups(self) -> list[RecordedLookup]:
        """A snapshot of every lookup received so far, oldest first (retries included)."""
        with self._lock:
            return list(self._lookups)

    def lookups_of(self, number: str) -> list[RecordedLookup]:
        """The recorded lookups of ``number`` (any international format)."""
        e164 = normalise_number(number)
        return [lookup for lookup in self.lookups if lookup.number == e164]

    # -- Guards --------------------------------------------------------------------------

    def guard(self, *, isolate: bool = True, **options: Any) -> Guard:
        """A ``Guard`` on this sandbox; ``options`` are ``Guard``'s keyword arguments.

        With ``isolate`` (the default), every script change first lets the
        Guard's lookups in flight land, then clears its fact cache and closes
        its circuit breaker, so each check sees the script as it is now.  With
        ``isolate=False`` the Guard keeps both, as in production: use it to test
        that a cached reissue still steps up during an outage.
        """
        if not isinstance(isolate, bool):
            raise ConfigurationError("isolate must be a bool")
        guard = Guard(self, **options)
        if isolate:
            with self._lock:
                self._isolated.add(guard)
        return guard

    def _changed(self) -> None:
        """A new script: end waiting lookups, and give isolated Guards a clean slate."""
        self.release()
        with self._lock:
            guards = list(self._isolated)
        for guard in guards:
            _settle(guard)

    # -- the Provider protocol ----------------------------------------------------------

    def lookup(self, number: str, since: dt.date) -> Answer:
        """Answer from the current script, after any outage set on the number or provider."""
        with self._lock:
            self._lookups.append(RecordedLookup(number, since))
            outage = self._outages.get(number)
            if outage is None:
                outage = self._outages.get(None)
            sandbox, release = self._sandbox, self._release
        if outage is not None:
            if outage.delay > 0:
                self._wait(outage.delay, release)
            if outage.error is not None:
                # A fresh copy per call: threads must not share one traceback.
                raise copy.copy(outage.error)
        return sandbox.lookup(number, since)

    def _wait(self, delay: float, release: threading.Event) -> None:
        left = remaining_time()
        if left is not None and delay >= left:
            # Give up just before the deadline, so the Guard gets this lookup's own timeout
            # and the next check of the number never joins a lookup about to fail.
            if not release.wait(max(0.0, left - _DEADLINE_MARGIN)):
                raise ProviderTimeout("scripted: no answer before the deadline", provider=self.name)
        elif math.isinf(delay):
            raise ProviderTimeout("scripted: the provider never answers", provider=self.name)
        elif not release.wait(delay):
            return
        # Released: not worth the Guard's retry, which would only wait again.
        raise ProviderTimeout("scripted: released", provider=self.name, retryable=False)


def _settle(guard: Guard) -> None:
    """Wait for ``guard``'s lookups to land, then clear its cache and close its breaker."""
    give_up = time.monotonic() + _SETTLE_TIMEOUT
    lanes = list(guard.lanes.values())
    while any(lane.pool.in_flight for lane in lanes) and time.monotonic() < give_up:
        time.sleep(_SETTLE_POLL)
    clear = getattr(guard.cache, "clear", None)
    if callable(clear):
        clear()
    for lane in lanes:
        lane.breaker.reset()
