"""MemoryCache and RedisCache under forced thread switching: bounded, never mixed up, never stuck."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import random
import uuid
from collections.abc import Iterator

import pytest

from recyclecheck import Guard, MemoryCache, Reason, RedisCache, mask
from recyclecheck._facts import Fact
from recyclecheck.providers import SandboxProvider

from ..crowd import rounds, run_together
from ..redisserver import RedisServer
from .test_guard_stress import BOUND, DEMO, expect

#: pytest-timeout's bound: far above each case's own (a stuck thread fails it at STUCK).
pytestmark = pytest.mark.timeout(60)
SPIN = 1.0
STUCK = 10.0
KEYS = 64


def fact_for(key: int, *, quiet_until: float = 0.0) -> Fact:
    """A fact only key ``key`` ever holds: a get that returns another one is a mix-up."""
    return Fact(
        changed_from=dt.date(2020, 1, 1) + dt.timedelta(days=key),
        change_exact=True,
        quiet_until=quiet_until,
    )


# -- (6) MemoryCache --------------------------------------------------------------------------


def test_memory_cache_with_few_entries_from_many_threads() -> None:
    """Eight threads set, get and evict in a cache of eight entries: the bound holds throughout,
    and a key only ever reads back its own fact (or nothing, once evicted)."""
    bound = 8
    cache = MemoryCache(max_entries=bound)

    def hammer(seed: int) -> int:
        rng = random.Random(seed)
        hits = 0
        for _ in rounds(SPIN, 20_000):
            key = rng.randrange(KEYS)
            if rng.random() < 0.5:
                cache.set(f"k{key}", fact_for(key))
            else:
                found = cache.get(f"k{key}")
                assert found is None or found == fact_for(key), f"k{key} read {found}"
                hits += found is not None
            assert len(cache) <= bound
        return hits

    hits = run_together([lambda s=s: hammer(s) for s in range(8)], within=STUCK)
    assert sum(hits) > 0
    keys = cache.keys()
    assert len(keys) <= bound
    assert set(keys) <= {f"k{key}" for key in range(KEYS)}


def test_memory_cache_expiring_and_clearing_under_load() -> None:
    """Entries expiring on a clock that moves with every read, and clear() from another thread."""
    ticks = itertools.count()  # next() on a count is atomic: a clock shared by every thread
    cache = MemoryCache(max_entries=16, ttl=0, change_ttl=0, clock=lambda: next(ticks) / 1000)

    def hammer(seed: int) -> int:
        rng = random.Random(seed)
        for _ in rounds(SPIN, 20_000):
            key = rng.randrange(KEYS)
            cache.set(f"k{key}", fact_for(key, quiet_until=next(ticks) / 1000 + rng.random()))
            found = cache.get(f"k{rng.randrange(KEYS)}")
            assert found is None or found.changed_from is not None
            assert len(cache) <= 16
        return 0

    def clearing() -> int:
        for _ in rounds(SPIN, 2_000):
            cache.clear()
        return 0

    run_together([lambda s=s: hammer(s) for s in range(6)] + [clearing], within=STUCK)
    assert len(cache) <= 16


# -- (7) RedisCache against a real redis-server ------------------------------------------------


@pytest.fixture
def redis_cache(redis_server: RedisServer) -> Iterator[RedisCache]:
    """A RedisCache on a prefix of its own, with the longest socket timeouts it accepts."""
    client = redis_server.client(socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        yield RedisCache(client, secret=b"stress-secret-0123456789", prefix=f"{uuid.uuid4()}:")
    finally:
        client.close()


@pytest.mark.redis
def test_redis_cache_from_many_threads(
    redis_cache: RedisCache, caplog: pytest.LogCaptureFixture
) -> None:
    """Eight threads set and get through one RedisCache: each key reads back its own fact
    (or nothing yet), and no Redis call fails or trips the cache's breaker."""
    cache = redis_cache

    def hammer(seed: int) -> int:
        rng = random.Random(seed)
        hits = 0
        for _ in rounds(SPIN, 2_000):
            key = rng.randrange(KEYS)
            if rng.random() < 0.5:
                cache.set(f"k{key}", fact_for(key))
            else:
                found = cache.get(f"k{key}")
                assert found is None or found == fact_for(key), f"k{key} read {found}"
                hits += found is not None
        return hits

    with caplog.at_level(logging.WARNING, logger="recyclecheck"):
        hits = run_together([lambda s=s: hammer(s) for s in range(8)], within=STUCK)
    assert sum(hits) > 0
    assert not [r.getMessage() for r in caplog.records if r.name == "recyclecheck"]
    assert "redis=closed" in repr(cache)


@pytest.mark.redis
def test_guards_sharing_a_redis_cache_from_many_threads(redis_cache: RedisCache) -> None:
    """Two Guards (one secret) on one RedisCache, checked from eight threads: right answers,
    and facts one Guard learned serve the other."""
    guards = [
        Guard(
            SandboxProvider.demo(), timeout=5, cache=redis_cache, secret=b"guard-secret-0123456789"
        )
        for _ in range(2)
    ]
    numbers = list(DEMO)

    def keep_checking(offset: int) -> int:
        cached = 0
        for i in rounds(SPIN, 1_000):
            e164 = numbers[(offset + i) % len(numbers)]
            decision = guards[(offset + i) % 2].check(e164, bound_at=BOUND)
            expect(decision, e164, DEMO[e164], provider="sandbox")
            cached += decision.cached
        return cached

    cached = run_together([lambda o=o: keep_checking(o) for o in range(8)], within=STUCK)
    assert sum(cached) > 0
    # A fact stored by either Guard answers the other: here, from a Guard that never asked.
    fresh = Guard(SandboxProvider({}), cache=redis_cache, secret=b"guard-secret-0123456789")
    reissued = "+8613800138000"
    decision = fresh.check(reissued, bound_at=BOUND)
    assert decision.cached
    assert decision.reason is Reason.REISSUED_AFTER_BINDING
    assert decision.masked_number == mask(reissued)
