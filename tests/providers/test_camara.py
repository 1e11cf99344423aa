"""Contract tests for the CAMARA Number Recycling adapter, against the spec's wire format."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import re
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recyclecheck._deadline import deadline_scope
from recyclecheck.exceptions import (
    ConfigurationError,
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
from recyclecheck.providers._tokens import TokenCache
from recyclecheck.providers.camara import CamaraProvider

from ..crowd import run_together
from . import camara_spec

DATA = Path(__file__).resolve().parent.parent / "data" / "camara"
ROOT = "https://api.operator.example/camara"
CHECK = ROOT + "/number-recycling/v0.3/check"  # the default version
TOKEN_URL = "https://auth.operator.example/oauth2/token"
NUMBER = "+8613800138000"
DIGITS = "13800138000"
SINCE = dt.date(2024, 3, 2)
ASKED = "2024-03-01"  # the day before SINCE: the operator counts changes strictly after it
STATIC_TOKEN = "static-token.0123456789"
CLIENT_ID = "app:recycle+check"
CLIENT_SECRET = "s3cr3t:with/odd+chars"
RSA_PEM = (DATA / "test_rsa_key.pem").read_bytes()
EC_PEM = (DATA / "test_ec_p256_key.pem").read_bytes()
TOKEN_BODY = json.loads((DATA / "token.json").read_text())
ERRORS: dict[str, dict[str, Any]] = json.loads((DATA / "errors.json").read_text())
XCORRELATOR = re.compile(r"^[a-zA-Z0-9-_:;.\/<>{}]{0,256}$")  # the spec's XCorrelator pattern


def fixture_bytes(name: str) -> bytes:
    return (DATA / name).read_bytes()


def reply(
    status: int = 200,
    body: bytes | str | dict[str, Any] | list[Any] = b"",
    *,
    content_type: str = "application/json",
    echo: bool = True,
    headers: dict[str, str] | None = None,
) -> Callable[[requests.PreparedRequest], tuple[int, dict[str, str], bytes]]:
    """A responses callback that answers like a CAMARA server, echoing x-correlator."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    raw = body.encode() if isinstance(body, str) else body

    def callback(request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        out = {"Content-Type": content_type, **(headers or {})}
        if echo and "x-correlator" in request.headers:
            out["x-correlator"] = request.headers["x-correlator"]
        return status, out, raw

    return callback


Callback = Callable[[requests.PreparedRequest], tuple[int, dict[str, str], bytes]]


def in_turn(*callbacks: Callback) -> Callback:
    """A callback that answers with each of `callbacks` in turn."""
    pending = iter(callbacks)

    def callback(request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        return next(pending)(request)

    return callback


def static(**options: Any) -> CamaraProvider:
    return CamaraProvider(ROOT, access_token=STATIC_TOKEN, **options)


def with_secret(**options: Any) -> CamaraProvider:
    return CamaraProvider(
        ROOT, token_url=TOKEN_URL, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, **options
    )


def sent_json(call: Any) -> Any:
    return json.loads(call.request.body)


def form(call: Any) -> dict[str, str]:
    body = call.request.body
    text = body.decode("ascii") if isinstance(body, bytes) else body
    pairs = urllib.parse.parse_qsl(text, strict_parsing=True)
    assert len({key for key, _ in pairs}) == len(pairs)
    return dict(pairs)


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    """Mocked HTTP; afterwards every check request sent is held to the 0.3 contract."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps
        for call in rsps.calls:  # read before leaving: the mock forgets its calls on exit
            if urllib.parse.urlsplit(call.request.url).path.endswith("/check"):
                camara_spec.check_request(call.request.body, call.request.headers)


# -- the request -------------------------------------------------------------------


def test_two_legged_request_matches_the_spec(mock: responses.RequestsMock) -> None:
    """POST {root}/number-recycling/v0.3/check with the number, the date and a fresh correlator."""
    mock.add_callback(responses.POST, CHECK, callback=reply(body=fixture_bytes("check_false.json")))
    assert static().lookup(NUMBER, SINCE) == ChangedSince(SINCE, False)
    (call,) = mock.calls
    assert call.request.method == "POST"
    assert call.request.url == CHECK
    assert sent_json(call) == {"phoneNumber": NUMBER, "specifiedDate": ASKED}
    headers = call.request.headers
    assert headers["Authorization"] == f"Bearer {STATIC_TOKEN}"
    assert headers["Content-Type"] == "application/json"
    assert headers["Accept"] == "application/json"
    correlator = headers["x-correlator"]
    assert XCORRELATOR.match(correlator)
    assert str(uuid.UUID(correlator)) == correlator


def test_three_legged_request_omits_the_number(mock: responses.RequestsMock) -> None:
    """With a three-legged token the token names the line, so phoneNumber MUST NOT be sent."""
    mock.add_callback(responses.POST, CHECK, callback=reply(body=fixture_bytes("check_true.json")))
    provider = static(three_legged=True)
    assert provider.lookup(NUMBER, SINCE) == ChangedSince(SINCE, True)
    assert sent_json(mock.calls[0]) == {"specifiedDate": ASKED}
    body = mock.calls[0].request.body
    assert isinstance(body, bytes)
    assert DIGITS.encode() not in body


def test_each_request_gets_a_fresh_correlator(mock: responses.RequestsMock) -> None:
    """Correlators are never reused, so a replayed answer cannot match a new request."""
    mock.add_callback(responses.POST, CHECK, callback=reply(body={"phoneNumberRecycled": False}))
    provider = static()
    provider.lookup(NUMBER, SINCE)
    provider.lookup(NUMBER, SINCE)
    first, second = (call.request.headers["x-correlator"] for call in mock.calls)
    assert first != second


def test_api_version_and_root_path(mock: responses.RequestsMock) -> None:
    """v0.2 stays selectable, and a path and trailing slash on the root are harmless."""
    url = "https://gw.example/sub/path/number-recycling/v0.2/check"
    mock.add_callback(responses.POST, url, callback=reply(body={"phoneNumberRecycled": True}))
    provider = CamaraProvider(
        "https://gw.example/sub/path/", access_token=STATIC_TOKEN, api_version="v0.2"
    )
    assert provider.lookup(NUMBER, SINCE) == ChangedSince(SINCE, True)
    assert mock.calls[0].request.url == url


def test_default_api_version_is_v0_3(mock: responses.RequestsMock) -> None:
    """Without api_version the check goes to /number-recycling/v0.3/check (API 0.3.0)."""
    mock.add_callback(responses.POST, CHECK, callback=reply(body={"phoneNumberRecycled": False}))
    provider = CamaraProvider(ROOT, access_token=STATIC_TOKEN)
    assert provider.lookup(NUMBER, SINCE) == ChangedSince(SINCE, False)
    assert mock.calls[0].request.url == ROOT + "/number-recycling/v0.3/check"
    assert "/number-recycling/v0.3/check" in repr(provider)


@pytest.mark.parametrize(
    "version", ["v0.3rc1", "v0.3rc2", "vwip", "v0.1", "v1", "V0.3", "v0.3/", "0.3", "", None, 0.3]
)
def test_other_api_versions_are_refused(version: Any) -> None:
    """Only v0.3 and v0.2 are spoken: anything else fails at construction."""
    with pytest.raises(ConfigurationError, match=re.escape("api_version must be v0.3 or v0.2")):
        CamaraProvider(ROOT, access_token=STATIC_TOKEN, api_version=version)


def test_since_maps_to_the_day_before() -> None:
    """A change on `since` itself must count: the adapter asks about since - 1 day."""
    with responses.RequestsMock() as mock:
        mock.add_callback(responses.POST, CHECK, callback=reply(body={"phoneNumberRecycled": True}))
        static().lookup(NUMBER, dt.date(2024, 1, 1))
        assert sent_json(mock.calls[0])["specifiedDate"] == "2023-12-31"


@pytest.mark.parametrize(
    "number",
    [
        "8613800138000",
        "+0123456",
        "+1234",
        "+1234567890123456",
        "+86 138",
        "+8613800138000\r\nX: y",
        "+" + "".join(chr(0xFF10 + int(digit)) for digit in NUMBER[1:]),  # full-width digits
        "",
        None,
        8613800138000,
    ],
)
def test_bad_numbers_are_refused_before_any_io(number: Any, mock: responses.RequestsMock) -> None:
    """Only the spec's E.164 pattern reaches the wire; anything else fails without a request."""
    with pytest.raises(InvalidPhoneNumber) as info:
        static().lookup(number, SINCE)
    assert not mock.calls
    assert DIGITS not in str(info.value)


@pytest.mark.parametrize(
    "since", [dt.datetime(2024, 3, 2, tzinfo=dt.timezone.utc), "2024-03-02", None]
)
def test_since_must_be_a_plain_date(since: Any, mock: responses.RequestsMock) -> None:
    """`since` must be a datetime.date (not a datetime or string)."""
    with pytest.raises(InvalidInput):
        static().lookup(NUMBER, since)
    assert not mock.calls


def test_since_error_is_the_shared_type(mock: responses.RequestsMock) -> None:
    """A bad `since` raises what every adapter raises: InvalidInput that is also a TypeError."""
    with pytest.raises(InvalidInput) as info:
        static().lookup(NUMBER, "2024-03-02")  # type: ignore[arg-type]
    assert isinstance(info.value, TypeError)
    assert not mock.calls


@pytest.mark.parametrize("number", ["+12345", "+123456"])
def test_five_and_six_digit_numbers_are_refused_like_everywhere(
    number: str, mock: responses.RequestsMock
) -> None:
    """The shared E.164 rule (7 to 15 digits) applies: CAMARA no longer accepts 5 or 6."""
    with pytest.raises(InvalidPhoneNumber):
        static().lookup(number, SINCE)
    assert not mock.calls


def test_seven_digit_numbers_are_asked(mock: responses.RequestsMock) -> None:
    """The shortest E.164 number the shared rule accepts still reaches the operator."""
    mock.add_callback(responses.POST, CHECK, callback=reply(body={"phoneNumberRecycled": False}))
    assert static().lookup("+6831234", SINCE) == ChangedSince(SINCE, False)
    assert sent_json(mock.calls[0])["phoneNumber"] == "+6831234"


def test_date_min_is_not_covered_without_a_request(mock: responses.RequestsMock) -> None:
    """There is no day before date.min to ask about: NotCovered, and nothing is sent."""
    assert static().lookup(NUMBER, dt.date.min) == NotCovered()
    assert not mock.calls


TODAY = dt.date(2026, 6, 15)


def pinned(today: dt.date = TODAY, **options: Any) -> CamaraProvider:
    provider = static(**options)
    provider._today = lambda: today
    return provider


@pytest.mark.parametrize(
    "since", [TODAY + dt.timedelta(days=1), TODAY + dt.timedelta(days=400), dt.date.max]
)
def test_a_future_since_is_never_sent(since: dt.date, mock: responses.RequestsMock) -> None:
    """After today (UTC) there is nothing to ask: NotCovered, and no request leaves."""
    assert pinned().lookup(NUMBER, since) == NotCovered()
    assert not mock.calls


@pytest.mark.parametrize(
    ("since", "asked"),
    [(TODAY, "2026-06-14"), (TODAY - dt.timedelta(days=1), "2026-06-13")],
)
def test_since_today_asks_about_yesterday(
    since: dt.date, asked: str, mock: responses.RequestsMock
) -> None:
    """The latest date sent is yesterday (UTC): in the past in every time zone."""
    mock.add_callback(responses.POST, CHECK, callback=reply(body={"phoneNumberRecycled": False}))
    assert pinned().lookup(NUMBER, since) == ChangedSince(since, False)
    assert sent_json(mock.calls[0])["specifiedDate"] == asked


def test_today_is_the_utc_date() -> None:
    """The bound is today's UTC date, read when the lookup runs."""
    provider = static()
    now = dt.datetime.now(dt.timezone.utc).date()
    assert provider._today() in (now, now + dt.timedelta(days=1))


def test_out_of_range_is_not_covered(mock: responses.RequestsMock) -> None:
    """400 OUT_OF_RANGE (a date outside the operator's window) is NotCovered, not an error."""
    mock.add_callback(responses.POST, CHECK, callback=reply(400, ERRORS["400_OUT_OF_RANGE"]))
    assert static().lookup(NUMBER, dt.date(2019, 1, 1)) == NotCovered()


# -- answers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "changed"), [("check_false.json", False), ("check_true.json", True)]
)
def test_boolean_answers(fixture: str, changed: bool, mock: responses.RequestsMock) -> None:
    """200 phoneNumberRecycled true/false becomes ChangedSince(since, true/false)."""
    mock.add_callback(responses.POST, CHECK, callback=reply(body=fixture_bytes(fixture)))
    assert static().lookup(NUMBER, SINCE) == ChangedSince(SINCE, changed)


def test_missing_correlator_echo_is_accepted(mock: responses.RequestsMock) -> None:
    """The echo is checked when present; some gateways drop it."""
    mock.add_callback(
        responses.POST, CHECK, callback=reply(body={"phoneNumberRecycled": False}, echo=False)
    )
    assert static().lookup(NUMBER, SINCE) == ChangedSince(SINCE, False)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, {"phoneNumberRecycled": False}),
        (400, ERRORS["400_OUT_OF_RANGE"]),
        (404, ERRORS["404_IDENTIFIER_NOT_FOUND"]),
    ],
)
@pytest.mark.parametrize("echoed", ["b4333c46-49c0-4f62-80d7-f0ef930f1c46", "", "x, y"])
def test_correlator_mismatch_is_a_response_error(
    status: int, body: dict[str, Any], echoed: str, mock: responses.RequestsMock
) -> None:
    """An x-correlator echo that is not ours means the answer is for another request."""
    mock.add_callback(
        responses.POST,
        CHECK,
        callback=reply(status, body, echo=False, headers={"x-correlator": echoed}),
    )
    with pytest.raises(ProviderResponseError, match="x-correlator"):
        static().lookup(NUMBER, SINCE)


