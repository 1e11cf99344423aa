"""Changes pushed to the app (carrier notices, provider events, deactivation files) are
stored as facts that later checks use without a lookup."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from recyclecheck import (
    Action,
    ConfigurationError,
    Guard,
    InvalidInput,
    InvalidPhoneNumber,
    MemoryCache,
    Reason,
    Router,
)
from recyclecheck.providers import ChangedSince, SandboxProvider

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
