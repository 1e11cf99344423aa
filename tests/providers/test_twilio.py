"""Contract tests for the Twilio Lookup v2 ``reassigned_number`` adapter."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
import responses
from hypothesis import given, settings
from hypothesis import strategies as st
from responses import matchers

from recyclecheck._policy import Policy, Reason, evaluate
from recyclecheck.exceptions import (
    ConfigurationError,
    InvalidInput,
    InvalidPhoneNumber,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderUnavailable,
)
from recyclecheck.providers._answers import ChangedSince, NoData, NotCovered
from recyclecheck.providers.twilio import TwilioProvider, parse_lookup

DATA = Path(__file__).resolve().parent.parent / "data" / "twilio"
SID = "AC0123456789abcdef0123456789abcdef"
TOKEN = "f00dfeedf00dfeedf00dfeedf00dfeed"
NUMBER = "+14159929960"
DIGITS = NUMBER[1:]
URL = "https://lookups.twilio.com/v2/PhoneNumbers/%2B14159929960"
YES_DATE = dt.date(2020, 12, 27)
NO_DATE = dt.date(2019, 9, 24)
NO_DATA_DATE = dt.date(2021, 12, 24)
EXPECTED_AUTH = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


@pytest.fixture
def provider() -> TwilioProvider:
    return TwilioProvider(SID, TOKEN)


@pytest.fixture
def mocked() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def reply(mock: Any, status: int = 200, *, json_body: Any = None, **kwargs: Any) -> None:
    if json_body is not None:
        kwargs["body"] = json.dumps(json_body)
        kwargs.setdefault("content_type", "application/json")
    mock.add(responses.GET, URL, status=status, **kwargs)


def no_secrets(text: str) -> None:
    for secret in (DIGITS, DIGITS[1:], TOKEN, SID):
        assert secret not in text


# -- documented answers --------------------------------------------------------------


def test_yes_is_a_change_and_request_is_exact(provider: TwilioProvider, mocked: Any) -> None:
    """The spec's "yes" example gives ChangedSince(True), from one exact GET."""
    mocked.add(
        responses.GET,
        URL,
        json=load("reassigned_yes.json"),
        match=[
            matchers.query_param_matcher(
                {"Fields": "reassigned_number", "LastVerifiedDate": "20201227"}
            ),
            matchers.header_matcher({"Authorization": EXPECTED_AUTH, "Accept": "application/json"}),
        ],
    )
    assert provider.lookup(NUMBER, YES_DATE) == ChangedSince(YES_DATE, True)
    request = mocked.calls[0].request
    assert request.method == "GET"
    assert request.path_url.split("?")[0] == "/v2/PhoneNumbers/%2B14159929960"
    assert request.body is None


def test_no_is_no_change(provider: TwilioProvider, mocked: Any) -> None:
    """The spec's "no" example gives ChangedSince(False), the only permissive answer."""
    reply(mocked, json_body=load("reassigned_no.json"))
    answer = provider.lookup(NUMBER, NO_DATE)
    assert answer == ChangedSince(NO_DATE, False)
    assert evaluate(answer, NO_DATE, Policy()).reason is Reason.NOT_REISSUED


def test_no_data_available_is_no_data(provider: TwilioProvider, mocked: Any) -> None:
    """``no_data_available`` gives NoData."""
    reply(mocked, json_body=load("reassigned_no_data_available.json"))
    assert provider.lookup(NUMBER, NO_DATA_DATE) == NoData()


@pytest.mark.parametrize(
    ("fixture", "since", "reason"),
    [
        ("reassigned_yes.json", YES_DATE, Reason.REISSUED_AFTER_BINDING),
        ("reassigned_no.json", NO_DATE, Reason.NOT_REISSUED),
        ("reassigned_no_data_available.json", NO_DATA_DATE, Reason.NO_DATA),
        ("reassigned_null.json", YES_DATE, Reason.NOT_COVERED),
        ("package_error_60607.json", YES_DATE, Reason.NOT_COVERED),
    ],
)
def test_answers_map_to_reasons(
    provider: TwilioProvider, mocked: Any, fixture: str, since: dt.date, reason: Reason
) -> None:
    """Each documented answer leads to the reason the docs promise."""
    reply(mocked, json_body=load(fixture))
    assert evaluate(provider.lookup(NUMBER, since), since, Policy()).reason is reason


def test_invalid_number_is_no_data(provider: TwilioProvider, mocked: Any) -> None:
    """``valid: false`` (with validation_errors) gives NoData, never an allow."""
    reply(mocked, json_body=load("invalid_number.json"))
    assert provider.lookup(NUMBER, YES_DATE) == NoData()


