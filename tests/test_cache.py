"""MemoryCache: bounded, expiring, thread-safe."""

from __future__ import annotations

import datetime as dt

import pytest

from recyclecheck import ConfigurationError, FactCache, MemoryCache
from recyclecheck._facts import Fact

from .crowd import run_together


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_memory_cache_satisfies_the_protocol() -> None:
    """MemoryCache is a FactCache."""
    assert isinstance(MemoryCache(), FactCache)


def test_quiet_facts_expire_and_changes_live_long() -> None:
    """An entry lives as long as its longest-lived claim."""
    clock = Clock()
    cache = MemoryCache(ttl=10, change_ttl=dt.timedelta(days=1), clock=clock)
    cache.set("quiet", Fact(quiet_from=dt.date(2024, 1, 1), quiet_until=clock.now + 10))
    cache.set("change", Fact(changed_from=dt.date(2024, 1, 1), change_exact=True))
    clock.now += 11
    assert cache.get("quiet") is None
    assert cache.get("change") is not None
    clock.now += 86_400
    assert cache.get("change") is None


def test_lru_bound() -> None:
    """The least recently used entry goes first once max_entries is reached."""
    cache = MemoryCache(max_entries=2)
    fact = Fact(changed_from=dt.date(2024, 1, 1))
    cache.set("a", fact)
    cache.set("b", fact)
    assert cache.get("a") is not None
    cache.set("c", fact)
    assert cache.get("b") is None
    assert cache.get("a") is not None
    assert len(cache) == 2


def test_zero_entries_disables() -> None:
    """max_entries=0 stores nothing."""
    cache = MemoryCache(max_entries=0)
    cache.set("a", Fact(changed_from=dt.date(2024, 1, 1)))
    assert cache.get("a") is None


@pytest.mark.parametrize(
    "kwargs",
    [{"max_entries": -1}, {"max_entries": True}, {"ttl": -1}, {"ttl": float("nan")}, {"ttl": "1"}],
)
def test_bad_configuration(kwargs: dict[str, object]) -> None:
    """Nonsense sizes and durations are refused."""
    with pytest.raises(ConfigurationError):
        MemoryCache(**kwargs)  # type: ignore[arg-type]


def test_concurrent_use_keeps_the_bound() -> None:
    """Many threads writing and reading never break the size bound or raise."""
    cache = MemoryCache(max_entries=50)
    fact = Fact(changed_from=dt.date(2024, 1, 1))
    errors: list[BaseException] = []

    def hammer(offset: int) -> None:
        try:
            for i in range(2_000):
                cache.set(f"{offset}-{i % 97}", fact)
                cache.get(f"{offset}-{(i * 7) % 97}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    run_together([lambda n=n: hammer(n) for n in range(8)], within=30)
    assert not errors
    assert len(cache) <= 50


def test_a_clock_that_reads_the_cache_does_not_deadlock_it() -> None:
    """The clock is the caller's code, so no method calls it while holding the cache's lock.

    ``get`` used to read the clock under the lock: a clock that looked at the
    cache (here its size, as a metrics-minded clock might) waited for ever on
    the lock its own caller held.
    """
    cache: MemoryCache
    base = Clock()

    def clock() -> float:
        len(cache)
        cache.keys()
        return base()

    cache = MemoryCache(clock=clock)
    fact = Fact(changed_from=dt.date(2024, 1, 1), change_exact=True)

    def use() -> Fact | None:
        cache.set("a", fact)
        base.now += 86_400 * 365  # past change_ttl: the next get expires the entry
        expired = cache.get("a")
        cache.set("a", fact)
        assert expired is None
        return cache.get("a")

    assert run_together([use], within=5) == [fact]
