"""``acheck`` lookups running on event loops' own threads (``_loop_io``), under forced
thread switching, sharing one Guard and its connection pool with blocking checks on
other threads: every login gets its own number's answer, a hanging number costs its
own logins one deadline, and nothing sticks.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable

import pytest

from recyclecheck import Decision, Guard, MemoryCache, Reason, _loop_io, mask
from recyclecheck.testing import FakeProviderServer, Hang

from ..crowd import rounds, run_together

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(not _loop_io.available(), reason="needs recyclecheck[async]"),
]

BOUND = dt.date(2023, 6, 1)
TIMEOUT = 0.3
#: Scheduling allowance over the deadline under forced switching on a busy machine.
SLACK = 0.5
SPIN = 1.5
STUCK = 30.0
NEVER, REISSUED, HUNG = "+12015550124", "+12015550123", "+12015550125"
EXPECTED = {
    NEVER: Reason.NOT_REISSUED,
    REISSUED: Reason.REISSUED_AFTER_BINDING,
    HUNG: Reason.PROVIDER_UNAVAILABLE,
}


def expect(decision: Decision, number: str) -> None:
    assert decision.reason is EXPECTED[number], (
        f"{mask(number)}: {decision.reason} (wanted {EXPECTED[number]})"
    )
    assert decision.elapsed <= TIMEOUT + SLACK, f"{mask(number)} took {decision.elapsed:.3f}s"


def test_loops_and_threads_share_a_guard_and_its_connections() -> None:
    numbers = {NEVER: None, REISSUED: dt.date(2024, 3, 1), HUNG: None}
    with FakeProviderServer(numbers) as server:
        server.inject(Hang(), number=HUNG)
        # No fact cache and breaker that never opens: every login asks the provider.
        guard = Guard(
            server.twilio(),
            timeout=TIMEOUT,
            cache=MemoryCache(max_entries=0),
            breaker_threshold=10**9,
        )
        asked = [NEVER, REISSUED, HUNG, NEVER, REISSUED, NEVER]
        on_loops: list[bool] = []
        lookup = guard.lanes["twilio"].provider.lookup

        def recording(number: str, since: dt.date) -> object:
            on_loops.append(_loop_io.on_loop())
            return lookup(number, since)

        guard.lanes["twilio"].provider.lookup = recording  # type: ignore[method-assign]

        def on_a_loop() -> int:
            async def logins() -> int:
                done = 0
                for _ in rounds(SPIN, 50):
                    # One login alone, then a crowd: alone, it usually finds an idle
                    # connection and runs on the loop; the crowd mostly opens new ones.
                    expect(await guard.acheck(NEVER, bound_at=BOUND), NEVER)
                    decisions = await asyncio.gather(
                        *(guard.acheck(n, bound_at=BOUND) for n in asked)
                    )
                    for number, decision in zip(asked, decisions, strict=True):
                        expect(decision, number)
                    done += len(decisions)
                return done

            return asyncio.run(logins())

        def blocking() -> int:
            done = 0
            for index in rounds(SPIN, 200):
                number = asked[index % len(asked)]
                expect(guard.check(number, bound_at=BOUND), number)
                done += 1
            return done

        tasks: list[Callable[[], int]] = [on_a_loop, on_a_loop, on_a_loop, blocking, blocking]
        with guard:
            done = run_together(tasks, within=STUCK, name="loop-io")
            assert all(count > 0 for count in done)
            # Every slot is given back once the hung numbers' deadlines have passed.
            settled = time.monotonic() + TIMEOUT + SLACK
            while guard.pool.in_flight and time.monotonic() < settled:
                time.sleep(0.01)
            assert guard.pool.in_flight == 0
        # Both paths ran: lookups on the loops' threads and on workers/callers' threads.
        counts = f"{on_loops.count(True)} on a loop, {on_loops.count(False)} elsewhere"
        assert True in on_loops, counts
        assert False in on_loops, counts
