"""FakeProviderServer: the real adapters against a real local server, for every wire format."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
import requests

import recyclecheck.testing
from recyclecheck import (
    ConfigurationError,
    Guard,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderTimeout,
    ProviderUnavailable,
    Reason,
)
from recyclecheck._deadline import deadline_scope
from recyclecheck.providers import (
    AliyunProvider,
    Answer,
    ChangedSince,
    LastChange,
    NoData,
    NotCovered,
    Provider,
    RndProvider,
    SandboxProvider,
    TelesignProvider,
    TwilioProvider,
    _acs3,
    _telesign_auth,
)
from recyclecheck.providers._jwt import CLIENT_ASSERTION_TYPE, JwtSigner, client_assertion_claims
from recyclecheck.providers._wire import basic_authorization
from recyclecheck.testing import (
    AuthRefused,
    ChunkDrip,
    Credentials,
    FakeProviderServer,
    Hang,
    HeaderDrip,
    HtmlErrorPage,
    HugeBody,
    Latency,
    MalformedJson,
    RateLimit,
    Redirect,
    Reset,
    ServerError,
    SlowDrip,
)
from recyclecheck.testing import _server as fake_server_module

SINCE = dt.date(2024, 3, 1)
REISSUED_ON = dt.date(2024, 5, 1)
US_REISSUED, US_NEVER, US_UNLISTED, US_NOT_COVERED = (
    "+12015550123",
    "+12015550124",
    "+12015550199",
    "+12015550125",
)
CN_REISSUED, CN_NEVER, CN_UNLISTED, CN_NOT_COVERED = (
    "+8613800138000",
    "+8613900139000",
    "+8613600136000",
    "+8613700137000",
)
NUMBERS: dict[str, Any] = {
    US_REISSUED: REISSUED_ON,
    US_NEVER: None,
    US_NOT_COVERED: NotCovered(),
    CN_REISSUED: REISSUED_ON,
    CN_NEVER: None,
    CN_NOT_COVERED: NotCovered(),
}

Factory = Callable[[FakeProviderServer], Any]

ADAPTERS: dict[str, Factory] = {
    "twilio": lambda s: s.twilio(),
    "telesign-digest": lambda s: s.telesign(),
    "telesign-basic": lambda s: s.telesign("basic"),
    "camara-token": lambda s: s.camara("token"),
    "camara-secret": lambda s: s.camara("secret"),
    "camara-private_key_jwt": lambda s: s.camara("private_key_jwt"),
    "aliyun-sha256": lambda s: s.aliyun(),
    "aliyun-md5": lambda s: s.aliyun("MD5"),
    "aliyun-normal": lambda s: s.aliyun("NORMAL"),
    "rnd": lambda s: s.rnd(),
}
#: One adapter per wire format, for the fault tests.
ONE_PER_WIRE = ["twilio", "telesign-digest", "camara-secret", "aliyun-sha256", "rnd"]


def home(kind: str) -> tuple[str, str, str, str]:
    """(reissued, never, unlisted, not covered) numbers an adapter can be asked about."""
    if kind.startswith("aliyun"):
        return CN_REISSUED, CN_NEVER, CN_UNLISTED, CN_NOT_COVERED
    return US_REISSUED, US_NEVER, US_UNLISTED, US_NOT_COVERED


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(NUMBERS) as fake:
        yield fake


@contextmanager
def adapter(server: FakeProviderServer, kind: str, **overrides: Any) -> Iterator[Any]:
    """An adapter wired to the server, closed afterwards."""
    if overrides:
        family, _, auth = kind.partition("-")
        method = getattr(server, family)
        provider = method(auth, **overrides) if auth else method(**overrides)
    else:
        provider = ADAPTERS[kind](server)
    try:
        yield provider
    finally:
        provider.close()


def within(seconds: float) -> Any:
    return deadline_scope(time.monotonic() + seconds)


@contextmanager
def session() -> Iterator[requests.Session]:
    """A plain requests session; urllib3's request-line log (paths hold numbers) muted."""
    pool_log = logging.getLogger("urllib3.connectionpool")
    level = pool_log.level
    pool_log.setLevel(logging.INFO)
    try:
        with requests.Session() as raw:
            raw.trust_env = False
            yield raw
    finally:
        pool_log.setLevel(level)


# -- answers ---------------------------------------------------------------------------


def expected(kind: str, case: str) -> Answer:
    """What each adapter makes of each scripted case."""
    if case == "unlisted":
        return NoData()
    answers: dict[str, Answer]
    if kind.startswith("telesign"):
        answers = {
            "reissued": LastChange(REISSUED_ON),
            "never": LastChange(None, SINCE),
            "not_covered": NotCovered(),
        }
        return answers[case]
    if kind == "rnd" and case == "not_covered":
        return NoData()  # the RND says "no_data" for whatever it cannot evaluate
    answers = {
        "reissued": ChangedSince(SINCE, True),
        "never": ChangedSince(SINCE, False),
        "not_covered": NotCovered(),
    }
    return answers[case]


@pytest.mark.parametrize("kind", ADAPTERS)
@pytest.mark.parametrize("case", ["reissued", "never", "unlisted", "not_covered"])
def test_each_adapter_gets_the_scripted_answer(
    server: FakeProviderServer, kind: str, case: str
) -> None:
    """Reissued, never reissued, unlisted and not covered come back as each adapter's Answer."""
    numbers = dict(zip(["reissued", "never", "unlisted", "not_covered"], home(kind), strict=True))
    with adapter(server, kind) as provider:
        assert isinstance(provider, Provider)
        assert provider.lookup(numbers[case], SINCE) == expected(kind, case)


@pytest.mark.parametrize(
    ("kind", "number", "answer"),
    [
        ("twilio", US_REISSUED, ChangedSince(dt.date(2024, 5, 2), False)),
        ("telesign-digest", US_REISSUED, LastChange(REISSUED_ON, dt.date(2024, 5, 2))),
        ("camara-token", US_REISSUED, ChangedSince(dt.date(2024, 5, 2), False)),
        ("aliyun-sha256", CN_REISSUED, ChangedSince(dt.date(2024, 5, 2), False)),
        ("rnd", US_REISSUED, ChangedSince(dt.date(2024, 5, 2), False)),
    ],
)
def test_a_reissue_before_the_date_asked_is_no_change(
    server: FakeProviderServer, kind: str, number: str, answer: Answer
) -> None:
    """A reissue the day before `since` is not a change since then, in every wire format."""
    with adapter(server, kind) as provider:
        assert provider.lookup(number, dt.date(2024, 5, 2)) == answer


@pytest.mark.parametrize(
    ("kind", "number", "answer"),
    [
        ("twilio", US_NEVER, NoData()),  # "no_data_available": asked before coverage
        ("telesign-digest", US_NEVER, NotCovered()),  # cannot_be_determined, tracking later
        ("camara-token", US_NEVER, NotCovered()),  # OUT_OF_RANGE
        ("aliyun-sha256", CN_NEVER, NoData()),  # VerifyResult "0"
        ("rnd", US_NEVER, NoData()),  # "no_data"
    ],
)
def test_coverage_starting_after_the_date_asked(
    server: FakeProviderServer, kind: str, number: str, answer: Answer
) -> None:
    """LastChange(None, covered_since after since) renders as each provider's "too early"."""
    server.script(number, LastChange(None, dt.date(2025, 1, 1)))
    with adapter(server, kind) as provider:
        assert provider.lookup(number, SINCE) == answer


