"""The demo's stories, end to end through Flask's test client."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest
from flask import Flask

import recyclecheck
from examples.flask_demo import create_app
from recyclecheck.testing import FakeProviderServer

from .conftest import (
    ALICE,
    BO,
    CHEN,
    DANA,
    ELI,
    NEW_NUMBER,
    Demo,
    account_row,
    demo_state,
    last_code,
    make_app,
    query,
)

ALICE_BOUND = "2022-05-10T09:30:00+00:00"
ALICE_PRIVATE = ("Alice", "Lakeside Road", "headphones", "alice@example.com")


def _bound_at(app: Flask, email: str) -> dt.datetime | None:
    value = account_row(app, email)["phone_bound_at"]
    return None if value is None else dt.datetime.fromisoformat(value)


def _reasons(app: Flask) -> list[str]:
    return [d.reason.value for d in reversed(demo_state(app).decisions.latest())]


def _deciders(app: Flask) -> list[str]:
    return [d.provider for d in reversed(demo_state(app).decisions.latest())]


def _set_bound_at(app: Flask, email: str, moment: dt.datetime) -> None:
    """Move an account's binding behind the app's back (the Guard keeps real time)."""
    db = sqlite3.connect(app.config["DEMO_DATABASE"])
    try:
        with db:
            db.execute(
                "UPDATE accounts SET phone_bound_at = ? WHERE email = ?",
                (moment.astimezone(dt.timezone.utc).isoformat(timespec="seconds"), email),
            )
    finally:
        db.close()


def _fail_step_up(demo: Demo, times: int) -> None:
    for _ in range(times):
        demo.post("/login/verify/password", {"password": "a guess"})


# -- the old owner's number, now someone else's ------------------------------------------


def test_new_holder_of_a_recycled_number_is_stepped_up_before_the_code_logs_in(
    app: Flask, demo: Demo
) -> None:
    """The SMS code is right, yet the Guard's step-up comes first; no owner data is shown."""
    response = demo.sms_login(ALICE)
    assert response.status_code == 302
    assert response.location == "/login/verify"
    assert _reasons(app) == ["reissued_after_binding"]
    page = demo.get("/login/verify").get_data(as_text=True)
    assert "confirm it" in page
    main = page.split('id="dev-panel"')[0]
    assert not [word for word in ALICE_PRIVATE if word in main]
    assert demo.get("/account").location == "/login"  # not logged in
    assert account_row(app, "alice@example.com")["phone_bound_at"] == ALICE_BOUND


def test_new_holder_cannot_pass_the_step_up_and_is_offered_a_fresh_account(
    app: Flask, demo: Demo
) -> None:
    """Five wrong answers block the login; the new holder registers; Alice loses the number only."""
    demo.sms_login(ALICE)
    _fail_step_up(demo, 4)
    response = demo.post("/login/verify/password", {"password": "another guess"})
    assert response.location == "/login/blocked"
    page = demo.get("/login/blocked").get_data(as_text=True)
    assert "I'm new here" in page
    assert "This is my account" in page

    response = demo.post(
        "/register",
        {"name": "Mallory Ma", "email": "mallory@example.com", "password": "mallory-password"},
    )
    assert response.location == "/account"
    page = demo.get("/account").get_data(as_text=True).split('id="dev-panel"')[0]
    assert "Hello, Mallory Ma" in page
    assert not [word for word in ALICE_PRIVATE if word in page]

    mallory = account_row(app, "mallory@example.com")
    alice = account_row(app, "alice@example.com")
    assert mallory["phone"] == ALICE
    assert (alice["phone"], alice["phone_bound_at"]) == (None, None)
    notice = query(app, "SELECT body FROM outbox WHERE recipient = 'alice@example.com'")
    assert "+86 138****8000 was removed from your account" in notice[-1]["body"]


def test_the_new_holder_may_choose_a_fresh_account_without_trying_the_step_up(
    app: Flask, demo: Demo
) -> None:
    """ "I'm new here" on the step-up page leads to registration."""
    demo.sms_login(ALICE)
    assert demo.get("/login/blocked").status_code == 200
    response = demo.post(
        "/register", {"name": "Mallory", "email": "m@example.com", "password": "0123456789"}
    )
    assert response.location == "/account"
    assert account_row(app, "m@example.com")["phone"] == ALICE


def test_the_new_holder_s_next_login_reaches_their_own_account(app: Flask, demo: Demo) -> None:
    """After registering, the number logs in to the new account, not the old owner's."""
    demo.sms_login(ALICE)
    demo.post("/register", {"name": "Mallory", "email": "m@example.com", "password": "0123456789"})
    demo.logout()
    assert demo.sms_login(ALICE).location == "/account"
    assert "Hello, Mallory" in demo.get("/account").get_data(as_text=True)