EXPECTED: dict[str, tuple[type[Any], bool]] = {
    # fixture key: (answer type or exception, whether the code is passed on)
    "400_INVALID_ARGUMENT": (ProviderResponseError, True),
    "400_OUT_OF_RANGE": (NotCovered, False),
    "401_UNAUTHENTICATED": (ProviderAuthError, True),
    "403_PERMISSION_DENIED": (ProviderAuthError, True),
    "403_INVALID_TOKEN_CONTEXT": (ProviderAuthError, True),
    "404_IDENTIFIER_NOT_FOUND": (NoData, False),
    "404_NOT_FOUND": (ProviderResponseError, True),
    "422_SERVICE_NOT_APPLICABLE": (NoData, False),
    "422_MISSING_IDENTIFIER": (ProviderResponseError, True),
    "422_UNNECESSARY_IDENTIFIER": (ProviderResponseError, True),
    "429_TOO_MANY_REQUESTS": (ProviderRateLimited, True),
    "429_QUOTA_EXCEEDED": (ProviderRateLimited, True),
    "500_INTERNAL": (ProviderUnavailable, True),
    "502_BAD_GATEWAY": (ProviderUnavailable, True),
    "503_UNAVAILABLE": (ProviderUnavailable, True),
    "504_TIMEOUT": (ProviderUnavailable, True),
}


