"""Contract tests for the US Reassigned Numbers Database (RND) adapter."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from hypothesis import given, settings
from hypothesis import strategies as st

from recyclecheck._http import HttpResponse
from recyclecheck.exceptions import (
    ConfigurationError,
    InvalidInput,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderUnavailable,
)
from recyclecheck.providers import rnd
from recyclecheck.providers._answers import ChangedSince, NoData, NotCovered
from recyclecheck.providers.rnd import RndProvider

from ..privacy import leaks

DATA = Path(__file__).parent.parent / "data" / "rnd"
BASE = "https://api.reassigned.us"
TOKEN_URL = f"{BASE}/b/public/api/idToken"
QUERY_URL = f"{BASE}/api/tn"
REFRESH = "AMf-vBRefreshTokenNeverLogged_0123456789"
COMPANY = "TESTCO"
NUMBER = "+12015550123"
TN = "2015550123"
SINCE = dt.date(2024, 2, 29)
FULL_WIDTH_TN = "".join(chr(0xFF10 + int(d)) for d in TN)
ID_TOKEN = json.loads((DATA / "id_token.json").read_text())["idToken"]


def fixture(name: str) -> bytes:
    return (DATA / name).read_bytes()


def jwt(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2ln"


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def make(**options: Any) -> RndProvider:
    return RndProvider(REFRESH, COMPANY, **options)


def token_ok(rsps: responses.RequestsMock, token: str = ID_TOKEN) -> None:
    rsps.add(responses.POST, TOKEN_URL, json={"idToken": token})


def answer_with(
    rsps: responses.RequestsMock,
    body: bytes | str,
    status: int = 200,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> None:
    rsps.add(
        responses.POST,
        QUERY_URL,
        body=body,
        status=status,
        content_type=content_type,
        headers=headers,
    )


def calls_to(rsps: responses.RequestsMock, url: str) -> list[Any]:
    return [call for call in rsps.calls if call.request.url == url]


def echo(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
    """A query handler that answers 'no' for whatever tn and date it was sent."""
    body = request.body
    assert isinstance(body, bytes)
    (item,) = json.loads(body)["tnList"]
    reply = {
        "tn": item["tn"],
        "disconnected": "no",
        "companyId": item["companyId"],
        "dateProvided": item["date"],
    }
    return 200, {}, json.dumps({"replies": [reply]})


# -- request shape ------------------------------------------------------------------


def test_request_shape(rsps: responses.RequestsMock) -> None:
    """A token exchange, then one POST with the raw id token and a one-item tnList."""
    token_ok(rsps)
    answer_with(rsps, fixture("reply_no.json"))
    make().lookup(NUMBER, SINCE)
    token_call, query_call = rsps.calls
    assert token_call.request.url == TOKEN_URL
    assert token_call.request.method == "POST"
    assert token_call.request.headers["Content-Type"] == "application/json"
    assert json.loads(token_call.request.body) == {"refreshToken": REFRESH}
    assert query_call.request.url == QUERY_URL
    assert query_call.request.method == "POST"
    assert query_call.request.headers["Authorization"] == ID_TOKEN
    assert query_call.request.headers["Content-Type"] == "application/json"
    assert query_call.request.headers["Accept-Encoding"] == "identity"
    assert json.loads(query_call.request.body) == {
        "tnList": [{"tn": TN, "date": "2024-02-29", "companyId": COMPANY}]
    }


def test_base_url_with_a_path_prefix(rsps: responses.RequestsMock) -> None:
    """A sandbox base URL with a path (and trailing slash) prefixes both endpoints."""
    rsps.add(
        responses.POST, "https://sandbox.example/rnd/b/public/api/idToken", json={"idToken": "t"}
    )
    rsps.add(responses.POST, "https://sandbox.example/rnd/api/tn", body=fixture("reply_no.json"))
    provider = make(base_url="https://sandbox.example/rnd/")
    assert provider.lookup(NUMBER, SINCE) == ChangedSince(since=SINCE, changed=False)


def test_loopback_sandbox_over_http(rsps: responses.RequestsMock) -> None:
    """Plain http is accepted for a loopback sandbox only."""
    rsps.add(responses.POST, "http://localhost:9000/b/public/api/idToken", json={"idToken": "t"})
    rsps.add(responses.POST, "http://localhost:9000/api/tn", body=fixture("reply_yes.json"))
    answer = make(base_url="http://localhost:9000").lookup(NUMBER, SINCE)
    assert answer == ChangedSince(since=SINCE, changed=True)


# -- answers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("reply_yes.json", ChangedSince(since=SINCE, changed=True)),
        ("reply_no.json", ChangedSince(since=SINCE, changed=False)),
        ("reply_no_data.json", NoData()),
    ],
)
def test_documented_answers(rsps: responses.RequestsMock, name: str, expected: object) -> None:
    """disconnected yes/no/no_data map to changed / unchanged / no data."""
    token_ok(rsps)
    answer_with(rsps, fixture(name))
    assert make().lookup(NUMBER, SINCE) == expected


def test_date_echo_under_the_date_key_is_accepted(rsps: responses.RequestsMock) -> None:
    """A reply echoing the date as 'date' (and without companyId) is read the same way."""
    token_ok(rsps)
    answer_with(
        rsps, json.dumps({"replies": [{"tn": TN, "date": "2024-02-29", "disconnected": "no"}]})
    )
    assert make().lookup(NUMBER, SINCE) == ChangedSince(since=SINCE, changed=False)


@pytest.mark.parametrize(
    ("number", "tn"),
    [
        ("+17875550123", "7875550123"),  # Puerto Rico
        ("+16715550123", "6715550123"),  # Guam
        ("+13405550123", "3405550123"),  # US Virgin Islands
        ("+16705550123", "6705550123"),  # Northern Mariana Islands
        ("+18005550199", "8005550199"),  # US toll-free
    ],
)
def test_us_territories_are_covered(rsps: responses.RequestsMock, number: str, tn: str) -> None:
    """US territories' +1 numbers are asked about, as 10 digits."""
    token_ok(rsps)
    rsps.add_callback(responses.POST, QUERY_URL, callback=echo)
    assert make().lookup(number, SINCE) == ChangedSince(since=SINCE, changed=False)
    assert json.loads(calls_to(rsps, QUERY_URL)[0].request.body)["tnList"][0]["tn"] == tn


