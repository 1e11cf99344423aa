"""Contract tests for the Telesign Phone ID ``number_deactivation`` adapter."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import email.utils
import hashlib
import hmac
import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import responses
from hypothesis import given, settings
from hypothesis import strategies as st

from recyclecheck._policy import Policy, Reason, evaluate
from recyclecheck.exceptions import (
    ConfigurationError,
    InvalidInput,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderUnavailable,
)
from recyclecheck.providers._answers import ChangedSince, LastChange, NoData, NotCovered
from recyclecheck.providers._wire import Strict
from recyclecheck.providers.telesign import (
    TelesignProvider,
    _change_date,
    _coverage_date,
    parse_phoneid,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "telesign"
CUSTOMER_ID = "FFFFFFFF-EEEE-DDDD-1234-AB1234567890"
API_KEY = "EXAMPLE----TE8sTgg45yusumoN6BYsBVkh+yRJ5czgsnCehZaOYldPJdmFh6NeX8kunZ2zU1YWaUw/0wV6xfw=="
NUMBER = "+15555551212"
DIGITS = NUMBER[1:]
URL = f"https://rest-ww.telesign.com/v1/phoneid/{DIGITS}"
SINCE = dt.date(2018, 4, 5)  # the documented example's last_verified
BODY = b'{"addons":{"number_deactivation":{"last_verified":"2018-04-05T00:00:00Z"}}}'
PINNED_TIME = 1481739612.0
PINNED_DATE = "Wed, 14 Dec 2016 18:20:12 GMT"
PINNED_NONCE = "A1592C6F-E384-4CDB-BC42-C3AB970369E9"


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def addon(**fields: Any) -> dict[str, Any]:
    """A full Phone ID body whose add-on block is ``fields`` plus a 2800 status."""
    body = load("phoneid_recycled.json")
    body["number_deactivation"] = {
        "status": {"code": 2800, "description": "Request successfully completed"},
        **fields,
    }
    return body


def expected_tsa(method: str, path: str, date: str, nonce: str, body: bytes) -> str:
    """Independent TSA computation, straight from Telesign's published recipe."""
    text = (
        (
            f"{method}\napplication/json\n{date}\nx-ts-auth-method:HMAC-SHA256\nx-ts-nonce:{nonce}\n"
        ).encode()
        + body
        + f"\n{path}".encode()
    )
    mac = hmac.new(base64.b64decode(API_KEY), text, hashlib.sha256).digest()
    return f"TSA {CUSTOMER_ID}:{base64.b64encode(mac).decode()}"


@pytest.fixture
def provider() -> TelesignProvider:
    return TelesignProvider(CUSTOMER_ID, API_KEY)


@pytest.fixture
def mocked() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def reply(mock: Any, status: int = 200, *, json_body: Any = None, **kwargs: Any) -> None:
    if json_body is not None:
        kwargs["body"] = json.dumps(json_body)
        kwargs.setdefault("content_type", "application/json")
    mock.add(responses.POST, URL, status=status, **kwargs)


def no_secrets(text: str) -> None:
    for secret in (DIGITS, DIGITS[1:], API_KEY, API_KEY[11:40]):
        assert secret not in text


# -- request ---------------------------------------------------------------------------


def test_documented_example_and_exact_signed_request(
    provider: TelesignProvider, mocked: Any
) -> None:
    """The doc example gives LastChange, from a POST whose TSA signature covers the exact body."""
    provider._clock = lambda: PINNED_TIME
    provider._nonce = lambda: PINNED_NONCE
    reply(mocked, json_body=load("phoneid_recycled.json"))
    assert provider.lookup(NUMBER, SINCE) == LastChange(dt.date(2018, 4, 6), dt.date(2014, 10, 6))
    request = mocked.calls[0].request
    assert request.method == "POST"
    assert request.path_url == f"/v1/phoneid/{DIGITS}"
    assert request.body == BODY
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Date"] == PINNED_DATE
    assert request.headers["x-ts-auth-method"] == "HMAC-SHA256"
    assert request.headers["x-ts-nonce"] == PINNED_NONCE
    assert request.headers["Authorization"] == expected_tsa(
        "POST", f"/v1/phoneid/{DIGITS}", PINNED_DATE, PINNED_NONCE, BODY
    )


