"""Contract tests for the Alibaba Cloud DescribePhoneTwiceTelVerify adapter."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import urllib.parse
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
from recyclecheck.providers import aliyun
from recyclecheck.providers._answers import ChangedSince, NoData, NotCovered
from recyclecheck.providers.aliyun import AliyunProvider

from ..privacy import leaks

DATA = Path(__file__).parent.parent / "data" / "aliyun"
ENDPOINT = "https://dytnsapi.aliyuncs.com/"
AK_ID = "LTAI5tTestAccessKey01"
SECRET = "TestSecretNeverLogged0123456789"
AUTH_CODE = "AuthCodeNeverLogged42"
NUMBER = "+8613800138000"
DIGITS = "13800138000"
SHA256 = hashlib.sha256(DIGITS.encode()).hexdigest()
MD5 = hashlib.md5(DIGITS.encode()).hexdigest()
SINCE = dt.date(2024, 2, 29)
NOW = dt.datetime(2026, 11, 28, 12, 0, 0, tzinfo=dt.timezone.utc)
NONCE = "0123456789abcdef0123456789abcdef"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
SECRETS = (SECRET, AUTH_CODE, AK_ID)
FULL_WIDTH_DIGITS = "".join(chr(0xFF10 + int(d)) for d in DIGITS)
NUMBER_FORMS = (DIGITS, SHA256, MD5, NUMBER[1:])


def fixture(name: str) -> bytes:
    return (DATA / name).read_bytes()


def _rfc3986(text: str) -> str:
    return "".join(chr(b) if chr(b) in UNRESERVED else f"%{b:02X}" for b in text.encode("utf-8"))


def verify_acs3(request: requests.PreparedRequest, secret: str = SECRET) -> bool:
    """Check a request's signature the way Alibaba's gateway does, from the bytes sent."""
    algorithm, _, fields = request.headers["Authorization"].partition(" ")
    parts = dict(field.split("=", 1) for field in fields.split(","))
    url = urllib.parse.urlsplit(request.url or "")
    pairs = urllib.parse.parse_qsl(url.query, keep_blank_values=True, strict_parsing=True)
    query = "&".join(f"{_rfc3986(k)}={_rfc3986(v)}" for k, v in sorted(pairs))
    names = parts["SignedHeaders"].split(";")
    required = {"host", "x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce"}
    body = request.body or b""
    assert isinstance(body, bytes)
    if not required | {"x-acs-content-sha256"} <= set(names) or names != sorted(names):
        return False
    if request.headers["x-acs-content-sha256"] != hashlib.sha256(body).hexdigest():
        return False
    headers = "".join(f"{name}:{request.headers[name].strip()}\n" for name in names)
    canonical = "\n".join(
        [
            request.method or "",
            url.path or "/",
            query,
            headers,
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    to_sign = f"ACS3-HMAC-SHA256\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    expected = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return algorithm == "ACS3-HMAC-SHA256" and hmac.compare_digest(expected, parts["Signature"])


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aliyun, "_now", lambda: NOW)
    monkeypatch.setattr(aliyun, "_new_nonce", lambda: NONCE)


def make(**options: Any) -> AliyunProvider:
    return AliyunProvider(AK_ID, SECRET, AUTH_CODE, **options)


def reply(
    rsps: responses.RequestsMock,
    body: bytes | str,
    status: int = 200,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> None:
    rsps.add(
        responses.POST,
        ENDPOINT,
        body=body,
        status=status,
        content_type=content_type,
        headers=headers,
    )


def query_of(call: Any) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(call.request.url).query))


# -- request shape ------------------------------------------------------------------


@pytest.mark.usefixtures("pinned")
def test_request_shape(rsps: responses.RequestsMock) -> None:
    """One POST to / with the four RPC parameters and the x-acs-* headers; action not in query."""
    reply(rsps, fixture("verify_2_not_reissued.json"))
    make().lookup(NUMBER, SINCE)
    (call,) = rsps.calls
    request = call.request
    assert request.method == "POST"
    assert urllib.parse.urlsplit(request.url).path == "/"
    assert query_of(call) == {
        "AuthCode": AUTH_CODE,
        "InputNumber": SHA256,
        "Mask": "SHA256",
        "StartTime": "2024-02-29 00:00:00",
    }
    assert request.headers["host"] == "dytnsapi.aliyuncs.com"
    assert request.headers["x-acs-action"] == "DescribePhoneTwiceTelVerify"
    assert request.headers["x-acs-version"] == "2020-02-17"
    assert request.headers["x-acs-date"] == "2026-11-28T12:00:00Z"
    assert request.headers["x-acs-signature-nonce"] == NONCE
    assert request.headers["x-acs-content-sha256"] == EMPTY_SHA256
    assert not request.body
    assert request.headers["Authorization"].startswith(
        f"ACS3-HMAC-SHA256 Credential={AK_ID},SignedHeaders=host;x-acs-action;"
        "x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature="
    )
    assert verify_acs3(request)
    assert not verify_acs3(request, secret="another-secret")


@pytest.mark.usefixtures("pinned")
def test_start_time_is_rfc3986_encoded_in_the_url(rsps: responses.RequestsMock) -> None:
    """StartTime's space and colons travel as %20 and %3A (never +), in sorted order."""
    reply(rsps, fixture("verify_2_not_reissued.json"))
    make().lookup(NUMBER, SINCE)
    raw_query = urllib.parse.urlsplit(rsps.calls[0].request.url).query
    assert raw_query == (
        f"AuthCode={AUTH_CODE}&InputNumber={SHA256}&Mask=SHA256&StartTime=2024-02-29%2000%3A00%3A00"
    )
    assert "+" not in raw_query