# -- coverage: each fake answers what its service covers, and only that ------------------

#: Valid numbers outside the US, each scripted as never reissued (a "no" if it were covered).
CA_NEVER, PR_REISSUED, GB_NEVER = "+14165550123", "+17875550123", "+442079460018"
#: Mainland mobile numbers Alibaba cannot check: China Broadnet and virtual operators.
CN_BROADNET, CN_MVNO_170, CN_MVNO_165 = "+8619212345678", "+8617012345678", "+8616512345678"
FOREIGN = [CN_NEVER, CA_NEVER, GB_NEVER]


@pytest.fixture
def covered_server() -> Iterator[FakeProviderServer]:
    """The usual numbers, plus numbers the coverage rules concern, all scripted."""
    scripted = {
        **NUMBERS,
        CA_NEVER: None,
        GB_NEVER: None,
        PR_REISSUED: REISSUED_ON,
        CN_BROADNET: None,
        CN_MVNO_170: REISSUED_ON,
        CN_MVNO_165: None,
    }
    with FakeProviderServer(scripted) as fake:
        yield fake


def test_the_coverage_numbers_are_valid_where_they_say() -> None:
    """The numbers below really are of the regions their names say."""
    regions = {
        CA_NEVER: "CA",
        PR_REISSUED: "PR",
        GB_NEVER: "GB",
        CN_BROADNET: "CN",
        CN_MVNO_170: "CN",
        CN_MVNO_165: "CN",
        US_NEVER: "US",
    }
    for number, region in regions.items():
        parsed = phonenumbers.parse(number)
        assert phonenumbers.is_valid_number(parsed), number
        assert phonenumbers.region_code_for_number(parsed) == region, number


@pytest.mark.parametrize("number", FOREIGN)
def test_twilio_answers_a_number_outside_the_us_as_an_unsupported_country(
    covered_server: FakeProviderServer, number: str
) -> None:
    """Reassigned Number is "only available for US phone numbers": Twilio's package error
    60607 (Lookup Unsupported Country), whatever the script, which the adapter reads as
    NotCovered, and the Guard as not_covered."""
    with adapter(covered_server, "twilio") as provider:
        assert provider.lookup(number, SINCE) == NotCovered()
        decision = Guard(provider, timeout=2).check(number, bound_at=dt.date(2024, 3, 2))
    assert decision.reason is Reason.NOT_COVERED
    c = covered_server.credentials
    with session() as http:
        reply = http.get(
            covered_server.url + "/v2/PhoneNumbers/" + urllib.parse.quote(number, safe=""),
            params={"Fields": "reassigned_number", "LastVerifiedDate": "20240301"},
            auth=(c.twilio_account_sid, c.twilio_auth_token),
            timeout=5,
        )
    assert reply.status_code == 200
    body = reply.json()
    assert (body["valid"], body["phone_number"]) == (True, number)
    assert body["country_code"] == phonenumbers.region_code_for_number(phonenumbers.parse(number))
    assert body["reassigned_number"] == {
        "last_verified_date": None,
        "is_number_reassigned": None,
        "error_code": "60607",
    }


@pytest.mark.parametrize("kind", ["telesign-digest", "telesign-basic"])
@pytest.mark.parametrize("number", [*FOREIGN, PR_REISSUED])
def test_telesign_answers_a_number_outside_the_us_out_of_coverage(
    covered_server: FakeProviderServer, kind: str, number: str
) -> None:
    """The number_deactivation add-on covers the United States: anything else (a US
    territory included) gets add-on status 2803, which the adapter reads as NotCovered."""
    with adapter(covered_server, kind) as provider:
        assert provider.lookup(number, SINCE) == NotCovered()
        assert provider.lookup(US_NEVER, SINCE) == LastChange(None, SINCE)


def test_telesign_out_of_coverage_on_the_wire(covered_server: FakeProviderServer) -> None:
    """The body is Telesign's partial completion: Phone ID 301, add-on 2803, no dates."""
    body = b'{"addons":{"number_deactivation":{"last_verified":"2024-03-01T00:00:00Z"}}}'
    c = covered_server.credentials
    resource = "/v1/phoneid/" + CA_NEVER[1:]
    headers = _telesign_auth.digest_headers(
        c.telesign_customer_id,
        _telesign_auth.decode_api_key(c.telesign_api_key),
        method="POST",
        resource=resource,
        date=_telesign_auth.http_date(time.time()),
        nonce=_telesign_auth.new_nonce(),
        content_type="application/json",
        body=body,
    )
    with session() as http:
        reply = http.post(covered_server.url + resource, data=body, headers=headers, timeout=5)
    assert reply.status_code == 200
    payload = reply.json()
    assert payload["status"]["code"] == 301
    assert payload["number_deactivation"] == {
        "status": {"code": 2803, "description": "Out of coverage"}
    }


@pytest.mark.parametrize("number", [*FOREIGN, "+12425550123"])
def test_rnd_never_sees_numbers_outside_the_us(
    covered_server: FakeProviderServer, number: str
) -> None:
    """The RND adapter answers NotCovered for any number outside the US, without a request."""
    with adapter(covered_server, "rnd") as provider:
        assert provider.lookup(number, SINCE) == NotCovered()
    assert covered_server.requests == []


def rnd_query(server: FakeProviderServer, tn: str, date: str) -> str:
    """The RND's ``disconnected`` for one tn and date, asked over plain HTTP."""
    with session() as http:
        token = http.post(
            server.url + "/b/public/api/idToken",
            json={"refreshToken": server.credentials.rnd_refresh_token},
            timeout=5,
        ).json()["idToken"]
        reply = http.post(
            server.url + "/api/tn",
            json={"tnList": [{"tn": tn, "date": date, "companyId": "FAKECO"}]},
            headers={"Authorization": token},
            timeout=5,
        )
    assert reply.status_code == 200
    (item,) = reply.json()["replies"]
    assert (item["tn"], item["dateProvided"]) == (tn, date)
    return str(item["disconnected"])


def test_rnd_holds_no_record_of_a_number_outside_the_us(
    covered_server: FakeProviderServer,
) -> None:
    """Asked anyway (as a client other than the adapter could), the RND answers a Canadian
    number as one it holds no record of: "no" from 2021-01-27 on, "no_data" before, even
    when the script says it was reissued.  That "no" is why the adapter never asks."""
    covered_server.script(CA_NEVER, REISSUED_ON)
    assert rnd_query(covered_server, CA_NEVER[2:], "2024-03-01") == "no"
    assert rnd_query(covered_server, CA_NEVER[2:], "2021-01-27") == "no"
    assert rnd_query(covered_server, CA_NEVER[2:], "2021-01-26") == "no_data"
    # A territory is covered: its script stands.
    assert rnd_query(covered_server, PR_REISSUED[2:], "2024-03-01") == "yes"


