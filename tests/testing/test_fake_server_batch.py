"""The batch endpoints over real sockets: the adapters' lookup_many against FakeProviderServer.

Twilio's ``POST /v2/batch/query`` and the RND's multi-item ``tnList`` are served with
the single endpoints' auth checks, scripted numbers, coverage rules and faults, and
each batch request is recorded with its numbers (counted, masked).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import responses

from recyclecheck._batch import lookup_many
from recyclecheck._deadline import deadline_scope
from recyclecheck.exceptions import (
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderTimeout,
    ProviderUnavailable,
)
from recyclecheck.providers import ChangedSince, NoData, NotCovered, RndProvider, TwilioProvider
from recyclecheck.testing import (
    FakeProviderServer,
    Hang,
    MalformedJson,
    RateLimit,
    ServerError,
    mock_rnd,
    mock_twilio,
)

from ..privacy import leaks

SINCE = dt.date(2024, 3, 1)
REISSUED, NEVER, NOT_COVERED, FAILS, SLOWED = (
    "+12015550123",
    "+12015550124",
    "+12015550125",
    "+12015550126",
    "+12015550127",
)
CHINA, CANADA = "+8613800138000", "+16135550123"
SCRIPT: dict[str, Any] = {
    REISSUED: dt.date(2024, 5, 1),
    NEVER: None,
    NOT_COVERED: NotCovered(),
    FAILS: ProviderUnavailable("down", provider="fake"),
    SLOWED: ProviderRateLimited("slow down", provider="fake"),
}
KINDS = ["twilio", "rnd"]
Make = Callable[[FakeProviderServer], Any]
MAKE: dict[str, Make] = {"twilio": lambda s: s.twilio(), "rnd": lambda s: s.rnd()}


def us_numbers(count: int) -> list[str]:
    """``count`` distinct valid US numbers, none of them scripted."""
    return [f"+1212555{n:04d}" for n in range(count)]


def batches(server: FakeProviderServer, kind: str) -> list[Any]:
    """The requests that asked the provider about numbers (batches and single lookups)."""
    return [r for r in server.requests if r.provider == kind and r.endpoint in ("batch", "lookup")]


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(SCRIPT) as fake:
        yield fake


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def provider(server: FakeProviderServer, kind: str) -> Iterator[Any]:
    made = MAKE[kind](server)
    yield made
    made.close()


# -- answers and request counts ------------------------------------------------------------


def test_a_thousand_numbers_take_ten_requests(
    server: FakeProviderServer, provider: Any, kind: str
) -> None:
    """1,000 numbers: ten batch requests of 100 (the RND adds one token request)."""
    items = [(number, SINCE) for number in us_numbers(1000)]
    results = lookup_many(provider, items, timeout=20)
    assert results == [NoData()] * 1000  # unlisted numbers: each provider's "no data"
    asked = batches(server, kind)
    assert [(r.endpoint, r.count) for r in asked] == [("batch", 100)] * 10
    assert sorted(n for r in asked for n in r.numbers) == sorted(n for n, _ in items)
    tokens = [r for r in server.requests if r.endpoint == "token"]
    assert len(tokens) == (1 if kind == "rnd" else 0)


def test_batch_answers_equal_single_lookups(
    server: FakeProviderServer, provider: Any, kind: str
) -> None:
    """Scripted, unlisted and uncovered numbers answer in a batch as they do one by one."""
    numbers = [REISSUED, NEVER, NOT_COVERED, CHINA, CANADA, us_numbers(1)[0]]
    dates = [SINCE, dt.date(2020, 6, 1), dt.date(2024, 6, 1)]
    items = [(number, day) for number in numbers for day in dates]
    one_by_one = [provider.lookup(number, day) for number, day in items]
    assert provider.lookup_many(items) == one_by_one
    assert ChangedSince(SINCE, True) in one_by_one
    assert ChangedSince(SINCE, False) in one_by_one
    assert NotCovered() in one_by_one


def test_coverage_decides_what_is_sent(
    server: FakeProviderServer, provider: Any, kind: str
) -> None:
    """Twilio is asked about any number (it answers 60607 abroad); the RND only about US ones."""
    results = provider.lookup_many([(CHINA, SINCE), (CANADA, SINCE), (NEVER, SINCE)])
    assert results == [NotCovered(), NotCovered(), ChangedSince(SINCE, False)]
    (asked,) = batches(server, kind)
    if kind == "twilio":
        assert (asked.endpoint, asked.numbers) == ("batch", (CHINA, CANADA, NEVER))
    else:
        assert (asked.endpoint, asked.number) == ("lookup", NEVER)  # a one-item tnList


def test_a_batch_is_recorded_masked(server: FakeProviderServer, provider: Any, kind: str) -> None:
    """A batch record counts its numbers and shows them masked; its repr holds no number."""
    provider.lookup_many([(REISSUED, SINCE), (NEVER, SINCE)])
    (record,) = batches(server, kind)
    assert record.endpoint == "batch"
    assert record.count == 2
    assert record.numbers == (REISSUED, NEVER)
    assert record.masked_numbers == ("+1 201***0123", "+1 201***0124")
    assert record.number is None
    assert "count=2" in repr(record)
    assert not leaks(repr(record), [REISSUED, NEVER])


# -- auth ------------------------------------------------------------------------------------


def test_wrong_credentials_fail_every_item_with_one_request(
    server: FakeProviderServer, kind: str
) -> None:
    """Refused credentials: every item ProviderAuthError, and the batch stops at once."""
    wrong = server.twilio(auth_token="wrong") if kind == "twilio" else server.rnd(refresh_token="x")
    items = [(number, SINCE) for number in us_numbers(250)]
    results = wrong.lookup_many(items)
    assert all(isinstance(result, ProviderAuthError) for result in results)
    assert len([r for r in server.requests if r.provider == kind]) == 1


def test_an_expired_rnd_token_fails_one_request_then_is_replaced(
    server: FakeProviderServer,
) -> None:
    """The RND refuses an expired id token (401); the next batch fetches a new one."""
    provider = server.rnd()
    assert provider.lookup_many([(NEVER, SINCE), (REISSUED, SINCE)]) == [
        ChangedSince(SINCE, False),
        ChangedSince(SINCE, True),
    ]
    server.expire_tokens()
    results = provider.lookup_many([(NEVER, SINCE), (REISSUED, SINCE)])
    assert all(isinstance(result, ProviderAuthError) for result in results)
    assert provider.lookup_many([(NEVER, SINCE)]) == [ChangedSince(SINCE, False)]
    assert len([r for r in server.requests if r.endpoint == "token"]) == 2


# -- scripted failures -----------------------------------------------------------------------


def test_twilio_fails_scripted_numbers_item_by_item(server: FakeProviderServer) -> None:
    """Twilio reports a scripted failure in that item's twilio_error_code; the rest stand."""
    results = server.twilio().lookup_many(
        [(NEVER, SINCE), (FAILS, SINCE), (SLOWED, SINCE), (REISSUED, SINCE)]
    )
    assert results[0] == ChangedSince(SINCE, False)
    assert isinstance(results[1], ProviderUnavailable)
    assert results[1].code == "60608"
    assert isinstance(results[2], ProviderRateLimited)
    assert results[3] == ChangedSince(SINCE, True)
    assert len(batches(server, "twilio")) == 1


