"""The SMS-code login, the recycled-number check, the step-up and the fresh account.

The journey, one pending row per login (see ``flow.py``)::

    /login ──SMS code──> /login/code ──code OK──> Guard.check(number, bound_at)
        allow  ──────────────────────────────────> logged in (bound_at unchanged)
        step_up ──> /login/verify (password, or a code to the account's e-mail)
                       passed ──> bound_at = now ──> logged in
                       failed / "I'm new here" ──> /login/blocked ──> /register or /recover
        deny ─────> /login/blocked
    no account for the number ──> /register
"""

from __future__ import annotations

import re
import sqlite3

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from werkzeug.security import check_password_hash, generate_password_hash
from werkzeug.wrappers import Response

import recyclecheck

from .extensions import recyclecheck_ext
from .flow import complete_login, current_account, end_pending, requires, start_pending
from .otp import TOO_MANY_CODES, check_code, client_address, send_email_code, send_sms_code
from .phones import notify_released, parse_phone, release_number
from .state import demo, get_store
from .store import Account, Pending

__all__ = ["bp"]

bp = Blueprint("login", __name__)

SMS_LOGIN = "sms_login"
STEP_UP_EMAIL = "step_up_email"
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
MIN_PASSWORD = 10

Page = Response | str | tuple[str, int]


@bp.get("/")
def index() -> Response:
    """Home: the account if logged in, else the login page."""
    return redirect(url_for("account.home" if current_account() else "login.start"))


@bp.get("/login")
def start() -> Page:
    """Step 1: the phone number."""
    if current_account() is not None:
        return redirect(url_for("account.home"))
    return render_template("login.html")


@bp.post("/login")
def send_code() -> Page:
    """Step 1 sent: text a code to the number (whether or not an account uses it)."""
    phone = request.form.get("phone", "")
    e164 = parse_phone(phone)
    if e164 is None:
        return render_template("login.html", phone=phone, error="Enter a valid mobile number."), 400
    pending_id = start_pending("login", "code_sent", phone=e164)
    if not send_sms_code(pending_id, e164, SMS_LOGIN):
        end_pending()
        return render_template("login.html", phone=phone, error=TOO_MANY_CODES), 429
    return redirect(url_for("login.code"))


@bp.get("/login/code")
@requires("login", "code_sent")
def code(pending: Pending) -> Page:
    """Step 2: the SMS code."""
    return render_template("code.html", masked=recyclecheck.mask(pending.phone or ""))


@bp.post("/login/code/resend")
@requires("login", "code_sent")
def resend(pending: Pending) -> Page:
    """Text a new code; the previous one stops working."""
    assert pending.phone is not None
    if not send_sms_code(pending.id, pending.phone, SMS_LOGIN):
        masked = recyclecheck.mask(pending.phone)
        return render_template("code.html", masked=masked, error=TOO_MANY_CODES), 429
    flash("We sent a new code. The previous one no longer works.", "info")
    return redirect(url_for("login.code"))


@bp.post("/login/cancel")
def cancel() -> Response:
    """Abandon the login in progress."""
    end_pending()
    return redirect(url_for("login.start"))


@bp.post("/login/code")
@requires("login", "code_sent")
def verify_code(pending: Pending) -> Page:
    """Step 2 sent: a right code proves the number is held today; now ask recyclecheck."""
    assert pending.phone is not None
    result = check_code(pending, SMS_LOGIN, recipient=pending.phone)
    if not result.ok:
        masked = recyclecheck.mask(pending.phone)
        return render_template("code.html", masked=masked, error=result.message), result.status
    account = get_store().account_by_phone(pending.phone)
    if account is None:
        get_store().update_pending(pending.id, stage="no_account")
        return redirect(url_for("login.register"))
    return _decide(pending, account)


def _decide(pending: Pending, account: Account) -> Response:
    """Check the number with the Guard *before* the SMS code logs anyone in."""
    assert account.phone is not None
    assert account.phone_bound_at is not None
    try:
        decision = recyclecheck_ext.check(account.phone, bound_at=account.phone_bound_at)
    except recyclecheck.InvalidInput:  # a corrupt bound_at: never a reason to let anyone in
        current_app.logger.warning("account %d has an unusable bound_at: step up", account.id)
        action, reason = recyclecheck.Action.STEP_UP, "invalid_bound_at"
    else:
        action, reason = decision.action, decision.reason.value
    if action is recyclecheck.Action.ALLOW:
        # The SMS code alone logs in, and phone_bound_at stays exactly where it is.
        # It is tempting to "refresh" it here (the person just proved they hold the
        # number), but that proof is exactly what the new holder of a recycled number
        # can give: had the provider not yet learnt of a reissue, refreshing would
        # erase the evidence and every later check would pass them.  Only a passed
        # step-up, account creation, or a re-bind by a verified owner moves it.
        return complete_login(account.id, via="SMS code alone (bound_at unchanged)")
    stage = "blocked" if action is recyclecheck.Action.DENY else "step_up"
    get_store().update_pending(
        pending.id, stage=stage, account_id=account.id, action=action.value, reason=reason
    )
    return redirect(url_for("login.verify" if stage == "step_up" else "login.blocked"))


# -- step-up: something only the account's owner has ----------------------------------------


def _pending_account(pending: Pending) -> Account:
    account = get_store().account(pending.account_id) if pending.account_id else None
    if account is None:  # pragma: no cover - accounts are never deleted
        raise LookupError("pending login without its account")
    return account