def test_each_request_is_signed_afresh(provider: TelesignProvider, mocked: Any) -> None:
    """Real clock and nonces: a current Date and a new UUID4 nonce per request, both signed."""
    reply(mocked, json_body=load("phoneid_recycled.json"))
    reply(mocked, json_body=load("phoneid_recycled.json"))
    provider.lookup(NUMBER, SINCE)
    provider.lookup(NUMBER, SINCE)
    first, second = (call.request for call in mocked.calls)
    assert first.headers["x-ts-nonce"] != second.headers["x-ts-nonce"]
    for request in (first, second):
        assert uuid.UUID(request.headers["x-ts-nonce"]).version == 4
        sent = email.utils.parsedate_to_datetime(request.headers["Date"])
        assert abs((sent - dt.datetime.now(dt.timezone.utc)).total_seconds()) < 60
        assert request.headers["Authorization"] == expected_tsa(
            "POST",
            request.path_url,
            request.headers["Date"],
            request.headers["x-ts-nonce"],
            request.body,
        )


def test_basic_auth(mocked: Any) -> None:
    """With ``auth="basic"`` the key travels as Basic credentials and nothing is signed."""
    reply(mocked, json_body=load("phoneid_recycled.json"))
    TelesignProvider(CUSTOMER_ID, API_KEY, auth="basic").lookup(NUMBER, SINCE)
    request = mocked.calls[0].request
    assert (
        request.headers["Authorization"]
        == "Basic " + base64.b64encode(f"{CUSTOMER_ID}:{API_KEY}".encode()).decode()
    )
    assert request.headers["Content-Type"] == "application/json"
    assert "x-ts-nonce" not in request.headers
    assert request.body == BODY


def test_base_path_is_signed(mocked: Any) -> None:
    """A sandbox base URL with a path: the signed resource is the path actually requested."""
    provider = TelesignProvider(CUSTOMER_ID, API_KEY, base_url="http://localhost:9000/ts/")
    mocked.add(
        responses.POST,
        f"http://localhost:9000/ts/v1/phoneid/{DIGITS}",
        json=load("phoneid_recycled.json"),
    )
    provider.lookup(NUMBER, SINCE)
    request = mocked.calls[0].request
    assert request.headers["Authorization"] == expected_tsa(
        "POST",
        f"/ts/v1/phoneid/{DIGITS}",
        request.headers["Date"],
        request.headers["x-ts-nonce"],
        BODY,
    )


@pytest.mark.parametrize("auth", ["Digest", "BASIC", "hmac", "", None])
def test_unknown_auth_is_a_configuration_error(auth: Any) -> None:
    """Only "digest" and "basic" are accepted."""
    with pytest.raises(ConfigurationError, match="auth"):
        TelesignProvider(CUSTOMER_ID, API_KEY, auth=auth)


def test_digest_needs_a_base64_key() -> None:
    """A key that is not base64 fails at construction, without showing it."""
    with pytest.raises(ConfigurationError) as info:
        TelesignProvider(CUSTOMER_ID, "abc")
    assert "abc" not in str(info.value)
    TelesignProvider(CUSTOMER_ID, "abc", auth="basic")  # Basic sends it as given


# -- answers ---------------------------------------------------------------------------


def test_body_only_example(provider: TelesignProvider, mocked: Any) -> None:
    """The doc's "body only" example (no Phone ID envelope) is read the same way."""
    reply(mocked, json_body=load("deactivation_body_only.json"))
    assert provider.lookup(NUMBER, SINCE) == LastChange(dt.date(2018, 4, 6), dt.date(2014, 10, 6))


