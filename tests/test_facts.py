"""Facts and their monotonic reuse: the cache never answers more permissively than the provider."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recyclecheck import Action, Policy, Reason
from recyclecheck._facts import Fact, answer_from_fact, fact_from_answer, merge
from recyclecheck._policy import evaluate
from recyclecheck.providers import ChangedSince, LastChange, NoData, NotCovered

from .strategies import answers, dates

D = dt.date
FRESH, STALE = 100.0, 200.0
UNTIL = 150.0


def test_unknowns_are_not_facts() -> None:
    """No data and not covered are never cached."""
    assert fact_from_answer(NoData(), quiet_until=UNTIL) is None
    assert fact_from_answer(NotCovered(), quiet_until=UNTIL) is None


def test_a_change_answers_every_check_asking_about_an_earlier_date_forever() -> None:
    """ "Changed on D" answers checks with since <= D, fresh or stale."""
    fact = fact_from_answer(LastChange(D(2024, 3, 1)), quiet_until=UNTIL)
    assert fact is not None
    for now in (FRESH, STALE):
        assert answer_from_fact(fact, D(2024, 3, 1), now) == LastChange(D(2024, 3, 1))
        assert answer_from_fact(fact, D(2020, 1, 1), now) == LastChange(D(2024, 3, 1))


def test_a_change_says_nothing_about_later_bindings_once_stale() -> None:
    """After D, only the fresh quiet claim may answer; stale means ask again."""
    fact = fact_from_answer(LastChange(D(2024, 3, 1)), quiet_until=UNTIL)
    assert fact is not None
    assert answer_from_fact(fact, D(2024, 3, 2), FRESH) == ChangedSince(D(2024, 3, 2), False)
    assert answer_from_fact(fact, D(2024, 3, 2), STALE) is None


def test_changed_since_true_answers_only_earlier_or_equal_questions() -> None:
    """ "Changed since S" answers checks whose since <= S."""
    fact = fact_from_answer(ChangedSince(D(2024, 1, 1), True), quiet_until=UNTIL)
    assert fact is not None
    assert answer_from_fact(fact, D(2023, 6, 1), STALE) == ChangedSince(D(2024, 1, 1), True)
    assert answer_from_fact(fact, D(2024, 1, 1), STALE) == ChangedSince(D(2024, 1, 1), True)
    assert answer_from_fact(fact, D(2024, 1, 2), FRESH) is None


def test_quiet_since_answers_only_later_or_equal_questions_while_fresh() -> None:
    """ "No change since S" answers checks whose since >= S, and only while fresh."""
    fact = fact_from_answer(ChangedSince(D(2024, 1, 1), False), quiet_until=UNTIL)
    assert fact is not None
    assert answer_from_fact(fact, D(2024, 6, 1), FRESH) == ChangedSince(D(2024, 6, 1), False)
    assert answer_from_fact(fact, D(2023, 12, 31), FRESH) is None
    assert answer_from_fact(fact, D(2024, 6, 1), STALE) is None


def test_coverage_start_limits_the_quiet_claim() -> None:
    """A provider tracking only since C vouches for nothing before C."""
    fact = fact_from_answer(LastChange(None, D(2025, 1, 1)), quiet_until=UNTIL)
    assert fact is not None
    assert answer_from_fact(fact, D(2024, 6, 1), FRESH) is None
    assert answer_from_fact(fact, D(2025, 2, 1), FRESH) == ChangedSince(D(2025, 2, 1), False)


def test_merge_keeps_the_latest_change() -> None:
    """A newer quiet observation never erases a known change."""
    old = fact_from_answer(LastChange(D(2024, 3, 1)), quiet_until=UNTIL)
    new = fact_from_answer(ChangedSince(D(2024, 5, 1), False), quiet_until=UNTIL + 100)
    assert old is not None
    assert new is not None
    merged = merge(old, new)
    assert merged.changed_from == D(2024, 3, 1)
    assert merged.change_exact
    assert merged.quiet_from == D(2024, 5, 1)
    later = fact_from_answer(ChangedSince(D(2025, 1, 1), True), quiet_until=UNTIL)
    assert later is not None
    assert merge(old, later).changed_from == D(2025, 1, 1)


@pytest.mark.parametrize(
    "fact",
    [
        Fact(),
        Fact(D(2024, 1, 1), True, D(2024, 1, 2), 123.5),
        Fact(None, False, D.min, 1e9),
    ],
)
def test_fact_serialisation_round_trips(fact: Fact) -> None:
    """to_bytes/from_bytes is lossless."""
    assert Fact.from_bytes(fact.to_bytes()) == fact


@pytest.mark.parametrize(
    "data", [b"", b"{}", b"[1,2,3,4]", b'["x",true,null,1]', b"[null,1,null,1]"]
)
def test_fact_from_bytes_rejects_junk(data: bytes) -> None:
    """Anything that is not a serialised Fact raises ValueError."""
    with pytest.raises(ValueError):
        Fact.from_bytes(data)


PERMISSIVENESS = {Action.DENY: 0, Action.STEP_UP: 1, Action.ALLOW: 2}


@given(answers, dates, st.booleans())
def test_a_cached_answer_is_never_more_permissive_than_the_provider_answer(
    answer: object, since: dt.date, fresh: bool
) -> None:
    """Whatever the provider said, reusing it from the cache gives the same or a stricter verdict."""
    fact = fact_from_answer(answer, quiet_until=UNTIL)  # type: ignore[arg-type]
    if fact is None:
        return
    reused = answer_from_fact(fact, since, FRESH if fresh else STALE)
    if reused is None:
        return
    direct = evaluate(answer, since, Policy())  # type: ignore[arg-type]
    cached = evaluate(reused, since, Policy())
    assert PERMISSIVENESS[cached.action] <= PERMISSIVENESS[direct.action]
    if direct.reason is Reason.REISSUED_AFTER_BINDING:
        assert cached.reason is Reason.REISSUED_AFTER_BINDING


@given(answers, answers, dates)
def test_merging_never_forgets_a_change(first: object, second: object, since: dt.date) -> None:
    """If either answer proved a reissue for this question, the merged fact still does."""
    old = fact_from_answer(first, quiet_until=UNTIL)  # type: ignore[arg-type]
    new = fact_from_answer(second, quiet_until=UNTIL)  # type: ignore[arg-type]
    if new is None:
        return
    merged = merge(old, new)
    proved = [
        f
        for f in (old, new)
        if f is not None and f.changed_from is not None and f.changed_from >= since
    ]
    if proved:
        reused = answer_from_fact(merged, since, STALE)
        assert reused is not None
        assert evaluate(reused, since, Policy()).reason is Reason.REISSUED_AFTER_BINDING