# -- a never-reissued number ----------------------------------------------------------------


def test_never_reissued_number_logs_straight_in_without_moving_bound_at(
    app: Flask, demo: Demo
) -> None:
    """Allow: the SMS code is enough, and bound_at stays where it was."""
    before = account_row(app, "bo@example.com")["phone_bound_at"]
    assert demo.sms_login(BO).location == "/account"
    assert "Hello, Bo Wang" in demo.get("/account").get_data(as_text=True)
    assert account_row(app, "bo@example.com")["phone_bound_at"] == before
    assert _reasons(app) == ["not_reissued"]


def test_a_reissue_before_the_binding_does_not_step_up(app: Flask, demo: Demo) -> None:
    """Eli's number was reissued in 2019, before his account bound it in 2021."""
    assert demo.sms_login(ELI).location == "/account"
    assert _reasons(app) == ["not_reissued"]


# -- no data at the provider ----------------------------------------------------------------


@pytest.mark.parametrize("second_factor", ["password", "email"])
def test_no_data_steps_up_once_then_the_next_login_goes_straight_through(
    app: Flask, demo: Demo, second_factor: str
) -> None:
    """Step-up passed (password or e-mail code): only then bound_at moves; next time, allow."""
    started = demo_state(app).now_dt().replace(microsecond=0)
    assert demo.sms_login(CHEN).location == "/login/verify"
    assert _bound_at(app, "chen@example.com") == dt.datetime(
        2022, 5, 10, 9, 30, tzinfo=dt.timezone.utc
    )
    if second_factor == "password":
        response = demo.post("/login/verify/password", {"password": "chen-demo-password"})
    else:
        assert demo.post("/login/verify/email").location == "/login/verify"
        code = last_code(app, "email", "chen@example.com")
        response = demo.post("/login/verify/email-code", {"code": code})
    assert response.location == "/account"
    rebound = _bound_at(app, "chen@example.com")
    assert rebound is not None
    assert rebound >= started

    demo.logout()
    assert demo.sms_login(CHEN).location == "/account"
    assert _bound_at(app, "chen@example.com") == rebound  # the second login did not move it
    # The Guard's policy trusted the binding of minutes ago: the sandbox was not asked.
    assert _reasons(app) == ["no_data", "recently_bound"]
    assert _deciders(app) == ["sandbox", "policy"]
    assert not demo_state(app).decisions.latest()[0].cached


def test_a_binding_older_than_the_window_is_asked_about_again(tmp_path: Path) -> None:
    """DEMO_FRESH_BINDING_DAYS=7: bound 5 days ago, straight in; 8 days ago, no_data steps up."""
    app = make_app(tmp_path, DEMO_FRESH_BINDING_DAYS="7")
    assert app.extensions["recyclecheck"].guard.policy.trust_recent_binding == dt.timedelta(7)
    now = dt.datetime.now(dt.timezone.utc)
    _set_bound_at(app, "chen@example.com", now - dt.timedelta(days=5))
    demo = Demo(app)
    assert demo.sms_login(CHEN).location == "/account"
    demo.logout()
    _set_bound_at(app, "chen@example.com", now - dt.timedelta(days=8))
    assert demo.sms_login(CHEN).location == "/login/verify"
    assert _reasons(app) == ["recently_bound", "no_data"]
    assert _deciders(app) == ["policy", "sandbox"]
    app.extensions["recyclecheck"].close()


def test_a_recent_binding_is_trusted_under_the_configured_policy(tmp_path: Path) -> None:
    """DEMO_FRESH_BINDING_DAYS joins RECYCLECHECK_POLICY, whether a Policy or a name."""
    deny = recyclecheck.Policy(on_reissued=recyclecheck.Action.DENY)
    app = make_app(tmp_path / "deny", RECYCLECHECK_POLICY=deny)
    policy = app.extensions["recyclecheck"].guard.policy
    assert policy == recyclecheck.Policy(
        on_reissued=recyclecheck.Action.DENY, trust_recent_binding=30
    )
    app.extensions["recyclecheck"].close()
    app = make_app(tmp_path / "open", RECYCLECHECK_POLICY="fail_open")
    policy = app.extensions["recyclecheck"].guard.policy
    assert policy.on_no_data is recyclecheck.Action.ALLOW
    assert policy.trust_recent_binding == dt.timedelta(days=30)
    app.extensions["recyclecheck"].close()


