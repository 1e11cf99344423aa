"""The responses-based mocks: each real adapter, mocked at the requests layer, gets its script."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import responses

from recyclecheck import (
    ConfigurationError,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from recyclecheck.providers import (
    AliyunProvider,
    Answer,
    CamaraProvider,
    ChangedSince,
    LastChange,
    NoData,
    NotCovered,
    RndProvider,
    TelesignProvider,
    TwilioProvider,
)
from recyclecheck.testing import (
    Credentials,
    FakeProviderServer,
    mock_aliyun,
    mock_camara,
    mock_provider,
    mock_rnd,
    mock_telesign,
    mock_twilio,
)

SINCE = dt.date(2024, 3, 1)
REISSUED_ON = dt.date(2024, 5, 1)
US = {"reissued": "+12015550123", "never": "+12015550124", "unlisted": "+12015550199"}
CN = {"reissued": "+8613800138000", "never": "+8613900139000", "unlisted": "+8613600136000"}
SCRIPT: dict[str, Any] = {
    US["reissued"]: REISSUED_ON,
    US["never"]: None,
    CN["reissued"]: REISSUED_ON,
    CN["never"]: None,
}
CAMARA_ROOT = "https://camara.operator.example"
TOKEN_URL = "https://auth.operator.example/oauth2/token"


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


Setup = Callable[[responses.RequestsMock], Any]

#: provider -> (register the mock, build an adapter with any credentials, its numbers)
CASES: dict[str, tuple[Setup, Callable[[], Any], dict[str, str]]] = {
    "twilio": (
        lambda r: mock_twilio(r, SCRIPT),
        lambda: TwilioProvider("ACany", "any-token"),
        US,
    ),
    "telesign": (
        lambda r: mock_telesign(r, SCRIPT),
        lambda: TelesignProvider("any-customer", "YW55IGtleQ=="),
        US,
    ),
    "camara": (
        lambda r: mock_camara(r, SCRIPT, api_root=CAMARA_ROOT, token_url=TOKEN_URL),
        lambda: CamaraProvider(
            CAMARA_ROOT, token_url=TOKEN_URL, client_id="any", client_secret="any"
        ),
        US,
    ),
    "aliyun": (
        lambda r: mock_aliyun(r, SCRIPT),
        lambda: AliyunProvider("LTAIany", "any-secret", "any-code"),
        CN,
    ),
    "rnd": (
        lambda r: mock_rnd(r, SCRIPT),
        lambda: RndProvider("any-refresh-token", "ANYCO"),
        US,
    ),
}


def expected(provider: str, case: str) -> Answer:
    if case == "unlisted":
        return NoData()
    if provider == "telesign":
        return LastChange(REISSUED_ON) if case == "reissued" else LastChange(None, SINCE)
    return ChangedSince(SINCE, case == "reissued")


@pytest.mark.parametrize("provider", CASES)
@pytest.mark.parametrize("case", ["reissued", "never", "unlisted"])
def test_each_mock_answers_the_real_adapter(
    rsps: responses.RequestsMock, provider: str, case: str
) -> None:
    """Each mock answers its adapter (default base URLs, any credentials) from the script."""
    register, build, numbers = CASES[provider]
    register(rsps)
    adapter = build()
    try:
        assert adapter.lookup(numbers[case], SINCE) == expected(provider, case)
    finally:
        adapter.close()


def test_context_manager_form() -> None:
    """mock_provider() mocks one provider for a with block and yields the RequestsMock."""
    with mock_provider("twilio", {US["reissued"]: REISSUED_ON}) as mock:
        adapter = TwilioProvider("ACany", "any-token")
        assert adapter.lookup(US["reissued"], SINCE) == ChangedSince(SINCE, True)
        adapter.close()
        assert len(mock.calls) == 1
    with pytest.raises(ConfigurationError), mock_provider("nobody"):
        pass  # pragma: no cover


def test_not_covered_renders_each_providers_form() -> None:
    """NotCovered reaches each adapter as NotCovered (RND: no_data, its only unknown)."""
    script = {US["never"]: NotCovered(), CN["never"]: NotCovered()}
    with mock_provider("camara", script, api_root=CAMARA_ROOT) as _:
        adapter = CamaraProvider(CAMARA_ROOT, access_token="any")
        assert adapter.lookup(US["never"], SINCE) == NotCovered()
        adapter.close()
    with mock_provider("aliyun", script) as _:
        aliyun = AliyunProvider("LTAIany", "any-secret", "any-code", mask="MD5")
        assert aliyun.lookup(CN["never"], SINCE) == NotCovered()
        aliyun.close()
    with mock_provider("rnd", script) as _:
        rnd = RndProvider("any-refresh-token", "ANYCO")
        assert rnd.lookup(US["never"], SINCE) == NoData()
        rnd.close()


@pytest.mark.parametrize("provider", ["twilio", "telesign"])
def test_mocks_answer_only_what_the_service_covers(
    rsps: responses.RequestsMock, provider: str
) -> None:
    """The mocks share the server's coverage rules: a Chinese number scripted as never
    reissued is out of Twilio's and Telesign's coverage (60607, 2803): NotCovered."""
    register, build, _ = CASES[provider]
    register(rsps)
    adapter = build()
    try:
        assert adapter.lookup(CN["never"], SINCE) == NotCovered()
        assert adapter.lookup(US["never"], SINCE) == expected(provider, "never")
    finally:
        adapter.close()


@pytest.mark.parametrize(
    ("error", "raised"),
    [
        (ProviderTimeout("scripted"), ProviderTimeout),
        (ProviderRateLimited("scripted", retry_after=3), ProviderRateLimited),
        (ProviderUnavailable("scripted"), ProviderUnavailable),
        (ProviderAuthError("scripted"), ProviderAuthError),
    ],
)
def test_scripted_errors_fail_on_the_wire(
    rsps: responses.RequestsMock, error: ProviderError, raised: type[ProviderError]
) -> None:
    """A number scripted with a ProviderError fails through the adapter as that error."""
    mock_telesign(rsps, {US["never"]: error})
    adapter = TelesignProvider("any-customer", "YW55IGtleQ==")
    try:
        with pytest.raises(raised) as info:
            adapter.lookup(US["never"], SINCE)
    finally:
        adapter.close()
    if isinstance(error, ProviderRateLimited):
        assert info.value.retry_after == 3  # type: ignore[attr-defined]


def test_credentials_are_checked_when_given(rsps: responses.RequestsMock) -> None:
    """With credentials=, the mock verifies signatures like the server: wrong ones are refused."""
    credentials = Credentials()
    mock_aliyun(rsps, SCRIPT, credentials=credentials)
    right = AliyunProvider(
        credentials.aliyun_access_key_id,
        credentials.aliyun_access_key_secret,
        credentials.aliyun_auth_code,
    )
    wrong = AliyunProvider(credentials.aliyun_access_key_id, "wrong", credentials.aliyun_auth_code)
    try:
        assert right.lookup(CN["never"], SINCE) == ChangedSince(SINCE, False)
        with pytest.raises(ProviderAuthError) as info:
            wrong.lookup(CN["never"], SINCE)
    finally:
        right.close()
        wrong.close()
    assert info.value.code == "SignatureDoesNotMatch"


def test_request_shape_is_validated(rsps: responses.RequestsMock) -> None:
    """Requests the real service would refuse are refused in its format."""
    mock_twilio(rsps, SCRIPT)
    mock_camara(rsps, SCRIPT, api_root=CAMARA_ROOT)
    with requests.Session() as http:
        no_date = http.get(
            "https://lookups.twilio.com/v2/PhoneNumbers/%2B12015550124",
            params={"Fields": "reassigned_number"},
        )
        no_number = http.post(
            CAMARA_ROOT + "/number-recycling/v0.2/check",
            json={"specifiedDate": "2024-02-29"},
            headers={"Authorization": "Bearer any"},
        )
        no_token = http.post(
            CAMARA_ROOT + "/number-recycling/v0.2/check",
            json={"phoneNumber": US["never"], "specifiedDate": "2024-02-29"},
        )
    assert (no_date.status_code, no_date.json()["code"]) == (400, 60600)
    assert (no_number.status_code, no_number.json()["code"]) == (422, "MISSING_IDENTIFIER")
    assert (no_token.status_code, no_token.json()["code"]) == (401, "UNAUTHENTICATED")


def test_mocks_and_server_render_the_same_answer(rsps: responses.RequestsMock) -> None:
    """One renderer per wire format: the mock's body equals the fake server's."""
    body = {"tnList": [{"tn": "2015550123", "date": "2024-03-01", "companyId": "FAKECO"}]}
    mock_rnd(rsps, SCRIPT)
    rsps.add_passthru("http://127.0.0.1")
    with FakeProviderServer(SCRIPT) as server, requests.Session() as http:
        http.trust_env = False
        token = http.post(
            server.url + "/b/public/api/idToken",
            json={"refreshToken": server.credentials.rnd_refresh_token},
        ).json()["idToken"]
        from_server = http.post(
            server.url + "/api/tn", json=body, headers={"Authorization": token}
        ).json()
        from_mock = http.post(
            "https://api.reassigned.us/api/tn", json=body, headers={"Authorization": "any"}
        ).json()
    assert from_server == from_mock
    assert from_mock["replies"][0]["disconnected"] == "yes"


def test_bad_base_urls_are_refused(rsps: responses.RequestsMock) -> None:
    """A mock needs an http(s) base URL."""
    with pytest.raises(ConfigurationError):
        mock_twilio(rsps, SCRIPT, base_url="ftp://lookups.example")
