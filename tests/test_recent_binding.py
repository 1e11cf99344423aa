"""Policy(trust_recent_binding=...): a binding proven within the carriers' shortest aging
period is allowed without asking anyone; nothing older, and never by default."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recyclecheck import Action, ConfigurationError, Guard, Policy, Reason
from recyclecheck._policy import MAX_TRUSTED_BINDING_AGE, recently_bound
from recyclecheck.providers import SandboxProvider

NO_DATA = "+86 137 0013 7000"  # the demo sandbox knows nothing about it
UTC = dt.timezone.utc


class Counting:
    name = "counting"

    def __init__(self) -> None:
        self.calls = 0

    def lookup(self, number: str, since: dt.date) -> Any:
        self.calls += 1
        return SandboxProvider.demo().lookup(number, since)


def test_off_by_default() -> None:
    guard = Guard(SandboxProvider.demo(), timeout=1)
    decision = guard.check(NO_DATA, bound_at=dt.datetime.now(UTC))
    assert (decision.action, decision.reason) == (Action.STEP_UP, Reason.NO_DATA)


def test_a_fresh_binding_is_allowed_without_a_lookup() -> None:
    """After a passed step-up moves bound_at to now, the next login goes straight in."""
    provider = Counting()
    guard = Guard(provider, policy=Policy(trust_recent_binding=30), timeout=1)
    decision = guard.check(NO_DATA, bound_at=dt.datetime.now(UTC) - dt.timedelta(days=29))
    assert (decision.action, decision.reason, decision.provider) == (
        Action.ALLOW,
        Reason.RECENTLY_BOUND,
        "policy",
    )
    assert provider.calls == 0


def test_an_older_binding_is_asked_about_as_usual() -> None:
    provider = Counting()
    guard = Guard(provider, policy=Policy(trust_recent_binding=30), timeout=1)
    decision = guard.check(NO_DATA, bound_at=dt.datetime.now(UTC) - dt.timedelta(days=31))
    assert decision.reason is Reason.NO_DATA
    assert provider.calls == 1


@pytest.mark.parametrize("value", [0, 45, 90, dt.timedelta(hours=12), -1, True, "30", 1.5])
def test_only_ages_under_the_shortest_aging_period_are_accepted(value: Any) -> None:
    with pytest.raises(ConfigurationError):
        Policy(trust_recent_binding=value)


@given(
    binding=st.dates(min_value=dt.date(1970, 1, 1), max_value=dt.date(2100, 1, 1)),
    today=st.dates(min_value=dt.date(1970, 1, 1), max_value=dt.date(2100, 1, 1)),
    days=st.integers(min_value=1, max_value=44),
)
def test_only_bindings_younger_than_the_setting_are_trusted(
    binding: dt.date, today: dt.date, days: int
) -> None:
    outcome = recently_bound(binding, today, Policy(trust_recent_binding=days))
    if (today - binding).days < days:
        assert outcome is not None
        assert (outcome.action, outcome.reason) == (Action.ALLOW, Reason.RECENTLY_BOUND)
    else:
        assert outcome is None
    assert recently_bound(binding, today, Policy()) is None
    assert dt.timedelta(days=days) <= MAX_TRUSTED_BINDING_AGE


def test_a_reported_change_wins_over_a_recent_binding() -> None:
    """A change recorded (or cached from a provider) after the binding still steps up."""
    guard = Guard(Counting(), policy=Policy(trust_recent_binding=30), timeout=1)
    bound = dt.datetime.now(UTC) - dt.timedelta(days=10)
    guard.record_change(NO_DATA, on=(bound + dt.timedelta(days=2)).date())
    decision = guard.check(NO_DATA, bound_at=bound)
    assert (decision.reason, decision.provider) == (Reason.REISSUED_AFTER_BINDING, "feed")