def test_every_fixture_has_an_expectation() -> None:
    """The error table covers every fixture."""
    assert set(EXPECTED) == set(ERRORS)


@pytest.mark.parametrize("key", sorted(ERRORS))
def test_documented_errors(key: str, mock: responses.RequestsMock) -> None:
    """Each documented status/code maps to its answer or to the matching ProviderError."""
    body = ERRORS[key]
    outcome, carries_code = EXPECTED[key]
    mock.add_callback(responses.POST, CHECK, callback=reply(body["status"], body))
    if not issubclass(outcome, Exception):
        assert static().lookup(NUMBER, SINCE) == outcome()
        return
    with pytest.raises(outcome) as info:
        static().lookup(NUMBER, SINCE)
    error = info.value
    assert isinstance(error, ProviderError)
    assert error.status == body["status"]
    assert error.provider == "camara"
    assert error.code == (body["code"] if carries_code else None)


def test_rate_limit_carries_retry_after(mock: responses.RequestsMock) -> None:
    """429 passes Retry-After on so the Guard can honour it."""
    body = ERRORS["429_TOO_MANY_REQUESTS"]
    mock.add_callback(
        responses.POST, CHECK, callback=reply(429, body, headers={"Retry-After": "7"})
    )
    with pytest.raises(ProviderRateLimited) as info:
        static().lookup(NUMBER, SINCE)
    assert info.value.retry_after == 7.0


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        pytest.param(
            400,
            {"status": 404, "code": "OUT_OF_RANGE", "message": "m"},
            "application/json",
            id="status-mismatch",
        ),
        pytest.param(
            400,
            {"status": "400", "code": "OUT_OF_RANGE", "message": "m"},
            "application/json",
            id="status-string",
        ),
        pytest.param(
            400, {"status": 400, "code": "OUT_OF_RANGE"}, "application/json", id="no-message"
        ),
        pytest.param(
            400, {"code": "OUT_OF_RANGE", "message": "m"}, "application/json", id="no-status"
        ),
        pytest.param(
            400,
            '{"status":400,"code":"OUT_OF_RANGE","message":"m","code":"INVALID_ARGUMENT"}',
            "application/json",
            id="duplicate-code",
        ),
        pytest.param(404, fixture_bytes("gateway_error.html"), "text/html", id="html-404"),
        pytest.param(404, b"", "application/json", id="empty-404"),
        pytest.param(
            422,
            {"status": 422, "code": "service_not_applicable", "message": "m"},
            "application/json",
            id="lowercase-code",
        ),
        pytest.param(422, [ERRORS["422_SERVICE_NOT_APPLICABLE"]], "application/json", id="list"),
    ],
)
def test_answers_need_a_well_formed_error_body(
    status: int, body: Any, content_type: str, mock: responses.RequestsMock
) -> None:
    """NotCovered/NoData come only from a valid ErrorInfo whose status matches; else an error."""
    mock.add_callback(
        responses.POST, CHECK, callback=reply(status, body, content_type=content_type)
    )
    with pytest.raises(ProviderResponseError) as info:
        static().lookup(NUMBER, SINCE)
    assert info.value.code is None
    assert info.value.status == status


def test_html_5xx_is_unavailable(mock: responses.RequestsMock) -> None:
    """A gateway's HTML 502 page is an outage, not a malformed answer."""
    mock.add_callback(
        responses.POST,
        CHECK,
        callback=reply(502, fixture_bytes("gateway_error.html"), content_type="text/html"),
    )
    with pytest.raises(ProviderUnavailable):
        static().lookup(NUMBER, SINCE)


def test_error_codes_that_could_carry_a_number_are_dropped(mock: responses.RequestsMock) -> None:
    """Provider codes are passed on only when they look like CAMARA codes (no digits)."""
    body = {"status": 400, "code": f"BAD_{DIGITS}", "message": f"bad number {NUMBER}"}
    mock.add_callback(responses.POST, CHECK, callback=reply(400, body))
    with pytest.raises(ProviderResponseError) as info:
        static().lookup(NUMBER, SINCE)
    assert info.value.code is None
    assert DIGITS not in str(info.value) + repr(info.value)


def test_other_2xx_is_a_response_error(mock: responses.RequestsMock) -> None:
    """Only 200 carries an answer."""
    mock.add_callback(responses.POST, CHECK, callback=reply(204, b""))
    with pytest.raises(ProviderResponseError, match="unexpected status"):
        static().lookup(NUMBER, SINCE)


# -- malformed answers --------------------------------------------------------------


MALFORMED = [
    pytest.param(b"{not json", "application/json", id="invalid-json"),
    pytest.param(b'{"phoneNumberRecycled": "false"}', "application/json", id="string-false"),
    pytest.param(b'{"phoneNumberRecycled": "true"}', "application/json", id="string-true"),
    pytest.param(b'{"phoneNumberRecycled": 0}', "application/json", id="zero"),
    pytest.param(b'{"phoneNumberRecycled": null}', "application/json", id="null"),
    pytest.param(b"{}", "application/json", id="missing-field"),
    pytest.param(
        b'{"phoneNumberRecycled": false, "note": 1}', "application/json", id="extra-field"
    ),
    pytest.param(b'{"recycledSinceSpecifiedDate": false}', "application/json", id="vendor-field"),
    pytest.param(b'{"data": {"phoneNumberRecycled": false}}', "application/json", id="nested"),
    pytest.param(b'[{"phoneNumberRecycled": false}]', "application/json", id="list"),
    pytest.param(b"false", "application/json", id="bare-false"),
    pytest.param(b"null", "application/json", id="bare-null"),
    pytest.param(b"", "application/json", id="empty"),
    pytest.param(
        b'{"phoneNumberRecycled": true, "phoneNumberRecycled": false}',
        "application/json",
        id="duplicate",
    ),
    pytest.param(b'{"phoneNumberRecycled": NaN}', "application/json", id="nan"),
    pytest.param(fixture_bytes("gateway_error.html"), "text/html", id="html"),
    pytest.param(fixture_bytes("gateway_error.html"), "application/json", id="html-labelled-json"),
    pytest.param(b'{"phoneNumberRecycled": false}', "text/plain", id="not-json-content-type"),
    pytest.param(b'{"phoneNumberRecycled": false}', "", id="no-content-type"),
]


@pytest.mark.parametrize(("body", "content_type"), MALFORMED)
def test_malformed_answers_are_response_errors(
    body: bytes, content_type: str, mock: responses.RequestsMock
) -> None:
    """Nothing malformed becomes an answer, least of all 'not recycled'."""
    mock.add_callback(responses.POST, CHECK, callback=reply(200, body, content_type=content_type))
    with pytest.raises(ProviderResponseError):
        static().lookup(NUMBER, SINCE)


