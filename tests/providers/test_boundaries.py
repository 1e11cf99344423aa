"""The one-day safety margin, at the boundary day, through ``Guard.check`` for every adapter.

DESIGN section 3: with ``B`` the binding's UTC date, a change dated ``D`` counts as at
or after the binding when ``D >= B - 1 day``, and yes/no providers are asked about
``B - 1 day``.  Each provider draws its own boundary differently, so each mock below
answers by that provider's documented rule, computed from the date that went on the
wire, and each test checks both the decision and the exact date sent:

========  =====================================================  ===========================
adapter   provider's rule (D = the provider's change date)       sent for B = 2024-03-10
========  =====================================================  ===========================
camara    recycled when D is strictly *after* specifiedDate      specifiedDate 2024-03-08
rnd       "yes" when disconnected *on or after* the date         date 2024-03-09
twilio    "yes" when disconnected on or after LastVerifiedDate   LastVerifiedDate 20240309
          (Twilio relays the RND's data and its rule)
aliyun    not reissued only when StartTime is *later than* the   StartTime 2024-03-09 00:00:00
          carrier's last assignment
telesign  the adapter reads last_deactivated itself (the mock's   last_verified
          flag takes the less safe reading: strictly after)      2024-03-09T00:00:00Z
========  =====================================================  ===========================

So a change on ``B - 2`` lets the login through, and one on ``B - 1``, ``B`` or later
steps up, whatever the provider.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from recyclecheck import Guard, Reason
from recyclecheck.providers import (
    AliyunProvider,
    CamaraProvider,
    RndProvider,
    TelesignProvider,
    TwilioProvider,
)

from . import camara_spec

DATA = Path(__file__).resolve().parent.parent / "data"
UTC = dt.timezone.utc
CHINA = dt.timezone(dt.timedelta(hours=8))
#: The binding's UTC date B, and two moments whose UTC date it is (the second is
#: already 2024-03-11 in China: the Guard must use the UTC date).
B = dt.date(2024, 3, 10)
BINDINGS = {
    "utc": dt.datetime(2024, 3, 10, 12, 0, tzinfo=UTC),
    "china-next-day": dt.datetime(2024, 3, 11, 3, 0, tzinfo=CHINA),
}
ASKED = B - dt.timedelta(days=1)  # the question date every adapter is given

US = "+14159929960"
CN = "+8613800138000"
CAMARA_ROOT = "https://api.operator.example/camara"
CAMARA_CHECK = CAMARA_ROOT + "/number-recycling/v0.3/check"
TWILIO_URL = "https://lookups.twilio.com/v2/PhoneNumbers/%2B14159929960"
TELESIGN_URL = "https://rest-ww.telesign.com/v1/phoneid/14159929960"
RND_BASE = "https://api.reassigned.us"
ALIYUN_BASE = "https://dytnsapi.aliyuncs.com/"

#: (days from B to the change, reason expected): the day before the margin lets the
#: login through; the margin's day, the binding day and later step up.
DAYS = [
    pytest.param(-30, Reason.NOT_REISSUED, id="B-30"),
    pytest.param(-2, Reason.NOT_REISSUED, id="B-2"),
    pytest.param(-1, Reason.REISSUED_AFTER_BINDING, id="B-1"),
    pytest.param(0, Reason.REISSUED_AFTER_BINDING, id="B"),
    pytest.param(1, Reason.REISSUED_AFTER_BINDING, id="B+1"),
    pytest.param(30, Reason.REISSUED_AFTER_BINDING, id="B+30"),
]
bindings = pytest.mark.parametrize("bound_at", list(BINDINGS.values()), ids=list(BINDINGS))
days = pytest.mark.parametrize(("offset", "reason"), DAYS)

Callback = Callable[[requests.PreparedRequest], tuple[int, dict[str, str], str]]


def load(provider: str, name: str) -> Any:
    return json.loads((DATA / provider / name).read_text())


def json_reply(body: Any, **headers: str) -> tuple[int, dict[str, str], str]:
    return 200, {"Content-Type": "application/json", **headers}, json.dumps(body)


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def check(provider: Any, phone: str, bound_at: dt.datetime) -> Any:
    with Guard(provider, timeout=5) as guard:
        decision = guard.check(phone, bound_at=bound_at)
    assert decision.since == ASKED
    assert decision.provider == provider.name
    return decision


# -- CAMARA: strictly after specifiedDate ---------------------------------------------


def camara_operator(changed_on: dt.date, sent: list[str]) -> Callback:
    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        body = camara_spec.check_request(request.body, request.headers)
        sent.append(body["specifiedDate"])
        recycled = changed_on > dt.date.fromisoformat(body["specifiedDate"])
        return json_reply(
            {"phoneNumberRecycled": recycled}, **{"x-correlator": request.headers["x-correlator"]}
        )

    return answer


@bindings
@days
def test_camara_boundary(
    bound_at: dt.datetime, offset: int, reason: Reason, mock: responses.RequestsMock
) -> None:
    """CAMARA is asked about B - 2 so that its "strictly after" covers B - 1."""
    sent: list[str] = []
    changed_on = B + dt.timedelta(days=offset)
    mock.add_callback(responses.POST, CAMARA_CHECK, callback=camara_operator(changed_on, sent))
    provider = CamaraProvider(CAMARA_ROOT, access_token="static-token.0123456789")
    assert check(provider, CN, bound_at).reason is reason
    assert sent == ["2024-03-08"]


@pytest.mark.parametrize(
    "bound_at",
    [
        pytest.param("now", id="bound-now"),
        pytest.param("tomorrow", id="bound-tomorrow-as-a-date"),
    ],
)
def test_camara_recent_bindings_are_asked_never_in_the_future(
    bound_at: str, mock: responses.RequestsMock
) -> None:
    """A binding made now (or dated tomorrow, east of UTC) is still asked about, with a
    specifiedDate in the past everywhere: at most yesterday (UTC)."""
    sent: list[str] = []
    today = dt.datetime.now(UTC).date()
    mock.add_callback(responses.POST, CAMARA_CHECK, callback=camara_operator(today, sent))
    moment: dt.datetime | dt.date = (
        dt.datetime.now(UTC) if bound_at == "now" else today + dt.timedelta(days=1)
    )
    provider = CamaraProvider(CAMARA_ROOT, access_token="static-token.0123456789")
    with Guard(provider, timeout=5) as guard:
        decision = guard.check(CN, bound_at=moment)
    assert decision.reason is Reason.REISSUED_AFTER_BINDING  # a change today, after the binding
    (specified,) = sent
    assert dt.date.fromisoformat(specified) <= dt.datetime.now(UTC).date() - dt.timedelta(days=1)


def test_camara_out_of_range_is_not_covered(mock: responses.RequestsMock) -> None:
    """400 OUT_OF_RANGE (a date before the operator's window) gives not_covered."""

    def out_of_range(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        body = {
            "status": 400,
            "code": "OUT_OF_RANGE",
            "message": "Client specified an invalid range.",
        }
        return 400, {"Content-Type": "application/json"}, json.dumps(body)

    mock.add_callback(responses.POST, CAMARA_CHECK, callback=out_of_range)
    provider = CamaraProvider(CAMARA_ROOT, access_token="static-token.0123456789")
    assert check(provider, CN, BINDINGS["utc"]).reason is Reason.NOT_COVERED


# -- RND: on or after the date ------------------------------------------------------------


def rnd_database(disconnected_on: dt.date, sent: list[str]) -> Callback:
    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        (row,) = json.loads(request.body or b"")["tnList"]
        sent.append(row["date"])
        verdict = "yes" if disconnected_on >= dt.date.fromisoformat(row["date"]) else "no"
        reply = {**load("rnd", "reply_yes.json")["replies"][0], "disconnected": verdict}
        reply.update(tn=row["tn"], dateProvided=row["date"], companyId=row["companyId"])
        return json_reply({"replies": [reply]})

    return answer


@bindings
@days
def test_rnd_boundary(
    bound_at: dt.datetime, offset: int, reason: Reason, mock: responses.RequestsMock
) -> None:
    """The RND is asked about B - 1: its "on or after" already includes that day."""
    sent: list[str] = []
    disconnected_on = B + dt.timedelta(days=offset)
    mock.add(responses.POST, RND_BASE + "/b/public/api/idToken", json=load("rnd", "id_token.json"))
    mock.add_callback(
        responses.POST, RND_BASE + "/api/tn", callback=rnd_database(disconnected_on, sent)
    )
    assert check(RndProvider("refresh-token", "TESTCO"), US, bound_at).reason is reason
    assert sent == ["2024-03-09"]


# -- Twilio: on or after LastVerifiedDate (the RND's rule) -------------------------------


def twilio_lookup(disconnected_on: dt.date, sent: list[str]) -> Callback:
    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(request.url or "").query))
        asked = dt.datetime.strptime(query["LastVerifiedDate"], "%Y%m%d").date()
        sent.append(query["LastVerifiedDate"])
        body = load("twilio", "reassigned_yes.json")
        body["reassigned_number"].update(
            last_verified_date=asked.isoformat(),
            is_number_reassigned="yes" if disconnected_on >= asked else "no",
        )
        return json_reply(body)

    return answer


