"""Keeping a login fast whatever the provider does.

A bounded worker pool, a circuit breaker, and the one-retry rule.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from queue import SimpleQueue
from typing import TypeVar

from ._deadline import deadline_scope, remaining_time
from .exceptions import (
    ProviderError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderUnavailable,
)
from .providers._answers import ANSWER_TYPES, Answer, Provider

__all__ = ["CircuitBreaker", "WorkerPool", "lookup_with_retry"]

T = TypeVar("T")

logger = logging.getLogger("recyclecheck")

#: A retry is only worth starting with at least this much of the deadline left.
MIN_RETRY_BUDGET = 0.05
#: Jittered pause before the single retry of a failed idempotent lookup.
RETRY_BACKOFF = (0.01, 0.05)


class CircuitBreaker:
    """Stops calling a provider that keeps failing, and probes it to recover.

    After ``failure_threshold`` consecutive failures the circuit opens: checks
    are answered at once without a provider call.  After ``recovery_time``
    seconds one probe is let through (half-open); its success closes the
    circuit, its failure opens it again.  A probe that never reports back
    (its caller vanished) is replaced after another ``recovery_time``.
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        recovery_time: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        name: str = "provider",
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.recovery_time = recovery_time
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probe_started: float | None = None

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half_open"``."""
        with self._lock:
            if self._opened_at is None:
                return "closed"
            if self._probe_started is not None:
                return "half_open"
            return "open"

    def allow(self) -> bool:
        """Whether a provider call may start now."""
        if self._opened_at is None:  # fast path; a stale read only delays opening by one call
            return True
        with self._lock:
            opened_at = self._read_opened_at()
            if opened_at is None:
                return True
            now = self._clock()
            if now - opened_at < self.recovery_time:
                return False
            if self._probe_started is not None and now - self._probe_started < self.recovery_time:
                return False
            self._probe_started = now
            return True

    def _read_opened_at(self) -> float | None:
        # Re-read under the lock; a method call keeps the type checker from
        # assuming the unlocked read above still holds.
        return self._opened_at

    def record_success(self) -> None:
        """A call succeeded: close the circuit."""
        if self._failures == 0 and self._opened_at is None:
            return
        with self._lock:
            was_open = self._opened_at is not None
            self._failures = 0
            self._opened_at = None
            self._probe_started = None
        if was_open:
            logger.warning("recyclecheck circuit closed: provider=%s", self.name)

    def record_failure(self) -> None:
        """A call failed: count it, and open (or re-open) the circuit when due."""
        with self._lock:
            self._failures += 1
            opening = self._opened_at is None and self._failures >= self.failure_threshold
            if self._opened_at is not None or opening:
                self._opened_at = self._clock()
                self._probe_started = None
        if opening:
            logger.warning(
                "recyclecheck circuit opened: provider=%s after %d consecutive failures; "
                "calls are skipped for %gs",
                self.name,
                self.failure_threshold,
                self.recovery_time,
            )

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.state} failures={self._failures}>"


class WorkerPool:
    """At most ``max_workers`` lookups in flight, on lazily started daemon threads.

    ``submit`` refuses work instead of queueing it when every worker is busy,
    so a provider that hangs cannot pile up threads or queued logins.  The
    threads are daemons: a hung provider never blocks interpreter exit.
    """

    def __init__(self, max_workers: int = 16, *, name: str = "recyclecheck") -> None:
        self.max_workers = max_workers
        self._name = name
        self._lock = threading.Lock()
        self._queue: SimpleQueue[tuple[Future[object], Callable[[], object]]] = SimpleQueue()
        self._threads = 0
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        """Lookups submitted and not yet finished (hung ones included)."""
        return self._in_flight

    @property
    def threads(self) -> int:
        """Worker threads started so far (never more than ``max_workers``)."""
        return self._threads

    def submit(self, fn: Callable[[], T]) -> Future[T] | None:
        """Run ``fn`` on a worker; ``None`` when all workers are busy."""
        with self._lock:
            if self._in_flight >= self.max_workers:
                return None
            self._in_flight += 1
            # Keep a thread per in-flight task, so queued work never waits on a hung one.
            if self._threads < self._in_flight:
                self._threads += 1
                threading.Thread(
                    target=self._work, name=f"{self._name}-{self._threads}", daemon=True
                ).start()
        future: Future[T] = Future()
        self._queue.put((future, fn))  # type: ignore[arg-type]
        return future

    def _work(self) -> None:
        while True:
            self._run_one(*self._queue.get())
            # Nothing of the task outlives it here: an idle worker would otherwise keep
            # its last closure (the number it looked up) until the next task arrives.

    def _run_one(self, future: Future[object], fn: Callable[[], object]) -> None:
        running = False
        result: object = None
        error: BaseException | None = None
        try:
            running = future.set_running_or_notify_cancel()
            if running:
                try:
                    result = fn()
                except BaseException as exc:  # handed to the waiting caller
                    error = exc
        finally:
            # Free the slot before answering: a caller that has its answer may
            # submit again at once, while this thread still runs done callbacks.
            with self._lock:
                self._in_flight -= 1
        if not running:
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


def _lookup_once(provider: Provider, number: str, since: object) -> Answer:
    try:
        answer = provider.lookup(number, since)  # type: ignore[arg-type]
    except ProviderError:
        raise
    except Exception as exc:
        # A custom provider's own exception: its text may hold anything, so only the type.
        raise ProviderUnavailable(
            f"provider raised {type(exc).__name__}", provider=provider.name, retryable=False
        ) from None
    if not isinstance(answer, ANSWER_TYPES):
        raise ProviderResponseError(
            f"provider returned {type(answer).__name__}, not an Answer", provider=provider.name
        )
    return answer


def _retry_pause(error: ProviderError, left: float) -> float | None:
    """How long to wait before the one retry, or ``None`` for no retry."""
    if isinstance(error, ProviderRateLimited):
        if error.retry_after is None or error.retry_after + MIN_RETRY_BUDGET > left:
            return None
        return error.retry_after
    if not error.retryable:
        return None
    pause = random.uniform(*RETRY_BACKOFF)  # noqa: S311 - jitter, not a secret
    if pause + MIN_RETRY_BUDGET > left:
        return None
    return pause


def lookup_with_retry(provider: Provider, number: str, since: object, deadline: float) -> Answer:
    """Call ``provider.lookup`` under ``deadline`` with at most one retry.

    Only failures marked retryable (transport errors, 5xx, timeouts) and rate
    limits whose ``Retry-After`` fits the remaining time are retried.
    """
    with deadline_scope(deadline):
        try:
            return _lookup_once(provider, number, since)
        except ProviderError as error:
            pause = _retry_pause(error, remaining_time() or 0.0)
            if pause is None:
                raise
        time.sleep(pause)
        return _lookup_once(provider, number, since)
