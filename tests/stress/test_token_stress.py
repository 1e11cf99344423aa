"""The OAuth token cache under forced thread switching: one fetch per expiry, shared by all."""

from __future__ import annotations

import random
import threading
import time

import pytest

from recyclecheck.providers._tokens import TokenCache

from ..crowd import rounds, run_together

#: pytest-timeout's bound: far above each case's own (a stuck thread fails it at STUCK).
pytestmark = pytest.mark.timeout(60)
SPIN = 1.0
STUCK = 10.0
LIFETIME = 3600.0


class Fetch:
    """Hands out ``tok-1``, ``tok-2``... and counts the fetches."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> tuple[str, float]:
        with self._lock:
            self.calls += 1
            call = self.calls
        time.sleep(0.001)  # long enough for others to arrive during the fetch
        return f"tok-{call}", LIFETIME


def test_each_expiry_costs_one_fetch_whatever_the_crowd() -> None:
    """Round after round the token expires and twelve threads need one at once: one fetch per
    round, and every thread of the round gets its token."""
    threads = 12
    now = [0.0]
    fetch = Fetch()
    tokens = TokenCache(fetch, clock=lambda: now[0])
    got: list[str] = []
    per_round: list[set[str]] = []
    stop_at = time.monotonic() + SPIN
    going = [True]

    def between() -> None:  # one thread, while the others wait at the barrier
        if got:
            per_round.append(set(got))
            got.clear()
        now[0] += LIFETIME  # past expiry: the next get() must fetch
        going[0] = time.monotonic() < stop_at

    barrier = threading.Barrier(threads, action=between)

    def need_tokens() -> int:
        asked = 0
        while True:
            barrier.wait(STUCK)
            if not going[0]:
                return asked
            got.append(tokens.get())
            asked += 1
            barrier.wait(STUCK)

    run_together([need_tokens] * threads, within=STUCK + SPIN)
    assert len(per_round) >= 5
    assert per_round == [{f"tok-{n}"} for n in range(1, len(per_round) + 1)]
    assert fetch.calls == len(per_round)


def test_gets_and_invalidations_in_any_order_always_yield_a_fetched_token() -> None:
    """Threads getting tokens and invalidating them (as after a 401) never stick or err."""
    fetch = Fetch()
    tokens = TokenCache(fetch)

    def chaos(seed: int) -> int:
        rng = random.Random(seed)
        fetched = 0
        for _ in rounds(SPIN, 5_000):
            if rng.random() < 0.1:
                tokens.invalidate(rng.choice([None, f"tok-{rng.randint(1, 5)}"]))
            else:
                token = tokens.get()
                assert token.startswith("tok-")
                assert 1 <= int(token[4:]) <= fetch.calls
                fetched += 1
        return fetched

    assert sum(run_together([lambda s=s: chaos(s) for s in range(8)], within=STUCK)) > 0