def test_rnd_covers_the_us_territories(covered_server: FakeProviderServer) -> None:
    """A Puerto Rico number goes to the RND and gets its scripted answer."""
    with adapter(covered_server, "rnd") as provider:
        assert provider.lookup(PR_REISSUED, SINCE) == ChangedSince(SINCE, True)
    assert [r.number for r in covered_server.requests if r.endpoint == "lookup"] == [PR_REISSUED]


@pytest.mark.parametrize(
    ("kind", "since", "answer"),
    [
        ("twilio", dt.date(2020, 12, 31), NoData()),  # no_data_available: before its data
        ("twilio", dt.date(2021, 1, 1), ChangedSince(dt.date(2021, 1, 1), False)),
        ("rnd", dt.date(2021, 1, 26), NoData()),  # no record, before 2021-01-27: no_data
        ("rnd", dt.date(2021, 1, 27), ChangedSince(dt.date(2021, 1, 27), False)),
        ("telesign-digest", dt.date(2019, 1, 1), LastChange(None, dt.date(2019, 1, 1))),
    ],
)
def test_a_date_before_the_data_begins_is_no_data(
    server: FakeProviderServer, kind: str, since: dt.date, answer: Answer
) -> None:
    """Twilio's disconnect data and the RND's records begin in 2021: a never-reissued number
    asked about an earlier date is "no data" there, never "no".  Telesign gives each number
    its own tracking start instead (scripted with covered_since)."""
    with adapter(server, kind) as provider:
        assert provider.lookup(US_NEVER, since) == answer


def test_the_rnd_vouches_before_2021_only_for_a_disconnection_on_record(
    server: FakeProviderServer,
) -> None:
    """A disconnection reported to the RND (from 2020-07-27) makes a later date a "no"; a
    reissue after the date asked is a "yes" whatever the date."""
    server.script(US_NEVER, dt.date(2020, 9, 1))
    server.script(US_UNLISTED, dt.date(2020, 7, 1))  # before the records began
    with adapter(server, "rnd") as provider:
        assert provider.lookup(US_NEVER, dt.date(2020, 12, 1)) == ChangedSince(
            dt.date(2020, 12, 1), False
        )
        assert provider.lookup(US_UNLISTED, dt.date(2020, 12, 1)) == NoData()
        assert provider.lookup(US_REISSUED, dt.date(2019, 1, 1)) == ChangedSince(
            dt.date(2019, 1, 1), True
        )


@pytest.mark.parametrize("kind", ["aliyun-sha256", "aliyun-md5", "aliyun-normal"])
@pytest.mark.parametrize("number", [CN_BROADNET, CN_MVNO_170, CN_MVNO_165])
def test_aliyun_cannot_check_broadnet_and_virtual_operator_numbers(
    covered_server: FakeProviderServer, kind: str, number: str
) -> None:
    """China Broadnet (192) and MVNO numbers get RequestNumberNotSupported, whatever the
    script: the adapter reads it as NotCovered.  Other mobile numbers are answered."""
    with adapter(covered_server, kind) as provider:
        assert provider.lookup(number, SINCE) == NotCovered()
        assert provider.lookup(CN_NEVER, SINCE) == ChangedSince(SINCE, False)


def test_aliyun_unsupported_blocks_in_clear_even_unscripted(
    covered_server: FakeProviderServer,
) -> None:
    """Digits sent in clear show the block even for an unscripted number; an unscripted
    hash cannot be read, so it stays "cannot be determined" (NoData)."""
    unscripted = "+8619298765432"
    with adapter(covered_server, "aliyun-normal") as provider:
        assert provider.lookup(unscripted, SINCE) == NotCovered()
    with adapter(covered_server, "aliyun-sha256") as provider:
        assert provider.lookup(unscripted, SINCE) == NoData()
    in_clear, hashed = covered_server.requests
    assert (in_clear.number, hashed.number) == (unscripted, None)


@pytest.mark.parametrize("number", [US_UNLISTED, "+4915123456789"])
def test_camara_operator_does_not_serve_unscripted_numbers(
    server: FakeProviderServer, number: str
) -> None:
    """The fake operator's subscribers are the scripted numbers; any other number is one
    it does not serve: 404 IDENTIFIER_NOT_FOUND, which the adapter reads as NoData."""
    with adapter(server, "camara-token") as provider:
        assert provider.lookup(number, SINCE) == NoData()


def test_camara_refuses_a_date_in_the_future_as_out_of_range(server: FakeProviderServer) -> None:
    """A specifiedDate after tomorrow (UTC) is outside what an operator can evaluate:
    400 OUT_OF_RANGE, the answer the adapter reads as NotCovered (as for a scripted
    NotCovered above).  Tomorrow itself is allowed: it is today somewhere."""
    today = dt.datetime.now(dt.timezone.utc).date()
    headers = {"Authorization": f"Bearer {server.credentials.camara_access_token}"}
    url = server.url + "/number-recycling/v0.2/check"
    with session() as http:
        answers = [
            http.post(
                url,
                json={"phoneNumber": US_NEVER, "specifiedDate": day.isoformat()},
                headers=headers,
                timeout=5,
            )
            for day in (today + dt.timedelta(days=1), today + dt.timedelta(days=2))
        ]
    tomorrow, later = answers
    assert (tomorrow.status_code, tomorrow.json()) == (200, {"phoneNumberRecycled": False})
    assert later.status_code == 400
    assert later.json() == {
        "status": 400,
        "code": "OUT_OF_RANGE",
        "message": "Client specified an invalid range.",
    }


def test_the_sandbox_server_answers_the_demo_numbers_as_each_service_would() -> None:
    """What `recyclecheck sandbox serve` runs, driven through from_env(): a Chinese demo
    number is not covered by Twilio, Telesign or the RND, and is answered by Alibaba."""
    demo = SandboxProvider.demo().scripted
    bound_at = dt.date(2022, 5, 10)
    with FakeProviderServer(demo) as fake:
        env = fake.environment()
        reasons = {}
        for name, cls in [
            ("twilio", TwilioProvider),
            ("telesign", TelesignProvider),
            ("rnd", RndProvider),
            ("aliyun", AliyunProvider),
        ]:
            with Guard(cls.from_env(env), timeout=2) as guard:
                reasons[name] = guard.check("+86 139 0013 9000", bound_at=bound_at).reason
    assert reasons == {
        "twilio": Reason.NOT_COVERED,
        "telesign": Reason.NOT_COVERED,
        "rnd": Reason.NOT_COVERED,
        "aliyun": Reason.NOT_REISSUED,
    }


def test_script_replaces_an_answer_and_reset_restores_it(server: FakeProviderServer) -> None:
    """script() changes a number's answer at once; reset() goes back to the constructor's."""
    with adapter(server, "twilio") as provider:
        server.script("+1 201-555-0124", dt.date(2024, 4, 1))
        assert provider.lookup(US_NEVER, SINCE) == ChangedSince(SINCE, True)
        server.reset()
        assert provider.lookup(US_NEVER, SINCE) == ChangedSince(SINCE, False)