def test_body_over_the_cap_is_refused(mock: responses.RequestsMock) -> None:
    """A body bigger than max_body is refused however it ends."""
    padded = b'{"phoneNumberRecycled": false' + b" " * 2048 + b"}"
    mock.add_callback(responses.POST, CHECK, callback=reply(200, padded))
    with pytest.raises(ProviderResponseError, match="size cap"):
        static(max_body=1024).lookup(NUMBER, SINCE)


def test_redirect_is_not_followed(mock: responses.RequestsMock) -> None:
    """A 302 (even to a friendly answer) is an error and is never followed."""
    mock.add(responses.POST, CHECK, status=302, headers={"Location": "https://evil.example/check"})
    mock.add_callback(
        responses.POST,
        "https://evil.example/check",
        callback=reply(body={"phoneNumberRecycled": False}),
    )
    with pytest.raises(ProviderResponseError, match="redirect"):
        static().lookup(NUMBER, SINCE)
    assert len(mock.calls) == 1


def test_transport_failure_is_unavailable(mock: responses.RequestsMock) -> None:
    """A connection error maps to ProviderUnavailable without the URL (and number) in it."""
    mock.add(
        responses.POST, CHECK, body=requests.exceptions.ConnectionError(f"failed {CHECK} {NUMBER}")
    )
    with pytest.raises(ProviderUnavailable) as info:
        static().lookup(NUMBER, SINCE)
    assert DIGITS not in str(info.value)


# -- auth: client secret -------------------------------------------------------------


def token_reply(
    **changes: Any,
) -> Callable[[requests.PreparedRequest], tuple[int, dict[str, str], bytes]]:
    body = {**TOKEN_BODY, **changes}
    return reply(200, {key: value for key, value in body.items() if value is not None})


def test_client_secret_grant(mock: responses.RequestsMock) -> None:
    """Client credentials: form body; HTTP Basic with form-encoded id and secret (RFC 6749)."""
    mock.add_callback(responses.POST, TOKEN_URL, callback=token_reply())
    mock.add_callback(responses.POST, CHECK, callback=reply(body={"phoneNumberRecycled": False}))
    assert with_secret().lookup(NUMBER, SINCE) == ChangedSince(SINCE, False)
    token_call, check_call = mock.calls
    assert token_call.request.method == "POST"
    assert token_call.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert form(token_call) == {
        "grant_type": "client_credentials",
        "scope": "number-recycling:check",
    }
    scheme, _, encoded = token_call.request.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    user, _, password = base64.b64decode(encoded).decode().partition(":")
    assert user == "app%3Arecycle%2Bcheck"
    assert urllib.parse.unquote_plus(user) == CLIENT_ID
    assert urllib.parse.unquote_plus(password) == CLIENT_SECRET
    assert check_call.request.headers["Authorization"] == f"Bearer {TOKEN_BODY['access_token']}"


def test_custom_scope_is_requested(mock: responses.RequestsMock) -> None:
    """The scope option goes to the token endpoint unchanged."""
    mock.add_callback(
        responses.POST, TOKEN_URL, callback=token_reply(scope="openid number-recycling:check")
    )
    mock.add_callback(responses.POST, CHECK, callback=reply(body={"phoneNumberRecycled": False}))
    with_secret(scope="openid number-recycling:check").lookup(NUMBER, SINCE)
    assert form(mock.calls[0])["scope"] == "openid number-recycling:check"


def test_token_is_cached_and_refreshed_before_expiry(mock: responses.RequestsMock) -> None:
    """One token serves many checks; it is refetched a margin before expires_in runs out."""
    now = [1000.0]
    tokens = ["tok-1", "tok-2"]
    mock.add_callback(
        responses.POST,
        TOKEN_URL,
        callback=in_turn(
            *(
                reply(200, {**TOKEN_BODY, "access_token": token, "expires_in": 3600})
                for token in tokens
            )
        ),
    )
    mock.add_callback(responses.POST, CHECK, callback=reply(body={"phoneNumberRecycled": False}))
    provider = with_secret()
    provider._tokens = TokenCache(provider._fetch_token, clock=lambda: now[0])
    provider.lookup(NUMBER, SINCE)
    now[0] += 3600 - 61  # still more than the refresh margin left
    provider.lookup(NUMBER, SINCE)
    now[0] += 2  # inside the margin: refresh first
    provider.lookup(NUMBER, SINCE)
    urls = [call.request.url for call in mock.calls]
    assert urls == [TOKEN_URL, CHECK, CHECK, TOKEN_URL, CHECK]
    bearers = [
        call.request.headers["Authorization"] for call in mock.calls if call.request.url == CHECK
    ]
    assert bearers == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


def test_401_invalidates_the_cached_token(mock: responses.RequestsMock) -> None:
    """After a 401 the next check fetches a new token instead of reusing the refused one."""
    mock.add_callback(
        responses.POST,
        TOKEN_URL,
        callback=in_turn(token_reply(access_token="tok-1"), token_reply(access_token="tok-2")),
    )
    mock.add_callback(
        responses.POST,
        CHECK,
        callback=in_turn(
            reply(401, ERRORS["401_UNAUTHENTICATED"]), reply(body={"phoneNumberRecycled": True})
        ),
    )
    provider = with_secret()
    with pytest.raises(ProviderAuthError) as info:
        provider.lookup(NUMBER, SINCE)
    assert info.value.code == "UNAUTHENTICATED"
    assert info.value.retryable is True
    assert provider.lookup(NUMBER, SINCE) == ChangedSince(SINCE, True)
    bearers = [
        call.request.headers["Authorization"] for call in mock.calls if call.request.url == CHECK
    ]
    assert bearers == ["Bearer tok-1", "Bearer tok-2"]


def test_401_with_a_static_token_is_final(mock: responses.RequestsMock) -> None:
    """A refused static token cannot be renewed, so the error is not retryable."""
    mock.add_callback(responses.POST, CHECK, callback=reply(401, ERRORS["401_UNAUTHENTICATED"]))
    with pytest.raises(ProviderAuthError) as info:
        static().lookup(NUMBER, SINCE)
    assert info.value.retryable is False


BAD_GRANTS = [
    pytest.param({"access_token": None}, id="no-token"),
    pytest.param({"access_token": ""}, id="empty-token"),
    pytest.param({"access_token": "tok en"}, id="space-in-token"),
    pytest.param({"access_token": "tok\r\nX-Evil: 1"}, id="header-injection"),
    pytest.param({"access_token": 12345}, id="numeric-token"),
    pytest.param({"access_token": "a" * 9000}, id="huge-token"),
    pytest.param({"token_type": "mac"}, id="not-bearer"),
    pytest.param({"token_type": None}, id="no-token-type"),
    pytest.param({"expires_in": "3599"}, id="expires-string"),
    pytest.param({"expires_in": 0}, id="expires-zero"),
    pytest.param({"expires_in": -5}, id="expires-negative"),
    pytest.param({"expires_in": True}, id="expires-bool"),
    pytest.param({"expires_in": 3599.5}, id="expires-float"),
    pytest.param({"expires_in": None}, id="no-expires"),
    pytest.param({"scope": "other:scope"}, id="wrong-scope"),
    pytest.param({"scope": 7}, id="scope-not-string"),
]