def test_signature_verifies_with_the_real_clock_and_fresh_nonces(
    rsps: responses.RequestsMock,
) -> None:
    """Unpinned, every request carries a current date, a new nonce and a valid signature."""
    reply(rsps, fixture("verify_2_not_reissued.json"))
    provider = make()
    provider.lookup(NUMBER, SINCE)
    provider.lookup(NUMBER, SINCE)
    first, second = (call.request for call in rsps.calls)
    assert first.headers["x-acs-signature-nonce"] != second.headers["x-acs-signature-nonce"]
    sent = dt.datetime.strptime(first.headers["x-acs-date"], "%Y-%m-%dT%H:%M:%SZ")
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    assert abs((now - sent).total_seconds()) < 60
    assert verify_acs3(first)
    assert verify_acs3(second)


@pytest.mark.parametrize(
    ("mask", "sent_mask", "input_number"),
    [("SHA256", "SHA256", SHA256), ("MD5", "MD5", MD5), ("NORMAL", "NORMAL", DIGITS)],
)
def test_mask_controls_how_the_number_travels(
    rsps: responses.RequestsMock, mask: str, sent_mask: str, input_number: str
) -> None:
    """SHA256/MD5 send the lower-case hex hash of the 11 digits; NORMAL sends the digits."""
    reply(rsps, fixture("verify_2_not_reissued.json"))
    make(mask=mask).lookup(NUMBER, SINCE)
    sent = query_of(rsps.calls[0])
    assert sent["Mask"] == sent_mask
    assert sent["InputNumber"] == input_number
    if mask != "NORMAL":
        assert DIGITS not in (rsps.calls[0].request.url or "")


def test_mask_is_case_insensitive(rsps: responses.RequestsMock) -> None:
    """A lower-case mask name (as often found in env files) is normalised."""
    reply(rsps, fixture("verify_2_not_reissued.json"))
    make(mask="md5").lookup(NUMBER, SINCE)
    assert query_of(rsps.calls[0])["Mask"] == "MD5"


def test_loopback_sandbox_over_http_signs_its_host_and_port(
    rsps: responses.RequestsMock,
) -> None:
    """A local sandbox endpoint works over http, with host:port signed as sent."""
    rsps.add(responses.POST, "http://127.0.0.1:8080/", body=fixture("verify_1_reissued.json"))
    answer = make(endpoint="http://127.0.0.1:8080").lookup(NUMBER, SINCE)
    assert answer == ChangedSince(since=SINCE, changed=True)
    request = rsps.calls[0].request
    assert request.headers["host"] == "127.0.0.1:8080"
    assert verify_acs3(request)