def test_the_rnd_fails_a_whole_request_for_a_scripted_number(server: FakeProviderServer) -> None:
    """The RND has no per-item error: a scripted failure fails its whole tnList."""
    others = us_numbers(104)
    items = [(number, SINCE) for number in [*others[:99], FAILS, *others[99:]]]
    results = server.rnd().lookup_many(items)
    assert all(isinstance(result, ProviderUnavailable) for result in results[:100])
    assert results[100:] == [NoData()] * 5


# -- faults ----------------------------------------------------------------------------------


def test_a_server_error_fails_its_request_only(
    server: FakeProviderServer, provider: Any, kind: str
) -> None:
    """An injected 503 fails the items of the request it hit; the next request is answered."""
    provider.lookup_many([(NEVER, SINCE), (REISSUED, SINCE)])  # RND: the token first
    server.inject(ServerError(503), times=1)
    results = provider.lookup_many([(number, SINCE) for number in us_numbers(150)])
    assert all(isinstance(result, ProviderUnavailable) for result in results[:100])
    assert results[100:] == [NoData()] * 50


def test_a_rate_limit_stops_the_batch(server: FakeProviderServer, provider: Any, kind: str) -> None:
    """A 429 is every item's ProviderRateLimited (with Retry-After); nothing more is sent."""
    provider.lookup_many([(NEVER, SINCE), (REISSUED, SINCE)])  # RND: the token first
    before = len(batches(server, kind))
    server.inject(RateLimit(retry_after=4))
    results = provider.lookup_many([(number, SINCE) for number in us_numbers(300)])
    assert all(isinstance(result, ProviderRateLimited) for result in results)
    assert {result.retry_after for result in results} == {4.0}
    assert len(batches(server, kind)) == before + 1


