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

from . import _loop_io, _telemetry
from ._answers import ANSWER_TYPES, Answer, Provider
from ._deadline import NeedsWorker, deadline_scope, is_inline, remaining_time
from .exceptions import (
    ProviderError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderUnavailable,
)

__all__ = ["CircuitBreaker", "WorkerPool", "lookup_once", "lookup_with_retry", "retry_pause"]

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
        now = self._clock()  # user code (a test clock): never called under the lock
        with self._lock:
            opened_at = self._read_opened_at()
            if opened_at is None:
                return True
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
            _telemetry.breaker_changed(self.name, "closed")

    def reset(self) -> None:
        """Forget every failure and close the circuit (e.g. between tests)."""
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._probe_started = None

    def record_failure(self) -> None:
        """A call failed: count it, and open (or re-open) the circuit when due."""
        now = self._clock()  # user code (a test clock): never called under the lock
        with self._lock:
            self._failures += 1
            opening = self._opened_at is None and self._failures >= self.failure_threshold
            if self._opened_at is not None or opening:
                self._opened_at = now
                self._probe_started = None
        if opening:
            logger.warning(
                "recyclecheck circuit opened: provider=%s after %d consecutive failures; "
                "calls are skipped for %gs",
                self.name,
                self.failure_threshold,
                self.recovery_time,
            )
            _telemetry.breaker_changed(self.name, "open")

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.state} failures={self._failures}>"


class WorkerPool:
    """At most ``max_workers`` lookups in flight, on lazily started daemon threads.

    A *slot* is one provider call in flight; :meth:`acquire` refuses work
    instead of queueing it when every slot is taken, so a provider that hangs
    cannot pile up threads or queued logins.  A lookup that runs on the
    caller's own thread holds a slot too.  A task frees its slot itself
    (:meth:`release`) as soon as its answer is known, before it hands the
    answer over, so a caller that resubmits at once is never refused; the
    thread may then go on with housekeeping (a cache write-back), which is why
    up to twice ``max_workers`` threads may exist.  The threads are daemons: a
    hung provider never blocks interpreter exit.
    """

    def __init__(self, max_workers: int = 16, *, name: str = "recyclecheck") -> None:
        self.max_workers = max_workers
        self._max_threads = 2 * max_workers
        self._name = name
        self._lock = threading.Lock()
        self._queue: SimpleQueue[Callable[[], object]] = SimpleQueue()
        self._threads = 0
        self._in_flight = 0
        self._busy = 0

    @property
    def in_flight(self) -> int:
        """Slots held: lookups started and not yet answered (hung ones included)."""
        return self._in_flight

    @property
    def busy(self) -> int:
        """Tasks queued or running on worker threads (write-backs included)."""
        return self._busy

    @property
    def threads(self) -> int:
        """Worker threads started so far (never more than twice ``max_workers``)."""
        return self._threads

    def acquire(self) -> bool:
        """Take a slot for one provider call; ``False`` when all are taken."""
        with self._lock:
            if self._in_flight >= self.max_workers:
                return False
            self._in_flight += 1
            return True

    def release(self) -> None:
        """Give back a slot taken with :meth:`acquire`."""
        with self._lock:
            self._in_flight -= 1

    def run(self, task: Callable[[], object]) -> None:
        """Run ``task`` on a worker thread; it must not raise (what it raises is logged)."""
        with self._lock:
            self._busy += 1
            # A thread per busy task (up to the cap), so queued work never waits on a hung one.
            start = self._threads < min(self._busy, self._max_threads)
            if start:
                self._threads += 1
                name = f"{self._name}-{self._threads}"
        self._queue.put(task)
        if start:  # outside the lock: starting a thread waits for it to run
            threading.Thread(target=self._work, name=name, daemon=True).start()

    def submit(self, fn: Callable[[], T]) -> Future[T] | None:
        """Run ``fn`` on a worker in a slot of its own; ``None`` when all slots are taken."""
        if not self.acquire():
            return None
        future: Future[T] = Future()

        def task() -> None:
            if not future.set_running_or_notify_cancel():
                self.release()
                return
            try:
                result = fn()
            except BaseException as exc:  # handed to the waiting caller
                self.release()
                future.set_exception(exc)
            else:
                self.release()
                future.set_result(result)

        self.run(task)
        return future

    def _work(self) -> None:
        while True:
            task = self._queue.get()
            try:
                task()
            except BaseException as exc:  # a worker must outlive any task
                logger.error("recyclecheck worker task raised %s", type(exc).__name__)
            finally:
                with self._lock:
                    self._busy -= 1
            # Nothing of the task outlives it here: an idle worker would otherwise keep
            # its last closure (the number it looked up) until the next task arrives.
            del task


def _lookup_once(provider: Provider, number: str, since: object) -> Answer:
    """One attempt, timed for telemetry (one that sent nothing, NeedsWorker, is not)."""
    started = time.monotonic()
    try:
        answer = _attempt(provider, number, since)
    except ProviderError as exc:
        _telemetry.provider_called(provider.name, exc, started)
        raise
    _telemetry.provider_called(provider.name, answer, started)
    return answer


def _attempt(provider: Provider, number: str, since: object) -> Answer:
    try:
        answer = provider.lookup(number, since)  # type: ignore[arg-type]
    except ProviderError:
        raise
    except BaseException as exc:
        if isinstance(exc, NeedsWorker) or (
            # On the caller's own thread, Ctrl-C and sys.exit() stay the caller's, and
            # so does the end of the event loop a lookup was running in.
            is_inline()
            and (
                isinstance(exc, (KeyboardInterrupt, SystemExit))
                or _loop_io.ended_with_its_loop(exc)
            )
        ):
            raise
        # A custom provider's own exception (even a BaseException such as
        # asyncio.CancelledError): its text may hold anything, so only the type.
        raise ProviderUnavailable(
            f"provider raised {type(exc).__name__}", provider=provider.name, retryable=False
        ) from None
    if not isinstance(answer, ANSWER_TYPES):
        raise ProviderResponseError(
            f"provider returned {type(answer).__name__}, not an Answer", provider=provider.name
        )
    return answer


def retry_pause(error: ProviderError, left: float) -> float | None:
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


def lookup_with_retry(
    provider: Provider,
    number: str,
    since: object,
    deadline: float,
    *,
    failed_once: ProviderError | None = None,
) -> Answer:
    """Call ``provider.lookup`` under ``deadline`` with at most one retry.

    Only failures marked retryable (transport errors, 5xx, timeouts) and rate
    limits whose ``Retry-After`` fits the remaining time are retried.
    ``failed_once`` is the failure of a first attempt made elsewhere (on the
    caller's thread): then only the retry is left to make.
    """
    with deadline_scope(deadline):
        error = failed_once
        if error is None:
            try:
                return _lookup_once(provider, number, since)
            except ProviderError as exc:
                error = exc
        pause = retry_pause(error, remaining_time() or 0.0)
        if pause is None:
            raise error
        _telemetry.retried(provider.name, error)
        time.sleep(pause)
        return _lookup_once(provider, number, since)


def lookup_once(provider: Provider, number: str, since: object, deadline: float) -> Answer:
    """One ``provider.lookup`` under ``deadline``, with its failures as ProviderErrors."""
    with deadline_scope(deadline):
        return _lookup_once(provider, number, since)