@pytest.mark.parametrize(
    "number",
    [
        "+16135550123",  # Canada
        "+12425550123",  # Bahamas range (not a valid number)
        "+11235550123",  # NPA starting with 1: invalid
        "+8613800138000",  # China
        "+442071838750",  # UK
        "+1201555012",  # too short for NANP
    ],
)
def test_numbers_outside_the_us_are_not_covered_without_a_request(
    rsps: responses.RequestsMock, number: str
) -> None:
    """Non-US numbers are NotCovered: no token fetch, no query."""
    assert make().lookup(number, SINCE) == NotCovered()
    assert len(rsps.calls) == 0


@pytest.mark.parametrize("number", ["2015550123", "+1 201 555 0123", "+1" + FULL_WIDTH_TN, ""])
def test_non_e164_input_raises_invalid_input(number: str) -> None:
    """The adapter takes E.164 only; anything else is a caller bug, raised before I/O."""
    with pytest.raises(InvalidInput):
        make().lookup(number, SINCE)


def test_wrong_argument_types_raise_invalid_input() -> None:
    """A non-str number or a datetime instead of a date is refused before I/O."""
    with pytest.raises(InvalidInput):
        make().lookup(12015550123, SINCE)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        make().lookup(NUMBER, dt.datetime(2024, 2, 29, tzinfo=dt.timezone.utc))


# -- id token -----------------------------------------------------------------------


def test_id_token_is_cached_across_lookups(rsps: responses.RequestsMock) -> None:
    """Several lookups share one id token."""
    token_ok(rsps)
    answer_with(rsps, fixture("reply_no.json"))
    provider = make()
    for _ in range(3):
        provider.lookup(NUMBER, SINCE)
    assert len(calls_to(rsps, TOKEN_URL)) == 1
    assert len(calls_to(rsps, QUERY_URL)) == 3


def test_expired_jwt_is_fetched_again(rsps: responses.RequestsMock) -> None:
    """A token whose exp has passed is not cached."""
    token_ok(rsps, jwt({"exp": int(time.time()) - 10}))
    answer_with(rsps, fixture("reply_no.json"))
    provider = make()
    provider.lookup(NUMBER, SINCE)
    provider.lookup(NUMBER, SINCE)
    assert len(calls_to(rsps, TOKEN_URL)) == 2


