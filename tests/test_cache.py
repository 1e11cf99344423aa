"""MemoryCache: bounded, expiring, thread-safe, atomic updates; update_strictly."""

from __future__ import annotations

import datetime as dt
import functools
import sys
from collections.abc import Callable

import pytest

from recyclecheck import CacheUnavailable, ConfigurationError, FactCache, MemoryCache
from recyclecheck._cache import MEMORY_UPDATE_ROUNDS, update_strictly
from recyclecheck._facts import Fact, merge

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


# -- update_strict: read, change and write one entry with no write in between ----------

EARLY = dt.date(2023, 1, 1)
LATE = dt.date(2025, 6, 1)


def _changed(day: dt.date) -> Fact:
    return Fact(changed_from=day, change_exact=True)


def test_update_strict_merges_into_what_is_stored() -> None:
    """change gets the live fact (None when nothing is stored); its result is stored."""
    cache = MemoryCache()
    seen: list[Fact | None] = []

    def later(day: dt.date) -> Callable[[Fact | None], Fact]:
        def change(stored: Fact | None) -> Fact:
            seen.append(stored)
            return merge(stored, _changed(day))

        return change

    cache.update_strict("a", later(EARLY))
    cache.update_strict("a", later(LATE))
    cache.update_strict("a", later(EARLY))
    assert seen == [None, _changed(EARLY), _changed(LATE)]
    assert cache.get("a") == _changed(LATE)


def test_update_strict_starts_over_when_another_thread_lands_in_between() -> None:
    """Writer A reads (nothing), then writer B's whole update (LATE) lands before A writes
    EARLY: A starts over from LATE, and LATE stays.  A get-then-set would store EARLY."""
    cache = MemoryCache()
    seen: list[Fact | None] = []

    def early(stored: Fact | None) -> Fact:
        seen.append(stored)
        if len(seen) == 1:
            run_together(
                [lambda: cache.update_strict("a", lambda s: merge(s, _changed(LATE)))], within=5
            )
        return merge(stored, _changed(EARLY))

    cache.update_strict("a", early)
    assert seen == [None, _changed(LATE)]
    assert cache.get("a") == _changed(LATE)


def test_concurrent_updates_keep_the_latest_date() -> None:
    """8 threads x 200 updates of one key, each thread raising the date step by step
    (thread i stores day 8k + i), so to the end every writer races to store a later
    date: no write ever replaces a later date with an earlier one, and the latest of
    all stays.  (A get-then-set loses one in about half of these rounds.)"""
    writers, steps = 8, 200
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show up
    try:
        for _ in range(5):
            cache = MemoryCache()
            plans = [
                [EARLY + dt.timedelta(days=k * writers + i) for k in range(steps)]
                for i in range(writers)
            ]
            went_back = run_together(
                [functools.partial(_raise_step_by_step, cache, plan) for plan in plans],
                within=30,
                name="update",
            )
            assert sum(went_back) == 0
            assert cache.get("a") == _changed(plans[-1][-1])
    finally:
        sys.setswitchinterval(interval)


def _raise_step_by_step(cache: MemoryCache, plan: list[dt.date]) -> int:
    """Store each date of ``plan``; count the times the date stored just after was earlier."""
    went_back = 0
    for day in plan:
        cache.update_strict("a", functools.partial(_merge_day, day=day))
        stored = cache.get("a")
        went_back += stored is None or stored.changed_from is None or stored.changed_from < day
    return went_back


def _merge_day(stored: Fact | None, *, day: dt.date) -> Fact:
    return merge(stored, _changed(day))


def test_a_change_or_clock_that_uses_the_cache_does_not_deadlock_it() -> None:
    """change and the clock are the caller's code: update_strict holds no lock around them."""
    cache: MemoryCache
    base = Clock()

    def clock() -> float:
        len(cache)
        return base()

    def change(stored: Fact | None) -> Fact:
        cache.get("b")
        cache.set("b", _changed(EARLY))
        return merge(stored, _changed(LATE))

    cache = MemoryCache(clock=clock)
    run_together([lambda: cache.update_strict("a", change)], within=5)
    assert (cache.get("a"), cache.get("b")) == (_changed(LATE), _changed(EARLY))