@pytest.mark.parametrize(
    ("days", "message"),
    [
        (45, "DEMO_FRESH_BINDING_DAYS=45 .*between 1 and 44 days"),
        (-1, "DEMO_FRESH_BINDING_DAYS=-1"),
        ("thirty", "DEMO_FRESH_BINDING_DAYS must be an int"),
        (2.5, "DEMO_FRESH_BINDING_DAYS=2.5"),
        (True, "DEMO_FRESH_BINDING_DAYS=True"),
    ],
)
def test_a_wrong_fresh_binding_window_fails_at_start_naming_the_setting(
    tmp_path: Path, days: object, message: str
) -> None:
    """The core refuses 45 days and more (the shortest quarantine); the demo names its setting."""
    with pytest.raises(recyclecheck.ConfigurationError, match=message):
        make_app(tmp_path, DEMO_FRESH_BINDING_DAYS=days)
    with pytest.raises(recyclecheck.ConfigurationError, match="DEMO_FRESH_BINDING_DAYS"):
        create_app(
            {"DEMO_DATABASE": str(tmp_path / "env.sqlite3")},
            environ={"DEMO_FRESH_BINDING_DAYS": str(days)},
        )


def test_without_the_fresh_binding_window_no_data_steps_up_every_time(tmp_path: Path) -> None:
    """Why the demo trusts recent bindings: a provider with no data says so whatever the date."""
    app = make_app(tmp_path, DEMO_FRESH_BINDING_DAYS=0)
    demo = Demo(app)
    demo.sms_login(CHEN)
    demo.post("/login/verify/password", {"password": "chen-demo-password"})
    demo.logout()
    assert demo.sms_login(CHEN).location == "/login/verify"
    assert _reasons(app) == ["no_data", "no_data"]
    assert app.extensions["recyclecheck"].guard.policy.trust_recent_binding is None
    app.extensions["recyclecheck"].close()


def test_not_covered_steps_up_once_and_the_provider_vouches_for_the_new_binding(
    tmp_path: Path,
) -> None:
    """Dana: coverage starts 2025; re-bound now, the provider itself answers not_reissued."""
    app = make_app(tmp_path, DEMO_FRESH_BINDING_DAYS=0)
    demo = Demo(app)
    assert demo.sms_login(DANA).location == "/login/verify"
    demo.post("/login/verify/password", {"password": "dana-demo-password"})
    demo.logout()
    assert demo.sms_login(DANA).location == "/account"
    assert _reasons(app) == ["not_covered", "not_reissued"]
    app.extensions["recyclecheck"].close()


# -- a number no account uses ---------------------------------------------------------------


def test_a_number_on_no_account_is_offered_registration_without_asking_the_provider(
    app: Flask, demo: Demo
) -> None:
    """No account to protect: no check, straight to registration."""
    assert demo.sms_login(NEW_NUMBER).location == "/register"
    assert "no account uses it yet" in demo.get("/register").get_data(as_text=True)
    assert _reasons(app) == []
    demo.post("/register", {"name": "Fay", "email": "fay@example.com", "password": "0123456789"})
    fay = account_row(app, "fay@example.com")
    assert fay["phone"] == NEW_NUMBER
    assert fay["phone_bound_at"] is not None


# -- recovery -------------------------------------------------------------------------------


def _recover(demo: Demo, email: str, new_number: str) -> None:
    app = demo.app
    assert demo.post("/recover", {"email": email}).location == "/recover/code"
    code = last_code(app, "email", email)
    assert demo.post("/recover/code", {"code": code}).location == "/recover/number"
    assert demo.post("/recover/number", {"phone": new_number}).location == "/recover/number/code"
    e164 = "+" + "".join(ch for ch in new_number if ch.isdigit())
    code = last_code(app, "sms", e164)
    assert demo.post("/recover/number/code", {"code": code}).location == "/account"


def test_the_old_owner_recovers_by_email_and_binds_a_new_number(app: Flask, demo: Demo) -> None:
    """Recovery sets bound_at to now on the new number; the old number leaves the account."""
    started = demo_state(app).now_dt().replace(microsecond=0)
    _recover(demo, "alice@example.com", "+86 186 0018 6000")
    alice = account_row(app, "alice@example.com")
    assert alice["phone"] == NEW_NUMBER
    assert dt.datetime.fromisoformat(alice["phone_bound_at"]) >= started
    assert "Hello, Alice Liu" in demo.get("/account").get_data(as_text=True)
    assert query(app, "SELECT id FROM accounts WHERE phone = ?", ALICE) == []

    demo.logout()
    assert demo.sms_login(NEW_NUMBER).location == "/account"  # her new number just works
    other = Demo(app, address="203.0.113.9")
    assert other.sms_login(ALICE).location == "/register"  # the old one names no account


