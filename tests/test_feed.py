"""Changes pushed to the app (carrier notices, provider events, deactivation files) are
stored as facts that later checks use without a lookup."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any

import pytest

from recyclecheck import (
    Action,
    CacheUnavailable,
    ConfigurationError,
    Guard,
    InvalidInput,
    InvalidPhoneNumber,
    MemoryCache,
    Reason,
    Router,
)
from recyclecheck._facts import Fact
from recyclecheck.providers import ChangedSince, SandboxProvider

from .crowd import run_together
from .privacy import leaks

NUMBER = "+8613900139000"  # never reissued, says the demo sandbox


class Counting:
    name = "counting"

    def __init__(self) -> None:
        self.calls = 0

    def lookup(self, number: str, since: dt.date) -> Any:
        self.calls += 1
        return ChangedSince(since, False)


def test_a_recorded_change_steps_up_later_checks_without_a_lookup() -> None:
    provider = Counting()
    guard = Guard(provider, timeout=1)
    guard.record_change("+86 139 0013 9000", on=dt.date(2025, 6, 1))
    decision = guard.check(NUMBER, bound_at=dt.date(2022, 5, 10))
    assert (decision.action, decision.reason, decision.provider) == (
        Action.STEP_UP,
        Reason.REISSUED_AFTER_BINDING,
        "feed",
    )
    assert decision.cached
    assert decision.reissued_on == dt.date(2025, 6, 1)
    assert provider.calls == 0


def test_a_change_before_the_binding_does_not_decide() -> None:
    """Bound after the recorded change (the new holder's own account): ask the provider."""
    provider = Counting()
    guard = Guard(provider, timeout=1)
    guard.record_change(NUMBER, on=dt.date(2021, 1, 1))
    decision = guard.check(NUMBER, bound_at=dt.date(2022, 5, 10))
    assert (decision.reason, decision.provider) == (Reason.NOT_REISSUED, "counting")
    assert provider.calls == 1


def test_a_recorded_change_wins_over_a_providers_cached_quiet() -> None:
    guard = Guard(Counting(), timeout=1)
    assert guard.check(NUMBER, bound_at=dt.date(2022, 5, 10)).allowed
    guard.record_change(NUMBER, on=dt.datetime(2025, 6, 1, 23, tzinfo=dt.timezone.utc))
    decision = guard.check(NUMBER, bound_at=dt.date(2022, 5, 10))
    assert (decision.reason, decision.provider) == (Reason.REISSUED_AFTER_BINDING, "feed")


def test_an_earlier_record_never_replaces_a_later_one() -> None:
    guard = Guard(Counting(), timeout=1)
    guard.record_change(NUMBER, on=dt.date(2025, 6, 1))
    guard.record_change(NUMBER, on=dt.date(2023, 1, 1))
    decision = guard.check(NUMBER, bound_at=dt.date(2024, 5, 10))
    assert decision.reissued_on == dt.date(2025, 6, 1)


def test_recorded_changes_apply_to_every_route() -> None:
    guard = Guard(Router({"+86": [SandboxProvider.demo()]}), timeout=1)
    guard.record_change(NUMBER, on=dt.date(2025, 6, 1))
    assert guard.check(NUMBER, bound_at=dt.date(2022, 5, 10)).provider == "feed"


def test_the_feed_key_is_a_keyed_hmac_not_the_number() -> None:
    cache = MemoryCache()
    guard = Guard(Counting(), timeout=1, cache=cache)
    guard.record_change(NUMBER, on=dt.date(2025, 6, 1))
    (key,) = cache.keys()
    assert "13900139000" not in key
    assert len(key) == 64


@pytest.mark.parametrize(
    ("phone", "on", "error"),
    [
        ("not a number", dt.date(2025, 6, 1), InvalidPhoneNumber),
        (NUMBER, "2025-06-01", InvalidInput),
        (NUMBER, dt.datetime(2025, 6, 1), InvalidInput),  # naive
    ],
)
def test_bad_input_is_refused(phone: str, on: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        Guard(Counting(), timeout=1).record_change(phone, on=on)


def test_feed_is_a_reserved_provider_name() -> None:
    with pytest.raises(ConfigurationError, match="reserved"):
        Guard(SandboxProvider({}, name="feed"))


def test_a_recorded_change_counts_for_a_number_no_route_covers() -> None:
    """Even where no provider would be asked, a pushed change steps up (fail_open too)."""
    from recyclecheck import Policy  # noqa: PLC0415

    guard = Guard(Router({"+1": [Counting()]}), policy=Policy.fail_open(), timeout=1)
    guard.record_change(NUMBER, on=dt.date(2025, 6, 1))
    decision = guard.check(NUMBER, bound_at=dt.date(2022, 5, 10))
    assert (decision.action, decision.provider) == (Action.STEP_UP, "feed")


# -- caches that fail, and caches of your own ---------------------------------------


class DictCache:
    """The least a FactCache needs: get and set, no strict methods."""

    ttl = 60.0
    change_ttl = 3600.0
    shared = False

    def __init__(self) -> None:
        self.facts: dict[str, Fact] = {}
        self.writes = 0

    def get(self, key: str) -> Fact | None:
        return self.facts.get(key)

    def set(self, key: str, fact: Fact) -> None:
        self.writes += 1
        self.facts[key] = fact


class FailingReads(DictCache):
    def get(self, key: str) -> Fact | None:
        raise OSError(f"backend down while reading {NUMBER}")  # even a careless message


class FailingWrites(DictCache):
    def set(self, key: str, fact: Fact) -> None:
        raise OSError("backend down")


class StrictCache(DictCache):
    """A cache of your own with strict methods: record_change uses them, not get/set."""

    def __init__(self) -> None:
        super().__init__()
        self.strict_calls: list[str] = []

    def get_strict(self, key: str) -> Fact | None:
        self.strict_calls.append("get_strict")
        return self.facts.get(key)

    def set_strict(self, key: str, fact: Fact) -> None:
        self.strict_calls.append("set_strict")
        self.facts[key] = fact


class UpdatingCache(StrictCache):
    """A cache of your own with an atomic update too: record_change uses it alone."""

    def update_strict(self, key: str, change: Callable[[Fact | None], Fact]) -> None:
        self.strict_calls.append("update_strict")
        self.facts[key] = change(self.facts.get(key))


@pytest.mark.parametrize(
    "make", [MemoryCache, DictCache, StrictCache, UpdatingCache], ids=lambda m: m.__name__
)
def test_any_cache_keeps_the_later_date(make: Any) -> None:
    """MemoryCache, a cache with only get/set, one with strict methods, and one with an
    atomic update: later wins."""
    guard = Guard(Counting(), timeout=1, cache=make())
    guard.record_change(NUMBER, on=dt.date(2023, 1, 1))
    guard.record_change(NUMBER, on=dt.date(2025, 6, 1))
    guard.record_change(NUMBER, on=dt.date(2023, 1, 1))
    decision = guard.check(NUMBER, bound_at=dt.date(2024, 5, 10))
    assert (decision.provider, decision.reissued_on) == ("feed", dt.date(2025, 6, 1))


def test_strict_methods_of_a_cache_of_your_own_are_used() -> None:
    cache = StrictCache()
    Guard(Counting(), timeout=1, cache=cache).record_change(NUMBER, on=dt.date(2025, 6, 1))
    assert cache.strict_calls == ["get_strict", "set_strict"]
    assert cache.writes == 0  # set was not called


def test_the_atomic_update_of_a_cache_of_your_own_is_used() -> None:
    cache = UpdatingCache()
    Guard(Counting(), timeout=1, cache=cache).record_change(NUMBER, on=dt.date(2025, 6, 1))
    assert cache.strict_calls == ["update_strict"]
    assert cache.writes == 0


def test_threads_recording_one_number_keep_the_latest_date() -> None:
    """8 threads record one number 50 times each, each raising the date step by step, on
    the default MemoryCache: the latest date of all is the one checks see."""
    guard = Guard(Counting(), timeout=1)
    start = dt.date(2023, 1, 1)

    def record(offset: int) -> None:
        for step in range(50):
            guard.record_change(NUMBER, on=start + dt.timedelta(days=step * 8 + offset))

    run_together([functools.partial(record, i) for i in range(8)], within=30, name="record")
    latest = start + dt.timedelta(days=49 * 8 + 7)
    decision = guard.check(NUMBER, bound_at=latest)
    assert (decision.provider, decision.reissued_on) == ("feed", latest)


def test_a_cache_whose_get_raises_stops_record_change_before_any_write() -> None:
    """Without strict methods, what get raises is still reported, and nothing is written;
    the message names the operation and the exception type, never the number."""
    cache = FailingReads()
    guard = Guard(Counting(), timeout=1, cache=cache)
    with pytest.raises(CacheUnavailable) as caught:
        guard.record_change(NUMBER, on=dt.date(2023, 1, 1))
    assert (caught.value.operation, caught.value.cause) == ("read", "OSError")
    assert isinstance(caught.value.__cause__, OSError)
    assert str(caught.value) == "cache read failed (OSError)"
    assert not leaks(str(caught.value) + repr(caught.value), [NUMBER])
    assert cache.writes == 0


def test_a_cache_whose_set_raises_fails_record_change() -> None:
    guard = Guard(Counting(), timeout=1, cache=FailingWrites())
    with pytest.raises(CacheUnavailable, match=r"^cache write failed \(OSError\)$"):
        guard.record_change(NUMBER, on=dt.date(2025, 6, 1))


def test_a_failing_cache_still_never_fails_a_check() -> None:
    """The strictness is record_change's alone: check reads past the same cache."""
    decision = Guard(Counting(), timeout=1, cache=FailingReads()).check(
        NUMBER, bound_at=dt.date(2022, 5, 10)
    )
    assert decision.reason is Reason.NOT_REISSUED