@pytest.mark.parametrize("status", [401, 403])
def test_refused_id_token_is_dropped_and_replaced(
    rsps: responses.RequestsMock, status: int
) -> None:
    """401/403 on a query raises a retryable auth error and the next call gets a new token."""
    rsps.add(responses.POST, TOKEN_URL, json={"idToken": "first-token"})
    rsps.add(responses.POST, TOKEN_URL, json={"idToken": "second-token"})
    answer_with(rsps, b'{"error": "expired"}', status=status)
    answer_with(rsps, fixture("reply_yes.json"))
    provider = make()
    with pytest.raises(ProviderAuthError) as info:
        provider.lookup(NUMBER, SINCE)
    assert info.value.retryable
    assert info.value.status == status
    assert provider.lookup(NUMBER, SINCE) == ChangedSince(since=SINCE, changed=True)
    queries = calls_to(rsps, QUERY_URL)
    assert [call.request.headers["Authorization"] for call in queries] == [
        "first-token",
        "second-token",
    ]


@pytest.mark.parametrize(
    ("status", "body", "exc"),
    [
        (400, b'{"error": "INVALID_REFRESH_TOKEN"}', ProviderAuthError),
        (401, b"", ProviderAuthError),
        (403, b"", ProviderAuthError),
        (429, b"", ProviderRateLimited),
        (500, b"", ProviderUnavailable),
        (503, fixture("error_page.html"), ProviderUnavailable),
        (200, fixture("error_page.html"), ProviderResponseError),
        (200, b"{}", ProviderResponseError),
        (200, b'{"idToken": ""}', ProviderResponseError),
        (200, b'{"idToken": 42}', ProviderResponseError),
        (200, b'{"idToken": "abc def"}', ProviderResponseError),
        (200, b'{"idToken": "abc\\r\\nX-Evil: 1"}', ProviderResponseError),
        (200, b'["idToken"]', ProviderResponseError),
        (200, b"{bad json", ProviderResponseError),
    ],
)
def test_token_failures(
    rsps: responses.RequestsMock, status: int, body: bytes, exc: type[ProviderError]
) -> None:
    """Refused, failing or malformed token exchanges raise, and no query is sent."""
    rsps.add(responses.POST, TOKEN_URL, body=body, status=status, content_type="application/json")
    answer_with(rsps, fixture("reply_no.json"))
    with pytest.raises(exc) as info:
        make().lookup(NUMBER, SINCE)
    assert type(info.value) is exc
    assert not info.value.retryable or exc is ProviderUnavailable
    assert calls_to(rsps, QUERY_URL) == []


def test_token_failure_is_not_cached(rsps: responses.RequestsMock) -> None:
    """After a failed exchange the next lookup tries again."""
    rsps.add(responses.POST, TOKEN_URL, status=500)
    token_ok(rsps)
    answer_with(rsps, fixture("reply_no.json"))
    provider = make()
    with pytest.raises(ProviderUnavailable):
        provider.lookup(NUMBER, SINCE)
    assert provider.lookup(NUMBER, SINCE) == ChangedSince(since=SINCE, changed=False)


def test_token_lifetime_follows_exp() -> None:
    """55 minutes by default; the JWT exp only ever shortens it."""
    now = 1_800_000_000.0
    assert rnd._token_lifetime("opaque-token", now) == 55 * 60
    assert rnd._token_lifetime(jwt({"exp": now + 24 * 3600}), now) == 55 * 60
    assert rnd._token_lifetime(jwt({"exp": now + 600}), now) == 600
    assert rnd._token_lifetime(jwt({"exp": now - 5}), now) == 0
    assert rnd._token_lifetime(ID_TOKEN, now) == 55 * 60


@pytest.mark.parametrize(
    "token",
    [
        jwt({"exp": "1800000600"}),
        jwt({"exp": True}),
        jwt({"exp": None}),
        jwt({}),
        "a.%%%%.c",
        "a.bm90IGpzb24.c",  # "not json"
        "a.WzEsMl0.c",  # a JSON list
        "only.two",
        "a." + base64.urlsafe_b64encode(b'{"exp": NaN}').decode() + ".c",
        "a." + base64.urlsafe_b64encode(b'{"exp": 1e999}').decode() + ".c",
    ],
)
def test_unreadable_exp_falls_back_to_the_default(token: str) -> None:
    """Any exp that is not a finite number is ignored, never an error."""
    assert rnd._token_lifetime(token, 1_800_000_000.0) == 55 * 60


# -- query errors -------------------------------------------------------------------


def one(**fields: Any) -> bytes:
    """A query answer holding one reply with exactly these fields."""
    return json.dumps({"replies": [fields]}).encode()


