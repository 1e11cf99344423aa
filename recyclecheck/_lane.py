"""One provider's machinery: breaker, worker slots, single flight, cache namespace, quota.

A :class:`Lane` starts a provider call without blocking the caller (unless it
may run the call inline on the caller's thread, or on its event loop's thread
through ``_loop_io``: both only over a warm, deadline-bound connection), and hands back a
:class:`Flight`: a future resolved with the provider's answer or the
:class:`ProviderError` that replaced it, *as a value*.  The lane keeps its
own books: the breaker hears of each provider call exactly once, when the call
settles or when a waiting login sees its deadline pass first, whichever comes
first.  A Guard holds one lane per provider, so one provider's outage neither
blocks nor poisons another's answers.

A lane with a quota takes one token per new provider call (never for a login
joining a call in flight), after the breaker and a worker slot let the call
start: an in-process :class:`TokenBucket` on the caller's thread, any other
quota (Redis: network I/O) on the worker as the first step of the call, inside
the deadline; such a lane never runs lookups inline.  No token means the call
is answered at once by a :class:`ProviderRateLimited` that the breaker never
hears of: the provider did nothing wrong.

No lock here is held while a future is resolved or any callback or provider
code runs.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from . import _loop_io, _telemetry
from ._answers import Answer, Provider
from ._cache import FactCache, MemoryCache
from ._deadline import NeedsWorker, deadline_scope, inline_scope
from ._facts import Fact, answer_from_fact, fact_from_answer, merge
from ._phone import hmac_number
from ._quota import Quota, TokenBucket
from ._resilience import CircuitBreaker, WorkerPool, lookup_once, lookup_with_retry, retry_pause
from .exceptions import ProviderError, ProviderRateLimited, ProviderTimeout, ProviderUnavailable

__all__ = ["Flight", "Lane", "Result"]

logger = logging.getLogger("recyclecheck")

#: What a flight resolves to: the answer, or the failure that replaced it.
Result = Answer | ProviderError


class Flight:
    """One provider call that any number of logins may wait on.

    ``future`` is resolved with a :data:`Result`; it is marked running at
    birth, so no waiter (an ``asyncio`` wrapper, say) can cancel it.
    """

    __slots__ = ("_booked", "_lock", "future", "lane")

    def __init__(self, lane: Lane) -> None:
        self.lane = lane
        self.future: Future[Result] = Future()
        self.future.set_running_or_notify_cancel()
        self._lock = threading.Lock()
        self._booked = False

    def book(self) -> bool:
        """Claim the one breaker record of this call; ``False`` if already claimed."""
        with self._lock:
            if self._booked:
                return False
            self._booked = True
            return True

    def expired(self) -> ProviderTimeout:
        """A waiter's deadline passed first: count it as a failure, once."""
        error = ProviderTimeout("no answer before the deadline", provider=self.lane.name)
        if self.book():
            self.lane.record(error)
        return error


_FlightKey = tuple[str, dt.date]