def test_a_fault_for_one_number_fails_the_batch_holding_it(
    server: FakeProviderServer, provider: Any, kind: str
) -> None:
    """A fault injected for a number answers the whole batch request listing it."""
    provider.lookup_many([(NEVER, SINCE), (REISSUED, SINCE)])
    target = us_numbers(150)[120]
    server.inject(MalformedJson(), number=target, times=1)
    results = provider.lookup_many([(number, SINCE) for number in us_numbers(150)])
    assert results[:100] == [NoData()] * 100
    assert all(isinstance(result, ProviderResponseError) for result in results[100:])
    (faulted,) = [r for r in server.requests if r.fault is not None]
    assert target in faulted.numbers


def test_a_hang_ends_at_the_deadline(server: FakeProviderServer, provider: Any, kind: str) -> None:
    """A hung batch is ProviderTimeout for every item, within the deadline; nothing more sent."""
    provider.lookup_many([(NEVER, SINCE), (REISSUED, SINCE)])
    before = len(batches(server, kind))
    server.inject(Hang())
    started = time.monotonic()
    with deadline_scope(started + 0.4):
        results = provider.lookup_many([(number, SINCE) for number in us_numbers(250)])
    assert time.monotonic() - started < 1.5
    assert all(isinstance(result, ProviderTimeout) for result in results)
    assert len(batches(server, kind)) == before + 1


# -- the fake's own rules, asked directly -----------------------------------------------------


def twilio_post(server: FakeProviderServer, items: list[dict[str, Any]]) -> requests.Response:
    c = server.credentials
    auth = base64.b64encode(f"{c.twilio_account_sid}:{c.twilio_auth_token}".encode()).decode()
    return requests.post(
        server.url + "/v2/batch/query",
        json={"phone_numbers": items},
        headers={"Authorization": "Basic " + auth},
        timeout=5,
    )


def twilio_item(number: str, correlation: str, date: str | None = "20240301") -> dict[str, Any]:
    item: dict[str, Any] = {
        "correlation_id": correlation,
        "phone_number": number,
        "fields": ["reassigned_number"],
    }
    if date is not None:
        item["reassigned_number"] = {"last_verified_date": date}
    return item


def test_the_fake_twilio_refuses_a_number_twice_in_one_request(
    server: FakeProviderServer,
) -> None:
    """Error 60626 for a number repeated in one bulk request; the others are answered."""
    reply = twilio_post(
        server, [twilio_item(NEVER, "a"), twilio_item(REISSUED, "b"), twilio_item(NEVER, "c")]
    )
    assert reply.status_code == 200
    answers = reply.json()["phone_numbers"]
    assert [a["correlation_id"] for a in answers] == ["a", "b", "c"]
    assert [a["twilio_error_code"] for a in answers] == [60626, None, 60626]
    assert answers[1]["reassigned_number"] == {
        "last_verified_date": "2024-03-01",
        "is_number_reassigned": "yes",
        "error_code": None,
    }