ECHO = {"tn": TN, "dateProvided": "2024-02-29"}
ERRORS = [
    (fixture("reply_capitalised.json"), 200, ProviderResponseError),
    (fixture("reply_wrong_tn.json"), 200, ProviderResponseError),
    (fixture("reply_wrong_date.json"), 200, ProviderResponseError),
    (fixture("reply_wrong_company.json"), 200, ProviderResponseError),
    (fixture("reply_no_date_echo.json"), 200, ProviderResponseError),
    (fixture("reply_empty.json"), 200, ProviderResponseError),
    (fixture("reply_two.json"), 200, ProviderResponseError),
    (b'{"replies": {"tn": "2015550123"}}', 200, ProviderResponseError),
    (b'{"replies": ["no"]}', 200, ProviderResponseError),
    (b'[{"replies": []}]', 200, ProviderResponseError),
    (one(tn=int(TN), dateProvided="2024-02-29", disconnected="no"), 200, ProviderResponseError),
    (one(**ECHO, disconnected=None), 200, ProviderResponseError),
    (one(**ECHO, disconnected=True), 200, ProviderResponseError),
    (one(**ECHO, disconnected="No Data"), 200, ProviderResponseError),
    (one(**ECHO), 200, ProviderResponseError),
    (one(**ECHO, date="2024-03-01", disconnected="no"), 200, ProviderResponseError),
    (one(**ECHO, companyId=None, disconnected="no"), 200, ProviderResponseError),
    (b"{bad json", 200, ProviderResponseError),
    (b"", 200, ProviderResponseError),
    (fixture("error_page.html"), 200, ProviderResponseError),
    (fixture("error_page.html"), 503, ProviderUnavailable),
    (b'{"error": "boom"}', 500, ProviderUnavailable),
    (b'{"error": "bad request"}', 400, ProviderResponseError),
    (b"", 404, ProviderResponseError),
    (b"", 429, ProviderRateLimited),
]


@pytest.mark.parametrize(
    ("body", "status", "exc"),
    ERRORS,
    ids=[f"{i}-{case[1]}-{case[2].__name__}" for i, case in enumerate(ERRORS)],
)
def test_query_errors(
    rsps: responses.RequestsMock, body: bytes, status: int, exc: type[ProviderError]
) -> None:
    """Mismatched echoes, unknown values, wrong types and bad statuses raise the right error."""
    token_ok(rsps)
    answer_with(rsps, body, status=status)
    with pytest.raises(exc) as info:
        make().lookup(NUMBER, SINCE)
    assert type(info.value) is exc
    assert info.value.provider == "rnd"


def test_rate_limit_carries_retry_after(rsps: responses.RequestsMock) -> None:
    """A 429 passes on Retry-After."""
    token_ok(rsps)
    answer_with(rsps, b"", status=429, headers={"Retry-After": "12"})
    with pytest.raises(ProviderRateLimited) as info:
        make().lookup(NUMBER, SINCE)
    assert info.value.retry_after == 12.0


def test_body_over_the_cap_is_refused(rsps: responses.RequestsMock) -> None:
    """A reply bigger than max_body is a ProviderResponseError."""
    token_ok(rsps)
    big = json.loads(fixture("reply_no.json"))
    big["padding"] = "x" * 4096
    answer_with(rsps, json.dumps(big))
    with pytest.raises(ProviderResponseError):
        make(max_body=1024).lookup(NUMBER, SINCE)


def test_redirect_is_not_followed(rsps: responses.RequestsMock) -> None:
    """A 302 from the query endpoint is refused and its target never requested."""
    token_ok(rsps)
    answer_with(rsps, b"", status=302, headers={"Location": "https://evil.example/api/tn"})
    rsps.add(responses.POST, "https://evil.example/api/tn", body=fixture("reply_no.json"))
    with pytest.raises(ProviderResponseError) as info:
        make().lookup(NUMBER, SINCE)
    assert info.value.status == 302
    assert len(rsps.calls) == 2


def test_token_redirect_is_not_followed(rsps: responses.RequestsMock) -> None:
    """A 302 from the token endpoint never carries the refresh token elsewhere."""
    rsps.add(
        responses.POST, TOKEN_URL, status=302, headers={"Location": "https://evil.example/tok"}
    )
    rsps.add(responses.POST, "https://evil.example/tok", json={"idToken": "x"})
    with pytest.raises(ProviderResponseError):
        make().lookup(NUMBER, SINCE)
    assert len(rsps.calls) == 1


# -- configuration ------------------------------------------------------------------