@pytest.mark.parametrize("changes", BAD_GRANTS)
def test_bad_token_responses_are_auth_errors(
    changes: dict[str, Any], mock: responses.RequestsMock
) -> None:
    """A token answer that is not a usable bearer token stops before the check is sent."""
    mock.add_callback(responses.POST, TOKEN_URL, callback=token_reply(**changes))
    with pytest.raises(ProviderAuthError) as info:
        with_secret().lookup(NUMBER, SINCE)
    assert [call.request.url for call in mock.calls] == [TOKEN_URL]
    assert TOKEN_BODY["access_token"] not in str(info.value)
    assert "tok en" not in str(info.value)
    assert "X-Evil" not in str(info.value)


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        pytest.param(200, b"{broken", "application/json", id="invalid-json"),
        pytest.param(200, fixture_bytes("gateway_error.html"), "text/html", id="html"),
        pytest.param(200, b"[]", "application/json", id="list"),
        pytest.param(
            200,
            b'{"access_token":"a","access_token":"b","token_type":"Bearer","expires_in":60}',
            "application/json",
            id="duplicate",
        ),
        pytest.param(400, b'{"error":"invalid_client"}', "application/json", id="invalid-client"),
        pytest.param(401, b"", "application/json", id="401-empty"),
        pytest.param(302, b"", "application/json", id="redirect"),
    ],
)
def test_token_endpoint_failures_are_auth_errors(
    status: int, body: bytes, content_type: str, mock: responses.RequestsMock
) -> None:
    """Refusals and malformed answers from the token endpoint are ProviderAuthError."""
    mock.add_callback(
        responses.POST, TOKEN_URL, callback=reply(status, body, content_type=content_type)
    )
    with pytest.raises(ProviderAuthError) as info:
        with_secret().lookup(NUMBER, SINCE)
    assert info.value.code == ("invalid_client" if status == 400 else None)
    assert len(mock.calls) == 1


@pytest.mark.parametrize(
    ("status", "error"), [(503, ProviderUnavailable), (429, ProviderRateLimited)]
)
def test_token_endpoint_outages_keep_their_kind(
    status: int, error: type[ProviderError], mock: responses.RequestsMock
) -> None:
    """An overloaded or failing token endpoint is an outage or rate limit, not bad credentials."""
    mock.add_callback(responses.POST, TOKEN_URL, callback=reply(status, b"{}"))
    with pytest.raises(error):
        with_secret().lookup(NUMBER, SINCE)


def test_token_lifetime_is_capped(mock: responses.RequestsMock) -> None:
    """An absurd expires_in is trusted for one day at most."""
    mock.add_callback(responses.POST, TOKEN_URL, callback=token_reply(expires_in=10**12))
    assert with_secret()._fetch_token() == (TOKEN_BODY["access_token"], 86400.0)


# -- auth: private_key_jwt ------------------------------------------------------------


def _verify_assertion(assertion: str, pem: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    def unb64(segment: str) -> bytes:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))

    header_b64, payload_b64, signature_b64 = assertion.split(".")
    header, claims = json.loads(unb64(header_b64)), json.loads(unb64(payload_b64))
    signed, signature = f"{header_b64}.{payload_b64}".encode(), unb64(signature_b64)
    public = serialization.load_pem_private_key(pem, None).public_key()
    if isinstance(public, rsa.RSAPublicKey):
        public.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        assert len(signature) == 64
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        public.verify(der, signed, ec.ECDSA(hashes.SHA256()))
    return header, claims


