"""The FastAPI demo (``examples/fastapi_demo``) through its test clients: the SMS-code login
with ``await guard.acheck(...)`` before anyone is logged in, the step-up, and an event loop
that keeps serving while the provider hangs."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import attrs
import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import recyclecheck
from examples.fastapi_demo import Settings, create_app
from examples.fastapi_demo.guard import build_policy, build_provider
from examples.fastapi_demo.store import Account
from recyclecheck.providers import Answer, ChangedSince

ALICE = "+8613800138000"  # reissued in 2024; her account bound it on 2022-05-10
BO = "+8613900139000"  # never reissued
CHEN = "+8613700137000"  # the provider has no data on it
SEEDED_BINDING = dt.datetime(2022, 5, 10, 9, 30, tzinfo=dt.timezone.utc)
PASSWORDS = {ALICE: "alice-demo-password", BO: "bo-demo-password", CHEN: "chen-demo-password"}


class Clock:
    """A settable clock for codes, logins and sessions (the Guard keeps real time)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(clock: Clock) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(clock=clock))) as http:  # runs the lifespan
        yield http


# -- the journey, as a client walks it ------------------------------------------------------


def latest_code(http: TestClient, channel: str) -> str:
    """The code in the newest message the fake gateways sent on ``channel``."""
    messages = http.get("/dev/outbox").json()
    return str(next(m["code"] for m in messages if m["channel"] == channel))


def send_code(http: TestClient, phone: str) -> tuple[str, str]:
    response = http.post("/login/sms", json={"phone": phone})
    assert response.status_code == 202
    return response.json()["login_id"], latest_code(http, "sms")


def verify(http: TestClient, login_id: str, code: str) -> httpx.Response:
    return http.post("/login/sms/verify", json={"login_id": login_id, "code": code})


def sms_login(http: TestClient, phone: str) -> dict[str, Any]:
    """Ask for a code, type it in: the answer to the verified code."""
    response = verify(http, *send_code(http, phone))
    assert response.status_code == 200, response.text
    return dict(response.json())


def password(http: TestClient, login_id: str, secret: str) -> httpx.Response:
    return http.post("/login/step-up/password", json={"login_id": login_id, "password": secret})


def me(http: TestClient, token: str) -> httpx.Response:
    return http.get("/me", headers={"Authorization": f"Bearer {token}"})


def account(http: TestClient, phone: str) -> Account:
    found = http.app.state.demo.store.account_by_phone(phone)  # type: ignore[attr-defined]
    assert isinstance(found, Account)
    return found


def guard(http: TestClient) -> recyclecheck.Guard:
    found = http.app.state.demo.guard  # type: ignore[attr-defined]
    assert isinstance(found, recyclecheck.Guard)
    return found


_DECIDED = re.compile(
    r"^recyclecheck decision: .* reason=(?P<reason>\S+) provider=(?P<provider>\S+)"
)


