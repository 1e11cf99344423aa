"""Contract tests for RND batches: ``lookup_many`` posts ``tnList``s of up to 100 numbers.

Fixtures (``tests/data/rnd/batch_*.json``) follow PROVIDERS.md 3.2: the request
``{"tnList": [{"tn", "date", "companyId"}, ...]}`` and the answer
``{"replies": [{"tn", "disconnected", "companyId", "dateProvided"}, ...]}``
(here in another order than asked, as nothing documents the RND's order).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from hypothesis import given, settings
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
from recyclecheck.providers.rnd import MAX_BATCH, RndProvider, parse_batch

from ..privacy import leaks

DATA = Path(__file__).resolve().parent.parent / "data" / "rnd"
BASE = "https://api.reassigned.us"
TOKEN_URL = f"{BASE}/b/public/api/idToken"
QUERY_URL = f"{BASE}/api/tn"
COMPANY = "TESTCO"
ID_TOKEN = json.loads((DATA / "id_token.json").read_text())["idToken"]
SINCE = dt.date(2024, 2, 29)
EARLY = dt.date(2020, 6, 1)
#: The fixture's three questions: (E.164 number, since), and as (tn, since).
ASKED = [("+12015550123", SINCE), ("+12015550124", SINCE), ("+12015550125", EARLY)]
TNS = [(number[2:], since) for number, since in ASKED]
EXPECTED = [ChangedSince(SINCE, True), ChangedSince(SINCE, False), NoData()]
CHINA, CANADA = "+8613800138000", "+16135550123"


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def numbers(count: int) -> list[str]:
    """``count`` distinct valid US numbers."""
    return [f"+1201555{n:04d}" for n in range(count)]


def is_allow(result: object) -> bool:
    return isinstance(result, ChangedSince) and not result.changed


@pytest.fixture
def provider() -> RndProvider:
    return RndProvider("AMf-vBRefreshTokenNeverLogged_0123456789", COMPANY)


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.POST, TOKEN_URL, json={"idToken": ID_TOKEN})
        yield mock


def queries(rsps: responses.RequestsMock) -> list[list[dict[str, str]]]:
    return [
        json.loads(call.request.body)["tnList"]
        for call in rsps.calls
        if call.request.url == QUERY_URL
    ]


def echo(verdict: str = "no") -> Any:
    """A query handler answering ``verdict`` for every tn it was sent, last one first."""

    def callback(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        assert isinstance(request.body, bytes)
        replies = [
            {
                "tn": item["tn"],
                "disconnected": verdict,
                "companyId": item["companyId"],
                "dateProvided": item["date"],
            }
            for item in json.loads(request.body)["tnList"]
        ]
        return 200, {"Content-Type": "application/json"}, json.dumps({"replies": replies[::-1]})

    return callback


# -- the documented exchange ------------------------------------------------------------


def test_one_tnlist_and_an_answer_per_item(
    provider: RndProvider, rsps: responses.RequestsMock
) -> None:
    """The fixture tnList goes out in one POST with the raw id token; replies match by tn."""
    rsps.add(responses.POST, QUERY_URL, json=load("batch_replies.json"))
    assert provider.lookup_many(ASKED) == EXPECTED
    (query,) = [call for call in rsps.calls if call.request.url == QUERY_URL]
    assert query.request.headers["Authorization"] == ID_TOKEN
    assert query.request.headers["Content-Type"] == "application/json"
    assert json.loads(query.request.body) == load("batch_request.json")


def test_parse_batch_is_pure() -> None:
    """parse_batch reads the decoded body alone, whatever the replies' order."""
    assert parse_batch(load("batch_replies.json"), TNS, COMPANY) == EXPECTED