class Lane:
    """Everything a Guard keeps per provider.

    ``key`` keys the HMAC that names numbers in ``cache`` (the provider's name
    is part of the message, so each provider has its own namespace); ``io`` is
    the Guard's pool for cache I/O that may block; ``quota`` (optional) gives
    each new provider call its token.
    """

    def __init__(
        self,
        provider: Provider,
        *,
        cache: FactCache,
        key: bytes,
        io: WorkerPool,
        max_workers: int,
        breaker_threshold: int,
        breaker_recovery: float,
        quota: Quota | None = None,
    ) -> None:
        self.provider = provider
        self.name: str = provider.name
        self.cache = cache
        self.cache_blocks = not isinstance(cache, MemoryCache)
        self.breaker = CircuitBreaker(
            failure_threshold=breaker_threshold, recovery_time=breaker_recovery, name=self.name
        )
        self.pool = WorkerPool(max_workers)
        self.quota = quota
        # An in-process bucket answers in microseconds: asked on the caller's thread.  Any
        # other quota may do I/O (Redis): asked on the worker, and never inline.
        self.quota_blocks = quota is not None and not isinstance(quota, TokenBucket)
        self._key = key
        self._io = io
        inline_ready = getattr(provider, "_inline_ready", None)
        self._inline_ready: Callable[[str], bool] | None = (
            inline_ready if callable(inline_ready) else None
        )
        self._flights: dict[_FlightKey, Flight] = {}
        self._flights_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Lane {self.name!r} breaker={self.breaker.state}>"

    def cache_key(self, e164: str) -> str:
        """The keyed HMAC naming this number's facts from this provider."""
        return hmac_number(self._key, self.name, e164)

    # -- starting a call ------------------------------------------------------------

    def start(
        self,
        key: str,
        e164: Callable[[], str],
        since: dt.date,
        deadline: float,
        *,
        inline: bool,
        loop: Any = None,
    ) -> Flight | ProviderError:
        """Start (or join) the call about ``key`` since ``since``; never blocks past setup.

        Returns the flight to wait on, or at once the error that stands for the
        call (circuit open, every slot taken).  ``e164`` is only called when a new
        call is started.  ``inline``: the caller may lend its own thread when
        every step is bounded by the deadline (never from an event loop).
        ``loop``: the caller is this running event loop, whose thread may run the
        call without blocking (``_loop_io``) when ``inline`` would have been safe.
        """
        if not self.breaker.allow():
            return ProviderUnavailable("circuit open", provider=self.name)
        flight_key = (key, since)
        # Only dict operations under the lock: no future is resolved and no callback
        # runs while it is held, so no code path can wait on it from inside.
        with self._flights_lock:
            flight = self._flights.get(flight_key)
            leader = flight is None
            if flight is None:
                flight = self._flights[flight_key] = Flight(self)
        if not leader:
            return flight
        if not self.cache_blocks:
            # A call that landed between this login's cache read and its flight lookup
            # left its fact behind: answer from it rather than ask again.
            fact = self.cached_fact(key)
            known = answer_from_fact(fact, since, time.time()) if fact is not None else None
            if known is not None:
                flight.book()  # no provider call was made: nothing for the breaker
                self._land(flight_key, flight)
                flight.future.set_result(known)
                return flight
        if not self.pool.acquire():
            error = ProviderUnavailable("all provider workers busy", provider=self.name)
            logger.warning(
                "recyclecheck provider failure: provider=%s error=PoolSaturated "
                "(all %d workers busy: the provider is slow or hanging)",
                self.name,
                self.pool.max_workers,
            )
            flight.book()  # saturation is ours, not the provider's: never a breaker record
            self._settle(flight_key, flight, error, key, on_caller=True, slot=False)
            return error
        if self.quota is not None and not self.quota_blocks:
            refused = self._admit()
            if refused is not None:
                flight.book()  # the quota's refusal, not the provider's failure
                self._settle(flight_key, flight, refused, key, on_caller=True)
                return refused
        self._run(
            flight_key,
            flight,
            key,
            e164=e164(),
            since=since,
            deadline=deadline,
            inline=inline,
            loop=loop,
        )
        return flight

    def _run(
        self,
        flight_key: _FlightKey,
        flight: Flight,
        key: str,
        *,
        e164: str,
        since: dt.date,
        deadline: float,
        inline: bool,
        loop: Any,
    ) -> None:
        """Run the call (its slot already taken) inline when safe, else on a worker."""

        def on_worker(failed_once: ProviderError | None = None) -> None:
            self._run_on_worker(
                flight_key,
                flight,
                key,
                e164=e164,
                since=since,
                deadline=deadline,
                failed_once=failed_once,
            )

        lend = (inline or (loop is not None and _loop_io.available())) and not self.quota_blocks
        # A token from Redis is a worker's job; so is a call without a warm connection.
        if not (lend and self._inline_ready is not None and self._inline_ready(e164)):
            on_worker()
            return

        def lookup() -> Answer:
            # A warm connection: every step ahead is bounded by the deadline, so the
            # thread hand-off (and its cost) is not needed.
            with inline_scope():
                return lookup_once(self.provider, e164, since, deadline)

        def finish(answer: Answer | None, error: BaseException | None) -> None:
            if isinstance(error, ProviderError):
                if retry_pause(error, deadline - time.monotonic()) is None:
                    self._settle(flight_key, flight, error, key, on_caller=True)
                else:
                    on_worker(error)  # the retry may need a new connection: a worker's job
            elif error is not None and _loop_io.ended_with_its_loop(error):
                # The loop that ran the call was closed under it: nobody is left to
                # answer, and the provider did nothing wrong.
                flight.book()
                ended = ProviderUnavailable("the event loop closed", provider=self.name)
                self._settle(flight_key, flight, ended, key, on_caller=True)
            elif error is not None:
                on_worker()  # NeedsWorker: nothing was sent, start again on a worker
            else:
                self._settle(flight_key, flight, answer, key, on_caller=True)  # type: ignore[arg-type]

        if inline:
            try:
                answer = lookup()
            except (ProviderError, NeedsWorker) as exc:
                finish(None, exc)
            else:
                finish(answer, None)
        else:
            _loop_io.run_on_loop(loop, lookup, finish)

    def _run_on_worker(
        self,
        flight_key: _FlightKey,
        flight: Flight,
        key: str,
        *,
        e164: str,
        since: dt.date,
        deadline: float,
        failed_once: ProviderError | None,
    ) -> None:
        """Run the call (its slot already taken) on a worker thread."""

        def on_worker() -> None:
            result: Result
            try:
                refused = None
                if self.quota_blocks:
                    with deadline_scope(deadline):  # the quota may size its I/O by it
                        refused = self._admit()
                if refused is not None:
                    flight.book()  # the quota's refusal, not the provider's failure
                    result = refused
                else:
                    result = lookup_with_retry(
                        self.provider, e164, since, deadline, failed_once=failed_once
                    )
            except ProviderError as exc:
                result = exc
            except BaseException as exc:  # lookup_with_retry wraps the provider's own
                result = ProviderUnavailable(
                    f"lookup failed ({type(exc).__name__})", provider=self.name
                )
            self._settle(flight_key, flight, result, key, on_caller=False)

        self.pool.run(on_worker)

    def _admit(self) -> ProviderRateLimited | None:
        """Take this call's token; without one, the refusal that stands for the call.

        A quota that raises refuses (logged by type): it never fails a login.
        """
        try:
            if self.quota is None or self.quota.try_acquire():
                return None
            why = "quota empty"
        except Exception as exc:
            why = f"quota raised {type(exc).__name__}"
        _telemetry.quota_refused(self.name)
        logger.warning(
            "recyclecheck rate limited: provider=%s %s, answered without a call", self.name, why
        )
        return ProviderRateLimited(f"{why}: no call made", provider=self.name)

    # -- settling a call --------------------------------------------------------------

    def _settle(
        self,
        flight_key: _FlightKey,
        flight: Flight,
        result: Result,
        key: str,
        *,
        on_caller: bool,
        slot: bool = True,
    ) -> None:
        """Free the slot, book the call, hand the result to every waiter, then write back.

        The write-back comes last so a slow cache can neither delay the answer nor
        make it late enough to count against the breaker.  ``on_caller``: the
        login's own thread is settling, so a blocking cache is written by a worker.
        """
        if slot:
            self.pool.release()
        if flight.book():
            self.record(result)
        if isinstance(result, ProviderError):
            # Nothing to write back: the next login asks afresh (and is counted).
            self._land(flight_key, flight)
            flight.future.set_result(result)
            return
        if not self.cache_blocks:
            # An in-process cache takes microseconds: the fact is in before anyone
            # hears the answer, so the next login finds it there.
            self._write_back(flight_key, flight, key, result)
            flight.future.set_result(result)
            return
        flight.future.set_result(result)
        # A cache that may block is written after the answer is out; logins asking
        # the same question meanwhile share this fresh answer until the fact is in.
        if not on_caller:
            self._write_back(flight_key, flight, key, result)
        elif self._io.submit(lambda: self._write_back(flight_key, flight, key, result)) is None:
            logger.warning("recyclecheck cache write skipped: all cache workers busy")
            self._land(flight_key, flight)

    def _write_back(self, flight_key: _FlightKey, flight: Flight, key: str, answer: Answer) -> None:
        self.remember(key, answer)
        self._land(flight_key, flight)

    def _land(self, flight_key: _FlightKey, flight: Flight) -> None:
        with self._flights_lock:
            if self._flights.get(flight_key) is flight:
                del self._flights[flight_key]

    def record(self, result: Result) -> None:
        """Tell the breaker (and the log) how one provider call went."""
        if isinstance(result, ProviderError):
            self.breaker.record_failure()
            logger.warning(
                "recyclecheck provider failure: provider=%s error=%s",
                self.name,
                type(result).__name__,
                extra={"recyclecheck_error": str(result)},
            )
        else:
            self.breaker.record_success()

    # -- the cache namespace ---------------------------------------------------------

    def remember(self, key: str, answer: Answer) -> None:
        """Merge a definite answer into the cached fact (never raises)."""
        try:
            fact = fact_from_answer(answer, quiet_until=time.time() + self.cache.ttl)
            if fact is not None:
                self.cache.set(key, merge(self.cached_fact(key), fact))
        except Exception as exc:  # a cache is an optimisation, never a failure
            logger.warning("recyclecheck cache write failed: %s", type(exc).__name__)

    def cached_fact(self, key: str) -> Fact | None:
        """The fact stored under ``key`` (``None`` on a miss or any cache trouble)."""
        try:
            return self.cache.get(key)
        except Exception as exc:
            logger.warning("recyclecheck cache read failed: %s", type(exc).__name__)
            return None