def test_from_file_reads_the_sandbox_format(tmp_path: Path) -> None:
    """from_file() takes the sandbox JSON file, so `recyclecheck sandbox serve` can reuse it."""
    data = {"numbers": {US_NEVER: {"reissued_on": "2024-04-01"}, US_REISSUED: {"no_data": True}}}
    path = tmp_path / "numbers.json"
    path.write_text(json.dumps(data))
    with FakeProviderServer.from_file(path) as fake, adapter(fake, "rnd") as provider:
        assert provider.lookup(US_NEVER, SINCE) == ChangedSince(SINCE, True)
        assert provider.lookup(US_REISSUED, SINCE) == NoData()


def test_script_values_are_validated_like_the_sandbox() -> None:
    """Bad numbers and values are refused with the sandbox's ConfigurationError."""
    with pytest.raises(ConfigurationError):
        FakeProviderServer({"not a number": None})
    with pytest.raises(ConfigurationError):
        FakeProviderServer({US_NEVER: "2024-01-01"})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("error", "raised"),
    [
        (ProviderRateLimited("scripted", retry_after=5), ProviderRateLimited),
        (ProviderUnavailable("scripted"), ProviderUnavailable),
        (ProviderAuthError("scripted"), ProviderAuthError),
        (ProviderResponseError("scripted"), ProviderResponseError),
    ],
)
def test_numbers_scripted_with_an_error_fail_on_the_wire(
    error: ProviderError, raised: type[ProviderError]
) -> None:
    """A ProviderError script fails the way the provider would, through the real adapter."""
    with FakeProviderServer({US_NEVER: error}) as fake, adapter(fake, "twilio") as provider:
        with pytest.raises(raised) as info:
            provider.lookup(US_NEVER, SINCE)
        if isinstance(error, ProviderRateLimited):
            assert info.value.retry_after == 5  # type: ignore[attr-defined]


# -- auth ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "overrides", "status", "code"),
    [
        ("twilio", {"auth_token": "wrong-token"}, 401, "20003"),
        ("twilio", {"account_sid": "AC" + "0" * 32}, 401, "20003"),
        ("telesign-digest", {"api_key": "d3Jvbmcga2V5"}, 401, "10008"),
        ("telesign-basic", {"api_key": "d3Jvbmcga2V5"}, 401, "10008"),
        ("camara-token", {"access_token": "not-the-token"}, 401, "UNAUTHENTICATED"),
        ("camara-secret", {"client_secret": "wrong"}, 401, "invalid_client"),
        ("camara-secret", {"client_id": "someone-else"}, 401, "invalid_client"),
        ("camara-private_key_jwt", {"key_id": "another-kid"}, 401, "invalid_client"),
        ("aliyun-sha256", {"access_key_secret": "wrong"}, 400, "SignatureDoesNotMatch"),
        ("aliyun-sha256", {"access_key_id": "LTAIunknown"}, 404, "InvalidAccessKeyId.NotFound"),
        ("aliyun-sha256", {"auth_code": "wrong"}, 403, "Forbidden.AuthCode"),
        ("rnd", {"refresh_token": "wrong"}, 401, None),
        ("rnd", {"company_id": "OTHERCO"}, 403, None),
    ],
)
def test_bad_credentials_are_refused_like_the_real_service(
    server: FakeProviderServer,
    kind: str,
    overrides: dict[str, Any],
    status: int,
    code: str | None,
) -> None:
    """Wrong secrets, keys and signatures get the provider's own refusal: ProviderAuthError."""
    number = home(kind)[1]
    with adapter(server, kind, **overrides) as provider, pytest.raises(ProviderAuthError) as info:
        provider.lookup(number, SINCE)
    assert info.value.status == status
    if code is not None:
        assert info.value.code == code


def test_private_key_jwt_with_another_key_is_invalid_client(server: FakeProviderServer) -> None:
    """An assertion signed by a key the server does not know is refused at the token endpoint."""
    stranger = Credentials().camara_private_key
    with (
        adapter(server, "camara-private_key_jwt", private_key=stranger) as provider,
        pytest.raises(ProviderAuthError) as info,
    ):
        provider.lookup(US_NEVER, SINCE)
    assert info.value.code == "invalid_client"
    assert [r.endpoint for r in server.requests] == ["token"]


def telesign_request(server: FakeProviderServer, body: bytes, sent: bytes) -> requests.Response:
    c = server.credentials
    resource = "/v1/phoneid/12015550124"
    headers = _telesign_auth.digest_headers(
        c.telesign_customer_id,
        _telesign_auth.decode_api_key(c.telesign_api_key),
        method="POST",
        resource=resource,
        date=_telesign_auth.http_date(time.time()),
        nonce=_telesign_auth.new_nonce(),
        content_type="application/json",
        body=body,
    )
    with session() as http:
        return http.post(server.url + resource, data=sent, headers=headers, timeout=5)


def test_telesign_signature_covers_the_body(server: FakeProviderServer) -> None:
    """A TSA signature over one body does not authorise another: 401, code 10008."""
    body = b'{"addons":{"number_deactivation":{"last_verified":"2024-03-01T00:00:00Z"}}}'
    tampered = body.replace(b"2024-03-01", b"2020-03-01")
    refused = telesign_request(server, body, tampered)
    assert refused.status_code == 401
    assert refused.json()["errors"][0] == {"code": 10008, "description": "Invalid signature."}
    accepted = telesign_request(server, body, body)
    assert accepted.status_code == 200
    deactivation = accepted.json()["number_deactivation"]
    assert deactivation["recycled_since_last_verification"] == "not_recycled"


def test_telesign_without_authorization_is_10009(server: FakeProviderServer) -> None:
    """No Authorization header at all: 401 with code 10009."""
    with session() as http:
        reply = http.post(server.url + "/v1/phoneid/12015550124", data=b"{}", timeout=5)
    assert reply.status_code == 401
    assert reply.json()["status"]["code"] == 10009


def aliyun_signed(server: FakeProviderServer, *, date: dt.datetime, nonce: str) -> Any:
    c = server.credentials
    return _acs3.sign_request(
        access_key_id=c.aliyun_access_key_id,
        access_key_secret=c.aliyun_access_key_secret,
        method="POST",
        host=server.url.split("://", 1)[1],
        action="DescribePhoneTwiceTelVerify",
        version="2020-02-17",
        params={
            "AuthCode": c.aliyun_auth_code,
            "InputNumber": hashlib.sha256(b"13900139000").hexdigest(),
            "Mask": "SHA256",
            "StartTime": "2024-03-01 00:00:00",
        },
        body=b"",
        date=date,
        nonce=nonce,
    )


