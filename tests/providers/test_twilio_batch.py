"""Contract tests for Twilio's batch Lookup (``POST /v2/batch/query``): lookup_many, parse_batch.

Fixtures (``tests/data/twilio/batch_*.json``) follow PROVIDERS.md 1.4: the request
``{"phone_numbers": [{correlation_id, phone_number, fields, reassigned_number:
{last_verified_date: YYYYMMDD}}]}`` and the answer ``{"phone_numbers": [...]}``,
each item a Lookup body plus ``correlation_id`` and ``twilio_error_code``; the
verdicts and dates are those of the OpenAPI examples in PROVIDERS.md 1.2.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recyclecheck._deadline import deadline_scope
from recyclecheck.exceptions import (
    InvalidInput,
    InvalidPhoneNumber,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderTimeout,
    ProviderUnavailable,
)
from recyclecheck.providers._answers import ChangedSince, NoData, NotCovered
from recyclecheck.providers.twilio import (
    MAX_BATCH,
    TwilioProvider,
    parse_batch,
    parse_lookup,
)

from ..privacy import leaks

DATA = Path(__file__).resolve().parent.parent / "data" / "twilio"
SID = "AC0123456789abcdef0123456789abcdef"
TOKEN = "f00dfeedf00dfeedf00dfeedf00dfeed"
URL = "https://lookups.twilio.com/v2/batch/query"
YES, NO, NO_DATA, RATE, ABROAD = (
    "+14159929960",
    "+14159929961",
    "+14159929962",
    "+14159929963",
    "+447772000001",
)
#: The five questions of the fixtures, in order.
ASKED = [
    (YES, dt.date(2020, 12, 27)),
    (NO, dt.date(2019, 9, 24)),
    (NO_DATA, dt.date(2021, 12, 24)),
    (RATE, dt.date(2021, 10, 15)),
    (ABROAD, dt.date(2021, 10, 15)),
]
SINCE = dt.date(2024, 3, 9)


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def numbers(count: int, start: int = 0) -> list[str]:
    """``count`` distinct valid US numbers."""
    return [f"+1415992{n:04d}" for n in range(start, start + count)]


def is_allow(result: object) -> bool:
    return isinstance(result, ChangedSince) and not result.changed


@pytest.fixture
def provider() -> TwilioProvider:
    return TwilioProvider(SID, TOKEN)


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def sent(call: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(call.request.body)["phone_numbers"]
    return items


def echo(verdict: str = "no", *, date_format: str = "%Y-%m-%d") -> Any:
    """A batch handler answering ``verdict`` for every item it was sent, in order."""

    def callback(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        assert isinstance(request.body, bytes)
        answers = []
        for item in json.loads(request.body)["phone_numbers"]:
            day = dt.datetime.strptime(item["reassigned_number"]["last_verified_date"], "%Y%m%d")
            answers.append(
                {
                    "correlation_id": item["correlation_id"],
                    "twilio_error_code": None,
                    "phone_number": item["phone_number"],
                    "valid": True,
                    "reassigned_number": {
                        "last_verified_date": day.strftime(date_format),
                        "is_number_reassigned": verdict,
                        "error_code": None,
                    },
                }
            )
        return 200, {"Content-Type": "application/json"}, json.dumps({"phone_numbers": answers})

    return callback


# -- the documented exchange ------------------------------------------------------------


def test_one_exact_post_and_an_answer_per_item(
    provider: TwilioProvider, mocked: responses.RequestsMock
) -> None:
    """The fixture request goes out as one POST; each item gets its documented answer."""
    mocked.add(responses.POST, URL, json=load("batch_answer.json"))
    results = provider.lookup_many(ASKED)
    assert results[:3] == [
        ChangedSince(dt.date(2020, 12, 27), True),
        ChangedSince(dt.date(2019, 9, 24), False),
        NoData(),
    ]
    assert isinstance(results[3], ProviderRateLimited)
    assert results[3].code == "60616"
    assert results[4] == NotCovered()
    (call,) = mocked.calls
    assert call.request.method == "POST"
    assert call.request.url == URL
    assert call.request.headers["Authorization"].startswith("Basic ")
    assert call.request.headers["Content-Type"] == "application/json"
    assert json.loads(call.request.body) == load("batch_request.json")


def test_parse_batch_is_pure_and_matches_the_adapter() -> None:
    """parse_batch gives the adapter's results from the decoded body alone."""
    results = parse_batch(load("batch_answer.json"), ASKED)
    assert results[:3] == [
        ChangedSince(dt.date(2020, 12, 27), True),
        ChangedSince(dt.date(2019, 9, 24), False),
        NoData(),
    ]
    assert isinstance(results[3], ProviderRateLimited)
    assert results[4] == NotCovered()