@pytest.mark.parametrize(
    ("fields", "since", "answer", "reason"),
    [
        # recycled, dated on/after since: the date is reported
        (
            {
                "recycled_since_last_verification": "recycled",
                "last_deactivated": "2018-04-06T00:00:00Z",
                "tracking_since": "2014-10-06T00:00:00Z",
            },
            SINCE,
            LastChange(dt.date(2018, 4, 6), dt.date(2014, 10, 6)),
            Reason.REISSUED_AFTER_BINDING,
        ),
        # a deactivation late on 9999-12-31 west of UTC has no UTC date: it saturates
        # and is still a change (it once overflowed into provider_unavailable)
        (
            {
                "recycled_since_last_verification": "recycled",
                "last_deactivated": "9999-12-31T23:00:00-05:00",
            },
            SINCE,
            LastChange(dt.date.max, None),
            Reason.REISSUED_AFTER_BINDING,
        ),
        # deactivated on the very day asked about counts
        (
            {
                "recycled_since_last_verification": "recycled",
                "last_deactivated": "2018-04-05T00:00:00Z",
            },
            SINCE,
            LastChange(dt.date(2018, 4, 5), None),
            Reason.REISSUED_AFTER_BINDING,
        ),
        # recycled without a date after since: still changed
        (
            {
                "recycled_since_last_verification": "recycled",
                "last_deactivated": "2016-01-01T00:00:00Z",
            },
            SINCE,
            ChangedSince(SINCE, True),
            Reason.REISSUED_AFTER_BINDING,
        ),
        (
            {"recycled_since_last_verification": "recycled", "last_deactivated": None},
            SINCE,
            ChangedSince(SINCE, True),
            Reason.REISSUED_AFTER_BINDING,
        ),
        # not recycled, consistent dates: the permissive answer
        (
            {
                "recycled_since_last_verification": "not_recycled",
                "last_deactivated": "2016-01-04T00:00:00Z",
                "tracking_since": "2014-10-06T00:00:00Z",
            },
            SINCE,
            LastChange(dt.date(2016, 1, 4), dt.date(2014, 10, 6)),
            Reason.NOT_REISSUED,
        ),
        # not recycled, no dates: vouched for from since only
        (
            {"recycled_since_last_verification": "not_recycled"},
            SINCE,
            LastChange(None, SINCE),
            Reason.NOT_REISSUED,
        ),
        # not recycled but tracking began after since: not covered
        (
            {
                "recycled_since_last_verification": "not_recycled",
                "tracking_since": "2018-05-01T00:00:00Z",
                "last_deactivated": None,
            },
            SINCE,
            LastChange(None, dt.date(2018, 5, 1)),
            Reason.NOT_COVERED,
        ),
        # not recycled contradicted by a deactivation after since: the deactivation wins
        (
            {
                "recycled_since_last_verification": "not_recycled",
                "last_deactivated": "2018-06-01T00:00:00Z",
                "tracking_since": "2014-10-06T00:00:00Z",
            },
            SINCE,
            LastChange(dt.date(2018, 6, 1), dt.date(2014, 10, 6)),
            Reason.REISSUED_AFTER_BINDING,
        ),
        # cannot be determined
        (
            {
                "recycled_since_last_verification": "cannot_be_determined",
                "tracking_since": "2018-05-01T00:00:00Z",
            },
            SINCE,
            NotCovered(),
            Reason.NOT_COVERED,
        ),
        (
            {
                "recycled_since_last_verification": "cannot_be_determined",
                "tracking_since": "2014-10-06T00:00:00Z",
                "last_deactivated": None,
            },
            SINCE,
            NoData(),
            Reason.NO_DATA,
        ),
        (
            {"recycled_since_last_verification": "cannot_be_determined"},
            SINCE,
            NoData(),
            Reason.NO_DATA,
        ),
        (
            {
                "recycled_since_last_verification": "cannot_be_determined",
                "last_deactivated": "2018-04-07T00:00:00Z",
            },
            SINCE,
            LastChange(dt.date(2018, 4, 7), None),
            Reason.REISSUED_AFTER_BINDING,
        ),
    ],
)
def test_flag_and_dates(
    provider: TelesignProvider,
    mocked: Any,
    fields: dict[str, Any],
    since: dt.date,
    answer: Any,
    reason: Reason,
) -> None:
    """The flag is cross-checked with the dates, always resolving toward extra verification."""
    reply(mocked, json_body=addon(**fields))
    got = provider.lookup(NUMBER, since)
    assert got == answer
    assert evaluate(got, since, Policy()).reason is reason