@pytest.mark.parametrize(
    ("pem", "alg"), [(RSA_PEM, "RS256"), (EC_PEM, "ES256"), (EC_PEM.decode(), "ES256")]
)
def test_private_key_jwt_grant(pem: bytes | str, alg: str, mock: responses.RequestsMock) -> None:
    """private_key_jwt: a signed RFC 7523 assertion replaces the secret; no Basic header."""
    mock.add_callback(responses.POST, TOKEN_URL, callback=token_reply())
    mock.add_callback(responses.POST, CHECK, callback=reply(body={"phoneNumberRecycled": False}))
    provider = CamaraProvider(
        ROOT, token_url=TOKEN_URL, client_id=CLIENT_ID, private_key=pem, key_id="key-7"
    )
    before = int(time.time())
    assert provider.lookup(NUMBER, SINCE) == ChangedSince(SINCE, False)
    token_call = mock.calls[0]
    assert "Authorization" not in token_call.request.headers
    fields = form(token_call)
    assert set(fields) == {
        "grant_type",
        "scope",
        "client_id",
        "client_assertion_type",
        "client_assertion",
    }
    assert fields["grant_type"] == "client_credentials"
    assert fields["scope"] == "number-recycling:check"
    assert fields["client_id"] == CLIENT_ID
    assert (
        fields["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    )
    key = pem.encode() if isinstance(pem, str) else pem
    header, claims = _verify_assertion(fields["client_assertion"], key)
    assert header == {"alg": alg, "typ": "JWT", "kid": "key-7"}
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["aud"] == TOKEN_URL
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] - claims["iat"] == 300
    assert uuid.UUID(claims["jti"])
    assert mock.calls[1].request.headers["Authorization"] == f"Bearer {TOKEN_BODY['access_token']}"


def test_each_assertion_has_a_new_jti(mock: responses.RequestsMock) -> None:
    """A client assertion is never replayed: every token request signs a fresh jti."""
    mock.add_callback(responses.POST, TOKEN_URL, callback=token_reply())
    provider = CamaraProvider(ROOT, token_url=TOKEN_URL, client_id=CLIENT_ID, private_key=EC_PEM)
    provider._fetch_token()
    provider._fetch_token()
    jtis = {
        _verify_assertion(form(call)["client_assertion"], EC_PEM)[1]["jti"] for call in mock.calls
    }
    assert len(jtis) == 2


# -- configuration -------------------------------------------------------------------


BAD_CONFIGS = [
    pytest.param({}, "exactly one", id="no-auth"),
    pytest.param(
        {
            "access_token": STATIC_TOKEN,
            "client_secret": "x",
            "token_url": TOKEN_URL,
            "client_id": "c",
        },
        "exactly one",
        id="token-and-secret",
    ),
    pytest.param(
        {"client_secret": "x", "private_key": EC_PEM, "token_url": TOKEN_URL, "client_id": "c"},
        "exactly one",
        id="secret-and-key",
    ),
    pytest.param({"client_secret": "x", "client_id": "c"}, "token_url", id="no-token-url"),
    pytest.param({"client_secret": "x", "token_url": TOKEN_URL}, "client_id", id="no-client-id"),
    pytest.param(
        {"private_key": EC_PEM, "token_url": TOKEN_URL}, "client_id", id="key-no-client-id"
    ),
    pytest.param(
        {"client_secret": "", "token_url": TOKEN_URL, "client_id": "c"},
        "client_secret",
        id="empty-secret",
    ),
    pytest.param(
        {"access_token": STATIC_TOKEN, "token_url": TOKEN_URL}, "token_url", id="token-url-unused"
    ),
    pytest.param(
        {"access_token": STATIC_TOKEN, "client_id": "c"}, "client_id", id="client-id-unused"
    ),
    pytest.param({"access_token": STATIC_TOKEN, "key_id": "k"}, "key_id", id="kid-unused"),
    pytest.param(
        {"client_secret": "x", "token_url": TOKEN_URL, "client_id": "c", "three_legged": True},
        "three_legged",
        id="three-legged-cc",
    ),
    pytest.param(
        {"access_token": STATIC_TOKEN, "three_legged": "yes"}, "three_legged", id="three-legged-str"
    ),
    pytest.param({"access_token": "tok\r\nX: y"}, "access_token", id="token-crlf"),
    pytest.param({"access_token": "tok en"}, "access_token", id="token-space"),
    pytest.param({"access_token": ""}, "access_token", id="token-empty"),
    pytest.param(
        {"access_token": STATIC_TOKEN, "api_version": "../v1"},
        "api_version",
        id="version-traversal",
    ),
    pytest.param(
        {"access_token": STATIC_TOKEN, "api_version": "0.9"}, "api_version", id="version-no-v"
    ),
    pytest.param({"access_token": STATIC_TOKEN, "scope": "a\nb"}, "scope", id="scope-newline"),
    pytest.param({"access_token": STATIC_TOKEN, "scope": ""}, "scope", id="scope-empty"),
    pytest.param(
        {"client_secret": "x", "client_id": "c", "token_url": "http://auth.example/token"},
        "token_url",
        id="plain-http-token-url",
    ),
    pytest.param(
        {"private_key": b"junk", "token_url": TOKEN_URL, "client_id": "c"},
        "private_key",
        id="junk-key",
    ),
    pytest.param(
        {"private_key": 5, "token_url": TOKEN_URL, "client_id": "c"}, "private_key", id="key-type"
    ),
    pytest.param(
        {"private_key": EC_PEM, "token_url": TOKEN_URL, "client_id": "c", "key_id": ""},
        "key_id",
        id="empty-kid",
    ),
    pytest.param({"access_token": STATIC_TOKEN, "max_body": 0}, "max_body", id="max-body"),
]


@pytest.mark.parametrize(("options", "named"), BAD_CONFIGS)
def test_bad_configuration(
    options: dict[str, Any], named: str, mock: responses.RequestsMock
) -> None:
    """Missing or contradictory options fail at construction, naming the option only."""
    with pytest.raises(ConfigurationError) as info:
        CamaraProvider(ROOT, **options)
    assert named in str(info.value)
    assert not mock.calls
    for value in options.values():
        if isinstance(value, str) and len(value) > 2 and value not in (TOKEN_URL,):
            assert value not in str(info.value)


@pytest.mark.parametrize(
    "root",
    [
        "http://api.operator.example",
        "https://user:pw@api.operator.example",
        "https://api.operator.example?x=1",
        "https://api.operator.example#frag",
        "ftp://api.operator.example",
        "api.operator.example",
        "https://",
        "https://api.operator.example:99999",
        "https://api.operator.example/a b",
        "https://api.operator.example\r\n",
        "",
        None,
    ],
)
def test_bad_api_root(root: Any) -> None:
    """The API root must be an https URL without credentials, query or fragment."""
    with pytest.raises(ConfigurationError, match="api_root"):
        CamaraProvider(root, access_token=STATIC_TOKEN)


@pytest.mark.parametrize(
    "root",
    [
        "http://localhost:8080",
        "http://127.0.0.1:9091/camara",
        "http://127.0.0.2:9091",
        "http://[::1]:9091",
    ],
)
def test_plain_http_allowed_to_loopback(root: str) -> None:
    """A local sandbox (such as FakeProviderServer) may use plain http on loopback."""
    CamaraProvider(root, access_token=STATIC_TOKEN)


@pytest.mark.parametrize(
    "root", ["http://127.0.0.1.example", "http://127.evil.example:8080", "http://[::2]:9091"]
)
def test_plain_http_refused_to_names_that_only_look_local(root: str) -> None:
    """Plain http goes only to real loopback addresses, as for every other adapter."""
    with pytest.raises(ConfigurationError, match="api_root"):
        CamaraProvider(root, access_token=STATIC_TOKEN)


def test_construction_does_no_io(mock: responses.RequestsMock) -> None:
    """Building a provider in any auth mode sends nothing."""
    static()
    with_secret()
    CamaraProvider(ROOT, token_url=TOKEN_URL, client_id=CLIENT_ID, private_key=RSA_PEM)
    assert not mock.calls


# -- from_env ------------------------------------------------------------------------


def env(**values: str) -> dict[str, str]:
    return {f"RECYCLECHECK_CAMARA_{key}": value for key, value in values.items()}


def test_from_env_static_token(mock: responses.RequestsMock) -> None:
    """API_ROOT plus ACCESS_TOKEN, with version and three-legged switch."""
    provider = CamaraProvider.from_env(
        env(API_ROOT=ROOT, ACCESS_TOKEN=STATIC_TOKEN, API_VERSION="v0.3", THREE_LEGGED="true")
    )
    url = ROOT + "/number-recycling/v0.3/check"
    mock.add_callback(responses.POST, url, callback=reply(body={"phoneNumberRecycled": False}))
    assert provider.lookup(NUMBER, SINCE) == ChangedSince(SINCE, False)
    assert sent_json(mock.calls[0]) == {"specifiedDate": ASKED}


def test_from_env_client_secret(mock: responses.RequestsMock) -> None:
    """TOKEN_URL, CLIENT_ID and CLIENT_SECRET select the client-secret grant."""
    provider = CamaraProvider.from_env(
        env(
            API_ROOT=ROOT,
            TOKEN_URL=TOKEN_URL,
            CLIENT_ID=CLIENT_ID,
            CLIENT_SECRET=CLIENT_SECRET,
            THREE_LEGGED="",
        )
    )
    mock.add_callback(responses.POST, TOKEN_URL, callback=token_reply())
    mock.add_callback(responses.POST, CHECK, callback=reply(body={"phoneNumberRecycled": True}))
    assert provider.lookup(NUMBER, SINCE) == ChangedSince(SINCE, True)
    assert mock.calls[0].request.headers["Authorization"].startswith("Basic ")


def test_from_env_private_key_file(tmp_path: Path, mock: responses.RequestsMock) -> None:
    """PRIVATE_KEY_FILE is read from disk and KEY_ID lands in the JWT header."""
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(EC_PEM)
    provider = CamaraProvider.from_env(
        env(
            API_ROOT=ROOT,
            TOKEN_URL=TOKEN_URL,
            CLIENT_ID=CLIENT_ID,
            PRIVATE_KEY_FILE=str(key_file),
            KEY_ID="k9",
        )
    )
    mock.add_callback(responses.POST, TOKEN_URL, callback=token_reply())
    provider._fetch_token()
    header, _ = _verify_assertion(form(mock.calls[0])["client_assertion"], EC_PEM)
    assert header["kid"] == "k9"


def test_from_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a mapping, os.environ is used."""
    for key in [k for k in os.environ if k.startswith("RECYCLECHECK_CAMARA_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("RECYCLECHECK_CAMARA_API_ROOT", ROOT)
    monkeypatch.setenv("RECYCLECHECK_CAMARA_ACCESS_TOKEN", STATIC_TOKEN)
    assert "auth=access_token" in repr(CamaraProvider.from_env())


@pytest.mark.parametrize(
    ("values", "named"),
    [
        pytest.param({"ACCESS_TOKEN": STATIC_TOKEN}, "RECYCLECHECK_CAMARA_API_ROOT", id="no-root"),
        pytest.param(
            {"API_ROOT": "http://evil.example"}, "RECYCLECHECK_CAMARA_API_ROOT", id="http-root"
        ),
        pytest.param({"API_ROOT": ROOT}, "RECYCLECHECK_CAMARA_ACCESS_TOKEN", id="no-auth"),
        pytest.param(
            {"API_ROOT": ROOT, "ACCESS_TOKEN": STATIC_TOKEN, "CLIENT_SECRET": "hunter22"},
            "RECYCLECHECK_CAMARA_CLIENT_SECRET",
            id="contradictory",
        ),
        pytest.param(
            {"API_ROOT": ROOT, "CLIENT_SECRET": "hunter22", "CLIENT_ID": "c"},
            "RECYCLECHECK_CAMARA_TOKEN_URL",
            id="no-token-url",
        ),
        pytest.param(
            {"API_ROOT": ROOT, "ACCESS_TOKEN": STATIC_TOKEN, "THREE_LEGGED": "perhaps"},
            "RECYCLECHECK_CAMARA_THREE_LEGGED",
            id="bad-bool",
        ),
        pytest.param(
            {"API_ROOT": ROOT, "ACCESS_TOKEN": STATIC_TOKEN, "API_VERSION": "latest"},
            "RECYCLECHECK_CAMARA_API_VERSION",
            id="bad-version",
        ),
        pytest.param(
            {"API_ROOT": ROOT, "ACCESS_TOKEN": "bad token"},
            "RECYCLECHECK_CAMARA_ACCESS_TOKEN",
            id="bad-token",
        ),
        pytest.param(
            {
                "API_ROOT": ROOT,
                "TOKEN_URL": TOKEN_URL,
                "CLIENT_ID": "c",
                "PRIVATE_KEY_FILE": "/nonexistent/secret-dir/key.pem",
            },
            "RECYCLECHECK_CAMARA_PRIVATE_KEY_FILE",
            id="unreadable-key",
        ),
        pytest.param(
            {
                "API_ROOT": ROOT,
                "TOKEN_URL": TOKEN_URL,
                "CLIENT_ID": "c",
                "CLIENT_SECRET": "hunter22",
                "THREE_LEGGED": "1",
            },
            "RECYCLECHECK_CAMARA_THREE_LEGGED",
            id="three-legged-cc",
        ),
        pytest.param(
            {"API_ROOT": ROOT, "ACCESS_TOKEN": STATIC_TOKEN, "KEY_ID": "k"},
            "RECYCLECHECK_CAMARA_KEY_ID",
            id="kid-unused",
        ),
    ],
)
def test_from_env_errors_name_the_variable(values: dict[str, str], named: str) -> None:
    """Errors name the environment variable and never echo its value."""
    with pytest.raises(ConfigurationError) as info:
        CamaraProvider.from_env(env(**values))
    message = str(info.value)
    assert named in message
    for value in values.values():
        if value not in (ROOT, TOKEN_URL, "c", "k", "1"):
            assert value not in message


def test_from_env_bad_key_file_content(tmp_path: Path) -> None:
    """An unusable key file is reported by variable name."""
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigurationError, match="RECYCLECHECK_CAMARA_PRIVATE_KEY_FILE") as info:
        CamaraProvider.from_env(
            env(API_ROOT=ROOT, TOKEN_URL=TOKEN_URL, CLIENT_ID="c", PRIVATE_KEY_FILE=str(key_file))
        )
    assert str(key_file) not in str(info.value)


# -- privacy --------------------------------------------------------------------------


def test_repr_hides_secrets() -> None:
    """No token, secret or key material in any repr."""
    for provider, secret in [
        (static(), STATIC_TOKEN),
        (with_secret(), CLIENT_SECRET),
        (
            CamaraProvider(ROOT, token_url=TOKEN_URL, client_id=CLIENT_ID, private_key=EC_PEM),
            "PRIVATE",
        ),
    ]:
        text = repr(provider) + repr(provider._config)
        assert secret not in text
        assert "camara" in text.lower()


@pytest.mark.parametrize("key", sorted(ERRORS))
def test_no_number_or_token_in_errors_or_logs(
    key: str, mock: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    """The number's digits and the token never appear in exceptions, reprs or log records."""
    body = {**ERRORS[key], "message": f"trouble with {NUMBER} and {STATIC_TOKEN}"}
    mock.add_callback(responses.POST, CHECK, callback=reply(body["status"], body))
    caplog.set_level(logging.DEBUG)
    provider = static()
    try:
        shown = repr(provider.lookup(NUMBER, SINCE))
    except ProviderError as exc:
        shown = f"{exc} {exc!r} {exc.args}"
    for text in (shown, caplog.text, repr(provider)):
        assert DIGITS not in text
        assert STATIC_TOKEN not in text


def test_debug_log_names_the_masked_number(
    mock: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    """The one debug line per check shows the masked number and the correlator only."""
    mock.add_callback(responses.POST, CHECK, callback=reply(body={"phoneNumberRecycled": True}))
    caplog.set_level(logging.DEBUG, logger="recyclecheck")
    static().lookup(NUMBER, SINCE)
    assert "+86 138****8000" in caplog.text
    assert DIGITS not in caplog.text
    assert all(record.name.startswith("recyclecheck") for record in caplog.records)


def test_token_never_logged(mock: responses.RequestsMock, caplog: pytest.LogCaptureFixture) -> None:
    """Token fetches log the lifetime, never the token or the secret."""
    mock.add_callback(responses.POST, TOKEN_URL, callback=token_reply())
    mock.add_callback(responses.POST, CHECK, callback=reply(body={"phoneNumberRecycled": True}))
    caplog.set_level(logging.DEBUG)
    with_secret().lookup(NUMBER, SINCE)
    assert TOKEN_BODY["access_token"] not in caplog.text
    assert CLIENT_SECRET not in caplog.text
    assert DIGITS not in caplog.text


# -- properties -----------------------------------------------------------------------

_PROVIDER = CamaraProvider(ROOT, access_token=STATIC_TOKEN)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=20), children, max_size=3)
    ),
    max_leaves=8,
)
answer_like = st.dictionaries(
    st.sampled_from(["phoneNumberRecycled", "phoneNumberrecycled", "recycled", "status", "code"]),
    json_values,
    max_size=3,
)


