"""The decision policy: reasons, secure defaults, the one-day margin, bound_at validation."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from recyclecheck import (
    Action,
    ConfigurationError,
    InvalidInput,
    Policy,
    ProviderAuthError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderTimeout,
    ProviderUnavailable,
    Reason,
)
from recyclecheck._policy import CLOCK_SKEW, binding_date, evaluate, question_date
from recyclecheck.providers import ChangedSince, LastChange, NoData, NotCovered

from .strategies import answers, dates, offsets

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SINCE = dt.date(2024, 5, 9)

PERMISSIVENESS = {Action.DENY: 0, Action.STEP_UP: 1, Action.ALLOW: 2}


@pytest.mark.parametrize(
    ("answer", "reason", "reissued_on"),
    [
        (LastChange(None), Reason.NOT_REISSUED, None),
        (LastChange(dt.date(2024, 5, 8)), Reason.NOT_REISSUED, None),
        (LastChange(dt.date(2024, 5, 9)), Reason.REISSUED_AFTER_BINDING, dt.date(2024, 5, 9)),
        (LastChange(dt.date(2025, 1, 1)), Reason.REISSUED_AFTER_BINDING, dt.date(2025, 1, 1)),
        (LastChange(None, dt.date(2024, 5, 9)), Reason.NOT_REISSUED, None),
        (LastChange(None, dt.date(2024, 5, 10)), Reason.NOT_COVERED, None),
        (
            LastChange(dt.date(2026, 1, 1), dt.date(2025, 1, 1)),
            Reason.REISSUED_AFTER_BINDING,
            dt.date(2026, 1, 1),
        ),
        (LastChange(dt.date(2020, 1, 1), dt.date(2025, 1, 1)), Reason.NOT_COVERED, None),
        (ChangedSince(SINCE, False), Reason.NOT_REISSUED, None),
        (ChangedSince(dt.date(2020, 1, 1), False), Reason.NOT_REISSUED, None),
        (ChangedSince(dt.date(2024, 5, 10), False), Reason.NOT_COVERED, None),
        (ChangedSince(SINCE, True), Reason.REISSUED_AFTER_BINDING, None),
        (ChangedSince(dt.date(2020, 1, 1), True), Reason.REISSUED_AFTER_BINDING, None),
        (NoData(), Reason.NO_DATA, None),
        (NotCovered(), Reason.NOT_COVERED, None),
    ],
)
def test_answers_map_to_reasons(
    answer: object, reason: Reason, reissued_on: dt.date | None
) -> None:
    """Each answer shape gives the documented reason; a change on the question date counts."""
    outcome = evaluate(answer, SINCE, Policy())  # type: ignore[arg-type]
    assert outcome.reason is reason
    assert outcome.reissued_on == reissued_on


@pytest.mark.parametrize(
    "error",
    [
        ProviderTimeout("t"),
        ProviderUnavailable("u"),
        ProviderRateLimited("r", retry_after=3),
        ProviderAuthError("a"),
        ProviderResponseError("m"),
    ],
)
def test_every_failure_is_provider_unavailable_and_steps_up(error: Exception) -> None:
    """Failures of any kind never allow under the default policy."""
    outcome = evaluate(error, SINCE, Policy())  # type: ignore[arg-type]
    assert outcome.reason is Reason.PROVIDER_UNAVAILABLE
    assert outcome.action is Action.STEP_UP


def test_something_that_is_not_an_answer_never_allows() -> None:
    """A custom provider returning junk cannot produce an allow, even fail-open."""
    outcome = evaluate("no", SINCE, Policy.fail_open())  # type: ignore[arg-type]
    assert outcome.reason is Reason.PROVIDER_UNAVAILABLE
    assert evaluate(None, SINCE, Policy()).action is Action.STEP_UP  # type: ignore[arg-type]


def test_default_policy_allows_only_not_reissued() -> None:
    """Secure by default: every reason but not_reissued steps up."""
    policy = Policy()
    for reason in Reason:
        expected = Action.ALLOW if reason is Reason.NOT_REISSUED else Action.STEP_UP
        assert policy.action_for(reason) is expected


def test_fail_open_allows_unknowns_but_never_a_confirmed_reissue() -> None:
    """fail_open trades safety for availability on unknowns only."""
    policy = Policy.fail_open()
    assert policy.action_for(Reason.NO_DATA) is Action.ALLOW
    assert policy.action_for(Reason.NOT_COVERED) is Action.ALLOW
    assert policy.action_for(Reason.PROVIDER_UNAVAILABLE) is Action.ALLOW
    assert policy.action_for(Reason.REISSUED_AFTER_BINDING) is Action.STEP_UP


def test_policy_can_deny_and_maps_each_reason() -> None:
    """Custom mappings take effect reason by reason."""
    policy = Policy(
        on_reissued=Action.DENY,
        on_no_data=Action.ALLOW,
        on_not_covered=Action.DENY,
        on_unavailable=Action.STEP_UP,
    )
    assert evaluate(LastChange(dt.date(2025, 1, 1)), SINCE, policy).action is Action.DENY
    assert evaluate(NoData(), SINCE, policy).action is Action.ALLOW
    assert evaluate(NotCovered(), SINCE, policy).action is Action.DENY
    assert evaluate(ProviderTimeout("t"), SINCE, policy).action is Action.STEP_UP


def test_policy_refuses_to_allow_reissued_numbers() -> None:
    """on_reissued=ALLOW is a configuration that would defeat the SDK."""
    with pytest.raises(ConfigurationError):
        Policy(on_reissued=Action.ALLOW)


def test_policy_refuses_non_actions() -> None:
    """Strings and other values are not actions."""
    with pytest.raises(ConfigurationError):
        Policy(on_no_data="allow")  # type: ignore[arg-type]


def test_policy_is_frozen() -> None:
    """A Policy cannot be changed after construction."""
    policy = Policy()
    with pytest.raises(AttributeError):
        policy.on_no_data = Action.ALLOW  # type: ignore[misc]


# -- bound_at ---------------------------------------------------------------------------


def test_naive_datetime_is_refused() -> None:
    """A naive datetime's zone is a guess; it is refused."""
    with pytest.raises(InvalidInput, match="timezone-aware"):
        binding_date(dt.datetime(2024, 1, 1, 12, 0), now=NOW)