def decided(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    """(reason, who decided) of each decision the Guard logged."""
    found = (_DECIDED.search(r.getMessage()) for r in caplog.records if r.name == "recyclecheck")
    return [(match["reason"], match["provider"]) for match in found if match]


# -- the stories ------------------------------------------------------------------------------


def test_never_reissued_number_logs_straight_in_and_bound_at_stays(client: TestClient) -> None:
    answer = sms_login(client, "+86 139 0013 9000")

    assert answer["status"] == "logged_in"
    profile = me(client, answer["session_token"]).json()
    assert (profile["name"], profile["phone"]) == ("Bo Wang", "+86 139****9000")
    assert account(client, BO).bound_at == SEEDED_BINDING  # an SMS code never moves it


def test_recycled_number_is_stepped_up_and_only_the_owners_password_passes(
    client: TestClient,
) -> None:
    answer = sms_login(client, ALICE)  # whoever holds Alice's old number now
    assert answer == {
        "status": "step_up",
        "login_id": answer["login_id"],
        "step_up_methods": ["password", "email_code"],
    }
    login_id = answer["login_id"]
    for guess in ("123456", "alice", "password1", "hunter2"):
        response = password(client, login_id, guess)
        assert (response.status_code, response.json()) == (401, {"detail": "wrong_password"})
    assert client.post("/login/step-up/email", json={"login_id": login_id}).status_code == 202
    wrong_email_code = client.post(
        "/login/step-up/email/verify", json={"login_id": login_id, "code": "000000"}
    )
    assert wrong_email_code.json() == {"detail": "login_blocked"}  # the fifth wrong answer
    assert password(client, login_id, PASSWORDS[ALICE]).status_code == 409  # the login is gone
    assert account(client, ALICE).bound_at == SEEDED_BINDING

    again = sms_login(client, ALICE)  # a new SMS code changes nothing
    assert again["status"] == "step_up"
    passed = password(client, again["login_id"], PASSWORDS[ALICE])  # the owner, back

    assert passed.json()["status"] == "logged_in"
    assert me(client, passed.json()["session_token"]).json()["name"] == "Alice Liu"
    assert account(client, ALICE).bound_at > SEEDED_BINDING  # re-bound by the step-up


def test_no_data_number_steps_up_once_then_logs_straight_in(
    client: TestClient, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="recyclecheck"):
        first = sms_login(client, CHEN)
    assert first["status"] == "step_up"
    assert "action=step_up reason=no_data" in caplog.text

    passed = password(client, first["login_id"], PASSWORDS[CHEN])
    assert passed.json()["status"] == "logged_in"
    rebound = account(client, CHEN).bound_at
    assert rebound == dt.datetime.fromtimestamp(clock.now, dt.timezone.utc)

    clock.now += 3600
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="recyclecheck"):
        second = sms_login(client, CHEN)
    assert second["status"] == "logged_in"
    # The Guard's policy trusted the binding of an hour ago: the sandbox was not asked.
    assert "action=allow reason=recently_bound provider=policy cached=False" in caplog.text
    assert me(client, second["session_token"]).json()["name"] == "Chen Jing"
    assert account(client, CHEN).bound_at == rebound  # the SMS-code login did not move it