def test_answers_are_matched_by_correlation_id_not_order() -> None:
    """Answer items in another order still land on their own questions."""
    body = load("batch_answer.json")
    body["phone_numbers"].reverse()
    assert parse_batch(body, ASKED)[:3] == parse_batch(load("batch_answer.json"), ASKED)[:3]


def test_without_correlation_ids_items_match_by_number() -> None:
    """An answer without correlation ids is matched by phone_number (unique in a request)."""
    body = load("batch_answer.json")
    for item in body["phone_numbers"]:
        del item["correlation_id"]
    body["phone_numbers"].reverse()
    assert parse_batch(body, ASKED)[:3] == parse_batch(load("batch_answer.json"), ASKED)[:3]


def test_date_echoed_as_sent_is_accepted_for_a_batch_only() -> None:
    """A batch may echo the date as sent (YYYYMMDD); the single Lookup keeps YYYY-MM-DD."""
    body = load("batch_answer.json")
    body["phone_numbers"][1]["reassigned_number"]["last_verified_date"] = "20190924"
    assert parse_batch(body, ASKED)[1] == ChangedSince(dt.date(2019, 9, 24), False)
    single = load("reassigned_no.json")
    single["reassigned_number"]["last_verified_date"] = "20190924"
    with pytest.raises(ProviderResponseError):
        parse_lookup(single, single["phone_number"], dt.date(2019, 9, 24))


@pytest.mark.parametrize(
    "echo_date", ["20190925", "2019-09-25", "2019924", "20191324", None, 20190924]
)
def test_another_date_is_an_error_for_that_item(echo_date: object) -> None:
    """An answer about another (or no readable) date is a ProviderResponseError for its item."""
    body = load("batch_answer.json")
    body["phone_numbers"][1]["reassigned_number"]["last_verified_date"] = echo_date
    results = parse_batch(body, ASKED)
    assert isinstance(results[1], ProviderResponseError)
    assert results[0] == ChangedSince(dt.date(2020, 12, 27), True)


def test_another_number_under_a_correlation_id_is_an_error_for_that_item() -> None:
    """An item correlated to one question but about another number never answers it."""
    body = load("batch_answer.json")
    body["phone_numbers"][1]["phone_number"] = YES
    results = parse_batch(body, ASKED)
    assert isinstance(results[1], ProviderResponseError)
    assert "another number" in str(results[1])
    assert results[2] == NoData()


def test_a_missing_answer_is_an_error_for_that_item_only() -> None:
    """A question with no answer item gets a ProviderResponseError; the others stand."""
    body = load("batch_answer.json")
    del body["phone_numbers"][1]
    results = parse_batch(body, ASKED)
    assert isinstance(results[1], ProviderResponseError)
    assert results[0] == ChangedSince(dt.date(2020, 12, 27), True)
    assert results[2] == NoData()


def test_an_item_answered_twice_is_an_error_even_when_both_agree() -> None:
    """Every item is answered exactly once: a duplicate answer is a ProviderResponseError."""
    body = load("batch_answer.json")
    body["phone_numbers"].append(copy.deepcopy(body["phone_numbers"][1]))
    results = parse_batch(body, ASKED)
    assert isinstance(results[1], ProviderResponseError)
    assert results[0] == ChangedSince(dt.date(2020, 12, 27), True)


@pytest.mark.parametrize(
    "stray",
    [
        {"correlation_id": "5", "phone_number": NO, "valid": True},
        {"correlation_id": "01", "phone_number": NO, "valid": True},
        {"correlation_id": 1, "phone_number": NO, "valid": True},
        {"correlation_id": "-1", "phone_number": NO, "valid": True},
        {"phone_number": "+14155550100", "valid": True},
        {"valid": True},
        "not an object",
        None,
    ],
)
def test_an_item_matching_nothing_asked_fails_the_whole_answer(stray: object) -> None:
    """An answer holding an item about nothing asked is not trusted for any item."""
    body = load("batch_answer.json")
    body["phone_numbers"].append(stray)
    results = parse_batch(body, ASKED)
    assert all(isinstance(result, ProviderResponseError) for result in results)