def test_invalid_number_wins_over_a_no(provider: TwilioProvider, mocked: Any) -> None:
    """A "no" inside an answer that calls the number invalid is not trusted."""
    body = load("reassigned_no.json")
    body["valid"] = False
    reply(mocked, json_body=body)
    assert provider.lookup(NUMBER, NO_DATE) == NoData()


def test_null_package_is_not_covered(provider: TwilioProvider, mocked: Any) -> None:
    """A null ``reassigned_number`` means the package did not evaluate the number."""
    reply(mocked, json_body=load("reassigned_null.json"))
    assert provider.lookup(NUMBER, YES_DATE) == NotCovered()


# -- package error_code (string or int) -----------------------------------------------


@pytest.mark.parametrize("as_type", [str, int])
@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (60607, NotCovered()),
        (60610, NotCovered()),
        (60606, ProviderAuthError),
        (60616, ProviderRateLimited),
        (60611, ProviderRateLimited),
        (60608, ProviderUnavailable),
        (60600, ProviderResponseError),
    ],
)
def test_package_error_code(
    provider: TwilioProvider, mocked: Any, as_type: type, code: int, outcome: Any
) -> None:
    """A non-null ``error_code`` (string or int) is never an answer, even beside a "no"."""
    body = load("reassigned_no.json")
    body["reassigned_number"]["error_code"] = as_type(code)
    reply(mocked, json_body=body)
    if isinstance(outcome, NotCovered):
        assert provider.lookup(NUMBER, NO_DATE) == outcome
    else:
        with pytest.raises(outcome) as info:
            provider.lookup(NUMBER, NO_DATE)
        assert info.value.code == str(code)


@pytest.mark.parametrize("bad", ["no", "", True, 1.5, [], {}, "60607 " * 3])
def test_package_error_code_of_no_known_shape(
    provider: TwilioProvider, mocked: Any, bad: object
) -> None:
    """An ``error_code`` that is not a code is a response error, not an answer."""
    body = load("reassigned_no.json")
    body["reassigned_number"]["error_code"] = bad
    reply(mocked, json_body=body)
    with pytest.raises(ProviderResponseError):
        provider.lookup(NUMBER, NO_DATE)


# -- strictness ---------------------------------------------------------------------


def test_echoed_date_must_match(provider: TwilioProvider, mocked: Any) -> None:
    """An answer about another LastVerifiedDate is refused."""
    reply(mocked, json_body=load("reassigned_no.json"))
    with pytest.raises(ProviderResponseError, match="another date"):
        provider.lookup(NUMBER, NO_DATE + dt.timedelta(days=1))


def test_echoed_number_must_match(provider: TwilioProvider, mocked: Any) -> None:
    """An answer about another number is refused."""
    body = load("reassigned_no.json")
    body["phone_number"] = "+14159929961"
    reply(mocked, json_body=body)
    with pytest.raises(ProviderResponseError, match="another number"):
        provider.lookup(NUMBER, NO_DATE)


def _set(body: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for key in parents:
        body = body[key]
    body[leaf] = value


def _drop(body: dict[str, Any], path: str) -> None:
    *parents, leaf = path.split(".")
    for key in parents:
        body = body[key]
    del body[leaf]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("reassigned_number.is_number_reassigned", True),
        ("reassigned_number.is_number_reassigned", False),
        ("reassigned_number.is_number_reassigned", "true"),
        ("reassigned_number.is_number_reassigned", "No"),
        ("reassigned_number.is_number_reassigned", "NO"),
        ("reassigned_number.is_number_reassigned", "no "),
        ("reassigned_number.is_number_reassigned", "maybe"),
        ("reassigned_number.is_number_reassigned", None),
        ("reassigned_number.is_number_reassigned", 0),
        ("reassigned_number.last_verified_date", "20190924"),
        ("reassigned_number.last_verified_date", "2019-9-24"),
        ("reassigned_number.last_verified_date", "2019-02-30"),
        ("reassigned_number.last_verified_date", None),
        ("reassigned_number.last_verified_date", 20190924),
        ("reassigned_number", "no"),
        ("reassigned_number", []),
        ("valid", "true"),
        ("valid", 1),
        ("valid", None),
        ("phone_number", None),
        ("phone_number", 14159929960),
    ],
)
def test_wrong_types_and_values_are_refused(
    provider: TwilioProvider, mocked: Any, path: str, value: Any
) -> None:
    """Wrong types and unknown values are response errors, never an answer."""
    body = load("reassigned_no.json")
    _set(body, path, value)
    reply(mocked, json_body=body)
    with pytest.raises(ProviderResponseError):
        provider.lookup(NUMBER, NO_DATE)