def test_aliyun_refuses_replayed_nonces_and_stale_dates(server: FakeProviderServer) -> None:
    """The same signed request twice is SignatureNonceUsed; an old x-acs-date is refused."""
    now = dt.datetime.now(dt.timezone.utc)
    signed = aliyun_signed(server, date=now, nonce="a1b2c3")
    with session() as http:
        url = f"{server.url}/?{signed.query_string}"
        first = http.post(url, headers=dict(signed.headers), data=b"", timeout=5)
        second = http.post(url, headers=dict(signed.headers), data=b"", timeout=5)
        stale = aliyun_signed(server, date=now - dt.timedelta(hours=1), nonce="d4e5f6")
        old = http.post(
            f"{server.url}/?{stale.query_string}", headers=dict(stale.headers), timeout=5
        )
    assert first.status_code == 200
    assert first.json()["Data"]["VerifyResult"] == "2"
    assert (second.status_code, second.json()["Code"]) == (400, "SignatureNonceUsed")
    assert (old.status_code, old.json()["Code"]) == (400, "InvalidTimeStamp.Expired")


def test_camara_client_assertions_are_single_use(server: FakeProviderServer) -> None:
    """A private_key_jwt assertion (its jti) cannot be replayed at the token endpoint."""
    c = server.credentials
    token_url = server.url + "/oauth2/token"
    claims = client_assertion_claims(c.camara_client_id, token_url, now=time.time(), jti="one")
    assertion = JwtSigner(c.camara_private_key, key_id=c.camara_key_id).sign(claims)
    form = {
        "grant_type": "client_credentials",
        "scope": "number-recycling:check",
        "client_id": c.camara_client_id,
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    with session() as http:
        first = http.post(token_url, data=form, timeout=5)
        again = http.post(token_url, data=form, timeout=5)
    assert first.status_code == 200
    grant = first.json()
    assert grant["token_type"] == "Bearer"
    assert grant["expires_in"] == 3600
    assert (again.status_code, again.json()["error"]) == (401, "invalid_client")


def test_camara_echoes_x_correlator(server: FakeProviderServer) -> None:
    """Every check answer, errors included, echoes the request's x-correlator."""
    headers = {
        "Authorization": f"Bearer {server.credentials.camara_access_token}",
        "x-correlator": "abc-123",
    }
    url = server.url + "/number-recycling/v0.2/check"
    with session() as http:
        ok = http.post(
            url, json={"phoneNumber": US_NEVER, "specifiedDate": "2024-02-29"}, headers=headers
        )
        bad = http.post(url, json={"specifiedDate": "2024-02-29"}, headers=headers)
        anonymous = http.post(url, json={}, headers={"x-correlator": "xyz"})
    assert ok.json() == {"phoneNumberRecycled": False}
    assert ok.headers["x-correlator"] == "abc-123"
    assert (bad.status_code, bad.json()["code"]) == (422, "MISSING_IDENTIFIER")
    assert bad.headers["x-correlator"] == "abc-123"
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "UNAUTHENTICATED")
    assert anonymous.headers["x-correlator"] == "xyz"


@pytest.mark.parametrize("kind", ["camara-secret", "rnd"])
def test_expired_tokens_are_refused_then_renewed(server: FakeProviderServer, kind: str) -> None:
    """After expire_tokens(): one 401 (the adapter drops its token), then a fresh token works."""
    with adapter(server, kind) as provider:
        assert provider.lookup(US_NEVER, SINCE) == ChangedSince(SINCE, False)
        server.expire_tokens()
        with pytest.raises(ProviderAuthError) as info:
            provider.lookup(US_NEVER, SINCE)
        assert info.value.retryable
        assert provider.lookup(US_NEVER, SINCE) == ChangedSince(SINCE, False)
    assert [r.endpoint for r in server.requests] == ["token", "lookup", "lookup", "token", "lookup"]


def test_guard_rides_out_an_expired_token(server: FakeProviderServer) -> None:
    """Through a Guard the refused token costs one retry, not the login."""
    with adapter(server, "camara-secret") as provider:
        first = Guard(provider, timeout=2).check(US_NEVER, bound_at=dt.date(2024, 3, 2))
        assert first.reason is Reason.NOT_REISSUED
        server.expire_tokens()
        # A second Guard (its own cache) sharing the adapter, which still holds the old token.
        decision = Guard(provider, timeout=2).check(US_NEVER, bound_at=dt.date(2024, 3, 2))
    assert decision.reason is Reason.NOT_REISSUED
    assert [r.endpoint for r in server.requests] == ["token", "lookup", "lookup", "token", "lookup"]


# -- faults ----------------------------------------------------------------------------

FAULTS: list[tuple[Any, type[ProviderError], int | None]] = [
    (RateLimit(7), ProviderRateLimited, 429),
    (ServerError(503), ProviderUnavailable, 503),
    (ServerError(500), ProviderUnavailable, 500),
    (AuthRefused(), ProviderAuthError, None),
    (Reset(), ProviderUnavailable, None),
    (MalformedJson(), ProviderResponseError, 200),
    (HtmlErrorPage(502), ProviderUnavailable, 502),
    (HtmlErrorPage(200), ProviderResponseError, 200),
    (HugeBody(), ProviderResponseError, 200),
    (HugeBody(size=1024 * 1024, declare_length=False), ProviderResponseError, 200),
    (Redirect(), ProviderResponseError, 302),
]


@pytest.mark.parametrize("kind", ONE_PER_WIRE)
@pytest.mark.parametrize(("fault", "raised", "status"), FAULTS, ids=repr)
def test_each_fault_gives_the_expected_provider_error(
    server: FakeProviderServer,
    kind: str,
    fault: Any,
    raised: type[ProviderError],
    status: int | None,
) -> None:
    """Every fault, in every wire format, reaches the app as the matching ProviderError."""
    number = home(kind)[1]
    server.inject(fault, number=number)
    with adapter(server, kind) as provider, within(2), pytest.raises(raised) as info:
        provider.lookup(number, SINCE)
    if status is not None:
        assert info.value.status == status
    if isinstance(fault, RateLimit):
        assert info.value.retry_after == 7  # type: ignore[attr-defined]
    assert server.requests[-1].fault == fault


def test_retry_after_as_an_http_date(server: FakeProviderServer) -> None:
    """Retry-After in its HTTP-date form is read as seconds from now."""
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=30)
    server.inject(RateLimit(later))
    with adapter(server, "telesign-digest") as provider, pytest.raises(ProviderRateLimited) as info:
        provider.lookup(US_NEVER, SINCE)
    assert 25 <= info.value.retry_after <= 30  # type: ignore[operator]


def test_rate_limit_without_retry_after(server: FakeProviderServer) -> None:
    """RateLimit() sends no Retry-After: the adapter's retry_after is None."""
    server.inject(RateLimit())
    with adapter(server, "twilio") as provider, pytest.raises(ProviderRateLimited) as info:
        provider.lookup(US_NEVER, SINCE)
    assert info.value.retry_after is None


