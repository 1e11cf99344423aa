"""The worker pool and the circuit breaker under forced thread switching."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import pytest

from recyclecheck._resilience import CircuitBreaker, WorkerPool

from ..crowd import rounds, run_together

#: pytest-timeout's bound: far above each case's own (a stuck thread fails it at STUCK).
pytestmark = pytest.mark.timeout(60)
SPIN = 1.0
STUCK = 10.0


def settle(pool: WorkerPool) -> None:
    """Wait (bounded) until no slot of ``pool`` is held."""
    until = time.monotonic() + STUCK
    while pool.in_flight and time.monotonic() < until:
        time.sleep(0.005)
    assert pool.in_flight == 0, f"{pool.in_flight} slots still held with no work left"


# -- (4) the worker pool --------------------------------------------------------------------


def test_submit_from_many_threads_never_exceeds_the_bound() -> None:
    """Twelve threads submit to four slots: at most four tasks run, every accepted one answers."""
    max_workers = 4
    pool = WorkerPool(max_workers)
    lock = threading.Lock()
    running = [0, 0]  # now, most

    def task(value: int) -> int:
        with lock:
            running[0] += 1
            running[1] = max(running[1], running[0])
        time.sleep(random.uniform(0, 0.002))
        with lock:
            running[0] -= 1
        return value

    def keep_submitting(offset: int) -> tuple[int, int]:
        accepted = refused = 0
        for i in rounds(SPIN, 2_000):
            value = offset * 10_000 + i
            future = pool.submit(lambda v=value: task(v))
            if future is None:
                refused += 1
                continue
            assert future.result(timeout=STUCK) == value
            accepted += 1
        return accepted, refused

    counts = run_together([lambda o=o: keep_submitting(o) for o in range(12)], within=STUCK)
    assert sum(accepted for accepted, _ in counts) > 0
    assert sum(refused for _, refused in counts) > 0, "twelve submitters never met a full pool"
    assert 0 < running[1] <= max_workers
    settle(pool)
    # A worker may still be finishing up after freeing its slot: up to twice the bound.
    assert pool.threads <= 2 * max_workers


def test_a_saturated_pool_refuses_at_once_and_recovers() -> None:
    """With every slot held, submits from many threads are refused at once; freed, all succeed."""
    max_workers = 3
    pool = WorkerPool(max_workers)
    release = threading.Event()
    held = [pool.submit(lambda: release.wait(STUCK)) for _ in range(max_workers)]
    assert all(future is not None for future in held)

    def refused_while_full() -> int:
        started = time.monotonic()
        refused = sum(pool.submit(lambda: None) is None for _ in range(200))
        assert time.monotonic() - started < STUCK / 2
        return refused

    assert run_together([refused_while_full] * 8, within=STUCK) == [200] * 8
    release.set()
    for future in held:
        assert future is not None
        assert future.result(timeout=STUCK) is True
    settle(pool)

    def accepted_when_free() -> int:
        future = None
        while future is None:  # other threads may hold every slot for a moment
            future = pool.submit(lambda: "ok")
        return 1 if future.result(timeout=STUCK) == "ok" else 0

    assert sum(run_together([accepted_when_free] * 8, within=STUCK)) == 8
    settle(pool)


def test_done_callbacks_that_submit_again() -> None:
    """A done-callback that submits the next task (chains from eight threads) is never refused.

    A worker frees its slot before the future's callbacks run, so a chain
    holds at most one slot at a time; a callback attached after the task
    finished runs on the attaching thread and submits from there.
    """
    chains, depth = 8, 40
    pool = WorkerPool(chains)
    refused: list[int] = []

    def chain(index: int) -> int:
        reached = threading.Event()
        links = [0]

        def link() -> int:
            links[0] += 1
            return links[0]

        def then(future: Future[int]) -> None:
            if future.result() >= depth:
                reached.set()
                return
            submitted = pool.submit(link)
            if submitted is None:
                refused.append(index)
                reached.set()
                return
            submitted.add_done_callback(then)

        first = pool.submit(link)
        assert first is not None
        first.result(timeout=STUCK)  # done already: the callback below runs right here
        first.add_done_callback(then)
        assert reached.wait(STUCK)
        return links[0]

    assert (
        run_together([lambda i=i: chain(i) for i in range(chains)], within=STUCK)
        == [depth] * chains
    )
    assert not refused, f"chains refused a slot: {refused}"
    settle(pool)


def test_a_task_that_raises_reaches_its_caller_and_frees_its_slot() -> None:
    """Tasks raising from many threads: each caller gets its own exception, no slot is lost."""
    pool = WorkerPool(4)

    def fail(value: int) -> None:
        raise ValueError(value)

    def keep_failing(offset: int) -> int:
        seen = 0
        for i in rounds(SPIN / 2, 500):
            future = pool.submit(lambda v=offset * 1000 + i: fail(v))
            if future is None:
                continue
            error = future.exception(timeout=STUCK)
            assert isinstance(error, ValueError)
            assert error.args == (offset * 1000 + i,)
            seen += 1
        return seen

    assert sum(run_together([lambda o=o: keep_failing(o) for o in range(8)], within=STUCK))
    settle(pool)


# -- (5) the circuit breaker ------------------------------------------------------------------


def test_half_open_lets_exactly_one_probe_through() -> None:
    """Round after round, eight threads ask allow() at once on a half-open circuit: one may go.

    Between rounds the probe succeeds (closing the circuit, which is then
    failed open again), fails (re-opening it), or never reports back (and is
    replaced after another recovery time).  The clock is the test's.
    """
    threads, threshold, recovery = 8, 3, 10.0
    now = [0.0]
    breaker = CircuitBreaker(
        failure_threshold=threshold, recovery_time=recovery, clock=lambda: now[0]
    )
    for _ in range(threshold):
        breaker.record_failure()
    assert breaker.state == "open"
    granted: list[bool] = []
    per_round: list[int] = []
    stop_at = time.monotonic() + SPIN
    going = [True]

    def between() -> None:  # run by one thread as the barrier opens
        if granted:
            per_round.append(sum(granted))
            granted.clear()
            outcome = len(per_round) % 3
            if outcome == 0:  # the probe succeeded: closed; then it fails open again
                breaker.record_success()
                assert breaker.state == "closed"
                for _ in range(threshold):
                    breaker.record_failure()
            elif outcome == 1:  # the probe failed: open again, for a full recovery time
                breaker.record_failure()
            # outcome 2: the probe never reports back, and still counts as under way
            assert breaker.state == ("half_open" if outcome == 2 else "open")
            assert not breaker.allow()
        now[0] += recovery
        going[0] = time.monotonic() < stop_at and len(per_round) < 300

    barrier = threading.Barrier(threads, action=between)

    def ask() -> int:
        asked = 0
        while True:
            barrier.wait(STUCK)
            if not going[0]:
                return asked
            granted.append(breaker.allow())
            asked += 1
            barrier.wait(STUCK)

    # The first barrier opens the first round; each round ends at the next one.
    barrier_rounds = run_together([ask] * threads, within=STUCK + SPIN)
    assert len(set(barrier_rounds)) == 1
    assert len(per_round) >= 10
    assert per_round == [1] * len(per_round), f"probes let through per round: {per_round}"


def test_concurrent_failures_are_all_counted_and_open_the_circuit_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No failure recorded from many threads is lost, and each opening is announced once."""
    threads, each = 8, 250
    counted = CircuitBreaker(failure_threshold=threads * each, recovery_time=60.0, name="counted")
    crowded = CircuitBreaker(failure_threshold=threads, recovery_time=60.0, name="crowded")

    def fail(breaker: CircuitBreaker, count: int) -> None:
        for _ in range(count):
            breaker.record_failure()
            breaker.allow()

    # One failure short of the threshold: still closed, if no update was lost.
    short = [lambda: fail(counted, each)] * (threads - 1) + [lambda: fail(counted, each - 1)]
    run_together(short, within=STUCK)
    assert counted.state == "closed"
    counted.record_failure()
    assert counted.state == "open"
    # Far past the threshold, from every thread at once: opened (and announced) once.
    run_together([lambda: fail(crowded, each)] * threads, within=STUCK)
    assert crowded.state == "open"
    opened = [r.getMessage() for r in caplog.records if "circuit opened" in r.getMessage()]
    assert sorted(m.split("provider=")[1].split()[0] for m in opened) == ["counted", "crowded"]


def test_any_interleaving_of_breaker_calls_keeps_it_usable() -> None:
    """Threads calling every method in random order: no error, a valid state, closable at the end."""
    breaker = CircuitBreaker(failure_threshold=3, recovery_time=0.005)
    operations: list[Callable[[], object]] = [
        breaker.allow,
        breaker.record_failure,
        breaker.record_success,
        lambda: breaker.state,
        lambda: repr(breaker),
    ]

    def chaos(seed: int) -> set[str]:
        rng = random.Random(seed)
        states = set()
        for _ in rounds(SPIN, 50_000):
            rng.choice(operations)()
            states.add(breaker.state)
        return states

    seen = set().union(*run_together([lambda s=s: chaos(s) for s in range(8)], within=STUCK))
    assert seen <= {"closed", "open", "half_open"}
    assert {"closed", "open"} <= seen
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.allow()