@pytest.mark.parametrize(
    "company_id",
    ["ab", "ABCDEFGHIJK", "ABC-1", "ABC 1", "\uff21\uff22\uff23", "ABC\n", "", None, 123],
)
def test_company_id_must_be_3_to_10_ascii_alphanumerics(company_id: Any) -> None:
    """The Company ID is validated in the constructor."""
    with pytest.raises(ConfigurationError):
        RndProvider(REFRESH, company_id)


@pytest.mark.parametrize("company_id", ["abc", "TESTCO", "A1B2C3D4E5"])
def test_valid_company_ids(company_id: str) -> None:
    """3-10 ASCII letters and digits are accepted."""
    assert company_id in repr(RndProvider(REFRESH, company_id))


@pytest.mark.parametrize("refresh", ["", "with space", "line\nbreak", None, 42])
def test_refresh_token_is_validated_without_echo(refresh: Any) -> None:
    """An empty or non-printable refresh token is refused and not repeated in the message."""
    with pytest.raises(ConfigurationError) as info:
        RndProvider(refresh, COMPANY)
    if isinstance(refresh, str) and refresh:
        assert refresh not in str(info.value)


@pytest.mark.parametrize(
    "base_url",
    [
        "http://api.reassigned.us",
        "https://user:hunter2@api.reassigned.us",
        "https://api.reassigned.us/?k=hunter2",
        "https://api.reassigned.us#x",
        "https://api.reassigned.us:port",
        "https://",
        "api.reassigned.us",
        "https://api.reassigned.us/a b",
    ],
)
def test_bad_base_url_is_refused(base_url: str) -> None:
    """Insecure or malformed base URLs raise ConfigurationError without echoing secrets."""
    with pytest.raises(ConfigurationError) as info:
        make(base_url=base_url)
    assert "hunter2" not in str(info.value)


FULL_ENV = {"RECYCLECHECK_RND_REFRESH_TOKEN": REFRESH, "RECYCLECHECK_RND_COMPANY_ID": COMPANY}


def test_from_env(rsps: responses.RequestsMock) -> None:
    """from_env builds a working provider; RECYCLECHECK_RND_BASE_URL is honoured."""
    rsps.add(responses.POST, "https://sandbox.example/b/public/api/idToken", json={"idToken": "t"})
    rsps.add(responses.POST, "https://sandbox.example/api/tn", body=fixture("reply_no_data.json"))
    env = {**FULL_ENV, "RECYCLECHECK_RND_BASE_URL": "https://sandbox.example"}
    assert RndProvider.from_env(env).lookup(NUMBER, SINCE) == NoData()
    assert "api.reassigned.us" in repr(RndProvider.from_env(FULL_ENV))


def test_from_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a mapping, from_env reads os.environ."""
    for var, value in FULL_ENV.items():
        monkeypatch.setenv(var, value)
    assert COMPANY in repr(RndProvider.from_env())


@pytest.mark.parametrize("missing", sorted(FULL_ENV))
@pytest.mark.parametrize("blank", [False, True])
def test_from_env_names_the_missing_variable_only(missing: str, blank: bool) -> None:
    """A missing or empty variable is named; no value appears in the message."""
    env = dict(FULL_ENV)
    if blank:
        env[missing] = ""
    else:
        del env[missing]
    with pytest.raises(ConfigurationError) as info:
        RndProvider.from_env(env)
    assert missing in str(info.value)
    assert REFRESH not in str(info.value)


def test_repr_shows_no_tokens(rsps: responses.RequestsMock) -> None:
    """Neither the refresh token nor a cached id token appears in the repr."""
    token_ok(rsps)
    answer_with(rsps, fixture("reply_no.json"))
    provider = make()
    provider.lookup(NUMBER, SINCE)
    text = repr(provider)
    assert text == "RndProvider(base_url='https://api.reassigned.us', company_id='TESTCO')"
    assert REFRESH not in text
    assert ID_TOKEN not in text


def test_name_is_rnd() -> None:
    """The provider's name is the stable string 'rnd'."""
    assert make().name == "rnd"


# -- privacy ------------------------------------------------------------------------

PRIVACY_CASES = [
    (TOKEN_URL, 401, b'{"error": "bad token ' + REFRESH.encode() + b'"}'),
    (TOKEN_URL, 200, b'{"idToken": "x y"}'),
    (QUERY_URL, 200, fixture("reply_wrong_tn.json")),
    (QUERY_URL, 200, fixture("reply_capitalised.json")),
    (QUERY_URL, 400, b'{"error": "bad tn 2015550123"}'),
    (QUERY_URL, 401, b""),
    (QUERY_URL, 503, fixture("error_page.html")),
]