@pytest.mark.parametrize("kind", ["twilio", "camara-private_key_jwt"])
@pytest.mark.parametrize("fault", [Hang(), SlowDrip(0.05), Latency(5)], ids=repr)
def test_slow_faults_end_at_the_deadline(server: FakeProviderServer, kind: str, fault: Any) -> None:
    """Hangs, trickling bodies and long latency end as ProviderTimeout at the deadline."""
    number = home(kind)[1]
    server.inject(fault, number=number)
    with adapter(server, kind) as provider:
        if kind.startswith("camara"):
            provider.lookup(home(kind)[0], SINCE)  # fetch the token before the clock starts
        started = time.monotonic()
        with within(0.25), pytest.raises(ProviderTimeout):
            provider.lookup(number, SINCE)
    assert time.monotonic() - started < 0.6


# -- drips: headers, chunk framing and bodies that trickle ------------------------------


def raw_lookup(server: FakeProviderServer, number: str = US_NEVER) -> socket.socket:
    """A raw socket that has sent a well-formed, authorised Twilio lookup of ``number``."""
    c = server.credentials
    path = (
        f"/v2/PhoneNumbers/{urllib.parse.quote(number, safe='')}"
        "?Fields=reassigned_number&LastVerifiedDate=20240301"
    )
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Authorization: {basic_authorization(c.twilio_account_sid, c.twilio_auth_token)}\r\n"
        "Accept: application/json\r\n\r\n"
    )
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall(request.encode("ascii"))
    return sock


def arrivals(sock: socket.socket, count: int) -> list[tuple[float, bytes]]:
    """The first ``count`` bytes read from ``sock``, each recv with its arrival time."""
    received: list[tuple[float, bytes]] = []
    while sum(len(data) for _, data in received) < count:
        data = sock.recv(count)
        assert data, "the server closed the connection"
        received.append((time.monotonic(), data))
    return received


def read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """Read up to the end of the headers: (the head, whatever came after it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(4096)
        assert more, "the server closed the connection"
        data += more
    head, _, rest = data.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n", rest


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while more := sock.recv(65536):
        data += more
    return data


def dechunk(data: bytes) -> tuple[list[bytes], bytes]:
    """Split a chunked body into (chunk-size lines, the data), checking its framing."""
    sizes: list[bytes] = []
    body = b""
    while True:
        line, _, data = data.partition(b"\r\n")
        sizes.append(line)
        size = int(line, 16)
        if size == 0:
            assert data == b"\r\n", "no empty trailer after the last chunk"
            return sizes, body
        body, data = body + data[:size], data[size:]
        assert data[:2] == b"\r\n", "a chunk's data not followed by CRLF"
        data = data[2:]


def ended(server: FakeProviderServer, within_seconds: float) -> str | None:
    """The last request's ``ended``, once it is set (or None after ``within_seconds``)."""
    deadline = time.monotonic() + within_seconds
    while True:
        last = server.requests[-1].ended if server.requests else None
        if last is not None or time.monotonic() >= deadline:
            return last
        time.sleep(0.005)


def test_header_drip_sends_the_status_line_and_headers_a_byte_at_a_time(
    server: FakeProviderServer,
) -> None:
    """A client waiting for the headers gets one byte every byte_interval, nothing faster."""
    interval = 0.05
    server.inject(HeaderDrip(interval), number=US_NEVER)
    with raw_lookup(server) as sock:
        received = arrivals(sock, 6)
    assert b"".join(data for _, data in received) == b"HTTP/1"
    assert len(received[0][1]) == 1
    # Six bytes took five pauses: the status line itself trickles.
    assert received[-1][0] - received[0][0] >= 5 * interval * 0.9
    (record,) = server.requests
    assert record.fault == HeaderDrip(interval)


def test_header_drip_ends_with_the_normal_answer(server: FakeProviderServer) -> None:
    """Once the headers are through, the body is the one a healthy server sends."""
    with raw_lookup(server) as sock:
        healthy_head, _ = read_head(sock)
    server.inject(HeaderDrip(0.001), number=US_NEVER)
    with raw_lookup(server) as sock:
        started = time.monotonic()
        head, rest = read_head(sock)
        took = time.monotonic() - started
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(rest) < length:
            rest += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert len(head) == len(healthy_head) >= 120  # at the default 0.05 s: over six seconds
    assert took >= len(head) * 0.001
    assert json.loads(rest)["reassigned_number"]["is_number_reassigned"] == "no"


def test_chunk_drip_trickles_the_chunk_size_lines(server: FakeProviderServer) -> None:
    """The headers come at once (chunked, no length); then the size line one byte at a time."""
    interval = 0.05
    server.inject(ChunkDrip(interval), number=US_NEVER)
    with raw_lookup(server) as sock:
        started = time.monotonic()
        head, rest = read_head(sock)
        head_took = time.monotonic() - started
        assert rest == b""
        size_line = arrivals(sock, 6)
    assert head_took < 0.5  # the headers did not wait for the drip
    assert b"\r\ntransfer-encoding: chunked\r\n" in head.lower()
    assert b"content-length" not in head.lower()
    assert b"".join(data for _, data in size_line) == b"000000"  # 64 hex digits, zero-padded
    assert len(size_line[0][1]) == 1
    assert size_line[-1][0] - size_line[0][0] >= 5 * interval * 0.9


@pytest.mark.parametrize("digits", [64, 1])
def test_chunk_drip_frames_the_normal_answer(server: FakeProviderServer, digits: int) -> None:
    """The chunked framing is valid HTTP/1.1 and carries exactly the healthy body."""
    with session() as http:
        healthy = http.get(
            server.url + "/v2/PhoneNumbers/%2B12015550124",
            params={"Fields": "reassigned_number", "LastVerifiedDate": "20240301"},
            auth=(server.credentials.twilio_account_sid, server.credentials.twilio_auth_token),
            timeout=5,
        )
    server.inject(ChunkDrip(0, size_digits=digits), number=US_NEVER)
    with raw_lookup(server) as sock:
        _, rest = read_head(sock)
        sock.shutdown(socket.SHUT_WR)  # the server closes once it has answered
        sizes, body = dechunk(rest + read_all(sock))
    assert body == healthy.content
    assert sizes == [f"{len(body):0{digits}x}".encode(), b"0" * digits]
    assert len(sizes[0]) == max(digits, len(f"{len(body):x}"))


@pytest.mark.parametrize("kind", ONE_PER_WIRE)
@pytest.mark.parametrize("fault", [HeaderDrip(0), ChunkDrip(0), SlowDrip(0)], ids=repr)
def test_every_adapter_reads_a_drip_that_keeps_up(
    server: FakeProviderServer, kind: str, fault: Any
) -> None:
    """Without pauses, each drip is a valid answer: every adapter reads the scripted one."""
    reissued, never = home(kind)[:2]
    server.inject(fault, number=never)
    with adapter(server, kind) as provider:
        assert provider.lookup(never, SINCE) == expected(kind, "never")
        assert provider.lookup(reissued, SINCE) == expected(kind, "reissued")
    assert [r.fault for r in server.requests if r.number == never] == [fault]


SLOW = [HeaderDrip(1.0), ChunkDrip(1.0), SlowDrip(1.0), Hang(), Latency(30)]