@pytest.mark.parametrize(
    ("fixture", "outcome", "reason"),
    [
        (
            "phoneid_not_recycled.json",
            LastChange(dt.date(2016, 1, 4), dt.date(2014, 10, 6)),
            Reason.NOT_REISSUED,
        ),
        ("phoneid_cannot_be_determined.json", NoData(), Reason.NO_DATA),
        ("addon_2803.json", NotCovered(), Reason.NOT_COVERED),
        ("addon_2804.json", NoData(), Reason.NO_DATA),
        ("addon_2805.json", NoData(), Reason.NO_DATA),
    ],
)
def test_fixtures(
    provider: TelesignProvider, mocked: Any, fixture: str, outcome: Any, reason: Reason
) -> None:
    """Each documented answer and add-on status maps as the docs promise."""
    reply(mocked, json_body=load(fixture))
    got = provider.lookup(NUMBER, SINCE)
    assert got == outcome
    assert evaluate(got, SINCE, Policy()).reason is reason


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (2802, ProviderUnavailable),
        (2806, ProviderAuthError),
        (2801, ProviderResponseError),
        (2807, ProviderResponseError),
        (2810, ProviderResponseError),
        (2899, ProviderResponseError),
    ],
)
def test_addon_failures(
    provider: TelesignProvider, mocked: Any, code: int, error: type[ProviderError]
) -> None:
    """Add-on statuses that carry no answer raise, with the add-on code kept."""
    body = load("addon_2801.json")
    body["number_deactivation"]["status"]["code"] = code
    reply(mocked, json_body=body)
    with pytest.raises(error) as info:
        provider.lookup(NUMBER, SINCE)
    assert info.value.code == str(code)


@pytest.mark.parametrize("code", [300, 301])
def test_phoneid_status_completed(provider: TelesignProvider, mocked: Any, code: int) -> None:
    """Phone ID's transaction status 300 and 301 let the add-on speak."""
    body = load("phoneid_not_recycled.json")
    body["status"]["code"] = code
    reply(mocked, json_body=body)
    assert isinstance(provider.lookup(NUMBER, SINCE), LastChange)


# -- strictness ---------------------------------------------------------------------


def _mutated(path: str, value: Any, *, drop: bool = False) -> dict[str, Any]:
    body: Any = load("phoneid_not_recycled.json")
    root = body
    *parents, leaf = path.split(".")
    for key in parents:
        body = body[key]
    if drop:
        del body[leaf]
    else:
        body[leaf] = value
    return root


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("number_deactivation.recycled_since_last_verification", "NOT_RECYCLED"),
        ("number_deactivation.recycled_since_last_verification", "no"),
        ("number_deactivation.recycled_since_last_verification", False),
        ("number_deactivation.recycled_since_last_verification", None),
        ("number_deactivation.recycled_since_last_verification", "not_recycled "),
        ("number_deactivation.status.code", "2800"),
        ("number_deactivation.status.code", 2800.0),
        ("number_deactivation.status.code", True),
        ("number_deactivation.status", None),
        ("number_deactivation.status", 2800),
        ("number_deactivation", None),
        ("number_deactivation", "not_recycled"),
        ("number_deactivation.last_deactivated", 1451865600),
        ("number_deactivation.last_deactivated", "2016-01-04"),
        ("number_deactivation.last_deactivated", "2016-01-04T00:00:00"),
        ("number_deactivation.last_deactivated", "yes"),
        ("number_deactivation.tracking_since", "2014-02-30T00:00:00Z"),
        ("number_deactivation.tracking_since", "2014-10-06T25:00:00Z"),
        ("number_deactivation.tracking_since", "2014-10-06T00:00:00+24:00"),
        ("number_deactivation.tracking_since", "9999-12-31T12:00:00Z"),
        ("number_deactivation.tracking_since", True),
        ("status.code", 500),
        ("status.code", "300"),
        ("status", None),
        ("numbering.original.complete_phone_number", "15555551213"),
        ("numbering.original.complete_phone_number", 15555551212),
        ("numbering.original", []),
        ("numbering", "x"),
    ],
)
def test_wrong_types_and_values_are_refused(
    provider: TelesignProvider, mocked: Any, path: str, value: Any
) -> None:
    """Wrong types, unknown values and bad timestamps are response errors, never an answer."""
    reply(mocked, json_body=_mutated(path, value))
    with pytest.raises(ProviderResponseError):
        provider.lookup(NUMBER, SINCE)


