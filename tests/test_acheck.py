"""``await guard.acheck(...)``: the same decisions, deadline, single flight, cache and
breaker as ``check``, without ever blocking the event loop."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from recyclecheck import Action, Guard, InvalidInput, InvalidPhoneNumber, Reason
from recyclecheck.providers import ChangedSince, SandboxProvider

BOUND = dt.date(2022, 5, 10)
US = "+12015550124"


class Gate:
    """A provider that holds every lookup until released (or for ``hold`` seconds)."""

    name = "gate"

    def __init__(self, hold: float = 30.0) -> None:
        self.hold = hold
        self.released = threading.Event()
        self.calls = 0
        self.threads: list[int] = []
        self._lock = threading.Lock()

    def lookup(self, number: str, since: dt.date) -> Any:
        with self._lock:
            self.calls += 1
            self.threads.append(threading.get_ident())
        self.released.wait(self.hold)
        return ChangedSince(since, False)


@pytest.fixture
def gate() -> Iterator[Gate]:
    provider = Gate()
    try:
        yield provider
    finally:
        provider.released.set()  # no worker stays parked after the test


def test_acheck_decides_like_check() -> None:
    sandbox = SandboxProvider.demo()
    guard = Guard(sandbox, timeout=1)
    for number in ("+86 138 0013 8000", "+86 139 0013 9000", "+86 137 0013 7000"):
        fresh = asyncio.run(guard.acheck(number, bound_at=BOUND))
        cached_or_again = guard.check(number, bound_at=BOUND)
        assert (fresh.action, fresh.reason, fresh.reissued_on, fresh.masked_number) == (
            cached_or_again.action,
            cached_or_again.reason,
            cached_or_again.reissued_on,
            cached_or_again.masked_number,
        )


def test_acheck_refuses_bad_input_before_any_io() -> None:
    guard = Guard(SandboxProvider.demo(), timeout=1)
    with pytest.raises(InvalidPhoneNumber):
        asyncio.run(guard.acheck("not a number", bound_at=BOUND))
    with pytest.raises(InvalidInput):
        asyncio.run(guard.acheck("+8613800138000", bound_at=dt.date.min))


def test_500_concurrent_achecks_on_a_hanging_provider_end_by_the_deadline(gate: Gate) -> None:
    """One loop, 500 logins, a provider that hangs: all answer by the deadline, one call."""
    timeout = 0.5
    guard = Guard(gate, timeout=timeout)

    async def burst() -> list[Any]:
        return await asyncio.gather(*(guard.acheck(US, bound_at=BOUND) for _ in range(500)))

    started = time.monotonic()
    decisions = asyncio.run(burst())
    wall = time.monotonic() - started
    assert gate.calls == 1  # single flight across every waiting coroutine
    assert {(d.action, d.reason) for d in decisions} == {
        (Action.STEP_UP, Reason.PROVIDER_UNAVAILABLE)
    }
    slowest = max(d.elapsed for d in decisions)
    assert slowest <= timeout + 0.3, f"a check took {slowest:.3f}s"
    # The wall clock adds the event loop's start and 500 coroutines' scheduling.
    assert wall <= timeout + 0.5, f"the burst took {wall:.3f}s"


def test_acheck_never_blocks_the_event_loop(gate: Gate) -> None:
    """While logins wait on a hanging provider, the loop keeps running other work."""
    guard = Guard(gate, timeout=0.4)
    loop_thread: list[int] = []

    async def main() -> int:
        loop_thread.append(threading.get_ident())
        ticks = 0
        check = asyncio.ensure_future(guard.acheck(US, bound_at=BOUND))
        while not check.done():
            await asyncio.sleep(0.01)
            ticks += 1
        await check
        return ticks

    ticks = asyncio.run(main())
    assert ticks >= 20  # ~40 ticks in 0.4 s; a blocked loop would manage none
    assert loop_thread[0] not in gate.threads  # the lookup ran on a worker


def test_a_cancelled_acheck_leaves_its_lookup_to_land_in_the_cache(gate: Gate) -> None:
    guard = Guard(gate, timeout=2)

    async def cancel_midway() -> None:
        task = asyncio.ensure_future(guard.acheck(US, bound_at=BOUND))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_midway())
    assert gate.calls == 1
    gate.released.set()
    deadline = time.monotonic() + 5
    while guard.pool.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert guard.pool.in_flight == 0  # no worker leaked
    decision = guard.check(US, bound_at=BOUND)
    assert (decision.reason, decision.cached) == (Reason.NOT_REISSUED, True)
    assert gate.calls == 1


def test_acheck_shares_one_flight_with_a_blocking_check(gate: Gate) -> None:
    """Sync and async logins of one number share the same provider call."""
    guard = Guard(gate, timeout=2)
    results: list[Any] = []
    thread = threading.Thread(
        target=lambda: results.append(guard.check(US, bound_at=BOUND)), daemon=True
    )
    thread.start()
    while gate.calls == 0:
        time.sleep(0.005)

    async def join() -> Any:
        opener = threading.Timer(0.1, gate.released.set)
        opener.daemon = True
        opener.start()
        return await guard.acheck(US, bound_at=BOUND)

    decision = asyncio.run(join())
    thread.join(5)
    assert not thread.is_alive()
    assert decision.reason is results[0].reason is Reason.NOT_REISSUED
    assert gate.calls == 1