@pytest.mark.parametrize(
    "payload", [None, [], "x", 1, {}, {"phone_numbers": None}, {"phone_numbers": {}}]
)
def test_a_body_without_a_list_of_items_fails_every_item(payload: object) -> None:
    """No list of items: every question gets a ProviderResponseError."""
    results = parse_batch(payload, ASKED)
    assert len(results) == len(ASKED)
    assert all(isinstance(result, ProviderResponseError) for result in results)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (60616, ProviderRateLimited),
        ("60616", ProviderRateLimited),
        (60611, ProviderRateLimited),
        (20429, ProviderRateLimited),
        (60606, ProviderAuthError),
        (20003, ProviderAuthError),
        (60608, ProviderUnavailable),
        (60600, ProviderResponseError),
        ("nope", ProviderResponseError),
        (True, ProviderResponseError),
    ],
)
def test_per_item_twilio_error_codes(code: object, expected: type[ProviderError]) -> None:
    """A twilio_error_code is that item's own failure; the other items stand."""
    body = load("batch_answer.json")
    body["phone_numbers"][1]["twilio_error_code"] = code
    results = parse_batch(body, ASKED)
    assert type(results[1]) is expected
    assert results[0] == ChangedSince(dt.date(2020, 12, 27), True)
    assert results[2] == NoData()


@pytest.mark.parametrize("code", [60607, "60610"])
def test_per_item_coverage_codes_are_not_covered(code: object) -> None:
    """Coverage codes (60607, 60610) in twilio_error_code read as NotCovered, never an allow."""
    body = load("batch_answer.json")
    body["phone_numbers"][1]["twilio_error_code"] = code
    assert parse_batch(body, ASKED)[1] == NotCovered()


def test_errors_hold_no_number_and_no_traceback() -> None:
    """Per-item errors name fields, never a number; stored without a traceback."""
    body = load("batch_answer.json")
    body["phone_numbers"][1]["phone_number"] = YES
    del body["phone_numbers"][2]
    for result in parse_batch(body, ASKED):
        if isinstance(result, ProviderError):
            assert not leaks(f"{result} {result!r}", [number for number, _ in ASKED])
            assert result.__traceback__ is None


# -- chunking ----------------------------------------------------------------------------


def test_chunks_hold_at_most_the_limit(
    provider: TwilioProvider, mocked: responses.RequestsMock
) -> None:
    """MAX_BATCH numbers go in one request; one more needs a second request."""
    mocked.add_callback(responses.POST, URL, callback=echo())
    assert (
        provider.lookup_many([(n, SINCE) for n in numbers(MAX_BATCH)])
        == [ChangedSince(SINCE, False)] * MAX_BATCH
    )
    assert [len(sent(call)) for call in mocked.calls] == [MAX_BATCH]
    mocked.calls.reset()
    results = provider.lookup_many([(n, SINCE) for n in numbers(MAX_BATCH + 1)])
    assert results == [ChangedSince(SINCE, False)] * (MAX_BATCH + 1)
    assert [len(sent(call)) for call in mocked.calls] == [MAX_BATCH, 1]


def test_limit_is_one_hundred() -> None:
    """Twilio documents no maximum; our cap stays at 100 numbers a request."""
    assert MAX_BATCH == 100
    assert TwilioProvider.max_batch == MAX_BATCH


def test_no_request_holds_a_number_twice(
    provider: TwilioProvider, mocked: responses.RequestsMock
) -> None:
    """Twilio refuses a number twice in one request (60626): the second date waits."""
    mocked.add_callback(responses.POST, URL, callback=echo())
    early, late = dt.date(2023, 1, 1), dt.date(2024, 1, 1)
    items = [(YES, early), (NO, early), (YES, late), (YES, early)]
    results = provider.lookup_many(items)
    assert results == [
        ChangedSince(early, False),
        ChangedSince(early, False),
        ChangedSince(late, False),
        ChangedSince(early, False),
    ]
    bodies = [sent(call) for call in mocked.calls]
    assert len(bodies) == 2
    for body in bodies:
        asked = [item["phone_number"] for item in body]
        assert len(asked) == len(set(asked))
    assert sum(len(body) for body in bodies) == 3  # the repeated question is asked once


def test_items_come_back_in_input_order_across_chunks(
    provider: TwilioProvider, mocked: responses.RequestsMock
) -> None:
    """Answers are returned in the order asked, whatever the chunking."""
    mocked.add_callback(responses.POST, URL, callback=echo())
    days = [dt.date(2022, 1, 1) + dt.timedelta(days=n) for n in range(250)]
    items = [(numbers(1, n % 120)[0], day) for n, day in enumerate(days)]
    results = provider.lookup_many(items)
    assert results == [ChangedSince(day, False) for day in days]
    assert all(len(sent(call)) <= MAX_BATCH for call in mocked.calls)