@pytest.mark.parametrize(
    "path",
    [
        "valid",
        "phone_number",
        "reassigned_number",
        "reassigned_number.is_number_reassigned",
        "reassigned_number.last_verified_date",
        "reassigned_number.error_code",
    ],
)
def test_missing_fields_are_refused(provider: TwilioProvider, mocked: Any, path: str) -> None:
    """A missing field the answer depends on is a response error."""
    body = load("reassigned_no.json")
    _drop(body, path)
    reply(mocked, json_body=body)
    with pytest.raises(ProviderResponseError):
        provider.lookup(NUMBER, NO_DATE)


@pytest.mark.parametrize("body", ["[]", "null", '"no"', "42", "{", "", "NaN", '{"valid": NaN}'])
def test_malformed_bodies(provider: TwilioProvider, mocked: Any, body: str) -> None:
    """Invalid or non-object JSON is a response error."""
    reply(mocked, body=body, content_type="application/json")
    with pytest.raises(ProviderResponseError):
        provider.lookup(NUMBER, NO_DATE)


def test_html_200_is_refused(provider: TwilioProvider, mocked: Any) -> None:
    """A captive portal's HTML page with status 200 is not an answer."""
    reply(mocked, body=(DATA / "error_page.html").read_text(), content_type="text/html")
    with pytest.raises(ProviderResponseError, match="HTML"):
        provider.lookup(NUMBER, NO_DATE)


def test_body_over_cap(mocked: Any) -> None:
    """A body over ``max_body`` is refused before it is parsed."""
    body = load("reassigned_no.json")
    body["padding"] = "x" * 4096
    reply(mocked, json_body=body)
    with pytest.raises(ProviderResponseError, match="size cap"):
        TwilioProvider(SID, TOKEN, max_body=1024).lookup(NUMBER, NO_DATE)


def test_redirect_is_not_followed(provider: TwilioProvider, mocked: Any) -> None:
    """A 302 is refused, not followed (it would carry the credentials elsewhere)."""
    reply(mocked, 302, headers={"Location": "https://evil.example/steal"})
    with pytest.raises(ProviderResponseError, match="redirect") as info:
        provider.lookup(NUMBER, NO_DATE)
    assert info.value.status == 302
    assert len(mocked.calls) == 1


def test_unexpected_success_status(provider: TwilioProvider, mocked: Any) -> None:
    """Only a 200 carries an answer."""
    reply(mocked, 204)
    with pytest.raises(ProviderResponseError):
        provider.lookup(NUMBER, NO_DATE)


# -- HTTP errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        (20003, 401, ProviderAuthError),
        (20429, 429, ProviderRateLimited),
        (60616, 429, ProviderRateLimited),
        (60616, 400, ProviderRateLimited),
        (60626, 429, ProviderRateLimited),
        (60611, 400, ProviderRateLimited),
        (60606, 403, ProviderAuthError),
        (60606, 400, ProviderAuthError),
        (60608, 400, ProviderUnavailable),
    ],
)
def test_error_bodies(
    provider: TwilioProvider, mocked: Any, code: int, status: int, error: type[ProviderError]
) -> None:
    """Each documented Twilio error code maps to its ProviderError, code kept."""
    body = load(f"error_{code}.json")
    body["status"] = status
    reply(mocked, status, json_body=body)
    with pytest.raises(error) as info:
        provider.lookup(NUMBER, NO_DATE)
    assert info.value.code == str(code)
    assert info.value.status == status
    assert info.value.provider == "twilio"


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_package_not_approved_says_it_needs_approval(
    provider: TwilioProvider, mocked: Any, status: int
) -> None:
    """60606 (package not enabled on the account) is ProviderAuthError saying approval is needed."""
    body = load("error_60606.json")
    body["status"] = status
    reply(mocked, status, json_body=body)
    with pytest.raises(ProviderAuthError) as info:
        provider.lookup(NUMBER, NO_DATE)
    assert "approval" in info.value.message
    assert "reassigned_number package" in info.value.message
    assert (info.value.code, info.value.status, info.value.retryable) == ("60606", status, False)