@pytest.mark.parametrize(
    "path",
    [
        "number_deactivation",
        "number_deactivation.status",
        "number_deactivation.status.code",
        "number_deactivation.recycled_since_last_verification",
        "status.code",
    ],
)
def test_missing_fields_are_refused(provider: TelesignProvider, mocked: Any, path: str) -> None:
    """A missing field the answer depends on is a response error."""
    reply(mocked, json_body=_mutated(path, None, drop=True))
    with pytest.raises(ProviderResponseError):
        provider.lookup(NUMBER, SINCE)


@pytest.mark.parametrize("body", ["[]", "null", "{", "", '"recycled"', "Infinity"])
def test_malformed_bodies(provider: TelesignProvider, mocked: Any, body: str) -> None:
    """Invalid or non-object JSON is a response error."""
    reply(mocked, body=body, content_type="application/json")
    with pytest.raises(ProviderResponseError):
        provider.lookup(NUMBER, SINCE)


def test_html_200_is_refused(provider: TelesignProvider, mocked: Any) -> None:
    """An HTML page with status 200 is not an answer."""
    reply(mocked, body=(DATA / "error_page.html").read_text(), content_type="text/html")
    with pytest.raises(ProviderResponseError, match="HTML"):
        provider.lookup(NUMBER, SINCE)


def test_body_over_cap(mocked: Any) -> None:
    """A body over ``max_body`` is refused."""
    body = load("phoneid_recycled.json")
    body["padding"] = "x" * 4096
    reply(mocked, json_body=body)
    with pytest.raises(ProviderResponseError, match="size cap"):
        TelesignProvider(CUSTOMER_ID, API_KEY, max_body=2048).lookup(NUMBER, SINCE)


def test_redirect_is_not_followed(provider: TelesignProvider, mocked: Any) -> None:
    """A 302 is refused, not followed."""
    reply(mocked, 302, headers={"Location": "https://evil.example/"})
    with pytest.raises(ProviderResponseError, match="redirect"):
        provider.lookup(NUMBER, SINCE)
    assert len(mocked.calls) == 1


# -- HTTP errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "status", "error", "code"),
    [
        ("error_401_10008.json", 401, ProviderAuthError, "10008"),
        ("error_401_10009.json", 401, ProviderAuthError, "10009"),
        ("error_429_10019.json", 429, ProviderRateLimited, "10019"),
        ("error_429_10020.json", 429, ProviderRateLimited, "10020"),
        ("error_503_-10000.json", 503, ProviderUnavailable, "-10000"),
        ("error_500_-90001.json", 500, ProviderUnavailable, "-90001"),
        ("error_400_11000.json", 400, ProviderResponseError, "11000"),
        ("error_402_10030.json", 402, ProviderResponseError, "10030"),
        ("error_404_10017.json", 404, ProviderResponseError, "10017"),
    ],
)
def test_error_bodies(
    provider: TelesignProvider,
    mocked: Any,
    fixture: str,
    status: int,
    error: type[ProviderError],
    code: str,
) -> None:
    """Each documented HTTP error maps to its ProviderError with Telesign's code."""
    reply(mocked, status, json_body=load(fixture))
    with pytest.raises(error) as info:
        provider.lookup(NUMBER, SINCE)
    assert info.value.code == code
    assert info.value.status == status


def test_code_from_status_when_no_errors_list(provider: TelesignProvider, mocked: Any) -> None:
    """The ``status.code`` is used when ``errors`` is absent."""
    body = load("error_401_10008.json")
    del body["errors"]
    reply(mocked, 400, json_body=body)
    with pytest.raises(ProviderAuthError) as info:
        provider.lookup(NUMBER, SINCE)
    assert info.value.code == "10008"


