"""``acheck`` on a warm connection: the lookup runs on the event loop's own thread, in a
greenlet whose every socket wait is a wait in the loop's selector (``_loop_io``).

Over real sockets against :class:`FakeProviderServer`: the same answers as ``check``,
the same deadline under every fault that reaches a warm connection, a loop that keeps
ticking throughout, TLS, cancellation and a loop closed under a parked lookup.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest

from recyclecheck import Action, Decision, Guard, MemoryCache, Reason, _loop_io
from recyclecheck.testing import (
    ChunkDrip,
    FakeProviderServer,
    Hang,
    HeaderDrip,
    HugeBody,
    Latency,
    Reset,
    SlowDrip,
)

pytestmark = pytest.mark.skipif(not _loop_io.available(), reason="needs recyclecheck[async]")

TIMEOUT = 0.5
SLACK = 0.1
#: A gap between two turns of the loop that only a blocked loop shows (a blocked loop
#: stalls for the whole deadline; a busy machine delays a turn by tens of milliseconds).
STALL = TIMEOUT / 2
#: After the deadline, how long the loop may take to let go of a trickling connection.
RELEASE = 0.2
BOUND = dt.date(2024, 3, 2)
US_NEVER, US_REISSUED = "+12015550124", "+12015550123"
CN_NEVER, CN_REISSUED = "+8613900139000", "+8613800138000"
NUMBERS: dict[str, Any] = {
    US_NEVER: None,
    US_REISSUED: dt.date(2024, 5, 1),
    CN_NEVER: None,
    CN_REISSUED: dt.date(2024, 5, 1),
}

#: The adapters that may run a lookup on the caller's thread over a warm connection.
WARM_ADAPTERS: dict[str, Callable[[FakeProviderServer], Any]] = {
    "twilio": lambda s: s.twilio(),
    "telesign": lambda s: s.telesign(),
    "aliyun": lambda s: s.aliyun(),
}


def numbers_for(kind: str) -> tuple[str, str]:
    """A never-reissued and a reissued number the adapter can be asked about."""
    return (CN_NEVER, CN_REISSUED) if kind == "aliyun" else (US_NEVER, US_REISSUED)


class Recorded:
    """Which thread ran each lookup of ``provider`` (the adapter itself is untouched)."""

    def __init__(self, provider: Any) -> None:
        self.threads: list[int] = []
        lookup = provider.lookup

        def recording(number: str, since: dt.date) -> Any:
            self.threads.append(threading.get_ident())
            return lookup(number, since)

        provider.lookup = recording


class Ticker:
    """Counts the loop's turns while a check runs, and the longest gap between two."""

    def __init__(self) -> None:
        self.ticks = 0
        self.longest_gap = 0.0

    async def watch(self, until: asyncio.Future[Any]) -> None:
        last = time.monotonic()
        while not until.done():
            await asyncio.sleep(0.005)
            now = time.monotonic()
            self.longest_gap = max(self.longest_gap, now - last)
            last = now
            self.ticks += 1


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(NUMBERS) as fake:
        yield fake