@pytest.mark.parametrize("as_type", [str, int])
def test_package_error_60606_says_it_needs_approval(
    provider: TwilioProvider, mocked: Any, as_type: type
) -> None:
    """The same account-level refusal inside a 200's package error_code says so too."""
    body = load("reassigned_no.json")
    body["reassigned_number"]["error_code"] = as_type(60606)
    reply(mocked, json_body=body)
    with pytest.raises(ProviderAuthError, match="approval"):
        provider.lookup(NUMBER, NO_DATE)


@pytest.mark.parametrize(("code", "status"), [(20003, 401), (None, 401), (None, 403)])
def test_credentials_refused_do_not_blame_approval(
    provider: TwilioProvider, mocked: Any, code: int | None, status: int
) -> None:
    """Bad credentials are a ProviderAuthError about credentials, not about approval."""
    if code is None:
        reply(mocked, status, body="<html>no</html>", content_type="text/html")
    else:
        reply(mocked, status, json_body=load(f"error_{code}.json"))
    with pytest.raises(ProviderAuthError) as info:
        provider.lookup(NUMBER, NO_DATE)
    assert "approval" not in info.value.message
    assert "credentials" in info.value.message


@pytest.mark.parametrize("code", [60607, 60610])
@pytest.mark.parametrize("status", [400, 404])
def test_coverage_errors_are_not_covered(
    provider: TwilioProvider, mocked: Any, code: int, status: int
) -> None:
    """Unsupported country / outside coverage give NotCovered."""
    reply(mocked, status, json_body=load(f"error_{code}.json"))
    assert provider.lookup(NUMBER, NO_DATE) == NotCovered()


@pytest.mark.parametrize(("header", "seconds"), [("7", 7.0), (None, None), ("soon", None)])
def test_rate_limit_retry_after(
    provider: TwilioProvider, mocked: Any, header: str | None, seconds: float | None
) -> None:
    """HTTP 429 carries Retry-After when Twilio sends one (it is not documented)."""
    headers = {"Retry-After": header} if header else {}
    reply(mocked, 429, json_body=load("error_20429.json"), headers=headers)
    with pytest.raises(ProviderRateLimited) as info:
        provider.lookup(NUMBER, NO_DATE)
    assert info.value.retry_after == seconds


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_unavailable(provider: TwilioProvider, mocked: Any, status: int) -> None:
    """5xx, with a JSON or an HTML body, is ProviderUnavailable."""
    reply(mocked, status, body=(DATA / "error_page.html").read_text(), content_type="text/html")
    with pytest.raises(ProviderUnavailable) as info:
        provider.lookup(NUMBER, NO_DATE)
    assert info.value.status == status


def test_5xx_with_coverage_code_is_still_unavailable(provider: TwilioProvider, mocked: Any) -> None:
    """A server failure never turns into an answer, whatever its body says."""
    reply(mocked, 503, json_body=load("error_60607.json"))
    with pytest.raises(ProviderUnavailable):
        provider.lookup(NUMBER, NO_DATE)


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, ProviderAuthError), (403, ProviderAuthError), (429, ProviderRateLimited)],
)
def test_statuses_without_a_body(
    provider: TwilioProvider, mocked: Any, status: int, error: type[ProviderError]
) -> None:
    """The status alone decides when the body is not Twilio's JSON."""
    reply(mocked, status, body="<html>nope</html>", content_type="text/html")
    with pytest.raises(error):
        provider.lookup(NUMBER, NO_DATE)


@pytest.mark.parametrize("body", ['{"code": 20404, "status": 404}', "<html>404</html>"])
def test_unknown_4xx_is_a_response_error(provider: TwilioProvider, mocked: Any, body: str) -> None:
    """Any other client error is a response error."""
    reply(mocked, 404, body=body, content_type="application/json")
    with pytest.raises(ProviderResponseError):
        provider.lookup(NUMBER, NO_DATE)


# -- privacy ---------------------------------------------------------------------------


def test_vendor_messages_never_reach_exceptions(provider: TwilioProvider, mocked: Any) -> None:
    """Twilio error messages may embed the number; they are never passed on."""
    body = load("error_60606.json")
    body["message"] = f"Lookup for {NUMBER} ({DIGITS}) failed"
    reply(mocked, 403, json_body=body)
    with pytest.raises(ProviderAuthError) as info:
        provider.lookup(NUMBER, NO_DATE)
    no_secrets(str(info.value))
    no_secrets(repr(info.value))