@pytest.mark.parametrize(("header", "seconds"), [("3", 3.0), (None, None)])
def test_rate_limit_retry_after(
    provider: TelesignProvider, mocked: Any, header: str | None, seconds: float | None
) -> None:
    """Retry-After is honoured when present (Telesign does not document one)."""
    headers = {"Retry-After": header} if header else {}
    reply(mocked, 429, json_body=load("error_429_10019.json"), headers=headers)
    with pytest.raises(ProviderRateLimited) as info:
        provider.lookup(NUMBER, SINCE)
    assert info.value.retry_after == seconds


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (502, ProviderUnavailable),
        (503, ProviderUnavailable),
        (401, ProviderAuthError),
        (403, ProviderAuthError),
        (429, ProviderRateLimited),
        (400, ProviderResponseError),
    ],
)
def test_html_error_pages(
    provider: TelesignProvider, mocked: Any, status: int, error: type[ProviderError]
) -> None:
    """An HTML error page leaves the status to decide."""
    reply(mocked, status, body=(DATA / "error_page.html").read_text(), content_type="text/html")
    with pytest.raises(error):
        provider.lookup(NUMBER, SINCE)


# -- privacy ---------------------------------------------------------------------------


def test_vendor_descriptions_never_reach_exceptions(
    provider: TelesignProvider, mocked: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Telesign descriptions may echo the number; exceptions and logs never carry it."""
    body = load("error_400_11000.json")
    body["errors"][0]["description"] = f"Invalid phone_number {DIGITS}"
    reply(mocked, 400, json_body=body)
    with caplog.at_level(logging.DEBUG), pytest.raises(ProviderResponseError) as info:
        provider.lookup(NUMBER, SINCE)
    no_secrets(str(info.value) + repr(info.value) + caplog.text)


@pytest.mark.parametrize(
    "fixture",
    ["addon_2806.json", "addon_2802.json", "error_401_10008.json", "phoneid_recycled.json"],
)
def test_nothing_leaks(
    provider: TelesignProvider, mocked: Any, caplog: pytest.LogCaptureFixture, fixture: str
) -> None:
    """Answers, errors and logs never show the number or the key."""
    status = 401 if fixture.startswith("error_401") else 200
    reply(mocked, status, json_body=load(fixture))
    with caplog.at_level(logging.DEBUG):
        try:
            answer: object = provider.lookup(NUMBER, SINCE)
        except ProviderError as exc:
            answer = exc
    no_secrets(str(answer) + repr(answer) + caplog.text + repr(provider))


def test_repr_holds_no_secret() -> None:
    """Neither auth mode shows the key in ``repr``."""
    for auth in ("digest", "basic"):
        text = repr(TelesignProvider(CUSTOMER_ID, API_KEY, auth=auth))
        no_secrets(text)
        assert auth in text


def test_number_is_validated_before_any_io(provider: TelesignProvider) -> None:
    """Anything but E.164 is refused before a request is built."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for bad in [DIGITS, "+1555/5551212", "+1555555121\uff12", "", None]:
            with pytest.raises(InvalidInput):
                provider.lookup(bad, SINCE)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput):
            provider.lookup(NUMBER, "2018-04-05")  # type: ignore[arg-type]
        assert len(mock.calls) == 0


# -- configuration ---------------------------------------------------------------------

ENV = {
    "RECYCLECHECK_TELESIGN_CUSTOMER_ID": CUSTOMER_ID,
    "RECYCLECHECK_TELESIGN_API_KEY": API_KEY,
}


def test_from_env(mocked: Any) -> None:
    """``from_env`` reads credentials, base URL and auth mode."""
    env = {
        **ENV,
        "RECYCLECHECK_TELESIGN_BASE_URL": "https://rest-ww.telesign.com/",
        "RECYCLECHECK_TELESIGN_AUTH": "basic",
    }
    provider = TelesignProvider.from_env(env)
    assert "basic" in repr(provider)
    reply(mocked, json_body=load("phoneid_recycled.json"))
    provider.lookup(NUMBER, SINCE)
    assert mocked.calls[0].request.headers["Authorization"].startswith("Basic ")