def test_earliest_day_alibaba_accepts(rsps: responses.RequestsMock) -> None:
    """1970-01-02 is asked as StartTime 1970-01-02 00:00:00."""
    reply(rsps, fixture("verify_2_not_reissued.json"))
    make().lookup(NUMBER, dt.date(1970, 1, 2))
    assert query_of(rsps.calls[0])["StartTime"] == "1970-01-02 00:00:00"


# -- answers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("verify_0_cannot_determine.json", NoData()),
        ("verify_1_reissued.json", ChangedSince(since=SINCE, changed=True)),
        ("verify_2_not_reissued.json", ChangedSince(since=SINCE, changed=False)),
        ("verify_3_cancelled.json", ChangedSince(since=SINCE, changed=True)),
        ("verify_4_new_owner.json", ChangedSince(since=SINCE, changed=True)),
        ("portability_not_supported.json", NotCovered()),
        ("request_number_not_supported.json", NotCovered()),
    ],
)
def test_documented_answers(rsps: responses.RequestsMock, name: str, expected: object) -> None:
    """Each documented VerifyResult and not-supported code maps to its answer."""
    reply(rsps, fixture(name))
    assert make().lookup(NUMBER, SINCE) == expected


@pytest.mark.parametrize(
    "number",
    [
        "+12015550123",  # US
        "+8602012345678",  # Beijing... a +86 landline, not a mobile
        "+8612012345678",  # +86 and 11 digits, but not a mobile prefix
        "+861380013800",  # one digit short
        "+85291234567",  # Hong Kong
        "+886912345678",  # Taiwan
    ],
)
def test_numbers_outside_mainland_mobile_are_not_covered_without_a_request(
    rsps: responses.RequestsMock, number: str
) -> None:
    """Anything but a +86 11-digit mobile number is NotCovered and sends nothing."""
    assert make().lookup(number, SINCE) == NotCovered()
    assert len(rsps.calls) == 0


def test_dates_alibaba_cannot_take_are_not_covered(rsps: responses.RequestsMock) -> None:
    """StartTime must be after 1970-01-01: earlier bindings are NotCovered, no request."""
    assert make().lookup(NUMBER, dt.date(1970, 1, 1)) == NotCovered()
    assert make().lookup(NUMBER, dt.date(1, 1, 1)) == NotCovered()
    assert len(rsps.calls) == 0


@pytest.mark.parametrize(
    "number", ["13800138000", "+86 138 0013 8000", "+86" + FULL_WIDTH_DIGITS, ""]
)
def test_non_e164_input_raises_invalid_input(number: str) -> None:
    """The adapter takes E.164 only; anything else is a caller bug, raised before I/O."""
    with pytest.raises(InvalidInput):
        make().lookup(number, SINCE)


def test_wrong_argument_types_raise_invalid_input() -> None:
    """A non-str number or a datetime instead of a date is refused before I/O."""
    with pytest.raises(InvalidInput):
        make().lookup(8613800138000, SINCE)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        make().lookup(NUMBER, dt.datetime(2024, 2, 29, tzinfo=dt.timezone.utc))


# -- errors -------------------------------------------------------------------------