def _verify_page(pending: Pending, error: str | None = None, status: int = 200) -> Page:
    page = render_template("verify.html", email_code_sent=pending.email_code_sent, error=error)
    return page, status


@bp.get("/login/verify")
@requires("login", "step_up")
def verify(pending: Pending) -> Page:
    """Step 3 (when the Guard says step up): the password, or a code to the account's e-mail."""
    return _verify_page(pending)


@bp.post("/login/verify/password")
@requires("login", "step_up")
def verify_password(pending: Pending) -> Page:
    """The account password as the second factor."""
    account, state, store = _pending_account(pending), demo(), get_store()
    limits = {
        "password_failures_per_account": str(account.id),
        "password_failures_per_address": client_address(),
    }
    if state.throttle.any_blocked(store, limits, state.now()):
        message = "Too many wrong passwords. Use the e-mail code instead, or try again later."
        return _verify_page(pending, message, 429)
    if check_password_hash(account.password_hash, request.form.get("password", "")):
        return _step_up_passed(pending, account, "password")
    state.throttle.hit_all(store, limits, state.now())
    return _step_up_failed(pending, "That password is not right.")


@bp.post("/login/verify/email")
@requires("login", "step_up")
def send_step_up_email(pending: Pending) -> Page:
    """Send a code to the account's e-mail address (which the page never shows)."""
    if not send_email_code(pending.id, _pending_account(pending), STEP_UP_EMAIL):
        return _verify_page(pending, TOO_MANY_CODES, 429)
    get_store().mark_email_code_sent(pending.id)
    flash("We sent a code to the e-mail address on the account.", "info")
    return redirect(url_for("login.verify"))


@bp.post("/login/verify/email-code")
@requires("login", "step_up")
def verify_email_code(pending: Pending) -> Page:
    """The e-mail code as the second factor."""
    account = _pending_account(pending)
    result = check_code(pending, STEP_UP_EMAIL, recipient=f"account:{account.id}")
    if result.ok:
        return _step_up_passed(pending, account, "e-mail code")
    if result.status == 429:
        return _verify_page(pending, result.message, 429)
    return _step_up_failed(pending, result.message)


def _step_up_failed(pending: Pending, message: str) -> Page:
    failures = get_store().add_pending_failure(pending.id)
    if failures >= demo().step_up_attempts:
        get_store().update_pending(pending.id, stage="blocked")
        current_app.logger.info("step-up failed %d times: login blocked", failures)
        return redirect(url_for("login.blocked"))
    return _verify_page(pending, message, 400)


def _step_up_passed(pending: Pending, account: Account, how: str) -> Response:
    """The owner proved the account, and the SMS code proved the number: re-bind it now."""
    assert pending.phone is not None
    store, now = get_store(), demo().now_dt()
    with store.transaction():
        # The one place a login moves bound_at: the person passed a second factor,
        # so whatever happened to the number before now no longer matters.
        store.set_phone(account.id, pending.phone, now)
        store.add_event(account.id, now, "rebound", f"Number re-bound after a {how} step-up")
    return complete_login(account.id, via=f"SMS code and {how} step-up")


@bp.get("/login/blocked")
@requires("login", "step_up", "blocked")
def blocked(pending: Pending) -> Page:
    """Step-up failed or impossible: recover the account, or start a new one."""
    return render_template("blocked.html", denied=pending.action == "deny")


# -- a fresh account for the number ----------------------------------------------------------


@bp.route("/register", methods=["GET", "POST"])
@requires("login", "step_up", "blocked", "no_account")
def register(pending: Pending) -> Page:
    """A new account for the number the SMS code just proved (released from any other)."""
    taken = pending.stage != "no_account"
    if request.method == "GET":
        return render_template("register.html", taken=taken, form={})
    form = {key: request.form.get(key, "").strip() for key in ("name", "email")}
    error = _registration_error(form, request.form.get("password", ""))
    if error is not None:
        return render_template("register.html", taken=taken, form=form, error=error), 400
    try:
        account_id, released = _create_account(pending, form, request.form["password"])
    except sqlite3.IntegrityError:
        error = "An account already uses this e-mail address. Recover it instead."
        return render_template("register.html", taken=taken, form=form, error=error), 400
    assert pending.phone is not None
    notify_released(released, pending.phone)
    return complete_login(account_id, via="new account")


def _registration_error(form: dict[str, str], password: str) -> str | None:
    if not 1 <= len(form["name"]) <= 80:
        return "Enter your name (up to 80 characters)."
    if len(form["email"]) > 254 or not _EMAIL.fullmatch(form["email"]):
        return "Enter a valid e-mail address."
    if not MIN_PASSWORD <= len(password) <= 200:
        return f"Choose a password of at least {MIN_PASSWORD} characters."
    if get_store().account_by_email(form["email"]) is not None:
        return "An account already uses this e-mail address. Recover it instead."
    return None


def _create_account(
    pending: Pending, form: dict[str, str], password: str
) -> tuple[int, Account | None]:
    assert pending.phone is not None
    store, now = get_store(), demo().now_dt()
    password_hash = generate_password_hash(password)
    with store.transaction():
        released = release_number(store, pending.phone, now, keep=None)
        account_id = store.create_account(
            name=form["name"],
            email=form["email"],
            password_hash=password_hash,
            phone=pending.phone,
            now=now,  # created with the number: that is its first bound_at
        )
        store.add_event(account_id, now, "created", "Account created with its number")
    return account_id, released