def test_future_bound_at_is_refused_beyond_skew() -> None:
    """A binding in the future is a bug in the caller, beyond a small clock skew."""
    assert binding_date(NOW + CLOCK_SKEW, now=NOW) == NOW.date()
    with pytest.raises(InvalidInput, match="future"):
        binding_date(NOW + CLOCK_SKEW + dt.timedelta(seconds=1), now=NOW)
    assert binding_date(NOW.date() + dt.timedelta(days=1), now=NOW)
    with pytest.raises(InvalidInput, match="future"):
        binding_date(NOW.date() + dt.timedelta(days=2), now=NOW)


@pytest.mark.parametrize("value", ["2024-01-01", 1700000000, None, 3.5])
def test_bound_at_of_wrong_type_is_refused(value: object) -> None:
    """Only datetimes and dates are accepted."""
    with pytest.raises(InvalidInput):
        binding_date(value, now=NOW)


def test_aware_datetime_is_taken_in_utc() -> None:
    """The binding date is the UTC calendar date of the moment."""
    shanghai = dt.timezone(dt.timedelta(hours=8))
    assert binding_date(dt.datetime(2024, 5, 10, 3, 0, tzinfo=shanghai), now=NOW) == dt.date(
        2024, 5, 9
    )
    assert binding_date(dt.date(2024, 5, 10), now=NOW) == dt.date(2024, 5, 10)


def test_question_date_is_one_day_before_and_never_after_today() -> None:
    """Providers are asked about the day before the binding, clamped to today."""
    assert question_date(dt.date(2024, 5, 10), NOW.date()) == dt.date(2024, 5, 9)
    assert question_date(NOW.date() + dt.timedelta(days=5), NOW.date()) == NOW.date()


# -- properties ---------------------------------------------------------------------------


@given(dates, dates, st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2030, 12, 31)))
def test_a_later_change_date_is_never_more_permissive(
    a: dt.date, b: dt.date, since: dt.date
) -> None:
    """Moving the last change later can only keep or tighten the decision."""
    earlier, later = min(a, b), max(a, b)
    for policy in (Policy(), Policy.fail_open()):
        first = evaluate(LastChange(earlier), since, policy).action
        second = evaluate(LastChange(later), since, policy).action
        assert PERMISSIVENESS[second] <= PERMISSIVENESS[first]


@given(answers, dates)
def test_only_a_confirmed_not_reissued_allows_by_default(answer: object, since: dt.date) -> None:
    """Under the default policy, ALLOW implies reason not_reissued."""
    outcome = evaluate(answer, since, Policy())  # type: ignore[arg-type]
    assert (outcome.action is Action.ALLOW) == (outcome.reason is Reason.NOT_REISSUED)


@given(answers, dates)
def test_reissued_never_allows_under_any_policy(answer: object, since: dt.date) -> None:
    """reissued_after_binding steps up or denies whatever the policy."""
    for policy in (Policy(), Policy.fail_open(), Policy(on_reissued=Action.DENY)):
        outcome = evaluate(answer, since, policy)  # type: ignore[arg-type]
        if outcome.reason is Reason.REISSUED_AFTER_BINDING:
            assert outcome.action is not Action.ALLOW


@given(
    st.datetimes(min_value=dt.datetime(2001, 1, 1), max_value=dt.datetime(2026, 11, 1)),
    offsets,
)
def test_margin_catches_a_change_on_the_local_binding_day_in_every_zone(
    local: dt.datetime, zone: dt.timezone
) -> None:
    """A provider's change date equal to the binding's local calendar date (any zone,
    including the provider's) is counted as at or after the binding."""
    bound_at = local.replace(tzinfo=zone)
    since = question_date(binding_date(bound_at, now=NOW), NOW.date())
    for provider_zone_date in (bound_at.date(), bound_at.astimezone(UTC).date()):
        outcome = evaluate(LastChange(provider_zone_date), since, Policy())
        assert outcome.reason is Reason.REISSUED_AFTER_BINDING


@given(
    st.datetimes(min_value=dt.datetime(2001, 1, 1), max_value=dt.datetime(2026, 11, 1)),
    offsets,
    offsets,
)
def test_change_at_or_after_binding_in_any_zone_steps_up(
    local: dt.datetime, zone: dt.timezone, provider_zone: dt.timezone
) -> None:
    """A change at any moment at or after the binding, dated in any zone, steps up."""
    bound_at = local.replace(tzinfo=zone)
    since = question_date(binding_date(bound_at, now=NOW), NOW.date())
    change_moment = bound_at + dt.timedelta(seconds=1)
    change_date = change_moment.astimezone(provider_zone).date()
    assume(change_date <= NOW.date())
    assert evaluate(LastChange(change_date), since, Policy()).action is Action.STEP_UP
    assert evaluate(ChangedSince(since, True), since, Policy()).action is Action.STEP_UP


@given(dates, dates)
def test_boolean_quiet_answer_allows_only_if_it_covers_the_question(
    asked: dt.date, answered: dt.date
) -> None:
    """ "No change since S" allows only when S is on or before the question date."""
    outcome = evaluate(ChangedSince(answered, False), asked, Policy())
    assert (outcome.action is Action.ALLOW) == (answered <= asked)