ERRORS = [
    # (body, status, headers, exception, code)
    (
        fixture("request_frequency_limit.json"),
        200,
        None,
        ProviderRateLimited,
        "RequestFrequencyLimit",
    ),
    (fixture("throttling_user.json"), 400, None, ProviderRateLimited, "Throttling.User"),
    (
        fixture("signature_does_not_match.json"),
        400,
        None,
        ProviderAuthError,
        "SignatureDoesNotMatch",
    ),
    (
        fixture("invalid_access_key_id.json"),
        404,
        None,
        ProviderAuthError,
        "InvalidAccessKeyId.NotFound",
    ),
    (fixture("forbidden_ram.json"), 403, None, ProviderAuthError, "Forbidden.RAM"),
    (fixture("incomplete_signature.json"), 400, None, ProviderAuthError, "IncompleteSignature"),
    (fixture("unknown_code.json"), 200, None, ProviderResponseError, "isv.SomethingNew"),
    (fixture("unknown_code.json"), 400, None, ProviderResponseError, "isv.SomethingNew"),
    (fixture("service_unavailable.json"), 503, None, ProviderUnavailable, "ServiceUnavailable"),
    (fixture("verify_2_not_reissued.json"), 500, None, ProviderUnavailable, "OK"),
    (
        fixture("portability_not_supported.json"),
        500,
        None,
        ProviderUnavailable,
        "PortabilityNumberNotSupported",
    ),
    (b"", 401, None, ProviderAuthError, None),
    (fixture("verify_int_2.json"), 200, None, ProviderResponseError, None),
    (fixture("verify_unknown_5.json"), 200, None, ProviderResponseError, None),
    (fixture("verify_missing_data.json"), 200, None, ProviderResponseError, None),
    (b'{"Code": "OK", "Data": {"VerifyResult": true}}', 200, None, ProviderResponseError, None),
    (b'{"Code": "OK", "Data": {"VerifyResult": " 2"}}', 200, None, ProviderResponseError, None),
    (b'{"Code": "OK", "Data": {"VerifyResult": null}}', 200, None, ProviderResponseError, None),
    (
        b'{"Code": "OK", "Data": {"Carrier": 1, "VerifyResult": "2"}}',
        200,
        None,
        ProviderResponseError,
        None,
    ),
    (b'{"Code": "OK", "Data": ["2"]}', 200, None, ProviderResponseError, None),
    (b'{"Code": 200, "Data": {"VerifyResult": "2"}}', 200, None, ProviderResponseError, None),
    (b'{"Data": {"VerifyResult": "2"}}', 200, None, ProviderResponseError, None),
    (b'[{"Code": "OK"}]', 200, None, ProviderResponseError, None),
    (b'{"Code": "OK", "Data": {"VerifyResult": "2"}', 200, None, ProviderResponseError, None),
    (b'{"Code": "OK", "Data": {"VerifyResult": NaN}}', 200, None, ProviderResponseError, None),
    (b"", 200, None, ProviderResponseError, None),
]


@pytest.mark.parametrize(
    ("body", "status", "headers", "exc", "code"),
    ERRORS,
    ids=[f"{i}-{case[1]}-{case[3].__name__}" for i, case in enumerate(ERRORS)],
)
def test_error_answers(
    rsps: responses.RequestsMock,
    body: bytes,
    status: int,
    headers: dict[str, str] | None,
    exc: type[ProviderError],
    code: str | None,
) -> None:
    """Provider codes, statuses and malformed bodies map to the documented exceptions."""
    reply(rsps, body, status=status, headers=headers)
    with pytest.raises(exc) as info:
        make().lookup(NUMBER, SINCE)
    assert type(info.value) is exc
    assert info.value.code == code
    assert info.value.provider == "aliyun"


def test_rate_limit_carries_retry_after(rsps: responses.RequestsMock) -> None:
    """A throttling answer passes on the provider's Retry-After."""
    reply(rsps, fixture("throttling_user.json"), status=400, headers={"Retry-After": "7"})
    with pytest.raises(ProviderRateLimited) as info:
        make().lookup(NUMBER, SINCE)
    assert info.value.retry_after == 7.0


def test_plain_429_is_rate_limited(rsps: responses.RequestsMock) -> None:
    """An HTTP 429 without a JSON body is still a rate limit, with its Retry-After."""
    reply(rsps, "slow down", status=429, content_type="text/plain", headers={"Retry-After": "3"})
    with pytest.raises(ProviderRateLimited) as info:
        make().lookup(NUMBER, SINCE)
    assert info.value.retry_after == 3.0


def test_html_error_page_on_5xx_is_unavailable(rsps: responses.RequestsMock) -> None:
    """A gateway's HTML page with a 5xx status is ProviderUnavailable."""
    reply(rsps, fixture("gateway_error.html"), status=502, content_type="text/html")
    with pytest.raises(ProviderUnavailable) as info:
        make().lookup(NUMBER, SINCE)
    assert info.value.status == 502