@bindings
@days
def test_twilio_boundary(
    bound_at: dt.datetime, offset: int, reason: Reason, mock: responses.RequestsMock
) -> None:
    """Twilio is asked about B - 1 (YYYYMMDD), like the RND whose data it relays."""
    sent: list[str] = []
    disconnected_on = B + dt.timedelta(days=offset)
    mock.add_callback(responses.GET, TWILIO_URL, callback=twilio_lookup(disconnected_on, sent))
    provider = TwilioProvider("AC0123456789abcdef0123456789abcdef", "secret")
    assert check(provider, US, bound_at).reason is reason
    assert sent == ["20240309"]


# -- Alibaba: not reissued only when StartTime is later than the last assignment --------


def aliyun_verify(assigned_at: dt.datetime, sent: list[str]) -> Callback:
    """``assigned_at`` is the carrier's last assignment, in China time (as StartTime is)."""

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(request.url or "").query))
        sent.append(query["StartTime"])
        start = dt.datetime.strptime(query["StartTime"], "%Y-%m-%d %H:%M:%S")
        result = "2" if start > assigned_at.replace(tzinfo=None) else "1"
        body = load("aliyun", "verify_2_not_reissued.json")
        body["Data"]["VerifyResult"] = result
        return json_reply(body)

    return answer