def test_from_env_defaults_to_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a mapping ``os.environ`` is read; digest is the default."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("RECYCLECHECK_TELESIGN_AUTH", raising=False)
    monkeypatch.delenv("RECYCLECHECK_TELESIGN_BASE_URL", raising=False)
    assert "digest" in repr(TelesignProvider.from_env())


@pytest.mark.parametrize("missing", sorted(ENV))
def test_from_env_names_the_missing_variable(missing: str) -> None:
    """A missing variable is named; no value is shown."""
    env = {name: value for name, value in ENV.items() if name != missing}
    with pytest.raises(ConfigurationError, match=missing) as info:
        TelesignProvider.from_env(env)
    no_secrets(str(info.value))


def test_from_env_refuses_unknown_auth() -> None:
    """An unknown RECYCLECHECK_TELESIGN_AUTH is named."""
    with pytest.raises(ConfigurationError, match="RECYCLECHECK_TELESIGN_AUTH"):
        TelesignProvider.from_env({**ENV, "RECYCLECHECK_TELESIGN_AUTH": "hmac"})


@pytest.mark.parametrize(
    "base_url", ["http://rest-ww.telesign.com", "https://a@rest-ww.telesign.com", "https://x/?q"]
)
def test_bad_base_urls(base_url: str) -> None:
    """Non-https (outside loopback), credentials or a query are refused."""
    with pytest.raises(ConfigurationError):
        TelesignProvider(CUSTOMER_ID, API_KEY, base_url=base_url)


@pytest.mark.parametrize("customer_id", ["", "a:b", "a b", None])
def test_bad_customer_ids(customer_id: Any) -> None:
    """A customer ID that would corrupt the Authorization header is refused."""
    with pytest.raises(ConfigurationError):
        TelesignProvider(customer_id, API_KEY)


# -- timestamps ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "change", "coverage"),
    [
        ("2018-04-06T00:00:00Z", dt.date(2018, 4, 6), dt.date(2018, 4, 6)),
        ("2018-04-06t00:00:00z", dt.date(2018, 4, 6), dt.date(2018, 4, 6)),
        ("2018-04-06T00:00:01Z", dt.date(2018, 4, 6), dt.date(2018, 4, 7)),
        ("2018-04-06T00:00:00.000000Z", dt.date(2018, 4, 6), dt.date(2018, 4, 6)),
        ("2018-04-06T00:00:00.0000001Z", dt.date(2018, 4, 6), dt.date(2018, 4, 7)),
        # local midnight east of UTC: still the 6th, not the UTC 5th
        ("2018-04-06T00:00:00+08:00", dt.date(2018, 4, 6), dt.date(2018, 4, 6)),
        # late evening west of UTC: already the 6th in UTC
        ("2018-04-05T23:30:00-05:00", dt.date(2018, 4, 6), dt.date(2018, 4, 7)),
        ("2018-04-06T00:00:00-05:00", dt.date(2018, 4, 6), dt.date(2018, 4, 7)),
    ],
)
def test_timestamps_round_toward_extra_verification(
    text: str, change: dt.date, coverage: dt.date
) -> None:
    """Change dates take the later of local and UTC day; coverage starts at the next whole day."""
    moment = Strict("telesign").timestamp(text, "t")
    assert _change_date(moment) == change
    assert _coverage_date(moment) == coverage


aware_datetimes = st.datetimes(
    min_value=dt.datetime(1900, 1, 2),
    max_value=dt.datetime(9999, 12, 29),
    timezones=st.builds(
        dt.timezone, st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: dt.timedelta(minutes=m))
    ),
)


@given(moment=aware_datetimes)
def test_rounding_is_never_earlier(moment: dt.datetime) -> None:
    """Neither date is ever earlier than the written day or the UTC day."""
    utc_day = moment.astimezone(dt.timezone.utc).date()
    for day in (_change_date(moment), _coverage_date(moment)):
        assert day >= moment.date()
        assert day >= utc_day
    assert _coverage_date(moment) >= _change_date(moment)