def test_html_page_with_200_is_a_response_error(rsps: responses.RequestsMock) -> None:
    """An HTML page served with 200 (captive portal, misrouted proxy) is refused."""
    reply(rsps, fixture("gateway_error.html"), status=200, content_type="text/html")
    with pytest.raises(ProviderResponseError):
        make().lookup(NUMBER, SINCE)


def test_body_over_the_cap_is_refused(rsps: responses.RequestsMock) -> None:
    """A body larger than max_body is a ProviderResponseError, not a memory problem."""
    padding = "x" * 4096
    reply(rsps, json.dumps({"Code": "OK", "Data": {"VerifyResult": "2"}, "Pad": padding}))
    with pytest.raises(ProviderResponseError):
        make(max_body=1024).lookup(NUMBER, SINCE)


def test_redirect_is_not_followed(rsps: responses.RequestsMock) -> None:
    """A 302 is refused, and its target is never requested."""
    reply(rsps, b"", status=302, headers={"Location": "https://evil.example/"})
    rsps.add(responses.POST, "https://evil.example/", body=fixture("verify_2_not_reissued.json"))
    with pytest.raises(ProviderResponseError) as info:
        make().lookup(NUMBER, SINCE)
    assert info.value.status == 302
    assert len(rsps.calls) == 1


def test_transport_failure_is_unavailable(rsps: responses.RequestsMock) -> None:
    """A connection error becomes ProviderUnavailable with no URL in its text."""
    reply(rsps, requests.ConnectionError(f"cannot reach {ENDPOINT}?InputNumber={SHA256}"))  # type: ignore[arg-type]
    with pytest.raises(ProviderUnavailable) as info:
        make().lookup(NUMBER, SINCE)
    assert SHA256 not in str(info.value)


def test_unsafe_error_code_is_not_echoed(rsps: responses.RequestsMock) -> None:
    """A code that could carry the number is dropped, and Message is never echoed."""
    body = {"Code": f"Err{DIGITS}", "Message": f"bad number {DIGITS} {SHA256}"}
    reply(rsps, json.dumps(body))
    with pytest.raises(ProviderResponseError) as info:
        make().lookup(NUMBER, SINCE)
    assert info.value.code is None
    assert DIGITS not in repr(info.value)


# -- configuration ------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mask": "SHA1"},
        {"mask": ""},
        {"mask": 256},
        {"endpoint": "http://dytnsapi.aliyuncs.com"},
        {"endpoint": "https://user:hunter2@dytnsapi.aliyuncs.com"},
        {"endpoint": "https://dytnsapi.aliyuncs.com/v1"},
        {"endpoint": "https://dytnsapi.aliyuncs.com/?x=hunter2"},
        {"endpoint": "https://dytnsapi.aliyuncs.com#frag"},
        {"endpoint": "https://dytnsapi.aliyuncs.com:notaport"},
        {"endpoint": "https:// dytnsapi.aliyuncs.com"},
        {"endpoint": "https://"},
        {"endpoint": "ftp://dytnsapi.aliyuncs.com"},
        {"max_body": 0},
    ],
)
def test_bad_options_raise_configuration_error(kwargs: dict[str, Any]) -> None:
    """Unknown masks, insecure or malformed endpoints and bad sizes are refused up front."""
    with pytest.raises(ConfigurationError) as info:
        make(**kwargs)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("ak_id", "secret", "code"),
    [
        ("", SECRET, AUTH_CODE),
        ("id with space", SECRET, AUTH_CODE),
        ("id,Signature=x", SECRET, AUTH_CODE),
        ("id\r\nX-Evil: 1", SECRET, AUTH_CODE),
        (AK_ID, "", AUTH_CODE),
        (AK_ID, SECRET + "\n", AUTH_CODE),
        (AK_ID, None, AUTH_CODE),
        (AK_ID, SECRET, ""),
        (AK_ID, SECRET, "code with space"),
    ],
)
def test_bad_credentials_raise_configuration_error_without_echo(
    ak_id: Any, secret: Any, code: Any
) -> None:
    """Empty or header-breaking credentials are refused, and never appear in the message."""
    with pytest.raises(ConfigurationError) as info:
        AliyunProvider(ak_id, secret, code)
    for value in (ak_id, secret, code):
        if isinstance(value, str) and len(value) > 3:
            assert value not in str(info.value)


