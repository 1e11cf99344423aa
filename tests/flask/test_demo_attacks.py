"""The demo against the known failures of step-up flows: each attack, refused."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from flask import Flask

import recyclecheck
from examples.flask_demo.security import Limit
from examples.flask_demo.store import Store

from .conftest import ALICE, BO, CHEN, Clock, Demo, account_row, last_code, make_app, query


def _assert_not_logged_in(demo: Demo) -> None:
    assert demo.get("/account").location == "/login"


# -- skipping the step-up ------------------------------------------------------------------


def test_the_account_page_is_out_of_reach_while_a_step_up_is_pending(demo: Demo) -> None:
    """A right SMS code on a recycled number gives no session: /account sends back to login."""
    demo.sms_login(ALICE)
    _assert_not_logged_in(demo)
    assert demo.get("/").location == "/login"


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("get", "/login/verify", {}),
        ("post", "/login/verify/password", {"password": "alice-demo-password"}),
        ("post", "/login/verify/email", {}),
        ("post", "/login/verify/email-code", {"code": "123456"}),
        ("get", "/login/blocked", {}),
        ("get", "/register", {}),
        ("post", "/register", {"name": "M", "email": "m@example.com", "password": "0123456789"}),
    ],
)
def test_later_steps_refuse_a_login_whose_sms_code_was_not_entered(
    app: Flask, demo: Demo, method: str, path: str, data: dict[str, str]
) -> None:
    """Typing a later URL before the SMS code is verified goes back to the start."""
    demo.send_code(ALICE)
    response = demo.get(path) if method == "get" else demo.post(path, data)
    assert response.location == "/login"
    assert account_row(app, "alice@example.com")["phone"] == ALICE
    assert query(app, "SELECT id FROM accounts WHERE email = 'm@example.com'") == []
    assert query(app, "SELECT id FROM outbox WHERE channel = 'email'") == []


@pytest.mark.parametrize(
    "path", ["/login/code", "/login/verify", "/login/blocked", "/register", "/recover/number"]
)
def test_later_steps_refuse_a_browser_with_no_pending_login(demo: Demo, path: str) -> None:
    """No pending state server-side: every later URL starts over."""
    assert demo.get(path).location in ("/login", "/recover")


def test_a_password_step_up_cannot_be_replayed_into_another_login(app: Flask, demo: Demo) -> None:
    """Passing a step-up logs in once; it is not a flag a later login can reuse."""
    demo.sms_login(CHEN)
    assert demo.post("/login/verify/password", {"password": "chen-demo-password"}).location == (
        "/account"
    )
    replay = demo.post("/login/verify/password", {"password": "chen-demo-password"})
    assert replay.location == "/login"  # the pending login is gone

    attacker = Demo(app, address="203.0.113.9")
    attacker.sms_login(ALICE)
    assert attacker.post(
        "/login/verify/password", {"password": "chen-demo-password"}
    ).status_code == (400)
    _assert_not_logged_in(attacker)


def test_the_pending_login_belongs_to_its_session(app: Flask) -> None:
    """Another browser cannot continue someone's pending login."""
    victim, attacker = Demo(app), Demo(app, address="203.0.113.9")
    victim.send_code(BO)
    code = last_code(app, "sms", BO)
    assert attacker.post("/login/code", {"code": code}).location == "/login"
    assert victim.enter_code(code).location == "/account"


def test_the_pending_login_expires(app: Flask, demo: Demo, clock: Clock) -> None:
    """Server-side pending state has an expiry (15 minutes)."""
    demo.sms_login(ALICE)
    clock.advance(901)
    assert demo.get("/login/verify").location == "/login"


# -- codes ------------------------------------------------------------------------------------


def test_a_used_code_cannot_be_replayed(app: Flask, demo: Demo) -> None:
    """Single use: the same code, re-entered after it logged in, opens nothing."""
    demo.sms_login(BO)
    old = last_code(app, "sms", BO)
    demo.logout()
    demo.send_code(BO)
    new = last_code(app, "sms", BO)
    if new == old:  # pragma: no cover - one chance in a million
        pytest.skip("the new code happens to equal the old one")
    assert demo.enter_code(old).status_code == 400
    assert demo.enter_code(new).location == "/account"
    used = query(app, "SELECT used_at FROM codes")
    assert used == []  # the finished login's codes are deleted with it


def test_a_code_is_used_at_most_once_even_within_its_login(app: Flask, demo: Demo) -> None:
    """The atomic use marks the code; a second submission at the same stage fails."""
    demo.send_code(CHEN)
    code = last_code(app, "sms", CHEN)
    assert demo.enter_code(code).location == "/login/verify"
    (row,) = query(app, "SELECT used_at FROM codes WHERE purpose = 'sms_login'")
    assert row["used_at"] is not None
    assert demo.enter_code(code).location == "/login"  # the stage moved on