@pytest.mark.parametrize(
    ("url", "status", "body"),
    PRIVACY_CASES,
    ids=[f"{i}-{c[1]}" for i, c in enumerate(PRIVACY_CASES)],
)
def test_no_number_or_token_in_exceptions_or_logs(
    rsps: responses.RequestsMock,
    caplog: pytest.LogCaptureFixture,
    url: str,
    status: int,
    body: bytes,
) -> None:
    """The number, its 10 digits and the tokens never reach exceptions or logs."""
    caplog.set_level(logging.DEBUG)
    if url == QUERY_URL:
        token_ok(rsps)
    rsps.add(responses.POST, url, body=body, status=status, content_type="application/json")
    with pytest.raises(ProviderError) as info:
        make().lookup(NUMBER, SINCE)
    shown = f"{info.value} {info.value!r} {caplog.text}"
    for secret in (NUMBER, TN, NUMBER[1:], REFRESH, ID_TOKEN):
        assert secret not in shown
    assert leaks(shown, [NUMBER]) == []


def test_logs_show_only_the_masked_number(
    rsps: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    """Debug logs carry the masked number only."""
    caplog.set_level(logging.DEBUG, logger="recyclecheck")
    token_ok(rsps)
    answer_with(rsps, fixture("reply_yes.json"))
    provider = make()
    provider.lookup(NUMBER, SINCE)
    provider.lookup("+8613800138000", SINCE)
    assert "+1 201***0123" in caplog.text
    for secret in (TN, "13800138000", REFRESH, ID_TOKEN):
        assert secret not in caplog.text
    assert leaks(caplog.text, [NUMBER, "+8613800138000"]) == []


# -- properties ---------------------------------------------------------------------

_PARSER = make()
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=10,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "tn": st.sampled_from([TN, "2015550124"]) | JSON,
        "dateProvided": st.sampled_from(["2024-02-29", "2024-03-01"]) | JSON,
        "date": st.sampled_from(["2024-02-29"]) | JSON,
        "companyId": st.sampled_from([COMPANY, "OTHER"]) | JSON,
        "disconnected": st.sampled_from(["yes", "no", "no_data", "Yes", "no data"]) | JSON,
    },
)


def _response(body: bytes, status: int = 200) -> HttpResponse:
    return HttpResponse(status=status, headers={"Content-Type": "application/json"}, body=body)


@settings(max_examples=300)
@given(payload=JSON, status=st.sampled_from([200, 400, 404, 429, 500, 503]))
def test_any_json_gives_an_answer_or_a_provider_error(payload: object, status: int) -> None:
    """Whatever JSON comes back, the parser returns an Answer or raises a ProviderError."""
    try:
        _PARSER._answer(_response(json.dumps(payload).encode(), status), TN, SINCE)
    except ProviderError:
        return
    assert status == 200


@settings(max_examples=500)
@given(reply=FIELDS)
def test_only_a_faithful_echo_with_a_known_verdict_is_an_answer(reply: dict[str, Any]) -> None:
    """An answer needs the same tn, every echoed date equal, our company, and yes/no/no_data."""
    body = json.dumps({"replies": [reply]}).encode()
    try:
        answer = _PARSER._answer(_response(body), TN, SINCE)
    except ProviderResponseError:
        return
    dates = [reply[key] for key in ("dateProvided", "date") if key in reply]
    assert reply["tn"] == TN
    assert dates
    assert all(value == "2024-02-29" for value in dates)
    assert reply.get("companyId", COMPANY) == COMPANY
    expected = {
        "yes": ChangedSince(since=SINCE, changed=True),
        "no": ChangedSince(since=SINCE, changed=False),
        "no_data": NoData(),
    }
    assert answer == expected[reply["disconnected"]]


# -- live ---------------------------------------------------------------------------


@pytest.mark.live
def test_live_lookup() -> None:
    """Against the real RND: a configured number gets a well-formed answer."""
    number = os.environ.get("RECYCLECHECK_RND_LIVE_NUMBER")
    if not number:
        pytest.skip("set RECYCLECHECK_RND_LIVE_NUMBER to a US number you may query")
    answer = RndProvider.from_env().lookup(number, dt.date.today() - dt.timedelta(days=30))
    assert isinstance(answer, (ChangedSince, NoData, NotCovered))