def test_update_strict_expiry_and_lapsed_results() -> None:
    """An expired entry reads as None to change; a result whose claims have lapsed is not
    stored and what was there stays; with max_entries=0 nothing is stored."""
    clock = Clock()
    cache = MemoryCache(ttl=10, clock=clock)
    cache.set("a", Fact(quiet_from=EARLY, quiet_until=clock.now + 10))
    clock.now += 11
    seen: list[Fact | None] = []

    def change(stored: Fact | None) -> Fact:
        seen.append(stored)
        return _changed(LATE)

    cache.update_strict("a", change)
    assert seen == [None]
    cache.update_strict("a", lambda stored: Fact(quiet_from=EARLY, quiet_until=clock.now - 1))
    assert cache.get("a") == _changed(LATE)
    empty = MemoryCache(max_entries=0)
    empty.update_strict("a", lambda stored: _changed(LATE))
    assert empty.get("a") is None


def test_update_strict_gives_up_on_a_key_that_keeps_changing() -> None:
    """A change that writes the key itself (not pure) loses every round: after
    MEMORY_UPDATE_ROUNDS, CacheUnavailable("write", "contention"), not a hang."""
    cache = MemoryCache()
    calls = 0

    def meddling(stored: Fact | None) -> Fact:
        nonlocal calls
        calls += 1
        cache.set("a", _changed(EARLY))
        return _changed(LATE)

    def attempt() -> CacheUnavailable | None:
        try:
            cache.update_strict("a", meddling)
        except CacheUnavailable as exc:
            return exc
        return None

    (caught,) = run_together([attempt], within=5)
    assert caught is not None
    assert (caught.operation, caught.cause) == ("write", "contention")
    assert calls == MEMORY_UPDATE_ROUNDS
    assert cache.get("a") == _changed(EARLY)


# -- update_strictly: the atomic update where a cache has one -------------------------


class GetSetOnly:
    """A cache of your own with only get and set."""

    ttl = 60.0
    change_ttl = 3600.0
    shared = False

    def __init__(self) -> None:
        self.facts: dict[str, Fact] = {}
        self.calls: list[str] = []

    def get(self, key: str) -> Fact | None:
        self.calls.append("get")
        return self.facts.get(key)

    def set(self, key: str, fact: Fact) -> None:
        self.calls.append("set")
        self.facts[key] = fact


class OwnUpdate(GetSetOnly):
    """A cache of your own with update_strict, which fails with ``error`` if given one."""

    def __init__(self, error: Exception | None = None) -> None:
        super().__init__()
        self.error = error

    def update_strict(self, key: str, change: Callable[[Fact | None], Fact]) -> None:
        self.calls.append("update_strict")
        self.facts[key] = change(self.facts.get(key))
        if self.error is not None:
            raise self.error


def test_update_strictly_uses_update_strict_where_there_is_one() -> None:
    cache = OwnUpdate()
    update_strictly(cache, "a", lambda stored: _changed(LATE))
    assert (cache.calls, cache.facts) == (["update_strict"], {"a": _changed(LATE)})


def test_update_strictly_reads_then_writes_a_cache_without_one() -> None:
    cache = GetSetOnly()
    update_strictly(cache, "a", lambda stored: merge(stored, _changed(LATE)))
    update_strictly(cache, "a", lambda stored: merge(stored, _changed(EARLY)))
    assert (cache.calls, cache.facts) == (["get", "set", "get", "set"], {"a": _changed(LATE)})


def test_update_strictly_reports_the_caches_errors_not_the_changes() -> None:
    """What update_strict raises becomes CacheUnavailable("write", type); what change
    raises propagates unchanged."""
    with pytest.raises(CacheUnavailable) as caught:
        update_strictly(OwnUpdate(OSError("down")), "a", lambda stored: _changed(LATE))
    assert (caught.value.operation, caught.value.cause) == ("write", "OSError")
    assert isinstance(caught.value.__cause__, OSError)

    def broken(stored: Fact | None) -> Fact:
        raise ZeroDivisionError

    for cache in (OwnUpdate(), GetSetOnly(), MemoryCache()):
        with pytest.raises(ZeroDivisionError):
            update_strictly(cache, "a", broken)