def test_an_expired_code_is_refused(app: Flask, demo: Demo, clock: Clock) -> None:
    """Codes live 10 minutes."""
    demo.send_code(BO)
    code = last_code(app, "sms", BO)
    clock.advance(601)
    response = demo.enter_code(code)
    assert response.status_code == 400
    assert "wrong or has expired" in response.get_data(as_text=True)
    demo.post("/login/code/resend")
    assert demo.enter_code(last_code(app, "sms", BO)).location == "/account"


def test_a_code_allows_five_attempts_then_even_the_right_one_fails(app: Flask, demo: Demo) -> None:
    """Per-code limit: the sixth attempt fails whatever it is; a new code works."""
    demo.send_code(BO)
    code = last_code(app, "sms", BO)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(5):
        assert demo.enter_code(wrong).status_code == 400
    assert demo.enter_code(code).status_code == 400
    demo.post("/login/code/resend")
    assert demo.enter_code(last_code(app, "sms", BO)).location == "/account"


def test_a_new_code_replaces_the_previous_one(app: Flask, demo: Demo) -> None:
    """Resend: the earlier code stops working."""
    demo.send_code(BO)
    first = last_code(app, "sms", BO)
    demo.post("/login/code/resend")
    second = last_code(app, "sms", BO)
    if first == second:  # pragma: no cover - one chance in a million
        pytest.skip("the two codes happen to be equal")
    assert demo.enter_code(first).status_code == 400
    assert demo.enter_code(second).location == "/account"


def test_codes_are_stored_only_as_keyed_hmacs(app: Flask, demo: Demo) -> None:
    """The database holds no code in the clear, nor its plain hash (outbox aside: the fake phone)."""
    demo.send_code(BO)
    code = last_code(app, "sms", BO)
    (row,) = query(app, "SELECT * FROM codes")
    stored = " ".join(str(value) for value in tuple(row))
    assert code not in stored
    assert hashlib.sha256(code.encode()).hexdigest() not in stored


def test_codes_are_random(tmp_path: Path) -> None:
    """Fifty logins get (nearly) fifty different six-digit codes."""
    app = make_app(tmp_path, DEMO_LIMITS={"sms_per_number": Limit(100, 3600)})
    codes = set()
    for index in range(50):
        Demo(app, address=f"198.51.100.{index}").send_code(BO)
        codes.add(last_code(app, "sms", BO))
    assert all(re.fullmatch(r"\d{6}", code) for code in codes)
    assert len(codes) >= 48
    app.extensions["recyclecheck"].close()


def _limited_app(tmp_path: Path, **limits: Limit) -> Flask:
    return make_app(tmp_path, DEMO_LIMITS=limits)


def test_wrong_codes_are_limited_per_number_across_addresses(tmp_path: Path) -> None:
    """Many addresses guessing one number's codes are stopped; other numbers are not."""
    app = _limited_app(tmp_path, code_failures_per_recipient=Limit(3, 3600))
    for index in range(3):
        guesser = Demo(app, address=f"203.0.113.{index}")
        guesser.send_code(BO)
        guesser.enter_code("000000" if last_code(app, "sms", BO) != "000000" else "000001")
    owner = Demo(app)
    owner.send_code(BO)
    response = owner.enter_code(last_code(app, "sms", BO))
    assert response.status_code == 429
    assert Demo(app, address="192.0.2.1").sms_login(CHEN).location == "/login/verify"
    app.extensions["recyclecheck"].close()


def test_wrong_codes_are_limited_per_client_address(tmp_path: Path) -> None:
    """One address guessing across numbers is stopped; another address is not."""
    app = _limited_app(tmp_path, code_failures_per_address=Limit(2, 3600))
    guesser = Demo(app, address="203.0.113.5")
    for number in (BO, CHEN):
        guesser.send_code(number)
        guesser.enter_code("000000" if last_code(app, "sms", number) != "000000" else "000001")
    guesser.send_code(BO)
    assert guesser.enter_code(last_code(app, "sms", BO)).status_code == 429
    assert Demo(app).sms_login(BO).location == "/account"
    app.extensions["recyclecheck"].close()


def test_throttle_windows_end_on_their_own(tmp_path: Path, clock: Clock) -> None:
    """No permanent lock-out: an hour later the number logs in again."""
    app = make_app(
        tmp_path, DEMO_CLOCK=clock, DEMO_LIMITS={"code_failures_per_recipient": Limit(1, 3600)}
    )
    demo = Demo(app)
    demo.send_code(BO)
    demo.enter_code("000000" if last_code(app, "sms", BO) != "000000" else "000001")
    assert demo.enter_code(last_code(app, "sms", BO)).status_code == 429
    clock.advance(3601)
    demo.post("/login/cancel")
    assert demo.sms_login(BO).location == "/account"
    app.extensions["recyclecheck"].close()