@pytest.fixture(params=list(WARM_ADAPTERS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def fresh_guard(server: FakeProviderServer, kind: str, **options: Any) -> tuple[Guard, Recorded]:
    """A Guard on ``kind``'s adapter with fact caching off: every check asks the provider."""
    provider = WARM_ADAPTERS[kind](server)
    recorded = Recorded(provider)
    options.setdefault("cache", MemoryCache(max_entries=0))
    return Guard(provider, timeout=TIMEOUT, **options), recorded


def lookups(server: FakeProviderServer, number: str) -> list[Any]:
    return [r for r in server.requests if r.endpoint == "lookup" and r.number == number]


async def warm_then(
    guard: Guard, number: str, then: Callable[[], None] = lambda: None
) -> tuple[Decision, Decision, int, Ticker]:
    """One acheck that opens the connection, ``then()``, and one on the warm connection
    while a ticker watches the loop; returns both decisions, the loop's thread and the
    ticker."""
    first = await guard.acheck(number, bound_at=BOUND)
    then()
    ticker = Ticker()
    check = asyncio.ensure_future(guard.acheck(number, bound_at=BOUND))
    await ticker.watch(check)
    return first, await check, threading.get_ident(), ticker


def settles(condition: Callable[[], bool], by: float) -> bool:
    while not condition():
        if time.monotonic() >= by:
            return condition()
        time.sleep(0.005)
    return True


def test_a_warm_lookup_runs_on_the_loop_and_decides_like_check(
    server: FakeProviderServer, kind: str
) -> None:
    never, reissued = numbers_for(kind)
    guard, recorded = fresh_guard(server, kind)
    with guard:
        first, warm, loop_thread, _ = asyncio.run(warm_then(guard, never))
        assert recorded.threads[0] != loop_thread  # a new connection: a worker's job
        assert recorded.threads[1] == loop_thread  # the warm one: on the loop itself
        assert (first.action, first.reason) == (warm.action, warm.reason)
        assert (warm.action, warm.reason) == (Action.ALLOW, Reason.NOT_REISSUED)

        async def reissued_on_the_loop() -> Decision:
            return await guard.acheck(reissued, bound_at=BOUND)

        decision = asyncio.run(reissued_on_the_loop())
        assert (decision.action, decision.reason) == (
            Action.STEP_UP,
            Reason.REISSUED_AFTER_BINDING,
        )
        again = guard.check(reissued, bound_at=BOUND)
        assert decision == attrs.evolve(again, elapsed=decision.elapsed)
        assert guard.pool.in_flight == 0


@pytest.mark.parametrize(
    "fault",
    [
        Hang(),
        Latency(5),
        HeaderDrip(0.05),
        ChunkDrip(0.05),
        SlowDrip(0.05),
        HugeBody(4_000_000, declare_length=False),
    ],
    ids=["hang", "answers-after-5s", "header-drip", "chunk-size-drip", "body-drip", "huge-body"],
)
def test_every_fault_on_a_warm_connection_ends_by_the_deadline_without_blocking_the_loop(
    server: FakeProviderServer, kind: str, fault: Any
) -> None:
    never, _ = numbers_for(kind)
    guard, recorded = fresh_guard(server, kind)
    with guard:
        started = time.monotonic()
        _, decision, loop_thread, ticker = asyncio.run(
            warm_then(guard, never, lambda: server.inject(fault, number=never))
        )
        assert recorded.threads[1] == loop_thread
        assert decision.action is Action.STEP_UP
        assert decision.reason is Reason.PROVIDER_UNAVAILABLE
        assert decision.elapsed <= TIMEOUT + SLACK
        # The loop turned all along: a blocked loop would show one gap as long as the wait
        # (the whole deadline); the bound leaves room for a loaded machine's scheduling.
        assert ticker.longest_gap < STALL, f"the loop stalled for {ticker.longest_gap:.3f}s"
        if not isinstance(fault, HugeBody):  # refused as soon as the limit is passed
            assert decision.elapsed >= TIMEOUT / 2
            assert ticker.ticks >= 10
        by = time.monotonic() + RELEASE
        assert settles(lambda: guard.pool.in_flight == 0, by)
        faulted = lookups(server, never)[1]
        assert faulted.fault == fault
        assert settles(lambda: lookups(server, never)[1].ended == "client_closed", by), (
            "the connection was not closed after the deadline"
        )
        # The pool recovers: the next login gets a fresh, healthy connection.
        server.clear_faults()
        assert guard.check(never, bound_at=BOUND).reason is Reason.NOT_REISSUED
    assert time.monotonic() - started < 5


def test_a_reset_on_a_warm_connection_is_retried_on_a_worker(
    server: FakeProviderServer, kind: str
) -> None:
    """The retry may need a new connection, so it runs on a worker; the second attempt
    answers."""
    never, _ = numbers_for(kind)
    guard, recorded = fresh_guard(server, kind)
    with guard:
        _, decision, loop_thread, _ = asyncio.run(
            warm_then(guard, never, lambda: server.inject(Reset(), number=never, times=1))
        )
    assert decision.reason is Reason.NOT_REISSUED
    assert recorded.threads[1] == loop_thread
    assert recorded.threads[2] != loop_thread
    assert [r.fault for r in lookups(server, never)][1:] == [Reset(), None]


def test_an_answer_arriving_in_a_hundred_pieces_is_read_in_full(
    server: FakeProviderServer,
) -> None:
    """Every piece of a slow but timely answer is a wait in the loop, and the answer counts."""
    guard, recorded = fresh_guard(server, "twilio")
    with guard:
        _, decision, loop_thread, _ = asyncio.run(
            warm_then(guard, US_NEVER, lambda: server.inject(HeaderDrip(0.001), number=US_NEVER))
        )
    assert decision.reason is Reason.NOT_REISSUED
    assert recorded.threads[1] == loop_thread


def test_tls_on_the_loop() -> None:
    with FakeProviderServer(NUMBERS, tls=True) as server:
        guard, recorded = fresh_guard(server, "twilio")
        with guard:
            _, decision, loop_thread, _ = asyncio.run(warm_then(guard, US_NEVER))
            assert decision.reason is Reason.NOT_REISSUED
            assert recorded.threads[1] == loop_thread
            _, dripped, _, ticker = asyncio.run(
                warm_then(guard, US_NEVER, lambda: server.inject(HeaderDrip(0.05)))
            )
            assert dripped.reason is Reason.PROVIDER_UNAVAILABLE
            assert dripped.elapsed <= TIMEOUT + SLACK
            assert ticker.longest_gap < STALL


def test_a_cancelled_acheck_on_the_loop_still_lands_in_the_cache(
    server: FakeProviderServer,
) -> None:
    guard, recorded = fresh_guard(server, "twilio", cache=MemoryCache())
    with guard:

        async def cancel_midway() -> int:
            await guard.acheck(US_REISSUED, bound_at=BOUND)  # warms the connection
            server.inject(Latency(0.2), number=US_NEVER)
            task = asyncio.ensure_future(guard.acheck(US_NEVER, bound_at=BOUND))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.3)  # the loop goes on running the parked lookup
            return threading.get_ident()

        loop_thread = asyncio.run(cancel_midway())
        assert recorded.threads == [recorded.threads[0], loop_thread]
        assert guard.pool.in_flight == 0
        decision = guard.check(US_NEVER, bound_at=BOUND)
        assert (decision.reason, decision.cached) == (Reason.NOT_REISSUED, True)
        assert len(lookups(server, US_NEVER)) == 1


def test_closing_the_loop_under_a_parked_lookup_leaves_no_flight_open(
    server: FakeProviderServer,
) -> None:
    """``asyncio.run`` ends (and closes its loop) while a lookup waits in it: the lookup
    ends with the loop (no retry, nothing for the breaker), its slot is freed at once, and
    the next login asks afresh."""
    guard, recorded = fresh_guard(server, "twilio", breaker_threshold=1)
    with guard:

        async def leave_it_parked() -> int:
            await guard.acheck(US_NEVER, bound_at=BOUND)
            server.inject(Hang(), number=US_NEVER)
            left = asyncio.ensure_future(guard.acheck(US_NEVER, bound_at=BOUND))
            await asyncio.sleep(0.05)
            assert not left.done()
            return threading.get_ident()

        loop_thread = asyncio.run(leave_it_parked())
        assert recorded.threads[1] == loop_thread
        assert guard.pool.in_flight == 0
        assert guard.lanes["twilio"].breaker.state == "closed"  # one failure would open it
        server.clear_faults()
        started = time.monotonic()
        decision = guard.check(US_NEVER, bound_at=BOUND)
        assert decision.reason is Reason.NOT_REISSUED
        assert time.monotonic() - started < TIMEOUT / 2  # no stale flight to wait on
        assert [r.fault for r in lookups(server, US_NEVER)] == [None, Hang(), None]


def test_without_greenlet_every_lookup_hops_to_a_worker(
    server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_loop_io, "_greenlet", False)
    guard, recorded = fresh_guard(server, "twilio")
    with guard:
        _, decision, loop_thread, _ = asyncio.run(
            warm_then(guard, US_NEVER, lambda: server.inject(Latency(0.1), number=US_NEVER))
        )
    assert decision.reason is Reason.NOT_REISSUED
    assert loop_thread not in recorded.threads


def test_many_concurrent_achecks_share_the_loop_and_the_pool(server: FakeProviderServer) -> None:
    """Fifty logins at once on one loop: the warm connections serve some on the loop, the
    rest open connections on workers, and every login gets its own number's answer."""
    guard, _ = fresh_guard(server, "twilio")
    numbers = [US_NEVER, US_REISSUED] * 25

    async def burst() -> list[Decision]:
        await guard.acheck(US_NEVER, bound_at=BOUND)
        return await asyncio.gather(*(guard.acheck(n, bound_at=BOUND) for n in numbers))

    with guard:
        decisions = asyncio.run(burst())
    expected = {US_NEVER: Reason.NOT_REISSUED, US_REISSUED: Reason.REISSUED_AFTER_BINDING}
    assert [d.reason for d in decisions] == [expected[n] for n in numbers]
    assert guard.pool.in_flight == 0


def test_interleaved_lookups_on_one_loop_keep_their_request_lines_out_of_the_logs(
    server: FakeProviderServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Two lookups parked on one loop at once: when the first ends, the second's urllib3
    request line (which carries the number in Twilio's path) is still withheld."""
    guard, recorded = fresh_guard(server, "twilio")

    async def interleaved() -> tuple[list[Decision], int]:
        # Two slow cold lookups at once leave two warm connections in the pool.
        server.inject(Latency(0.1))
        await asyncio.gather(*(guard.acheck(n, bound_at=BOUND) for n in (US_NEVER, US_REISSUED)))
        server.clear_faults()
        server.inject(Latency(0.1), number=US_REISSUED)
        caplog.clear()
        decisions = await asyncio.gather(
            guard.acheck(US_REISSUED, bound_at=BOUND),  # parked until after the other ends
            guard.acheck(US_NEVER, bound_at=BOUND),
        )
        return list(decisions), threading.get_ident()

    with guard, caplog.at_level(logging.DEBUG):
        decisions, loop_thread = asyncio.run(interleaved())
    assert [d.reason for d in decisions] == [Reason.REISSUED_AFTER_BINDING, Reason.NOT_REISSUED]
    assert recorded.threads[2:] == [loop_thread, loop_thread]  # both ran on the loop
    request_lines = [r.getMessage() for r in caplog.records if "HTTP/1.1" in r.getMessage()]
    assert len(request_lines) == 2
    for line in request_lines:
        assert "<withheld>" in line
        assert "2015550" not in line