@bindings
@days
@pytest.mark.parametrize("clock", [dt.time(0, 0, 0), dt.time(23, 59, 59)], ids=["00:00", "23:59"])
def test_aliyun_boundary(
    bound_at: dt.datetime,
    offset: int,
    reason: Reason,
    clock: dt.time,
    mock: responses.RequestsMock,
) -> None:
    """Alibaba is asked with StartTime B - 1 at 00:00:00: an assignment at any time on
    B - 1 is not earlier than it, so it counts; one late on B - 2 does not."""
    sent: list[str] = []
    assigned_at = dt.datetime.combine(B + dt.timedelta(days=offset), clock, tzinfo=CHINA)
    mock.add_callback(responses.POST, ALIYUN_BASE, callback=aliyun_verify(assigned_at, sent))
    provider = AliyunProvider("LTAIkey", "secret", "auth-code")
    assert check(provider, CN, bound_at).reason is reason
    assert sent == ["2024-03-09 00:00:00"]


@pytest.mark.parametrize(
    "verify_result", ["1", "3", "4"], ids=["reissued", "cancelled", "new-owner"]
)
def test_aliyun_changes_step_up(verify_result: str, mock: responses.RequestsMock) -> None:
    """VerifyResult 1 (reissued), 3 (cancelled) and 4 (transferred to a new owner) step up."""

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        body = load("aliyun", "verify_4_new_owner.json")
        body["Data"]["VerifyResult"] = verify_result
        return json_reply(body)

    mock.add_callback(responses.POST, ALIYUN_BASE, callback=answer)
    provider = AliyunProvider("LTAIkey", "secret", "auth-code")
    assert check(provider, CN, BINDINGS["utc"]).reason is Reason.REISSUED_AFTER_BINDING


# -- Telesign: the adapter reads last_deactivated ----------------------------------------


def telesign_phoneid(deactivated: str, sent: list[str]) -> Callback:
    """``deactivated`` is the RFC 3339 ``last_deactivated``; the add-on's flag is strictly after."""

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        asked = json.loads(request.body or b"")["addons"]["number_deactivation"]["last_verified"]
        sent.append(asked)
        after = dt.datetime.fromisoformat(deactivated) > dt.datetime.fromisoformat(asked)
        body = load("telesign", "phoneid_recycled.json")
        body["numbering"]["original"]["complete_phone_number"] = "14159929960"
        body["number_deactivation"].update(
            last_deactivated=deactivated,
            recycled_since_last_verification="recycled" if after else "not_recycled",
        )
        return json_reply(body)

    return answer


def telesign_provider() -> TelesignProvider:
    return TelesignProvider("FFFFFFFF-EEEE-DDDD-1234-AB1234567890", "c2VjcmV0")


@bindings
@days
@pytest.mark.parametrize("clock", ["00:00:00Z", "23:59:59Z"])
def test_telesign_boundary(
    bound_at: dt.datetime,
    offset: int,
    reason: Reason,
    clock: str,
    mock: responses.RequestsMock,
) -> None:
    """Telesign is told last_verified = B - 1 at midnight UTC; the deactivation date it
    reports is compared with B - 1 by the Guard (a deactivation at that very midnight,
    which Telesign's own flag calls not_recycled, still steps up)."""
    sent: list[str] = []
    deactivated = f"{(B + dt.timedelta(days=offset)).isoformat()}T{clock}"
    mock.add_callback(responses.POST, TELESIGN_URL, callback=telesign_phoneid(deactivated, sent))
    decision = check(telesign_provider(), US, bound_at)
    assert decision.reason is reason
    if reason is Reason.REISSUED_AFTER_BINDING:
        assert decision.reissued_on == B + dt.timedelta(days=offset)
    assert sent == ["2024-03-09T00:00:00Z"]


@pytest.mark.parametrize(
    ("deactivated", "reason"),
    [
        # Written on B - 2 west of UTC, but already B - 1 in UTC: counts.
        ("2024-03-08T23:30:00-05:00", Reason.REISSUED_AFTER_BINDING),
        # Written on B - 1 east of UTC, still B - 2 in UTC: counts on its written day.
        ("2024-03-09T00:30:00+08:00", Reason.REISSUED_AFTER_BINDING),
        # B - 2 however it is read.
        ("2024-03-08T12:00:00+01:00", Reason.NOT_REISSUED),
    ],
)
def test_telesign_offsets_resolve_toward_a_change(
    deactivated: str, reason: Reason, mock: responses.RequestsMock
) -> None:
    """A deactivation with an offset counts on the later of its written and its UTC date."""
    sent: list[str] = []
    mock.add_callback(responses.POST, TELESIGN_URL, callback=telesign_phoneid(deactivated, sent))
    assert check(telesign_provider(), US, BINDINGS["utc"]).reason is reason