def test_sms_sends_are_limited_per_number_and_per_address(tmp_path: Path) -> None:
    """Code requests: per number (any address) and per address (any number)."""
    app = _limited_app(tmp_path, sms_per_number=Limit(2, 3600), sms_per_address=Limit(3, 3600))
    for index in range(2):
        assert Demo(app, address=f"203.0.113.{index}").send_code(BO).status_code == 302
    assert Demo(app, address="203.0.113.9").send_code(BO).status_code == 429
    sender = Demo(app, address="192.0.2.7")
    for number in (CHEN, ALICE, "+8618600186000"):
        assert sender.send_code(number).status_code == 302
    assert sender.send_code("+8618700187000").status_code == 429
    assert len(query(app, "SELECT id FROM outbox")) == 5
    app.extensions["recyclecheck"].close()


# -- step-up guessing -------------------------------------------------------------------------


def test_wrong_passwords_are_limited_per_account_but_the_email_path_stays_open(
    tmp_path: Path,
) -> None:
    """Password guessing across logins is stopped per account; the owner's e-mail code still works."""
    app = _limited_app(tmp_path, password_failures_per_account=Limit(3, 3600))
    for index in range(3):
        guesser = Demo(app, address=f"203.0.113.{index}")
        guesser.sms_login(CHEN)
        guesser.post("/login/verify/password", {"password": "guess"})
    owner = Demo(app)
    owner.sms_login(CHEN)
    assert owner.post("/login/verify/password", {"password": "chen-demo-password"}).status_code == (
        429
    )
    owner.post("/login/verify/email")
    code = last_code(app, "email", "chen@example.com")
    assert owner.post("/login/verify/email-code", {"code": code}).location == "/account"
    app.extensions["recyclecheck"].close()


def test_wrong_email_codes_count_towards_blocking_the_login(app: Flask, demo: Demo) -> None:
    """Five failed second factors of any kind end the step-up."""
    demo.sms_login(ALICE)
    demo.post("/login/verify/email")
    for _ in range(2):
        demo.post("/login/verify/email-code", {"code": "000000"})
    for _ in range(2):
        demo.post("/login/verify/password", {"password": "guess"})
    assert demo.post("/login/verify/email-code", {"code": "000000"}).location == "/login/blocked"
    assert demo.post("/login/verify/password", {"password": "alice-demo-password"}).location == (
        "/login"
    )
    _assert_not_logged_in(demo)


# -- CSRF ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/login", "/login/code", "/logout", "/recover", "/register", "/dev/reset"]
)
def test_a_form_without_the_csrf_token_is_refused(app: Flask, demo: Demo, path: str) -> None:
    """Missing token: 400, nothing done."""
    demo.get("/login")
    response = demo.http.post(path, data={"phone": BO, "email": "alice@example.com"})
    assert response.status_code == 400
    assert "This form has expired" in response.get_data(as_text=True)
    assert query(app, "SELECT id FROM outbox") == []


def test_a_forged_csrf_token_is_refused(app: Flask, demo: Demo) -> None:
    """A wrong token, or one from another session, is refused."""
    demo.get("/login")
    assert demo.post("/login", {"phone": BO, "csrf_token": "forged"}).status_code == 400
    other = Demo(app, address="203.0.113.9")
    other.get("/login")
    assert other.token is not None
    assert demo.post("/login", {"phone": BO, "csrf_token": other.token}).status_code == 400
    assert demo.post("/login", {"phone": BO, "csrf_token": "ü" * 43}).status_code == 400
    assert query(app, "SELECT id FROM outbox") == []


def test_a_cross_site_post_without_a_session_is_refused(app: Flask) -> None:
    """No cookie, no token: a forged form from another site does nothing."""
    response = app.test_client().post("/login", data={"phone": BO, "csrf_token": ""})
    assert response.status_code == 400


# -- the session cookie ---------------------------------------------------------------------


def test_a_session_cookie_from_before_login_is_worthless_after_it(app: Flask, demo: Demo) -> None:
    """Session fixation: the pre-login cookie is re-issued at login and the old one is dead."""
    demo.get("/login")
    planted = demo.cookie
    assert planted is not None
    demo.sms_login(BO)
    assert demo.cookie not in (None, planted)
    attacker = Demo(app, address="203.0.113.9")
    attacker.http.set_cookie(app.config["SESSION_COOKIE_NAME"], planted)
    assert attacker.get("/account").location == "/login"


def test_a_session_cookie_is_worthless_after_logout(app: Flask, demo: Demo) -> None:
    """Logout deletes the session server-side; a copied cookie opens nothing."""
    demo.sms_login(BO)
    stolen = demo.cookie
    assert stolen is not None
    demo.logout()
    thief = Demo(app, address="203.0.113.9")
    thief.http.set_cookie(app.config["SESSION_COOKIE_NAME"], stolen)
    assert thief.get("/account").location == "/login"


