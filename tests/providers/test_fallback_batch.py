"""recyclecheck._batch: the one function a sweep calls, and the chunk planner the adapters share."""

from __future__ import annotations

import datetime as dt
import math
import time
from collections import Counter
from typing import Any

import pytest
import responses
from hypothesis import given, settings
from hypothesis import strategies as st

from recyclecheck._batch import lookup_many, plan
from recyclecheck._deadline import deadline_scope, remaining_time
from recyclecheck.exceptions import (
    ConfigurationError,
    InvalidInput,
    InvalidPhoneNumber,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderTimeout,
    ProviderUnavailable,
)
from recyclecheck.providers import (
    Answer,
    ChangedSince,
    NoData,
    NotCovered,
    Provider,
    RndProvider,
    SandboxProvider,
)

from ..privacy import leaks

SINCE = dt.date(2024, 3, 1)
A, B, C = "+12015550123", "+12015550124", "+8613800138000"


class OneByOne:
    """A provider with ``lookup`` only, answering from a dict and recording its calls."""

    name = "one-by-one"

    def __init__(self, answers: dict[str, Any], *, pause: float = 0.0) -> None:
        self.answers = answers
        self.pause = pause
        self.calls: list[tuple[str, dt.date]] = []
        self.time_left: list[float | None] = []

    def lookup(self, number: str, since: dt.date) -> Answer:
        self.calls.append((number, since))
        self.time_left.append(remaining_time())
        if self.pause:
            time.sleep(self.pause)
        value = self.answers[number]
        if isinstance(value, BaseException):
            raise value
        return value  # type: ignore[no-any-return]


class Batching(OneByOne):
    """A provider that also has ``lookup_many``, returning whatever it was told to."""

    def __init__(self, returns: Any) -> None:
        super().__init__({})
        self.returns = returns
        self.batches: list[list[tuple[str, dt.date]]] = []

    def lookup_many(self, items: list[tuple[str, dt.date]]) -> Any:
        self.batches.append(list(items))
        if isinstance(self.returns, BaseException):
            raise self.returns
        return self.returns


def test_a_provider_without_lookup_many_is_still_a_provider() -> None:
    """lookup_many is optional: the protocol check needs only name and lookup."""
    assert isinstance(OneByOne({}), Provider)
    assert not hasattr(SandboxProvider({}), "lookup_many")
    assert callable(RndProvider.lookup_many)


def test_fallback_asks_item_by_item_in_order() -> None:
    """Without lookup_many each item is one lookup, results in input order."""
    provider = OneByOne({A: ChangedSince(SINCE, True), B: NoData(), C: NotCovered()})
    items = [(B, SINCE), (A, SINCE), (C, dt.date(2020, 1, 1))]
    assert lookup_many(provider, items) == [NoData(), ChangedSince(SINCE, True), NotCovered()]
    assert provider.calls == items


def test_fallback_failures_are_values() -> None:
    """A ProviderError, a foreign exception or a non-answer is that item's result only."""
    limited = ProviderRateLimited("slow down", provider="one-by-one")
    provider = OneByOne({A: limited, B: KeyError(A), C: "not an answer", "+12015550125": NoData()})
    results = lookup_many(provider, [(A, SINCE), (B, SINCE), (C, SINCE), ("+12015550125", SINCE)])
    assert results[0] is limited
    assert results[0].__traceback__ is None
    assert isinstance(results[1], ProviderUnavailable)
    assert "KeyError" in str(results[1])
    assert not leaks(str(results[1]), [A])
    assert isinstance(results[2], ProviderResponseError)
    assert results[3] == NoData()


def test_fallback_stops_asking_once_the_deadline_passed() -> None:
    """Items left when the deadline has passed are ProviderTimeout, never asked."""
    provider = OneByOne({A: NoData(), B: NoData(), C: NoData()}, pause=0.06)
    results = lookup_many(provider, [(A, SINCE), (B, SINCE), (C, SINCE)], timeout=0.05)
    assert results[0] == NoData()
    assert all(isinstance(result, ProviderTimeout) for result in results[1:])
    assert provider.calls == [(A, SINCE)]


def test_timeout_is_the_deadline_providers_see() -> None:
    """``timeout`` sets the deadline a provider reads, unless one in force is sooner."""
    provider = OneByOne({A: NoData()})
    lookup_many(provider, [(A, SINCE)], timeout=5)
    (left,) = provider.time_left
    assert left is not None
    assert 4 < left <= 5
    with deadline_scope(time.monotonic() + 1):
        lookup_many(provider, [(A, SINCE)], timeout=30)
    assert provider.time_left[-1] is not None
    assert provider.time_left[-1] <= 1
    lookup_many(provider, [(A, SINCE)])
    assert provider.time_left[-1] is None  # no deadline, none invented


def test_a_batch_provider_is_asked_once() -> None:
    """A provider's own lookup_many is used, and lookup is not."""
    provider = Batching([NoData(), ChangedSince(SINCE, False)])
    assert lookup_many(provider, [(A, SINCE), (B, SINCE)]) == [NoData(), ChangedSince(SINCE, False)]
    assert provider.batches == [[(A, SINCE), (B, SINCE)]]
    assert provider.calls == []