FULL_ENV = {
    "ALIBABA_CLOUD_ACCESS_KEY_ID": AK_ID,
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET,
    "RECYCLECHECK_ALIYUN_AUTH_CODE": AUTH_CODE,
}


def test_from_env_reads_the_vendor_variables(rsps: responses.RequestsMock) -> None:
    """from_env builds a working provider from the standard variable names."""
    reply(rsps, fixture("verify_2_not_reissued.json"))
    provider = AliyunProvider.from_env(FULL_ENV)
    assert provider.lookup(NUMBER, SINCE) == ChangedSince(since=SINCE, changed=False)
    assert verify_acs3(rsps.calls[0].request)
    assert query_of(rsps.calls[0])["Mask"] == "SHA256"


def test_from_env_optional_endpoint_and_mask(rsps: responses.RequestsMock) -> None:
    """RECYCLECHECK_ALIYUN_ENDPOINT and _MASK are honoured."""
    rsps.add(responses.POST, "https://sandbox.example/", body=fixture("verify_2_not_reissued.json"))
    env = {
        **FULL_ENV,
        "RECYCLECHECK_ALIYUN_ENDPOINT": "https://sandbox.example",
        "RECYCLECHECK_ALIYUN_MASK": "NORMAL",
    }
    AliyunProvider.from_env(env).lookup(NUMBER, SINCE)
    assert query_of(rsps.calls[0])["InputNumber"] == DIGITS


def test_from_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a mapping, from_env reads os.environ."""
    for var, value in FULL_ENV.items():
        monkeypatch.setenv(var, value)
    assert "dytnsapi.aliyuncs.com" in repr(AliyunProvider.from_env())


@pytest.mark.parametrize("missing", sorted(FULL_ENV))
@pytest.mark.parametrize("blank", [False, True])
def test_from_env_names_the_missing_variable_only(missing: str, blank: bool) -> None:
    """A missing or empty variable is named in the error; no value appears in it."""
    env = dict(FULL_ENV)
    if blank:
        env[missing] = ""
    else:
        del env[missing]
    with pytest.raises(ConfigurationError) as info:
        AliyunProvider.from_env(env)
    assert missing in str(info.value)
    for value in FULL_ENV.values():
        assert value not in str(info.value)


def test_repr_shows_no_credentials() -> None:
    """The repr shows the endpoint and mask, never the key id, secret or auth code."""
    text = repr(make())
    assert text == "AliyunProvider(endpoint='https://dytnsapi.aliyuncs.com', mask='SHA256')"
    for value in SECRETS:
        assert value not in text


def test_name_is_aliyun() -> None:
    """The provider's name is the stable string 'aliyun'."""
    assert make().name == "aliyun"


# -- privacy ------------------------------------------------------------------------

PRIVACY_CASES = [
    (fixture("signature_does_not_match.json"), 400),
    (fixture("unknown_code.json"), 200),
    (fixture("verify_unknown_5.json"), 200),
    (fixture("gateway_error.html"), 502),
    (fixture("request_frequency_limit.json"), 200),
    (b"{not json", 200),
]


@pytest.mark.parametrize(
    ("body", "status"), PRIVACY_CASES, ids=[f"{i}-{c[1]}" for i, c in enumerate(PRIVACY_CASES)]
)
@pytest.mark.parametrize("mask", ["SHA256", "MD5", "NORMAL"])
def test_no_number_hash_or_secret_in_exceptions_or_logs(
    rsps: responses.RequestsMock,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    status: int,
    mask: str,
) -> None:
    """Neither the number, its digits, its plain hashes nor a secret reach exceptions or logs."""
    caplog.set_level(logging.DEBUG)
    reply(rsps, body, status=status)
    with pytest.raises(ProviderError) as info:
        make(mask=mask).lookup(NUMBER, SINCE)
    shown = f"{info.value} {info.value!r} {caplog.text}"
    for secret in (*NUMBER_FORMS, *SECRETS):
        assert secret not in shown
    assert leaks(shown, [NUMBER]) == []
    assert info.value.__cause__ is None or DIGITS not in str(info.value.__cause__)