def test_the_session_cookie_holds_only_an_opaque_id(app: Flask, demo: Demo) -> None:
    """No account id, code or step in the cookie; the database keeps only its hash."""
    demo.send_code(ALICE)
    code = last_code(app, "sms", ALICE)
    demo.enter_code(code)
    cookie = demo.cookie
    assert cookie is not None
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", cookie)
    assert query(app, "SELECT id FROM sessions WHERE id = ?", cookie) == []
    digest = hashlib.sha256(cookie.encode()).hexdigest()
    (row,) = query(app, "SELECT data FROM sessions WHERE id = ?", digest)
    assert "pending" in row["data"]
    assert code not in row["data"]


def test_a_forged_session_cookie_opens_nothing(app: Flask, demo: Demo) -> None:
    """A made-up or tampered cookie is a new, empty session."""
    demo.sms_login(BO)
    cookie = demo.cookie
    assert cookie is not None
    forger = Demo(app, address="203.0.113.9")
    tampered = cookie[:20] + ("B" if cookie[20] == "A" else "A") + cookie[21:]
    forger.http.set_cookie(app.config["SESSION_COOKIE_NAME"], tampered)
    assert forger.get("/account").location == "/login"


def test_sessions_expire_server_side(app: Flask, demo: Demo, clock: Clock) -> None:
    """A session unused past its lifetime is gone, whatever the browser keeps."""
    demo.sms_login(BO)
    clock.advance(12 * 3600 + 1)
    assert demo.get("/account").location == "/login"


def test_development_cookies_are_httponly_and_samesite_lax(demo: Demo) -> None:
    """Local development (plain http): HttpOnly, SameSite=Lax, not Secure."""
    (header,) = demo.get("/login").headers.getlist("Set-Cookie")
    assert header.startswith("demo_session=")
    assert "HttpOnly" in header
    assert "SameSite=Lax" in header
    assert "Secure" not in header


def test_outside_development_cookies_are_secure_and_the_panel_is_gone(tmp_path: Path) -> None:
    """DEMO_DEVELOPMENT off: a Secure __Host- cookie, no developer panel, no reset."""
    app = make_app(tmp_path, DEMO_DEVELOPMENT=False, SECRET_KEY="k" * 32)
    demo = Demo(app)
    page = demo.get("/login", base_url="https://shop.example")
    (header,) = page.headers.getlist("Set-Cookie")
    assert header.startswith("__Host-demo_session=")
    assert "Secure" in header
    assert "HttpOnly" in header
    assert "SameSite=Lax" in header
    assert "Path=/" in header
    assert 'id="dev-panel"' not in page.get_data(as_text=True)
    assert "data-code" not in page.get_data(as_text=True)
    response = demo.post("/dev/reset", base_url="https://shop.example")
    assert response.status_code == 404
    app.extensions["recyclecheck"].close()


def test_outside_development_a_secret_key_is_required(tmp_path: Path) -> None:
    """No made-up key in production."""
    with pytest.raises(recyclecheck.ConfigurationError, match="DEMO_SECRET_KEY"):
        make_app(tmp_path, DEMO_DEVELOPMENT=False)


def test_the_development_secret_key_survives_a_restart(tmp_path: Path) -> None:
    """Generated once and kept in the database, so codes sent before a restart still work."""
    first = make_app(tmp_path)
    Demo(first).send_code(BO)
    second = make_app(tmp_path)
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    for app in (first, second):
        app.extensions["recyclecheck"].close()


def test_the_demo_s_rows_never_show_a_number_in_their_repr(app: Flask, demo: Demo) -> None:
    """Accounts and pending logins may reach a log or a traceback: masked numbers only."""
    demo.send_code(ALICE)
    store = Store(app.config["DEMO_DATABASE"])
    try:
        account = store.account_by_phone(ALICE)
        (row,) = query(app, "SELECT id FROM pending")
        pending = store.pending(row["id"], now=0.0)
    finally:
        store.close()
    for value in (account, pending):
        text = repr(value)
        assert "+86 138****8000" in text
        assert "13800138000" not in text
        assert "alice@example.com" not in text


def test_pages_refuse_framing_and_caching(demo: Demo) -> None:
    """Clickjacking a step-up form, or a shared cache keeping account data, is refused."""
    demo.sms_login(BO)
    for path in ("/login", "/account"):
        headers = demo.get(path).headers
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Cache-Control"] == "no-store"


def test_oversized_forms_are_refused(app: Flask, demo: Demo) -> None:
    """A form body far beyond what the pages send is refused before it is parsed."""
    demo.get("/login")
    response = demo.post("/login", {"phone": "1" * 100_000})
    assert response.status_code == 413
    assert query(app, "SELECT id FROM outbox") == []