def _lookup_with(status: int, body: bytes, content_type: str = "application/json") -> object:
    with responses.RequestsMock() as mock:
        mock.add_callback(
            responses.POST, CHECK, callback=reply(status, body, content_type=content_type)
        )
        try:
            return _PROVIDER.lookup(NUMBER, SINCE)
        except ProviderError as exc:
            return exc


PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(st.one_of(json_values, answer_like))
def test_any_200_json_is_exact_or_an_error(body: Any) -> None:
    """A 200 gives ChangedSince only for exactly {"phoneNumberRecycled": <bool>}; else an error."""
    result = _lookup_with(200, json.dumps(body).encode())
    exact = (
        isinstance(body, dict)
        and set(body) == {"phoneNumberRecycled"}
        and type(body["phoneNumberRecycled"]) is bool
    )
    if exact:
        assert result == ChangedSince(SINCE, body["phoneNumberRecycled"])
    else:
        assert isinstance(result, ProviderResponseError)


@PROPERTY_SETTINGS
@given(st.binary(max_size=64), st.sampled_from(["application/json", "text/html", "text/plain"]))
def test_any_200_bytes_never_say_not_recycled(body: bytes, content_type: str) -> None:
    """Arbitrary bytes never become 'not recycled' unless they are exactly the false answer."""
    result = _lookup_with(200, body, content_type)
    if result == ChangedSince(SINCE, False):
        assert content_type == "application/json"
        assert json.loads(body) == {"phoneNumberRecycled": False}