@pytest.mark.parametrize("fault", SLOW, ids=repr)
def test_a_client_hanging_up_mid_answer_is_noticed_at_once(
    server: FakeProviderServer, fault: Any
) -> None:
    """The server sees a client leave within milliseconds, even between two drip bytes."""
    server.inject(fault, number=US_NEVER)
    sock = raw_lookup(server)
    try:
        assert ended(server, 0.3) is None  # still answering
    finally:
        sock.close()
    left = time.monotonic()
    assert ended(server, 1.0) == "client_closed"
    assert time.monotonic() - left < 0.3


@pytest.mark.parametrize("fault", SLOW, ids=repr)
def test_stop_is_prompt_mid_drip(fault: Any) -> None:
    """stop() cuts a connection in the middle of any slow answer and returns at once."""
    fake = FakeProviderServer(NUMBERS).start()
    fake.inject(fault)
    threads_before = threading.active_count()
    with raw_lookup(fake) as sock:
        deadline = time.monotonic() + 2
        while not fake.requests and time.monotonic() < deadline:
            time.sleep(0.005)
        assert fake.requests, "the request never arrived"
        started = time.monotonic()
        fake.stop()
        assert time.monotonic() - started < 0.5
        sock.settimeout(1.0)
        with contextlib.suppress(ConnectionResetError):
            read_all(sock)  # an end of stream (or a reset), never a wait
    assert fake.requests[-1].ended == "stopped"
    assert threading.active_count() <= threads_before


def test_recorded_requests_say_how_each_answer_ended(server: FakeProviderServer) -> None:
    """ended: "sent" for a whole answer, "reset" for a Reset; None never outlives an answer."""
    with adapter(server, "twilio") as provider:
        provider.lookup(US_NEVER, SINCE)
        server.inject(Reset(), times=1)
        with pytest.raises(ProviderUnavailable):
            provider.lookup(US_NEVER, SINCE)
    assert ended(server, 1.0) == "reset"
    assert [r.ended for r in server.requests] == ["sent", "reset"]
    assert "ended=sent" in repr(server.requests[0])


def test_short_latency_still_answers(server: FakeProviderServer) -> None:
    """Latency below the deadline delays the answer but does not change it."""
    server.inject(Latency(dt.timedelta(milliseconds=80)))
    with adapter(server, "aliyun-sha256") as provider:
        started = time.monotonic()
        assert provider.lookup(CN_NEVER, SINCE) == ChangedSince(SINCE, False)
    assert time.monotonic() - started >= 0.08


def test_times_limits_a_fault_and_number_faults_are_local(server: FakeProviderServer) -> None:
    """times=2 fails twice then answers; a number's fault leaves other numbers alone."""
    server.inject(ServerError(503), number=US_NEVER, times=2)
    with adapter(server, "twilio") as provider:
        assert provider.lookup(US_REISSUED, SINCE) == ChangedSince(SINCE, True)
        for _ in range(2):
            with pytest.raises(ProviderUnavailable):
                provider.lookup(US_NEVER, SINCE)
        assert provider.lookup(US_NEVER, SINCE) == ChangedSince(SINCE, False)
    assert [r.fault for r in server.requests] == [None, ServerError(503), ServerError(503), None]


def test_global_faults_hit_token_endpoints(server: FakeProviderServer) -> None:
    """A fault injected for every request answers the token request too."""
    server.inject(ServerError(503), times=1)
    with adapter(server, "rnd") as provider:
        with pytest.raises(ProviderUnavailable):
            provider.lookup(US_NEVER, SINCE)
        assert server.requests[0].endpoint == "token"
        assert provider.lookup(US_NEVER, SINCE) == ChangedSince(SINCE, False)


def test_clear_faults(server: FakeProviderServer) -> None:
    """clear_faults() removes every injected fault."""
    server.inject(Reset())
    server.clear_faults()
    with adapter(server, "twilio") as provider:
        assert provider.lookup(US_NEVER, SINCE) == ChangedSince(SINCE, False)


@pytest.mark.parametrize(
    ("fault", "kwargs"),
    [("not a fault", {}), (Hang(), {"times": 0}), (Hang(), {"number": "nope"})],
)
def test_inject_validates_its_arguments(
    server: FakeProviderServer, fault: Any, kwargs: dict[str, Any]
) -> None:
    """Unknown faults, non-positive times and bad numbers are configuration errors."""
    with pytest.raises(ConfigurationError):
        server.inject(fault, **kwargs)


def test_fault_values_are_validated() -> None:
    """Fault values refuse settings that cannot be sent."""
    for bad in (
        lambda: ServerError(404),
        lambda: RateLimit(-1),
        lambda: RateLimit(dt.datetime(2030, 1, 1)),
        lambda: Latency(-1),
        lambda: Redirect(status=200),
        lambda: HeaderDrip(-0.1),
        lambda: ChunkDrip(-0.1),
        lambda: ChunkDrip(size_digits=0),
        lambda: ChunkDrip(size_digits=4097),
    ):
        with pytest.raises(ConfigurationError):
            bad()


# -- through a Guard -------------------------------------------------------------------


def test_guard_hung_provider_is_unavailable_within_the_deadline(
    server: FakeProviderServer,
) -> None:
    """A provider that never answers costs one deadline: step up, provider_unavailable."""
    server.inject(Hang())
    with adapter(server, "twilio") as provider:
        decision = Guard(provider, timeout=0.3).check(US_NEVER, bound_at=dt.date(2024, 3, 2))
    assert decision.reason is Reason.PROVIDER_UNAVAILABLE
    assert decision.elapsed < 0.5


def test_guard_long_retry_after_is_unavailable_at_once(server: FakeProviderServer) -> None:
    """A 429 asking for 60 s is not waited for: provider_unavailable well inside the deadline."""
    server.inject(RateLimit(60))
    with adapter(server, "aliyun-sha256") as provider:
        decision = Guard(provider, timeout=0.8).check(CN_NEVER, bound_at=dt.date(2024, 3, 2))
    assert decision.reason is Reason.PROVIDER_UNAVAILABLE
    assert decision.elapsed < 0.5


def test_guard_retries_a_single_503(server: FakeProviderServer) -> None:
    """One 503 then a normal answer: the Guard's one retry turns it into not_reissued."""
    server.inject(ServerError(503), times=1)
    with adapter(server, "telesign-digest") as provider:
        decision = Guard(provider, timeout=1.5).check(US_NEVER, bound_at=dt.date(2024, 3, 2))
    assert decision.reason is Reason.NOT_REISSUED
    assert [r.fault for r in server.requests] == [ServerError(503), None]


# -- recorded requests -----------------------------------------------------------------


def test_requests_are_recorded_with_masked_numbers(server: FakeProviderServer) -> None:
    """Each request is recorded: provider, endpoint, method, number, date; repr is masked."""
    with adapter(server, "camara-secret") as provider:
        provider.lookup(US_NEVER, SINCE)
    token, check = server.requests
    assert (token.provider, token.endpoint, token.method, token.number) == (
        "camara",
        "token",
        "POST",
        None,
    )
    assert (check.provider, check.endpoint, check.number, check.since) == (
        "camara",
        "lookup",
        US_NEVER,
        SINCE,
    )
    assert check.masked == "+1 201***0124"
    assert check.json() == {"phoneNumber": US_NEVER, "specifiedDate": "2024-02-29"}
    assert check.headers["authorization"].startswith("Bearer ")
    assert "5550124" not in repr(check)
    assert "5550124" not in repr(server.requests)