def test_an_empty_batch_sends_nothing(
    provider: TwilioProvider, mocked: responses.RequestsMock
) -> None:
    """No items, no request."""
    assert provider.lookup_many([]) == []
    assert not mocked.calls


@pytest.mark.parametrize(
    ("items", "error"),
    [
        ([("4159929960", SINCE)], InvalidPhoneNumber),
        ([(YES, dt.datetime(2024, 3, 9, tzinfo=dt.timezone.utc))], InvalidInput),
        ([(YES,)], InvalidInput),
        ([YES], InvalidInput),
        (YES, InvalidInput),
        ([(None, SINCE)], InvalidPhoneNumber),
    ],
)
def test_bad_input_raises_before_any_request(
    provider: TwilioProvider, mocked: responses.RequestsMock, items: Any, error: type[Exception]
) -> None:
    """Bad caller input raises InvalidInput, without echoing a number, and sends nothing."""
    with pytest.raises(error) as info:
        provider.lookup_many([(NO, SINCE), *items] if isinstance(items, list) else items)
    assert not leaks(str(info.value), [YES, NO])
    assert not mocked.calls


# -- whole-request failures --------------------------------------------------------------


def two_chunks() -> list[tuple[str, dt.date]]:
    return [(n, SINCE) for n in numbers(MAX_BATCH + 3)]


def test_a_5xx_fails_its_chunk_only(
    provider: TwilioProvider, mocked: responses.RequestsMock
) -> None:
    """A 503 is ProviderUnavailable for each item of that request; the next request still goes."""
    mocked.add(responses.POST, URL, json=load("error_20429.json") | {"code": 20503}, status=503)
    mocked.add_callback(responses.POST, URL, callback=echo())
    results = provider.lookup_many(two_chunks())
    first, rest = results[:MAX_BATCH], results[MAX_BATCH:]
    assert all(isinstance(result, ProviderUnavailable) for result in first)
    assert len({id(result) for result in first}) == 1  # the same error for the chunk
    assert rest == [ChangedSince(SINCE, False)] * 3
    assert len(mocked.calls) == 2


@pytest.mark.parametrize(
    ("status", "fixture", "error"),
    [
        (429, "error_20429.json", ProviderRateLimited),
        (401, "error_20003.json", ProviderAuthError),
        (403, None, ProviderAuthError),
        (400, "error_60606.json", ProviderAuthError),
    ],
)
def test_rate_limits_and_refusals_end_the_batch(
    provider: TwilioProvider,
    mocked: responses.RequestsMock,
    status: int,
    fixture: str | None,
    error: type[ProviderError],
) -> None:
    """A 429 or refused credentials fail every item and no further request is sent."""
    body = load(fixture) if fixture else {"code": 20403, "status": status}
    mocked.add(responses.POST, URL, json=body, status=status, headers={"Retry-After": "7"})
    results = provider.lookup_many(two_chunks())
    assert all(type(result) is error for result in results)
    assert len(mocked.calls) == 1
    if error is ProviderRateLimited:
        assert isinstance(results[0], ProviderRateLimited)
        assert results[0].retry_after == 7.0


@pytest.mark.parametrize(
    "reply",
    [
        {"body": b"{not json", "status": 200},
        {"body": b"<html>bad gateway</html>", "status": 200, "content_type": "text/html"},
        {"body": b"", "status": 200},
        {"json": {"phone_numbers": []}, "status": 302, "headers": {"Location": "https://x.test"}},
        {"json": {"code": 60607, "status": 400}, "status": 400},
        {"json": {"code": 99999, "status": 404}, "status": 404},
    ],
)
def test_unreadable_answers_fail_their_chunk(
    provider: TwilioProvider, mocked: responses.RequestsMock, reply: dict[str, Any]
) -> None:
    """Malformed bodies, redirects and codes that are no batch answer: a ProviderResponseError."""
    mocked.add(responses.POST, URL, **reply)
    results = provider.lookup_many(ASKED)
    assert all(isinstance(result, ProviderResponseError) for result in results)


def test_a_timeout_fails_the_chunk(
    provider: TwilioProvider, mocked: responses.RequestsMock
) -> None:
    """A read timeout is ProviderTimeout for each item of the request."""
    mocked.add(responses.POST, URL, body=requests.exceptions.ReadTimeout("slow"))
    results = provider.lookup_many(ASKED)
    assert all(isinstance(result, ProviderTimeout) for result in results)