def test_numbers_outside_the_rnd_are_not_covered_without_a_request(
    provider: RndProvider, rsps: responses.RequestsMock
) -> None:
    """Non-US numbers are NotCovered at once; only covered ones are sent."""
    rsps.add(responses.POST, QUERY_URL, json=load("batch_replies.json"))
    items = [(CHINA, SINCE), *ASKED[:1], (CANADA, SINCE), *ASKED[1:]]
    assert provider.lookup_many(items) == [
        NotCovered(),
        EXPECTED[0],
        NotCovered(),
        *EXPECTED[1:],
    ]
    assert [[item["tn"] for item in q] for q in queries(rsps)] == [[tn for tn, _ in TNS]]


def test_only_uncovered_numbers_send_nothing(
    provider: RndProvider, rsps: responses.RequestsMock
) -> None:
    """A batch of numbers the RND does not cover makes no request at all, not even a token."""
    assert provider.lookup_many([(CHINA, SINCE), (CANADA, SINCE)]) == [NotCovered()] * 2
    assert not rsps.calls


@pytest.mark.parametrize(
    ("mutate", "position"),
    [
        (lambda r: r[1].update(dateProvided="2024-03-01"), 0),
        (lambda r: r[1].update(date="2024-03-01"), 0),
        (lambda r: r[1].pop("dateProvided"), 0),
        (lambda r: r[2].update(companyId="OTHER"), 1),
        (lambda r: r[2].update(disconnected="No"), 1),
        (lambda r: r[2].update(disconnected=None), 1),
        (lambda r: r.pop(2), 1),
        (lambda r: r.append(dict(r[2])), 1),
        (lambda r: r.append(dict(r[2], disconnected="yes")), 1),
    ],
)
def test_a_bad_reply_is_an_error_for_its_own_item(mutate: Any, position: int) -> None:
    """Another date or company, an unknown verdict, no reply or two: that item's error only."""
    body = load("batch_replies.json")
    mutate(body["replies"])
    results = parse_batch(body, TNS, COMPANY)
    assert isinstance(results[position], ProviderResponseError)
    assert [r for i, r in enumerate(results) if i != position] == [
        e for i, e in enumerate(EXPECTED) if i != position
    ]


@pytest.mark.parametrize(
    "stray",
    [
        {"tn": "2015550199", "disconnected": "no", "dateProvided": "2024-02-29"},
        {"tn": 2015550123, "disconnected": "no", "dateProvided": "2024-02-29"},
        {"disconnected": "no"},
        "2015550123",
        None,
    ],
)
def test_a_reply_about_nothing_asked_fails_every_item(stray: object) -> None:
    """A reply matching no tn asked means the answer is not trusted for any item."""
    body = load("batch_replies.json")
    body["replies"].append(stray)
    results = parse_batch(body, TNS, COMPANY)
    assert all(isinstance(result, ProviderResponseError) for result in results)


@pytest.mark.parametrize("payload", [None, [], {}, {"replies": None}, {"replies": {}}, "no"])
def test_a_body_without_replies_fails_every_item(payload: object) -> None:
    """No list of replies: each item is a ProviderResponseError."""
    results = parse_batch(payload, TNS, COMPANY)
    assert len(results) == len(TNS)
    assert all(isinstance(result, ProviderResponseError) for result in results)


def test_errors_hold_no_number_and_no_traceback() -> None:
    """Per-item errors never quote a number and keep no traceback."""
    body = load("batch_replies.json")
    body["replies"][0]["dateProvided"] = "2024-01-01"
    del body["replies"][1]
    for result in parse_batch(body, TNS, COMPANY):
        if isinstance(result, ProviderError):
            assert not leaks(f"{result} {result!r}", [number for number, _ in ASKED])
            assert result.__traceback__ is None


# -- chunking ----------------------------------------------------------------------------


def test_chunks_hold_at_most_the_limit(provider: RndProvider, rsps: responses.RequestsMock) -> None:
    """100 numbers go in one tnList; 101 take two, and the token is fetched once."""
    rsps.add_callback(responses.POST, QUERY_URL, callback=echo())
    assert MAX_BATCH == 100
    items = [(n, SINCE) for n in numbers(MAX_BATCH)]
    assert provider.lookup_many(items) == [ChangedSince(SINCE, False)] * MAX_BATCH
    assert [len(q) for q in queries(rsps)] == [MAX_BATCH]
    rsps.calls.reset()
    items = [(n, SINCE) for n in numbers(MAX_BATCH + 1)]
    assert provider.lookup_many(items) == [ChangedSince(SINCE, False)] * (MAX_BATCH + 1)
    assert [len(q) for q in queries(rsps)] == [MAX_BATCH, 1]
    assert not [call for call in rsps.calls if call.request.url == TOKEN_URL]  # still cached