@pytest.mark.parametrize(
    "returns",
    [
        [NoData()],
        [NoData(), NoData(), NoData()],
        (NoData(), NoData()),
        None,
        iter([NoData(), NoData()]),
    ],
)
def test_a_batch_of_the_wrong_shape_fails_every_item(returns: Any) -> None:
    """Not one result per item: every item is a ProviderResponseError, never an answer."""
    results = lookup_many(Batching(returns), [(A, SINCE), (B, SINCE)])
    assert len(results) == 2
    assert all(isinstance(result, ProviderResponseError) for result in results)


def test_a_batch_result_that_is_no_answer_fails_its_item() -> None:
    """Anything but an Answer or a ProviderError in the list is that item's error."""
    results = lookup_many(Batching([ChangedSince(SINCE, False), False]), [(A, SINCE), (B, SINCE)])
    assert results[0] == ChangedSince(SINCE, False)
    assert isinstance(results[1], ProviderResponseError)


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (ProviderRateLimited("x", provider="p"), ProviderRateLimited),
        (RuntimeError("+12015550123 broke"), ProviderUnavailable),
    ],
)
def test_a_batch_that_raises_fails_every_item(raised: Exception, expected: type) -> None:
    """A raising lookup_many is the same failure for every item; its text never passes."""
    results = lookup_many(Batching(raised), [(A, SINCE), (B, SINCE)])
    assert all(type(result) is expected for result in results)
    assert not leaks(" ".join(str(result) for result in results), [A])


@pytest.mark.parametrize(
    ("items", "error"),
    [
        ([("2015550123", SINCE)], InvalidPhoneNumber),
        ([(A, dt.datetime(2024, 3, 1))], InvalidInput),
        ([(A, "2024-03-01")], InvalidInput),
        ([A], InvalidInput),
        ("+12015550123", InvalidInput),
        (None, InvalidInput),
    ],
)
def test_bad_items_raise_before_any_call(items: Any, error: type[Exception]) -> None:
    """Bad items raise InvalidInput (also a TypeError for wrong shapes), nothing is asked."""
    provider = OneByOne({A: NoData()})
    with pytest.raises(error) as info:
        lookup_many(provider, items)
    assert not leaks(str(info.value), [A])
    assert provider.calls == []


@pytest.mark.parametrize("timeout", [0, -1, True, "1", math.nan])
def test_bad_timeouts_are_refused(timeout: Any) -> None:
    """timeout must be a positive number of seconds."""
    with pytest.raises(ConfigurationError):
        lookup_many(OneByOne({}), [(A, SINCE)], timeout=timeout)


def test_no_items_no_call() -> None:
    """An empty batch asks nothing."""
    provider = Batching([])
    assert lookup_many(provider, []) == []
    assert provider.batches == []


def test_the_helper_drives_a_real_adapter() -> None:
    """With RndProvider the helper makes one tnList request for the covered numbers."""
    with responses.RequestsMock() as mock:
        mock.add(
            responses.POST, "https://api.reassigned.us/b/public/api/idToken", json={"idToken": "t"}
        )
        mock.add(
            responses.POST,
            "https://api.reassigned.us/api/tn",
            json={
                "replies": [
                    {"tn": A[2:], "disconnected": "no", "dateProvided": SINCE.isoformat()},
                    {"tn": B[2:], "disconnected": "yes", "dateProvided": SINCE.isoformat()},
                ]
            },
        )
        results = lookup_many(
            RndProvider("refresh", "TESTCO"), [(A, SINCE), (C, SINCE), (B, SINCE)]
        )
    assert results == [ChangedSince(SINCE, False), NotCovered(), ChangedSince(SINCE, True)]


# -- the planner --------------------------------------------------------------------------

keys = st.integers(0, 12)
dates = st.integers(0, 3)


@settings(max_examples=300)
@given(asked=st.lists(st.tuples(keys, dates), max_size=60), limit=st.integers(1, 7))
def test_plan_keeps_its_rules(asked: list[tuple[int, int]], limit: int) -> None:
    """Every item in exactly one entry; each question once; at most ``limit`` entries and no
    key twice per request; no more requests than the repeats of one key force."""
    questions = [(index, key, (key, day)) for index, (key, day) in enumerate(asked)]
    requests = plan(questions, limit)
    indices = [index for request in requests for entry in request for index in entry.indices]
    assert sorted(indices) == list(range(len(asked)))
    entries = [entry for request in requests for entry in request]
    assert len({entry.question for entry in entries}) == len(entries) == len(set(asked))
    for request in requests:
        assert 0 < len(request) <= limit
        assert len({entry.key for entry in request}) == len(request)
        for entry in request:
            assert all(asked[index] == entry.question for index in entry.indices)
    distinct = len(set(asked))
    most_dates_of_one_key = max(Counter(key for key, _ in set(asked)).values(), default=0)
    least = max(math.ceil(distinct / limit), most_dates_of_one_key)
    assert least <= len(requests) <= math.ceil(distinct / limit) + most_dates_of_one_key
    if most_dates_of_one_key <= 1:
        assert len(requests) == least


def test_plan_repr_shows_no_question() -> None:
    """An entry's repr never shows the key or question (they hold numbers)."""
    (request,) = plan([(0, A, (A, SINCE)), (1, A, (A, SINCE))], 10)
    assert repr(request[0]) == "<Entry for 2 item(s)>"


def test_plan_refuses_a_limit_below_one() -> None:
    """A limit must allow at least one entry a request."""
    with pytest.raises(ValueError, match="limit"):
        plan([], 0)