def test_hashed_numbers_are_matched_to_the_script(server: FakeProviderServer) -> None:
    """Aliyun's hashed InputNumber is recorded as the scripted number it hashes; else None."""
    with adapter(server, "aliyun-sha256") as provider:
        provider.lookup(CN_NEVER, SINCE)
        provider.lookup(CN_UNLISTED, SINCE)
    known, unknown = server.requests
    assert known.number == CN_NEVER
    assert unknown.number is None
    assert "13900139000" not in known.query


def test_unknown_paths_are_404_and_recorded(server: FakeProviderServer) -> None:
    """A request no provider endpoint matches gets a 404 and is recorded as unknown."""
    with session() as http:
        assert http.get(server.url + "/nowhere", timeout=5).status_code == 404
    (record,) = server.requests
    assert (record.provider, record.endpoint) == ("unknown", None)


def test_nothing_reaches_stderr(
    server: FakeProviderServer, capfd: pytest.CaptureFixture[str]
) -> None:
    """http.server's access log is silenced: paths carry numbers."""
    with adapter(server, "twilio") as provider:
        provider.lookup(US_NEVER, SINCE)
    with session() as http:
        http.get(server.url + "/v2/PhoneNumbers/+12015550124/bogus", timeout=5)
    captured = capfd.readouterr()
    assert captured.err == ""
    assert "5550124" not in captured.out


def test_requests_are_recorded_from_many_threads(server: FakeProviderServer) -> None:
    """Concurrent lookups are all answered and all recorded."""
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with adapter(server, "twilio") as provider:
                for _ in range(5):
                    assert provider.lookup(US_NEVER, SINCE) == ChangedSince(SINCE, False)
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert len(server.requests) == 40


def test_a_burst_of_connections_queues_while_the_server_is_busy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Connections made while the accept loop is busy wait in the listen backlog.

    socketserver's default backlog is 5: under a concurrent client reconnecting
    after faults, the kernel dropped the SYNs beyond it and each dropped client
    stalled for a SYN retransmit (a second or more), so checks against a
    healthy number timed out.  The accept loop is held here, and a burst of 64
    connections must still complete their handshakes at once.
    """
    release = threading.Event()
    accept = fake_server_module._HTTPServer.get_request

    def busy_accept(self: Any) -> Any:
        release.wait(10)
        return accept(self)

    monkeypatch.setattr(fake_server_module._HTTPServer, "get_request", busy_accept)
    with FakeProviderServer(NUMBERS) as fake:
        connections: list[socket.socket] = []
        try:
            for n in range(64):
                try:
                    connection = socket.create_connection(("127.0.0.1", fake.port), timeout=0.5)
                except TimeoutError:
                    pytest.fail(f"connection {n + 1} of 64 was dropped: the backlog overflowed")
                connections.append(connection)
        finally:
            release.set()
            for connection in connections:
                connection.close()


# -- TLS and lifecycle -----------------------------------------------------------------


def test_https_with_the_throwaway_ca() -> None:
    """tls=True serves HTTPS: adapters given ca_bundle work, one without it is refused."""
    with FakeProviderServer(NUMBERS, tls=True) as fake:
        assert fake.url.startswith("https://127.0.0.1:")
        bundle = fake.ca_bundle
        assert bundle is not None
        assert os.path.exists(bundle)
        for kind in ("twilio", "camara-private_key_jwt", "aliyun-sha256"):
            with adapter(fake, kind) as provider:
                assert provider.lookup(home(kind)[1], SINCE) == ChangedSince(SINCE, False)
        with (
            adapter(fake, "twilio", ca_bundle=None) as unverified,
            within(2),
            pytest.raises(ProviderUnavailable, match="TLS") as info,
        ):
            unverified.lookup(US_NEVER, SINCE)
        assert not info.value.retryable
    assert not os.path.exists(bundle)


def test_stop_is_prompt_with_a_hung_connection() -> None:
    """stop() cuts a connection a Hang holds, and returns at once."""
    fake = FakeProviderServer(NUMBERS).start()
    fake.inject(Hang())
    outcome: list[BaseException] = []

    def call() -> None:
        with adapter(fake, "twilio") as provider:
            try:
                provider.lookup(US_NEVER, SINCE)
            except ProviderError as exc:
                outcome.append(exc)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    deadline = time.monotonic() + 2
    while not fake.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.requests, "the request never arrived"
    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 0.5
    thread.join(2)
    assert not thread.is_alive()
    assert outcome
    assert isinstance(outcome[0], ProviderUnavailable)


def test_lifecycle_errors_and_restart() -> None:
    """url needs a running server; start twice is an error; stop is idempotent; restart works."""
    fake = FakeProviderServer()
    with pytest.raises(RuntimeError):
        _ = fake.url
    assert fake.ca_bundle is None
    fake.start()
    try:
        with pytest.raises(RuntimeError):
            fake.start()
        assert fake.url == f"http://127.0.0.1:{fake.port}"
        assert "stopped" not in repr(fake)
    finally:
        fake.stop()
    fake.stop()
    assert "stopped" in repr(fake)
    with fake, adapter(fake, "twilio") as provider:
        assert provider.lookup(US_UNLISTED, SINCE) == NoData()


# -- the package surface ---------------------------------------------------------------


def test_public_surface() -> None:
    """__all__ is exactly what the package exports, and every public name is documented."""
    # Submodules are not exports: pytest_plugin is an attribute once pytest has loaded it.
    names = {
        name
        for name, value in vars(recyclecheck.testing).items()
        if not name.startswith("_") and not isinstance(value, type(recyclecheck))
    }
    assert set(recyclecheck.testing.__all__) == names - {"annotations"}
    assert recyclecheck.testing.__all__ == sorted(recyclecheck.testing.__all__)
    for name in recyclecheck.testing.__all__:
        if name != "Fault":
            assert getattr(recyclecheck.testing, name).__doc__, name


def test_importing_recyclecheck_does_not_import_the_testing_kit() -> None:
    """recyclecheck stays free of the kit; the kit imports responses/trustme only when used."""
    code = (
        "import sys, recyclecheck, recyclecheck.providers\n"
        "assert 'recyclecheck.testing' not in sys.modules\n"
        "import recyclecheck.testing\n"
        "assert 'responses' not in sys.modules, 'responses'\n"
        "assert 'trustme' not in sys.modules, 'trustme'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


def test_credentials_hide_secrets() -> None:
    """Credentials' repr shows ids, never secrets or keys."""
    text = repr(Credentials())
    assert "fake-twilio-auth-token" not in text
    assert "PRIVATE KEY" not in text
    assert "recyclecheck-fake-client" in text
