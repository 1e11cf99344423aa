"""The Guard: one call per SMS-code login, returning a Decision within a deadline."""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

import attrs

from ._cache import FactCache, MemoryCache, seconds
from ._deadline import NeedsWorker, inline_scope
from ._decision import Decision
from ._facts import Fact, answer_from_fact, fact_from_answer, merge
from ._phone import (
    MAX_PHONE_LENGTH,
    NumberMemo,
    check_region,
    e164_of_validated,
    hmac_number,
    memo_key,
    normalize,
)
from ._policy import Policy, binding_date, evaluate, question_date
from ._resilience import CircuitBreaker, WorkerPool, lookup_once, lookup_with_retry, retry_pause
from .exceptions import (
    ConfigurationError,
    InvalidInput,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
)
from .providers._answers import Answer, Provider

__all__ = ["Guard"]

logger = logging.getLogger("recyclecheck")

_UTC = dt.timezone.utc
MIN_SECRET_BYTES = 16
MAX_TIMEOUT = 60.0
#: The most of a check's budget an out-of-process cache read may take; the rest is
#: the provider's, so a stalled cache still leaves time for an answer.
CACHE_READ_SHARE = 0.25

_FlightKey = tuple[str, dt.date]
#: Resolved with the Answer or the ProviderError, as a value.
_Flight = Future[Answer | ProviderError]


@attrs.frozen(repr=False)
class _Question:
    """One check's validated input: what to ask, and how to name the number safely."""

    phone: str
    region: str | None
    e164: str | None
    key: str
    masked: str
    since: dt.date
    started: float

    def __repr__(self) -> str:
        return f"<_Question {self.masked} since={self.since}>"


def _secret_bytes(secret: bytes | str | None, *, required: bool) -> bytes:
    if secret is None:
        if required:
            raise ConfigurationError(
                "a shared cache needs Guard(secret=...): without one every process "
                "would derive different keys"
            )
        return os.urandom(32)
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    if not isinstance(key, bytes) or len(key) < MIN_SECRET_BYTES:
        raise ConfigurationError(f"secret must be at least {MIN_SECRET_BYTES} bytes")
    return key