def test_logs_show_only_the_masked_number(
    rsps: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    """Debug logs of answered and uncovered lookups carry the masked number only."""
    caplog.set_level(logging.DEBUG, logger="recyclecheck")
    reply(rsps, fixture("verify_1_reissued.json"))
    provider = make()
    provider.lookup(NUMBER, SINCE)
    provider.lookup("+12015550123", SINCE)
    assert "+86 138****8000" in caplog.text
    for secret in (*NUMBER_FORMS, "2015550123", *SECRETS):
        assert secret not in caplog.text
    assert leaks(caplog.text, [NUMBER, "+12015550123"]) == []


# -- properties ---------------------------------------------------------------------

_PARSER = make()
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
CODES = st.sampled_from(
    [
        "OK",
        "RequestFrequencyLimit",
        "Throttling.Api",
        "SignatureDoesNotMatch",
        "Forbidden.RAM",
        "PortabilityNumberNotSupported",
        "RequestNumberNotSupported",
        "isv.X",
    ]
) | st.text(max_size=20)


def _response(body: bytes, status: int = 200) -> HttpResponse:
    return HttpResponse(status=status, headers={"Content-Type": "application/json"}, body=body)


@settings(max_examples=300)
@given(payload=JSON, status=st.sampled_from([200, 400, 403, 404, 429, 500, 503]))
def test_any_json_gives_an_answer_or_a_provider_error(payload: object, status: int) -> None:
    """Whatever JSON comes back, the parser returns an Answer or raises a ProviderError."""
    try:
        answer = _PARSER._answer(_response(json.dumps(payload).encode(), status), SINCE)
    except ProviderError:
        return
    assert status == 200
    assert isinstance(answer, (ChangedSince, NoData, NotCovered))


@settings(max_examples=300)
@given(code=CODES, result=st.text(max_size=3) | JSON, carrier=st.text(max_size=5) | JSON)
def test_only_code_ok_with_a_known_verify_result_is_an_answer(
    code: str, result: object, carrier: object
) -> None:
    """ChangedSince/NoData come only from Code OK with VerifyResult '0'..'4'."""
    body = {"Code": code, "Data": {"Carrier": carrier, "VerifyResult": result}}
    expected = {
        "0": NoData(),
        "1": ChangedSince(since=SINCE, changed=True),
        "2": ChangedSince(since=SINCE, changed=False),
        "3": ChangedSince(since=SINCE, changed=True),
        "4": ChangedSince(since=SINCE, changed=True),
    }
    try:
        answer = _PARSER._answer(_response(json.dumps(body).encode()), SINCE)
    except ProviderError:
        known = isinstance(result, str) and result in expected
        assert code != "OK" or not known or not isinstance(carrier, (str, type(None)))
        return
    if code == "OK":
        assert isinstance(result, str)
        assert answer == expected[result]
    else:
        assert code in {"PortabilityNumberNotSupported", "RequestNumberNotSupported"}
        assert answer == NotCovered()


@given(st.binary(max_size=64))
def test_any_bytes_give_an_answer_or_a_provider_error(body: bytes) -> None:
    """Arbitrary bytes never escape as anything but a ProviderError."""
    with contextlib.suppress(ProviderError):
        _PARSER._answer(_response(body), SINCE)


# -- live ---------------------------------------------------------------------------


@pytest.mark.live
def test_live_lookup() -> None:
    """Against the real service: a configured number gets a well-formed answer."""
    number = os.environ.get("RECYCLECHECK_ALIYUN_LIVE_NUMBER")
    if not number:
        pytest.skip("set RECYCLECHECK_ALIYUN_LIVE_NUMBER to a +86 mobile number you may query")
    provider = AliyunProvider.from_env()
    answer = provider.lookup(number, dt.date.today() - dt.timedelta(days=30))
    assert isinstance(answer, (ChangedSince, NoData, NotCovered))