def test_a_tn_appears_once_a_request(provider: RndProvider, rsps: responses.RequestsMock) -> None:
    """The same number with another date waits for the next request; a repeat is asked once."""
    rsps.add_callback(responses.POST, QUERY_URL, callback=echo())
    first, second = ASKED[0][0], ASKED[1][0]
    items = [(first, SINCE), (second, SINCE), (first, EARLY), (first, SINCE)]
    assert provider.lookup_many(items) == [
        ChangedSince(SINCE, False),
        ChangedSince(SINCE, False),
        ChangedSince(EARLY, False),
        ChangedSince(SINCE, False),
    ]
    sent = queries(rsps)
    assert [len(q) for q in sent] == [2, 1]
    for query in sent:
        assert len({item["tn"] for item in query}) == len(query)


@pytest.mark.parametrize(
    ("items", "error"),
    [
        ([("2015550123", SINCE)], InvalidPhoneNumber),
        ([(ASKED[0][0], "2024-02-29")], InvalidInput),
        ([(ASKED[0][0], SINCE, "x")], InvalidInput),
        ({"+12015550123": SINCE}, InvalidInput),
    ],
)
def test_bad_input_raises_before_any_request(
    provider: RndProvider, rsps: responses.RequestsMock, items: Any, error: type[Exception]
) -> None:
    """Bad caller input raises InvalidInput before a token or query is requested."""
    with pytest.raises(error) as info:
        provider.lookup_many(items)
    assert not leaks(str(info.value), [ASKED[0][0]])
    assert not rsps.calls


# -- whole-request failures --------------------------------------------------------------


def two_chunks() -> list[tuple[str, dt.date]]:
    return [(n, SINCE) for n in numbers(MAX_BATCH + 2)]


def test_a_5xx_fails_its_chunk_only(provider: RndProvider, rsps: responses.RequestsMock) -> None:
    """A 503 is ProviderUnavailable for each item of its tnList; the next tnList still goes."""
    rsps.add(responses.POST, QUERY_URL, json={"message": "down"}, status=503)
    rsps.add_callback(responses.POST, QUERY_URL, callback=echo())
    results = provider.lookup_many(two_chunks())
    assert all(isinstance(result, ProviderUnavailable) for result in results[:MAX_BATCH])
    assert results[MAX_BATCH:] == [ChangedSince(SINCE, False)] * 2


@pytest.mark.parametrize(
    ("status", "error"),
    [(429, ProviderRateLimited), (401, ProviderAuthError), (403, ProviderAuthError)],
)
def test_rate_limits_and_refused_tokens_end_the_batch(
    provider: RndProvider, rsps: responses.RequestsMock, status: int, error: type[ProviderError]
) -> None:
    """A 429 or a refused id token fails every item; no further tnList is sent."""
    rsps.add(
        responses.POST,
        QUERY_URL,
        json={"message": "no"},
        status=status,
        headers={"Retry-After": "3"},
    )
    results = provider.lookup_many(two_chunks())
    assert all(type(result) is error for result in results)
    assert len(queries(rsps)) == 1


def test_a_refused_token_is_dropped_for_the_next_call(
    provider: RndProvider, rsps: responses.RequestsMock
) -> None:
    """After a 401 the id token is fetched afresh on the next batch."""
    rsps.add(responses.POST, QUERY_URL, json={"message": "expired"}, status=401)
    rsps.add(responses.POST, QUERY_URL, json=load("batch_replies.json"))
    provider.lookup_many(ASKED)
    assert provider.lookup_many(ASKED) == EXPECTED
    assert len([call for call in rsps.calls if call.request.url == TOKEN_URL]) == 2