@pytest.mark.parametrize(
    "fixture", ["error_20003.json", "error_20429.json", "error_60608.json", "error_60611.json"]
)
def test_errors_and_logs_hold_no_number(
    provider: TwilioProvider, mocked: Any, caplog: pytest.LogCaptureFixture, fixture: str
) -> None:
    """Neither exceptions nor recyclecheck's logs show the number or credentials."""
    body = load(fixture)
    reply(mocked, body["status"], json_body=body)
    with caplog.at_level(logging.DEBUG), pytest.raises(ProviderError) as info:
        provider.lookup(NUMBER, NO_DATE)
    no_secrets(str(info.value) + repr(info.value) + caplog.text)


def test_answer_logs_are_masked(
    provider: TwilioProvider, mocked: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The debug log of an answer shows the masked number only."""
    reply(mocked, json_body=load("reassigned_no.json"))
    with caplog.at_level(logging.DEBUG, logger="recyclecheck"):
        provider.lookup(NUMBER, NO_DATE)
    assert "+1 415***9960" in caplog.text
    no_secrets(caplog.text)


def test_repr_holds_no_secret(provider: TwilioProvider) -> None:
    """The provider's repr shows neither the SID nor the token."""
    no_secrets(repr(provider))
    assert "lookups.twilio.com" in repr(provider)


def test_number_is_validated_before_any_io(provider: TwilioProvider) -> None:
    """Anything but E.164 is refused before a request is built (no path injection)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for bad in [
            "14159929960",
            "+1415/../x",
            "+1 415 992 9960",
            "+\u0661\u0664\u0661\u0665\u0669\u0669\u0662\u0669\u0669\u0666\u0660",
        ]:
            with pytest.raises(InvalidPhoneNumber) as info:
                provider.lookup(bad, NO_DATE)
            assert "992" not in str(info.value)
        for wrong in [None, 14159929960]:
            with pytest.raises(InvalidPhoneNumber) as info:
                provider.lookup(wrong, NO_DATE)  # type: ignore[arg-type]
            assert isinstance(info.value, TypeError)
        with pytest.raises(InvalidInput) as info:
            provider.lookup(NUMBER, dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc))
        assert isinstance(info.value, TypeError)
        assert len(mock.calls) == 0


# -- configuration ---------------------------------------------------------------------


def test_from_env() -> None:
    """``from_env`` reads the two Twilio variables and the optional base URL."""
    env = {
        "TWILIO_ACCOUNT_SID": SID,
        "TWILIO_AUTH_TOKEN": f" {TOKEN}\n",
        "RECYCLECHECK_TWILIO_BASE_URL": "https://sandbox.example/twilio/",
    }
    provider = TwilioProvider.from_env(env)
    with responses.RequestsMock() as mock:
        mock.add(
            responses.GET,
            "https://sandbox.example/twilio/v2/PhoneNumbers/%2B14159929960",
            json=load("reassigned_no.json"),
            match=[matchers.header_matcher({"Authorization": EXPECTED_AUTH})],
        )
        assert provider.lookup(NUMBER, NO_DATE) == ChangedSince(NO_DATE, False)


@pytest.mark.parametrize("missing", ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"])
@pytest.mark.parametrize("blank", [True, False])
def test_from_env_names_the_missing_variable(missing: str, blank: bool) -> None:
    """A missing (or blank) variable is named; no value is shown."""
    env = {"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": TOKEN}
    if blank:
        env[missing] = "  "
    else:
        del env[missing]
    with pytest.raises(ConfigurationError, match=missing) as info:
        TwilioProvider.from_env(env)
    no_secrets(str(info.value))


def test_from_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a mapping, ``os.environ`` is read (only when asked)."""
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    monkeypatch.delenv("RECYCLECHECK_TWILIO_BASE_URL", raising=False)
    assert "lookups.twilio.com" in repr(TwilioProvider.from_env())


@pytest.mark.parametrize(
    "base_url",
    [
        "http://lookups.twilio.com",
        "ftp://lookups.twilio.com",
        "https://user:pass@lookups.twilio.com",
        "https://lookups.twilio.com/?x=1",
        "https://lookups.twilio.com/#frag",
        "https:///nohost",
        "https://lookups.twilio.com:99999",
        "https://lookups twilio.com",
        "lookups.twilio.com",
        "",
        None,
    ],
)
def test_bad_base_urls(base_url: Any) -> None:
    """Only https URLs without credentials, query or fragment are accepted."""
    with pytest.raises(ConfigurationError):
        TwilioProvider(SID, TOKEN, base_url=base_url)


def test_http_is_allowed_for_loopback_sandboxes() -> None:
    """A local sandbox may be plain http."""
    provider = TwilioProvider(SID, TOKEN, base_url="http://127.0.0.1:8080/")
    with responses.RequestsMock() as mock:
        mock.add(
            responses.GET,
            "http://127.0.0.1:8080/v2/PhoneNumbers/%2B14159929960",
            json=load("reassigned_yes.json"),
        )
        assert provider.lookup(NUMBER, YES_DATE) == ChangedSince(YES_DATE, True)


@pytest.mark.parametrize(
    ("sid", "token"),
    [("", TOKEN), (SID, ""), ("AC:1", TOKEN), ("AC 1", TOKEN), (SID, "tok\n"), (None, TOKEN)],
)
def test_bad_credentials(sid: Any, token: Any) -> None:
    """Credentials that would corrupt the Authorization header are refused."""
    with pytest.raises(ConfigurationError) as info:
        TwilioProvider(sid, token)
    no_secrets(str(info.value))


# -- properties ------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
PERMISSIVE = load("reassigned_no.json")
PATHS = [
    "valid",
    "phone_number",
    "reassigned_number",
    "reassigned_number.is_number_reassigned",
    "reassigned_number.last_verified_date",
    "reassigned_number.error_code",
]


def _is_permissive(answer: object) -> bool:
    return isinstance(answer, ChangedSince) and not answer.changed


@settings(max_examples=300)
@given(payload=json_values)
def test_arbitrary_json_is_never_permissive(payload: Any) -> None:
    """Arbitrary JSON gives a ProviderError or a non-permissive answer, nothing else."""
    try:
        answer = parse_lookup(payload, NUMBER, NO_DATE)
    except ProviderError:
        return
    assert not _is_permissive(answer)


@settings(max_examples=300)
@given(path=st.sampled_from(PATHS), value=json_values, drop=st.booleans())
def test_any_change_to_the_permissive_shape_is_not_permissive(
    path: str, value: Any, drop: bool
) -> None:
    """Only the exact documented "no" shape allows: changing any field it rests on blocks it."""
    body = copy.deepcopy(PERMISSIVE)
    parent: Any = body
    *parents, leaf = path.split(".")
    for key in parents:
        parent = parent[key]
    if not drop and value == parent[leaf] and type(value) is type(parent[leaf]):
        return
    if drop:
        del parent[leaf]
    else:
        parent[leaf] = value
    try:
        answer = parse_lookup(body, NUMBER, NO_DATE)
    except ProviderError:
        return
    assert not _is_permissive(answer)


@given(asked=st.dates(), echoed=st.dates())
def test_answers_hold_only_for_the_date_asked(asked: dt.date, echoed: dt.date) -> None:
    """An answer whose echoed date differs from the one asked is always refused."""
    body = copy.deepcopy(PERMISSIVE)
    body["reassigned_number"]["last_verified_date"] = echoed.isoformat()
    if asked == echoed:
        assert parse_lookup(body, NUMBER, asked) == ChangedSince(asked, False)
    else:
        with pytest.raises(ProviderResponseError):
            parse_lookup(body, NUMBER, asked)


@settings(max_examples=50, deadline=None)  # real HTTP stack, mocked socket
@given(since=st.dates(min_value=dt.date(1000, 1, 1)))
def test_last_verified_date_is_sent_as_yyyymmdd(since: dt.date) -> None:
    """``LastVerifiedDate`` is always the eight-digit form of ``since``."""
    with responses.RequestsMock() as mock:
        mock.add(
            responses.GET,
            URL,
            json={"code": 20003, "status": 401},
            status=401,
            match=[
                matchers.query_param_matcher(
                    {"Fields": "reassigned_number", "LastVerifiedDate": since.strftime("%Y%m%d")}
                )
            ],
        )
        with pytest.raises(ProviderAuthError):
            TwilioProvider(SID, TOKEN).lookup(NUMBER, since)


# -- live ------------------------------------------------------------------------------


@pytest.mark.live
def test_live_lookup() -> None:
    """Against the real service (RECYCLECHECK_LIVE=1 plus TWILIO_* and a test number)."""
    number = os.environ.get("RECYCLECHECK_TWILIO_LIVE_NUMBER")
    if not number:
        pytest.skip("set RECYCLECHECK_TWILIO_LIVE_NUMBER to an E.164 US number")
    provider = TwilioProvider.from_env()
    answer = provider.lookup(number, dt.date.today() - dt.timedelta(days=365))
    assert isinstance(answer, (ChangedSince, NoData, NotCovered))
