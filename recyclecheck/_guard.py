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

from ._cache import FactCache, MemoryCache, seconds
from ._decision import Decision
from ._facts import Fact, answer_from_fact, fact_from_answer, merge
from ._phone import (
    MAX_PHONE_LENGTH,
    NumberMemo,
    PhoneNumber,
    check_region,
    e164_of_validated,
    hmac_number,
    memo_key,
    normalize,
)
from ._policy import Policy, binding_date, evaluate, question_date
from ._resilience import CircuitBreaker, WorkerPool, lookup_with_retry
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
        self._memo = NumberMemo()
        self._flights: dict[tuple[str, dt.date], Future[Answer]] = {}
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
        region = self.default_region if region is None else region
        number: PhoneNumber | None = None
        memo: str | None = None
        remembered = None
        if isinstance(phone, str) and len(phone) <= MAX_PHONE_LENGTH:
            # Inputs seen before skip re-parsing: the memo holds HMACs and masks only.
            memo = memo_key(self._key, region, phone)
            remembered = self._memo.get(memo)
        if remembered is None:
            number = normalize(phone, region)
            key, masked = hmac_number(self._key, self.provider_name, number.e164), number.masked
            if memo is not None:
                self._memo.put(memo, (key, masked))
        else:
            key, masked = remembered
        now = dt.datetime.now(_UTC)
        since = question_date(binding_date(bound_at, now=now), now.date())

        fact = self._cached_fact(key)
        if fact is not None:
            answer = answer_from_fact(fact, since, now.timestamp())
            if answer is not None:
                return self._decide(answer, since, masked, started, cached=True)

        result: Answer | ProviderError
        if not self.breaker.allow():
            result = ProviderUnavailable("circuit open", provider=self.provider_name)
        else:
            e164 = number.e164 if number is not None else e164_of_validated(phone, region)
            result = self._ask_provider(key, e164, since, deadline)
        return self._decide(result, since, masked, started, cached=False)

    # -- provider call: single flight, deadline, breaker ------------------------------

    def _ask_provider(
        self, key: str, e164: str, since: dt.date, deadline: float
    ) -> Answer | ProviderError:
        flight_key = (key, since)
        with self._flights_lock:
            future = self._flights.get(flight_key)
            leader = future is None
            if future is None:
                future = self.pool.submit(
                    lambda: self._lookup_and_remember(key, e164, since, deadline)
                )
                if future is None:
                    logger.warning(
                        "recyclecheck provider failure: provider=%s error=PoolSaturated "
                        "(all %d workers busy: the provider is slow or hanging)",
                        self.provider_name,
                        self.pool.max_workers,
                    )
                    return ProviderUnavailable(
                        "all provider workers busy", provider=self.provider_name
                    )
                self._flights[flight_key] = future
                future.add_done_callback(lambda _f: self._land(flight_key))
        try:
            answer = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            error: ProviderError = ProviderTimeout(
                "no answer before the deadline", provider=self.provider_name
            )
        except ProviderError as exc:
            error = exc
        except Exception as exc:  # pragma: no cover - lookup_with_retry wraps everything
            error = ProviderUnavailable(
                f"lookup failed ({type(exc).__name__})", provider=self.provider_name
            )
        else:
            if leader:
                self.breaker.record_success()
            return answer
        if leader:
            # One record per provider call, not one per waiting login.
            self.breaker.record_failure()
            logger.warning(
                "recyclecheck provider failure: provider=%s error=%s",
                self.provider_name,
                type(error).__name__,
                extra={"recyclecheck_error": str(error)},
            )
        return error

    def _land(self, flight_key: tuple[str, dt.date]) -> None:
        with self._flights_lock:
            self._flights.pop(flight_key, None)

    def _lookup_and_remember(self, key: str, e164: str, since: dt.date, deadline: float) -> Answer:
        answer = lookup_with_retry(self.provider, e164, since, deadline)
        fact = fact_from_answer(answer, quiet_until=time.time() + self.cache.ttl)
        if fact is not None:
            try:
                self.cache.set(key, merge(self._cached_fact(key), fact))
            except Exception as exc:  # a cache is an optimisation, never a failure
                logger.warning("recyclecheck cache write failed: %s", type(exc).__name__)
        return answer

    def _cached_fact(self, key: str) -> Fact | None:
        try:
            return self.cache.get(key)
        except Exception as exc:
            logger.warning("recyclecheck cache read failed: %s", type(exc).__name__)
            return None

    # -- decision ---------------------------------------------------------------------

    def _decide(
        self,
        result: Answer | ProviderError,
        since: dt.date,
        masked: str,
        started: float,
        *,
        cached: bool,
    ) -> Decision:
        outcome = evaluate(result, since, self.policy)
        decision = Decision(
            action=outcome.action,
            reason=outcome.reason,
            since=since,
            provider=self.provider_name,
            masked_number=masked,
            reissued_on=outcome.reissued_on,
            cached=cached,
            elapsed=time.monotonic() - started,
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