@given(moment=aware_datetimes)
def test_rfc3339_round_trip(moment: dt.datetime) -> None:
    """Any RFC 3339 rendering parses back to the same instant."""
    text = moment.isoformat()
    assert Strict("telesign").timestamp(text, "t") == moment


# -- properties ------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
PERMISSIVE = load("phoneid_not_recycled.json")
PATHS = [
    "status",
    "status.code",
    "numbering",
    "numbering.original",
    "numbering.original.complete_phone_number",
    "number_deactivation",
    "number_deactivation.status",
    "number_deactivation.status.code",
    "number_deactivation.recycled_since_last_verification",
    "number_deactivation.last_deactivated",
    "number_deactivation.tracking_since",
]


def _allows(answer: object, since: dt.date) -> bool:
    return evaluate(answer, since, Policy()).reason is Reason.NOT_REISSUED  # type: ignore[arg-type]


@settings(max_examples=300)
@given(payload=json_values)
def test_arbitrary_json_never_allows(payload: Any) -> None:
    """Arbitrary JSON gives a ProviderError or an answer that does not allow."""
    try:
        answer = parse_phoneid(payload, DIGITS, SINCE)
    except ProviderError:
        return
    assert not _allows(answer, SINCE)


@settings(max_examples=400)
@given(
    path=st.sampled_from(PATHS),
    value=json_values
    | st.sampled_from(
        [
            "recycled",
            "cannot_be_determined",
            2803,
            2805,
            "2018-04-05T00:00:00Z",
            "2019-01-01T00:00:00Z",
            "2018-04-05T00:00:00+14:00",
            "2018-04-04T23:00:00-02:00",
        ]
    ),
)
def test_only_the_documented_shape_allows(path: str, value: Any) -> None:
    """Changing a field the permissive answer rests on never yields an allow it does not justify."""
    body = copy.deepcopy(PERMISSIVE)
    parent: Any = body
    *parents, leaf = path.split(".")
    for key in parents:
        parent = parent[key]
    parent[leaf] = value
    try:
        answer = parse_phoneid(body, DIGITS, SINCE)
    except ProviderError:
        return
    if not _allows(answer, SINCE):
        return
    # An allow is only possible when every load-bearing field still says "quiet since SINCE".
    addon_block = body["number_deactivation"]
    assert addon_block["status"]["code"] == 2800
    assert addon_block["recycled_since_last_verification"] == "not_recycled"
    deactivated = addon_block.get("last_deactivated")
    assert deactivated is None or deactivated[:10] < "2018-04-05"
    tracking = addon_block.get("tracking_since")
    assert tracking is None or tracking[:10] <= "2018-04-05"


@settings(max_examples=50, deadline=None)  # real HTTP stack, mocked socket
@given(since=st.dates(min_value=dt.date(1, 1, 1)))
def test_request_body_carries_since(since: dt.date) -> None:
    """The body always asks about ``since`` at midnight UTC, in exactly this shape."""
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, URL, json=load("error_401_10008.json"), status=401)
        with pytest.raises(ProviderAuthError):
            TelesignProvider(CUSTOMER_ID, API_KEY).lookup(NUMBER, since)
        sent = json.loads(mock.calls[0].request.body)
    assert sent == {
        "addons": {"number_deactivation": {"last_verified": f"{since.isoformat()}T00:00:00Z"}}
    }


# -- live ------------------------------------------------------------------------------


@pytest.mark.live
def test_live_lookup() -> None:
    """Against the real service (RECYCLECHECK_LIVE=1, RECYCLECHECK_TELESIGN_* and a number)."""
    number = os.environ.get("RECYCLECHECK_TELESIGN_LIVE_NUMBER")
    if not number:
        pytest.skip("set RECYCLECHECK_TELESIGN_LIVE_NUMBER to an E.164 number")
    provider = TelesignProvider.from_env()
    answer = provider.lookup(number, dt.date.today() - dt.timedelta(days=365))
    assert isinstance(answer, (LastChange, ChangedSince, NoData, NotCovered))