@PROPERTY_SETTINGS
@given(
    st.integers(min_value=201, max_value=599).filter(lambda status: not 300 <= status < 400),
    st.one_of(
        json_values,
        st.fixed_dictionaries(
            {
                "status": st.integers(400, 599) | json_values,
                "code": st.sampled_from(
                    [
                        "OUT_OF_RANGE",
                        "IDENTIFIER_NOT_FOUND",
                        "SERVICE_NOT_APPLICABLE",
                        "INVALID_ARGUMENT",
                    ]
                )
                | json_values,
            },
            optional={"message": json_values},
        ),
        st.just({"phoneNumberRecycled": False}),
    ),
)
def test_non_200_is_never_a_boolean_answer(status: int, body: Any) -> None:
    """Only a 200 carries ChangedSince; other statuses give the documented unknowns or errors."""
    result = _lookup_with(status, json.dumps(body).encode())
    assert not isinstance(result, ChangedSince)
    if isinstance(result, (NotCovered, NoData)):
        assert isinstance(body, dict)
        assert body["status"] == status
        assert isinstance(body.get("message"), str)
        expected = {
            (400, "OUT_OF_RANGE"): NotCovered(),
            (404, "IDENTIFIER_NOT_FOUND"): NoData(),
            (422, "SERVICE_NOT_APPLICABLE"): NoData(),
        }
        assert expected[status, body["code"]] == result
    else:
        assert isinstance(result, ProviderError)
        assert DIGITS not in str(result)


# -- live -----------------------------------------------------------------------------


@pytest.mark.live
def test_live_check() -> None:
    """A real endpoint from RECYCLECHECK_CAMARA_* (plus _LIVE_NUMBER, _LIVE_SINCE) answers."""
    number = os.environ.get("RECYCLECHECK_CAMARA_LIVE_NUMBER")
    if not number:
        pytest.skip("set RECYCLECHECK_CAMARA_LIVE_NUMBER (and the RECYCLECHECK_CAMARA_* settings)")
    since = dt.date.fromisoformat(os.environ.get("RECYCLECHECK_CAMARA_LIVE_SINCE", "2024-01-01"))
    provider = CamaraProvider.from_env()
    answer = provider.lookup(number, since)
    assert isinstance(answer, (ChangedSince, NotCovered, NoData))
    if isinstance(answer, ChangedSince):
        assert answer.since == since


# -- the token cache under concurrency ------------------------------------------------------


class GatedFetch:
    """A token fetch that counts calls and, while ``gate`` is clear, waits for it (bounded)."""

    def __init__(self, *, fail: ProviderError | None = None, gated: bool = True) -> None:
        self.gate = threading.Event()
        if not gated:
            self.gate.set()
        self.started = threading.Event()
        self.fail = fail
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> tuple[str, float]:
        with self._lock:
            self.calls += 1
            call = self.calls
        self.started.set()
        self.gate.wait(10)
        if self.fail is not None:
            raise self.fail
        return f"tok-{call}", 3600.0


def test_a_thread_waiting_on_another_threads_token_fetch_stops_at_its_own_deadline() -> None:
    """A lookup whose token is being fetched by another thread waits only for its own deadline.

    The fetch used to run under the cache's lock, so every other lookup needing
    a token waited for it on that lock with no bound of its own, holding its
    worker past its deadline.
    """
    fetch = GatedFetch()
    tokens = TokenCache(fetch)

    def waiter() -> float:
        started = time.monotonic()
        with deadline_scope(started + 0.2), pytest.raises(ProviderTimeout):
            tokens.get()
        return time.monotonic() - started

    try:
        leader = threading.Thread(target=tokens.get, daemon=True)
        leader.start()
        assert fetch.started.wait(5)
        (waited,) = run_together([waiter], within=3)
        assert waited < 1.0
    finally:
        fetch.gate.set()
    leader.join(5)
    assert tokens.get() == "tok-1"
    assert fetch.calls == 1


def test_invalidate_does_not_wait_for_a_token_fetch_in_progress() -> None:
    """invalidate() (after a 401) returns at once while another thread is fetching a token."""
    fetch = GatedFetch()
    tokens = TokenCache(fetch)
    try:
        threading.Thread(target=tokens.get, daemon=True).start()
        assert fetch.started.wait(5)
        run_together([tokens.invalidate, lambda: repr(tokens)], within=3)
    finally:
        fetch.gate.set()


def test_a_fetch_may_call_back_into_its_token_cache() -> None:
    """The fetch runs outside the cache's lock: one that calls back into the cache cannot deadlock.

    A fetch that reads the cache waits (bounded by the deadline) for its own
    result, and one that invalidates returns at once.
    """
    tokens: TokenCache
    inner: list[BaseException] = []

    def fetch() -> tuple[str, float]:
        tokens.invalidate()
        repr(tokens)
        try:
            tokens.get()  # its own fetch is the one in progress: it can only time out
        except ProviderTimeout as exc:
            inner.append(exc)
        return "tok-1", 3600.0

    tokens = TokenCache(fetch)

    def get() -> str:
        with deadline_scope(time.monotonic() + 0.3):
            return tokens.get()

    assert run_together([get], within=5) == ["tok-1"]
    assert len(inner) == 1


@pytest.mark.parametrize("fails", [False, True], ids=["token", "error"])
def test_concurrent_callers_share_one_fetch_and_its_outcome(fails: bool) -> None:
    """Sixteen threads needing a token make one fetch; they share its token, or each get a
    copy of its error (not the same object, whose traceback the threads would fight over)."""
    refused = ProviderAuthError("token request refused", provider="camara", status=400)
    fetch = GatedFetch(fail=refused if fails else None)
    tokens = TokenCache(fetch)
    ready = threading.Barrier(16)

    def get() -> object:
        ready.wait(5)
        try:
            return tokens.get()
        except ProviderError as exc:
            return exc

    def open_gate_once_all_wait() -> None:
        assert fetch.started.wait(5)
        time.sleep(0.2)  # the other fifteen reach the fetch in progress
        fetch.gate.set()

    opener = threading.Thread(target=open_gate_once_all_wait, daemon=True)
    opener.start()
    outcomes = run_together([get] * 16, within=10)
    opener.join(5)
    assert fetch.calls == 1
    if not fails:
        assert outcomes == ["tok-1"] * 16
        return
    assert all(isinstance(o, ProviderAuthError) for o in outcomes)
    assert {str(o) for o in outcomes} == {str(refused)}
    assert len({id(o) for o in outcomes}) == 16
    # A failure is not cached: the next caller fetches again.
    fetch.fail = None
    assert tokens.get() == "tok-2"


def test_a_refused_token_is_forgotten_only_while_it_is_the_cached_one() -> None:
    """invalidate(token) after a 401 keeps a newer token another thread has fetched meanwhile."""
    fetch = GatedFetch(gated=False)
    tokens = TokenCache(fetch)
    first = tokens.get()
    tokens.invalidate()
    second = tokens.get()
    assert (first, second) == ("tok-1", "tok-2")
    tokens.invalidate(first)  # a late 401 for the old token
    assert tokens.get() == "tok-2"
    tokens.invalidate(second)
    assert tokens.get() == "tok-3"
    assert fetch.calls == 3