def test_a_spent_deadline_sends_nothing(
    provider: TwilioProvider, mocked: responses.RequestsMock
) -> None:
    """Under a deadline already passed, every item is ProviderTimeout and no request leaves."""
    with deadline_scope(time.monotonic() - 1):
        results = provider.lookup_many(two_chunks())
    assert all(isinstance(result, ProviderTimeout) for result in results)
    assert not mocked.calls


def test_the_big_answer_of_a_full_chunk_fits_the_body_cap(
    provider: TwilioProvider, mocked: responses.RequestsMock
) -> None:
    """A full chunk's answer, every package field present, stays under the default cap."""
    template = load("batch_answer.json")["phone_numbers"][1]

    def full(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        assert isinstance(request.body, bytes)
        items = []
        for item in json.loads(request.body)["phone_numbers"]:
            answer = copy.deepcopy(template)
            answer["correlation_id"] = item["correlation_id"]
            answer["phone_number"] = item["phone_number"]
            answer["reassigned_number"]["last_verified_date"] = SINCE.isoformat()
            items.append(answer)
        return 200, {}, json.dumps({"phone_numbers": items}, indent=2)

    mocked.add_callback(responses.POST, URL, callback=full)
    results = provider.lookup_many([(n, SINCE) for n in numbers(MAX_BATCH)])
    assert results == [ChangedSince(SINCE, False)] * MAX_BATCH


# -- properties ---------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=6)
    ),
    max_leaves=20,
)
item_like = st.fixed_dictionaries(
    {},
    optional={
        "correlation_id": st.sampled_from(["0", "1", "2", "3", "4", "9", 0]) | json_values,
        "twilio_error_code": st.none() | st.sampled_from([60607, 60616, "60610"]) | json_values,
        "phone_number": st.sampled_from([number for number, _ in ASKED]) | json_values,
        "valid": st.booleans() | json_values,
        "reassigned_number": st.fixed_dictionaries(
            {},
            optional={
                "last_verified_date": st.sampled_from(
                    ["2019-09-24", "20190924", "2020-12-27", "2021-12-24"]
                )
                | json_values,
                "is_number_reassigned": st.sampled_from(["no", "yes", "no_data_available"])
                | json_values,
                "error_code": st.none() | json_values,
            },
        )
        | json_values,
    },
)


@settings(max_examples=300)
@given(payload=json_values)
def test_arbitrary_json_never_allows(payload: Any) -> None:
    """Arbitrary JSON gives no allow for any item, and one result per item."""
    results = parse_batch(payload, ASKED)
    assert len(results) == len(ASKED)
    assert not any(is_allow(result) for result in results)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(item_like, max_size=7))
def test_near_miss_answers_allow_only_what_was_said_of_that_very_question(
    items: list[dict[str, Any]],
) -> None:
    """An allow for question i needs an item correlated to i (or naming its number) that
    says exactly "no" about i's own number and date, and no other item claiming i."""
    results = parse_batch({"phone_numbers": items}, ASKED)
    assert len(results) == len(ASKED)
    for position, result in enumerate(results):
        if not is_allow(result):
            continue
        number, since = ASKED[position]
        claims = [
            item
            for item in items
            if item.get("correlation_id") == str(position)
            or (
                ("correlation_id" not in item or item["correlation_id"] is None)
                and item.get("phone_number") == number
            )
        ]
        assert len(claims) == 1
        (item,) = claims
        assert item["phone_number"] == number
        assert item["valid"] is True
        assert item.get("twilio_error_code") is None
        package = item["reassigned_number"]
        assert package["is_number_reassigned"] == "no"
        assert package["error_code"] is None
        assert package["last_verified_date"] in (since.isoformat(), since.strftime("%Y%m%d"))


@settings(max_examples=200)
@given(
    order=st.permutations(range(len(ASKED))),
    drop=st.sets(st.integers(0, len(ASKED) - 1), max_size=2),
    swap_dates=st.booleans(),
)
def test_reordered_or_thinned_answers_never_move_an_allow(
    order: list[int], drop: set[int], swap_dates: bool
) -> None:
    """Whatever the order, dropped items or swapped dates, the "no" stays with its question."""
    items = load("batch_answer.json")["phone_numbers"]
    if swap_dates:
        first, second = items[0]["reassigned_number"], items[1]["reassigned_number"]
        first["last_verified_date"], second["last_verified_date"] = (
            second["last_verified_date"],
            first["last_verified_date"],
        )
    body = {"phone_numbers": [items[i] for i in order if i not in drop]}
    results = parse_batch(body, ASKED)
    for position, result in enumerate(results):
        if is_allow(result):
            assert position == 1
            assert not swap_dates
        if position in drop:
            assert isinstance(result, ProviderResponseError)