def test_the_fake_twilio_answers_items_in_band(server: FakeProviderServer) -> None:
    """Invalid numbers and missing dates are answered per item, as the single Lookup does."""
    reply = twilio_post(
        server,
        [twilio_item("+1201555", "0"), twilio_item(NEVER, "1", None), twilio_item(CHINA, "2")],
    )
    first, second, third = reply.json()["phone_numbers"]
    assert (first["valid"], first["reassigned_number"]) == (False, None)
    assert second["twilio_error_code"] == 60600
    assert third["reassigned_number"]["error_code"] == "60607"


@pytest.mark.parametrize("size", [0, 101])
def test_the_fake_twilio_refuses_empty_or_oversized_batches(
    server: FakeProviderServer, size: int
) -> None:
    """Twilio documents no maximum; the fake refuses more than the adapter's cap (100)."""
    reply = twilio_post(server, [twilio_item(n, str(i)) for i, n in enumerate(us_numbers(size))])
    assert reply.status_code == 400
    assert reply.json()["code"] == 60600


def test_the_fake_rnd_refuses_more_than_a_hundred(server: FakeProviderServer) -> None:
    """A tnList over 100 items is a 400 for the whole request."""
    token = requests.post(
        server.url + "/b/public/api/idToken",
        json={"refreshToken": server.credentials.rnd_refresh_token},
        timeout=5,
    ).json()["idToken"]
    company = server.credentials.rnd_company_id
    items = [{"tn": n[2:], "date": "2024-03-01", "companyId": company} for n in us_numbers(101)]
    reply = requests.post(
        server.url + "/api/tn", json={"tnList": items}, headers={"Authorization": token}, timeout=5
    )
    assert reply.status_code == 400


# -- the responses mocks ------------------------------------------------------------------------


def test_the_twilio_mock_speaks_the_batch_endpoint() -> None:
    """mock_twilio answers POST /v2/batch/query from the same script, per item."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mock_twilio(rsps, SCRIPT)
        results = TwilioProvider("ACx", "secret").lookup_many(
            [(REISSUED, SINCE), (FAILS, SINCE), (CHINA, SINCE)]
        )
        assert [call.request.method for call in rsps.calls] == ["POST"]
    assert results[0] == ChangedSince(SINCE, True)
    assert isinstance(results[1], ProviderUnavailable)
    assert results[2] == NotCovered()


def test_the_rnd_mock_answers_a_tnlist() -> None:
    """mock_rnd answers a multi-item tnList; a scripted failure fails the whole request."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mock_rnd(rsps, SCRIPT)
        provider = RndProvider("refresh", "ACME01")
        assert provider.lookup_many([(REISSUED, SINCE), (NEVER, SINCE)]) == [
            ChangedSince(SINCE, True),
            ChangedSince(SINCE, False),
        ]
        failed = provider.lookup_many([(REISSUED, SINCE), (FAILS, SINCE)])
    assert all(isinstance(result, ProviderUnavailable) for result in failed)


def test_no_number_in_batch_errors(server: FakeProviderServer, provider: Any) -> None:
    """Every error of a batch, as text, holds no number."""
    server.inject(MalformedJson(), times=1)
    items = [(number, SINCE) for number in [*SCRIPT, CHINA]]
    text = " ".join(
        f"{result} {result!r}"
        for result in provider.lookup_many(items)
        if isinstance(result, ProviderError)
    )
    assert text
    assert not leaks(text, [number for number, _ in items])
    assert not re.search(r"\d{7,}", text)


def test_batch_answers_round_trip_as_json(server: FakeProviderServer) -> None:
    """The recorded batch body is the JSON the adapter sent: each number once, with its date."""
    server.twilio().lookup_many([(NEVER, SINCE), (REISSUED, dt.date(2023, 1, 2))])
    (record,) = batches(server, "twilio")
    body = record.json()
    assert [
        (i["phone_number"], i["reassigned_number"]["last_verified_date"])
        for i in body["phone_numbers"]
    ] == [
        (NEVER, "20240301"),
        (REISSUED, "20230102"),
    ]
    assert json.loads(record.body) == body