class Guard:
    """Decides whether an SMS-code login may proceed on this phone number.

    ``provider`` answers "was this number reissued since D?";
    ``policy`` maps reasons to actions (secure by default);
    ``timeout`` (seconds or ``timedelta``) is the wall-clock deadline of each
    :meth:`check`, honoured whatever the provider does;
    ``cache`` keeps provider facts (a private :class:`MemoryCache` by default);
    ``secret`` keys the HMAC that names numbers in the cache (random per process
    if omitted; required with a shared cache);
    ``default_region`` lets national formats parse (``"CN"``);
    ``on_decision`` is called with every Decision (for metrics; its errors are
    logged and swallowed);
    ``max_workers`` bounds concurrent provider calls;
    ``breaker_threshold`` consecutive failures open the circuit for
    ``breaker_recovery`` seconds.
    """

    def __init__(
        self,
        provider: Provider,
        *,
        policy: Policy | None = None,
        timeout: float | dt.timedelta = 0.8,
        cache: FactCache | None = None,
        secret: bytes | str | None = None,
        default_region: str | None = None,
        on_decision: Callable[[Decision], object] | None = None,
        max_workers: int = 16,
        breaker_threshold: int = 5,
        breaker_recovery: float | dt.timedelta = 30.0,
    ) -> None:
        name = getattr(provider, "name", None)
        if not isinstance(name, str) or not name or not callable(getattr(provider, "lookup", None)):
            raise ConfigurationError("provider needs a non-empty str name and a lookup() method")
        if policy is not None and not isinstance(policy, Policy):
            raise ConfigurationError("policy must be a recyclecheck.Policy")
        self.timeout = seconds(timeout, name="timeout")
        if not 0 < self.timeout <= MAX_TIMEOUT:
            raise ConfigurationError(f"timeout must be between 0 and {MAX_TIMEOUT:g} seconds")
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ConfigurationError("max_workers must be a positive int")
        if (
            isinstance(breaker_threshold, bool)
            or not isinstance(breaker_threshold, int)
            or (breaker_threshold < 1)
        ):
            raise ConfigurationError("breaker_threshold must be a positive int")
        if on_decision is not None and not callable(on_decision):
            raise ConfigurationError("on_decision must be callable")
        self.provider = provider
        self.provider_name = name
        self.policy = policy or Policy()
        self.cache: FactCache = cache if cache is not None else MemoryCache()
        try:
            self.default_region = check_region(default_region)
        except InvalidInput:
            raise ConfigurationError("default_region is not a region phonenumbers knows") from None
        self.on_decision = on_decision
        self._key = _secret_bytes(secret, required=bool(getattr(self.cache, "shared", False)))
        self.breaker = CircuitBreaker(
            failure_threshold=breaker_threshold,
            recovery_time=seconds(breaker_recovery, name="breaker_recovery"),
            name=name,
        )
        self.pool = WorkerPool(max_workers)
        # Cache I/O that may block (Redis) runs here, apart from the provider's slots.
        self._io = WorkerPool(max_workers, name="recyclecheck-cache")
        self._cache_blocks = not isinstance(self.cache, MemoryCache)
        inline_ready = getattr(provider, "_inline_ready", None)
        self._inline_ready: Callable[[], bool] | None = (
            inline_ready if callable(inline_ready) else None
        )
        self._memo = NumberMemo()
        self._flights: dict[_FlightKey, _Flight] = {}
        self._flights_lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"<Guard provider={self.provider_name!r} timeout={self.timeout:g} "
            f"breaker={self.breaker.state}>"
        )

    # -- the one call -----------------------------------------------------------------

    def check(
        self,
        phone: str,
        *,
        bound_at: dt.datetime | dt.date,
        region: str | None = None,
    ) -> Decision:
        """Decide whether this login may proceed on an SMS code alone.

        ``phone`` is the number being logged in with; ``bound_at`` the moment the
        account last *proved* it holds this number by something stronger than an
        SMS code (an aware ``datetime`` or a ``date``).  Never move ``bound_at``
        on a plain SMS-code login.

        Raises :class:`~recyclecheck.InvalidPhoneNumber` or
        :class:`~recyclecheck.InvalidInput` for bad input, before any I/O.
        Everything that goes wrong with the provider becomes a Decision with
        reason ``provider_unavailable`` within ``timeout``.
        """
        started = time.monotonic()
        deadline = started + self.timeout
        ask = self._prepare(phone, bound_at, region, started)
        fact = self._read_cache(ask.key, deadline)
        if fact is not None:
            answer = answer_from_fact(fact, ask.since, time.time())
            if answer is not None:
                return self._decide(answer, ask, cached=True)
        return self._decide(self._ask_provider(ask, deadline), ask, cached=False)

    # -- phases -----------------------------------------------------------------------

    def _prepare(
        self, phone: object, bound_at: object, region: str | None, started: float
    ) -> _Question:
        """Validate the input and work out the question to ask (no I/O)."""
        # The region is part of what the input means, so it is settled before the memo
        # is consulted: a remembered input must mean the same as a fresh one.
        region = self.default_region if region is None else check_region(region)
        memo: str | None = None
        remembered = None
        if isinstance(phone, str) and len(phone) <= MAX_PHONE_LENGTH:
            # Inputs seen before skip re-validation: the memo holds HMACs and masks only.
            memo = memo_key(self._key, region, phone)
            remembered = self._memo.get(memo)
        e164: str | None = None
        if remembered is None:
            number = normalize(phone, region)
            e164 = number.e164
            key, masked = hmac_number(self._key, self.provider_name, e164), number.masked
            if memo is not None:
                self._memo.put(memo, (key, masked, e164 == phone))
        else:
            key, masked, canonical = remembered
            if canonical:
                e164 = phone  # type: ignore[assignment]  # the input *is* its E.164 form
        now = dt.datetime.now(_UTC)
        since = question_date(binding_date(bound_at, now=now), now.date())
        return _Question(
            phone=phone,  # type: ignore[arg-type]  # normalize() or the memo proved it a str
            region=region,
            e164=e164,
            key=key,
            masked=masked,
            since=since,
            started=started,
        )

    def _read_cache(self, key: str, deadline: float) -> Fact | None:
        """The cached fact, read within the check's deadline."""
        if not self._cache_blocks:
            return self._cached_fact(key)
        # An out-of-process cache may stall (a Redis that accepts and never answers):
        # read it on a worker, and give it at most a share of the budget so the
        # provider still has time to answer.
        budget = min(deadline - time.monotonic(), self.timeout * CACHE_READ_SHARE)
        future = self._io.submit(lambda: self._cached_fact(key))
        if future is None:
            logger.warning("recyclecheck cache read skipped: all cache workers busy")
            return None
        try:
            return future.result(timeout=max(0.0, budget))
        except FutureTimeout:
            logger.warning("recyclecheck cache read timed out; asking the provider")
            return None

    # -- provider call: single flight, deadline, breaker ------------------------------

    def _ask_provider(self, ask: _Question, deadline: float) -> Answer | ProviderError:
        if not self.breaker.allow():
            return ProviderUnavailable("circuit open", provider=self.provider_name)
        flight_key = (ask.key, ask.since)
        # Only dict operations under the lock: no future is resolved and no callback
        # runs while it is held, so no code path can wait on it from inside.
        with self._flights_lock:
            flight = self._flights.get(flight_key)
            leader = flight is None
            if flight is None:
                flight = self._flights[flight_key] = Future()
        if not leader:
            return self._wait(flight, deadline)
        if not self.pool.acquire():
            error = ProviderUnavailable("all provider workers busy", provider=self.provider_name)
            logger.warning(
                "recyclecheck provider failure: provider=%s error=PoolSaturated "
                "(all %d workers busy: the provider is slow or hanging)",
                self.provider_name,
                self.pool.max_workers,
            )
            flight.set_result(error)
            self._land(flight_key, flight)
            return error
        self._start_lookup(ask, flight_key, flight, deadline)
        result = self._wait(flight, deadline)
        # One record per provider call, not one per waiting login.
        if isinstance(result, ProviderError):
            self.breaker.record_failure()
            logger.warning(
                "recyclecheck provider failure: provider=%s error=%s",
                self.provider_name,
                type(result).__name__,
                extra={"recyclecheck_error": str(result)},
            )
        else:
            self.breaker.record_success()
        return result

    def _start_lookup(
        self, ask: _Question, flight_key: _FlightKey, flight: _Flight, deadline: float
    ) -> None:
        """Run the lookup (its slot already taken) inline when safe, else on a worker."""
        e164 = ask.e164 if ask.e164 is not None else e164_of_validated(ask.phone, ask.region)
        failed_once: ProviderError | None = None
        if self._inline_ready is not None and self._inline_ready():
            # A warm connection: every step ahead is bounded by the deadline, so the
            # thread hand-off (and its cost) is not needed.
            with inline_scope():
                try:
                    answer = lookup_once(self.provider, e164, ask.since, deadline)
                except NeedsWorker:
                    pass  # nothing was sent: start again on a worker
                except ProviderError as exc:
                    if retry_pause(exc, deadline - time.monotonic()) is None:
                        self._settle(flight_key, flight, exc, ask.key, background=True)
                        return
                    failed_once = exc  # the retry may need a new connection: a worker's job
                else:
                    self._settle(flight_key, flight, answer, ask.key, background=True)
                    return
        self.pool.run(
            lambda: self._lookup_on_worker(
                flight_key=flight_key,
                flight=flight,
                e164=e164,
                since=ask.since,
                deadline=deadline,
                key=ask.key,
                failed_once=failed_once,
            )
        )

    def _lookup_on_worker(
        self,
        *,
        flight_key: _FlightKey,
        flight: _Flight,
        e164: str,
        since: dt.date,
        deadline: float,
        key: str,
        failed_once: ProviderError | None,
    ) -> None:
        result: Answer | ProviderError
        try:
            result = lookup_with_retry(
                self.provider, e164, since, deadline, failed_once=failed_once
            )
        except ProviderError as exc:
            result = exc
        except BaseException as exc:  # lookup_with_retry wraps the provider's own
            result = ProviderUnavailable(
                f"lookup failed ({type(exc).__name__})", provider=self.provider_name
            )
        self._settle(flight_key, flight, result, key, background=False)

    def _settle(
        self,
        flight_key: _FlightKey,
        flight: _Flight,
        result: Answer | ProviderError,
        key: str,
        *,
        background: bool,
    ) -> None:
        """Free the slot, hand the answer to every waiting login, then write it back.

        The write-back comes last so a slow cache can neither delay the answer nor
        make it late enough to count against the provider's breaker.  ``background``:
        the caller's own thread is settling, so a blocking cache is written by a worker.
        """
        self.pool.release()
        flight.set_result(result)
        if not isinstance(result, ProviderError):
            if background and self._cache_blocks:
                if self._io.submit(lambda: self._remember(key, result)) is None:
                    logger.warning("recyclecheck cache write skipped: all cache workers busy")
            else:
                self._remember(key, result)
        self._land(flight_key, flight)

    def _wait(self, flight: _Flight, deadline: float) -> Answer | ProviderError:
        try:
            return flight.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            return ProviderTimeout("no answer before the deadline", provider=self.provider_name)

    def _land(self, flight_key: _FlightKey, flight: _Flight) -> None:
        with self._flights_lock:
            if self._flights.get(flight_key) is flight:
                del self._flights[flight_key]

    def _remember(self, key: str, answer: Answer) -> None:
        try:
            fact = fact_from_answer(answer, quiet_until=time.time() + self.cache.ttl)
            if fact is not None:
                self.cache.set(key, merge(self._cached_fact(key), fact))
        except Exception as exc:  # a cache is an optimisation, never a failure
            logger.warning("recyclecheck cache write failed: %s", type(exc).__name__)

    def _cached_fact(self, key: str) -> Fact | None:
        try:
            return self.cache.get(key)
        except Exception as exc:
            logger.warning("recyclecheck cache read failed: %s", type(exc).__name__)
            return None

    # -- decision ---------------------------------------------------------------------

    def _decide(self, result: Answer | ProviderError, ask: _Question, *, cached: bool) -> Decision:
        outcome = evaluate(result, ask.since, self.policy)
        masked = ask.masked
        decision = Decision(
            action=outcome.action,
            reason=outcome.reason,
            since=ask.since,
            provider=self.provider_name,
            masked_number=masked,
            reissued_on=outcome.reissued_on,
            cached=cached,
            elapsed=time.monotonic() - ask.started,
        )
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                "recyclecheck decision: number=%s action=%s reason=%s provider=%s cached=%s",
                masked,
                outcome.action.value,
                outcome.reason.value,
                self.provider_name,
                cached,
            )
        if self.on_decision is not None:
            try:
                self.on_decision(decision)
            except Exception as exc:
                logger.warning("recyclecheck on_decision hook raised %s", type(exc).__name__)
        return decision

    def close(self) -> None:
        """Release the provider's pooled connections (if it has a ``close``)."""
        close = getattr(self.provider, "close", None)
        if callable(close):
            close()

    def __enter__(self) -> Guard:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