def test_a_binding_older_than_the_window_is_looked_up_again(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """fresh_binding_days=7: bound 5 days ago, straight in; 8 days ago, no_data steps up."""
    now = dt.datetime.now(dt.timezone.utc)
    with TestClient(create_app(Settings(clock=clock, fresh_binding_days=7))) as http:
        assert guard(http).policy.trust_recent_binding == dt.timedelta(days=7)
        with caplog.at_level(logging.INFO, logger="recyclecheck"):
            account(http, CHEN).bound_at = now - dt.timedelta(days=5)
            assert sms_login(http, CHEN)["status"] == "logged_in"
            account(http, CHEN).bound_at = now - dt.timedelta(days=8)
            assert sms_login(http, CHEN)["status"] == "step_up"
    assert decided(caplog) == [("recently_bound", "policy"), ("no_data", "sandbox")]


def test_without_the_window_no_data_steps_up_every_time(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """fresh_binding_days=0: a provider with no data says so whatever the binding's date."""
    with TestClient(create_app(Settings(clock=clock, fresh_binding_days=0))) as http:
        assert guard(http).policy == recyclecheck.Policy()
        with caplog.at_level(logging.INFO, logger="recyclecheck"):
            first = sms_login(http, CHEN)
            assert password(http, first["login_id"], PASSWORDS[CHEN]).status_code == 200
            assert sms_login(http, CHEN)["status"] == "step_up"
    assert decided(caplog) == [("no_data", "sandbox"), ("no_data", "sandbox")]


def test_an_email_code_completes_the_step_up_too(client: TestClient) -> None:
    login_id = sms_login(client, ALICE)["login_id"]
    assert client.post("/login/step-up/email", json={"login_id": login_id}).json() == {
        "status": "email_code_sent"
    }
    sent = client.get("/dev/outbox").json()[0]
    assert (sent["channel"], sent["to"]) == ("email", "a***@example.com")

    passed = client.post(
        "/login/step-up/email/verify", json={"login_id": login_id, "code": sent["code"]}
    )
    assert passed.json()["status"] == "logged_in"
    assert account(client, ALICE).bound_at > SEEDED_BINDING


# -- codes --------------------------------------------------------------------------------------


def test_a_used_code_cannot_be_replayed(client: TestClient) -> None:
    login_id, code = send_code(client, BO)
    assert verify(client, login_id, code).json()["status"] == "logged_in"

    replay = verify(client, login_id, code)
    assert (replay.status_code, replay.json()) == (409, {"detail": "login_not_at_this_step"})
    other_login, _ = send_code(client, BO)
    assert verify(client, other_login, code).status_code == 400  # nor reused on a new login

    step_up_login = sms_login(client, ALICE)["login_id"]
    client.post("/login/step-up/email", json={"login_id": step_up_login})
    email_code = latest_code(client, "email")
    body = {"login_id": step_up_login, "code": email_code}
    assert client.post("/login/step-up/email/verify", json=body).status_code == 200
    assert client.post("/login/step-up/email/verify", json=body).status_code == 409


def test_a_code_expires_and_allows_only_a_few_guesses(client: TestClient, clock: Clock) -> None:
    login_id, code = send_code(client, BO)
    clock.now += 301
    assert verify(client, login_id, code).json() == {"detail": "wrong_or_expired_code"}

    login_id, code = send_code(client, BO)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(5):
        assert verify(client, login_id, wrong).status_code == 400
    assert verify(client, login_id, code).status_code == 400  # the code was used up


def test_codes_per_number_are_limited(client: TestClient) -> None:
    for _ in range(5):
        send_code(client, BO)
    assert client.post("/login/sms", json={"phone": BO}).status_code == 429


# -- the step-up cannot be skipped --------------------------------------------------------------


def test_the_step_up_cannot_be_skipped(client: TestClient) -> None:
    login_id, code = send_code(client, ALICE)
    # Not before the SMS code: the step-up endpoints refuse a login still at "code sent".
    assert password(client, login_id, PASSWORDS[ALICE]).status_code == 409
    answer = verify(client, login_id, code).json()
    assert answer["status"] == "step_up"
    assert "session_token" not in answer

    # Nothing the client holds after the SMS code opens the account.
    assert client.get("/me").status_code == 401
    assert me(client, login_id).status_code == 401
    assert verify(client, login_id, code).status_code == 409  # nor does verifying again
    fresh_login, fresh_code = send_code(client, ALICE)
    assert verify(client, fresh_login, fresh_code).json()["status"] == "step_up"
    assert account(client, ALICE).bound_at == SEEDED_BINDING


def test_unknown_number_gets_a_code_but_no_account(client: TestClient) -> None:
    login_id, code = send_code(client, "+86 186 0018 6000")  # sent all the same: no enumeration
    assert verify(client, login_id, code).json() == {"detail": "no_account_for_this_number"}
    assert client.post("/login/sms", json={"phone": "12345"}).status_code == 422


# -- the app's Guard ----------------------------------------------------------------------------


class Hanging:
    """A custom provider whose lookup blocks (until the test ends, 30 s at most)."""

    name = "hanging"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0
        self.closed = False

    def lookup(self, number: str, since: dt.date) -> Answer:
        self.calls += 1
        self.release.wait(30)
        return ChangedSince(since, False)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def hanging() -> Iterator[Hanging]:
    provider = Hanging()
    try:
        yield provider
    finally:
        provider.release.set()  # no Guard worker stays parked after the test


def test_the_guard_is_built_at_startup_and_closed_at_shutdown(hanging: Hanging) -> None:
    app = create_app(Settings(provider=hanging))
    with TestClient(app):
        guard = app.state.demo.guard
        assert isinstance(guard, recyclecheck.Guard)
        assert guard.provider_name == "hanging"
        assert not hanging.closed
    assert hanging.closed


def test_a_hanging_provider_steps_up_in_time_and_the_loop_keeps_serving(
    hanging: Hanging, caplog: pytest.LogCaptureFixture
) -> None:
    timeout = 0.5
    app = create_app(Settings(provider=hanging, timeout=timeout))

    async def scenario() -> tuple[httpx.Response, float, float, list[tuple[int, float, float]]]:
        async with app.router.lifespan_context(app), _client(app) as http:
            started = await http.post("/login/sms", json={"phone": BO})
            code = (await http.get("/dev/outbox")).json()[0]["code"]
            body = {"login_id": started.json()["login_id"], "code": code}

            async def login() -> tuple[httpx.Response, float, float]:
                begun = time.monotonic()
                response = await http.post("/login/sms/verify", json=body)
                return response, time.monotonic() - begun, time.monotonic()

            async def meanwhile() -> list[tuple[int, float, float]]:
                await asyncio.sleep(0.05)  # the login is now awaiting the hung provider
                served = []
                for request in [("GET", "/healthz", None), ("POST", "/login/sms", CHEN)] * 3:
                    method, path, phone = request
                    begun = time.monotonic()
                    json = {"phone": phone} if phone else None
                    response = await http.request(method, path, json=json)
                    served.append(
                        (response.status_code, time.monotonic() - begun, time.monotonic())
                    )
                    await asyncio.sleep(0.02)
                return served

            (response, took, finished), served = await asyncio.gather(login(), meanwhile())
            return response, took, finished, served

    with caplog.at_level(logging.INFO, logger="recyclecheck"):
        response, took, finished, served = asyncio.run(scenario())

    assert response.json()["status"] == "step_up"
    assert "reason=provider_unavailable" in caplog.text
    assert hanging.calls == 1
    assert timeout * 0.9 <= took < timeout + 0.5  # it waited on the provider, not past the deadline
    assert [status for status, _, _ in served] == [200, 202] * 3
    assert all(latency < 0.25 for _, latency, _ in served)
    assert all(done < finished for _, _, done in served)  # all served while the login waited


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://demo.test")


def test_the_window_joins_the_configured_policy() -> None:
    """DEMO_FRESH_BINDING_DAYS and RECYCLECHECK_POLICY make one Policy for the Guard."""
    policy = build_policy(Settings(policy="fail_open", fresh_binding_days=10))
    assert policy == attrs.evolve(recyclecheck.Policy.fail_open(), trust_recent_binding=10)
    assert build_policy(Settings()) == recyclecheck.Policy(trust_recent_binding=30)


@pytest.mark.parametrize("days", [45, -1])
def test_a_wrong_window_fails_at_startup_naming_the_setting(days: int) -> None:
    """The core refuses 45 days and more (the shortest quarantine); the demo names its setting."""
    app = create_app(Settings(fresh_binding_days=days))
    message = f"DEMO_FRESH_BINDING_DAYS={days} "
    with pytest.raises(recyclecheck.ConfigurationError, match=message), TestClient(app):
        pass  # the lifespan builds the Guard, and refuses to start
    with pytest.raises(recyclecheck.ConfigurationError, match="DEMO_FRESH_BINDING_DAYS"):
        Settings.from_env({"DEMO_FRESH_BINDING_DAYS": "thirty"})


def test_providers_come_from_the_sdk_registry_or_a_router(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RECYCLECHECK_PROVIDER: the sandbox, a registry adapter, or router (RECYCLECHECK_ROUTES)."""
    monkeypatch.setenv("RECYCLECHECK_ROUTES", "+86=sandbox")
    router = build_provider(Settings.from_env({"RECYCLECHECK_PROVIDER": "Router"}))
    assert isinstance(router, recyclecheck.Router)
    with pytest.raises(recyclecheck.ConfigurationError) as raised:
        build_provider(Settings(provider="carrier-pigeon"))
    assert str(raised.value) == (
        "RECYCLECHECK_PROVIDER must be one of sandbox, aliyun, camara, rnd, telesign, twilio, router"
    )
    monkeypatch.delenv("TWILIO_ACCOUNT_SID", raising=False)
    with pytest.raises(recyclecheck.ConfigurationError, match="TWILIO_ACCOUNT_SID"):
        build_provider(Settings(provider="twilio"))


def test_settings_come_from_the_environment() -> None:
    assert Settings.from_env({}) == Settings()  # the demo sandbox, secure policy, 0.8 s
    custom = Settings.from_env(
        {"RECYCLECHECK_TIMEOUT": "1.5", "RECYCLECHECK_POLICY": "fail_open", "DEMO_DEVELOPMENT": "0"}
    )
    assert (custom.timeout, custom.policy, custom.development) == (1.5, "fail_open", False)
    with pytest.raises(recyclecheck.ConfigurationError):
        Settings.from_env({"RECYCLECHECK_TIMEOUT": "soon"})
    with TestClient(create_app(custom)) as http:
        assert http.get("/dev/outbox").status_code == 404  # no developer outbox outside dev