def test_recovery_after_the_new_holder_registered(app: Flask) -> None:
    """Either order works: Mallory took the old number, Alice still recovers her account."""
    mallory = Demo(app, address="203.0.113.9")
    mallory.sms_login(ALICE)
    mallory.post(
        "/register", {"name": "Mallory", "email": "m@example.com", "password": "0123456789"}
    )
    alice = Demo(app)
    _recover(alice, "alice@example.com", NEW_NUMBER)
    assert account_row(app, "alice@example.com")["phone"] == NEW_NUMBER
    assert account_row(app, "m@example.com")["phone"] == ALICE


def test_recovery_binding_a_number_takes_it_off_a_stale_account(app: Flask, demo: Demo) -> None:
    """Binding a number held by another account moves it, and tells that account."""
    _recover(demo, "alice@example.com", BO)
    assert account_row(app, "alice@example.com")["phone"] == BO
    assert account_row(app, "bo@example.com")["phone"] is None
    assert query(app, "SELECT id FROM outbox WHERE recipient = 'bo@example.com'")


def test_recovery_does_not_say_whether_an_address_has_an_account(app: Flask, demo: Demo) -> None:
    """Unknown and known addresses get the same pages; no code works for an unknown one."""
    known = demo.post("/recover", {"email": "alice@example.com"})
    other = Demo(app, address="203.0.113.9")
    unknown = other.post("/recover", {"email": "nobody@example.com"})
    assert (known.status_code, known.location) == (unknown.status_code, unknown.location)
    assert query(app, "SELECT id FROM outbox WHERE recipient = 'nobody@example.com'") == []
    for guess in ("000000", "123456"):
        assert other.post("/recover/code", {"code": guess}).status_code == 400
    assert other.get("/recover/number").location == "/recover"


# -- policy and configuration through the demo ---------------------------------------------


def test_a_deny_policy_blocks_without_offering_a_step_up(tmp_path: Path) -> None:
    """With Policy(on_reissued=DENY) the new holder goes straight to the blocked page."""
    policy = recyclecheck.Policy(on_reissued=recyclecheck.Action.DENY)
    app = make_app(tmp_path, RECYCLECHECK_POLICY=policy)
    demo = Demo(app)
    assert demo.sms_login(ALICE).location == "/login/blocked"
    assert "can't be used to sign in" in demo.get("/login/blocked").get_data(as_text=True)
    assert demo.get("/login/verify").location == "/login"
    assert demo.post("/login/verify/password", {"password": "alice-demo-password"}).location == (
        "/login"
    )
    app.extensions["recyclecheck"].close()


def test_fail_open_from_the_environment_lets_no_data_through(tmp_path: Path) -> None:
    """RECYCLECHECK_POLICY=fail_open in the environment, no code change."""
    app = create_app(
        {"DEMO_DATABASE": str(tmp_path / "demo.sqlite3"), "DEMO_FRESH_BINDING_DAYS": 0},
        environ={"RECYCLECHECK_POLICY": "fail_open", "RECYCLECHECK_TIMEOUT": "0.5"},
    )
    assert app.extensions["recyclecheck"].guard.timeout == 0.5
    assert Demo(app).sms_login(CHEN).location == "/account"
    app.extensions["recyclecheck"].close()


@pytest.mark.parametrize("provider", ["aliyun", "camara", "router"])
def test_any_adapter_or_the_fake_server_by_environment_variables(
    tmp_path: Path,
    recyclecheck_fake_server_env: FakeProviderServer,
    provider: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RECYCLECHECK_PROVIDER plus the adapter's (or the routes') variables: the story over HTTP."""
    server = recyclecheck_fake_server_env
    server.script(ALICE, dt.date(2024, 3, 1))
    server.script(BO, None)
    monkeypatch.setenv("RECYCLECHECK_PROVIDER", provider)
    monkeypatch.setenv("RECYCLECHECK_ROUTES", "+86=aliyun; *=camara")  # read by "router" only
    monkeypatch.setenv("DEMO_DATABASE", str(tmp_path / "env.sqlite3"))
    app = create_app({"TESTING": True})  # everything else from os.environ
    asked = "aliyun" if provider == "router" else provider
    try:
        assert Demo(app).sms_login(BO).location == "/account"
        assert Demo(app, address="203.0.113.9").sms_login(ALICE).location == "/login/verify"
        assert {request.provider for request in server.requests} == {asked}
        assert _reasons(app) == ["not_reissued", "reissued_after_binding"]
        assert _deciders(app) == [asked, asked]
    finally:
        app.extensions["recyclecheck"].close()