def test_a_refused_refresh_token_sends_no_query() -> None:
    """The token endpoint refusing the refresh token fails every item, with no query."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.POST, TOKEN_URL, json={"message": "bad"}, status=401)
        results = RndProvider("refresh", COMPANY).lookup_many(two_chunks())
        assert all(isinstance(result, ProviderAuthError) for result in results)
        assert [call.request.url for call in mock.calls] == [TOKEN_URL]


@pytest.mark.parametrize(
    "reply",
    [
        {"body": b"{oops", "status": 200},
        {"body": b"<html></html>", "status": 200, "content_type": "text/html"},
        {"json": {"replies": []}, "status": 404},
        {"json": {}, "status": 302, "headers": {"Location": "https://elsewhere.test"}},
    ],
)
def test_unreadable_answers_fail_their_chunk(
    provider: RndProvider, rsps: responses.RequestsMock, reply: dict[str, Any]
) -> None:
    """Malformed JSON, HTML, unexpected statuses and redirects: ProviderResponseError each."""
    rsps.add(responses.POST, QUERY_URL, **reply)
    results = provider.lookup_many(ASKED)
    assert all(isinstance(result, ProviderResponseError) for result in results)


def test_a_timeout_fails_the_chunk(provider: RndProvider, rsps: responses.RequestsMock) -> None:
    """A read timeout is ProviderTimeout for each item of the tnList."""
    rsps.add(responses.POST, QUERY_URL, body=requests.exceptions.ReadTimeout("slow"))
    results = provider.lookup_many(ASKED)
    assert all(isinstance(result, ProviderTimeout) for result in results)


def test_a_spent_deadline_sends_nothing(
    provider: RndProvider, rsps: responses.RequestsMock
) -> None:
    """Under a deadline already passed every covered item is ProviderTimeout, nothing sent."""
    with deadline_scope(time.monotonic() - 1):
        results = provider.lookup_many([(CHINA, SINCE), *ASKED])
    assert results[0] == NotCovered()
    assert all(isinstance(result, ProviderTimeout) for result in results[1:])
    assert not rsps.calls


# -- properties ---------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=16,
)
REPLY = st.fixed_dictionaries(
    {},
    optional={
        "tn": st.sampled_from([tn for tn, _ in TNS]) | JSON,
        "dateProvided": st.sampled_from(["2024-02-29", "2020-06-01", "2024-03-01"]) | JSON,
        "date": st.sampled_from(["2024-02-29", "2020-06-01"]) | JSON,
        "companyId": st.sampled_from([COMPANY, "OTHER"]) | JSON,
        "disconnected": st.sampled_from(["yes", "no", "no_data", "No"]) | JSON,
    },
)


@settings(max_examples=300)
@given(payload=JSON)
def test_arbitrary_json_never_allows(payload: Any) -> None:
    """Arbitrary JSON gives one result per question and never an allow."""
    results = parse_batch(payload, TNS, COMPANY)
    assert len(results) == len(TNS)
    assert not any(is_allow(result) for result in results)


@settings(max_examples=400)
@given(replies=st.lists(REPLY, max_size=6))
def test_an_allow_needs_exactly_one_faithful_no_for_that_question(
    replies: list[dict[str, Any]],
) -> None:
    """An allow for a question needs exactly one reply about its tn, echoing its own date
    (every echo) and company, saying exactly "no"."""
    results = parse_batch({"replies": replies}, TNS, COMPANY)
    assert len(results) == len(TNS)
    for (tn, since), result in zip(TNS, results, strict=True):
        if not is_allow(result):
            continue
        (reply,) = [r for r in replies if r.get("tn") == tn]
        echoes = [reply[key] for key in ("dateProvided", "date") if key in reply]
        assert echoes
        assert all(echo == since.isoformat() for echo in echoes)
        assert reply.get("companyId", COMPANY) == COMPANY
        assert reply["disconnected"] == "no"
