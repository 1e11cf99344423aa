"""Account recovery: prove the account by e-mail, then bind the number you hold now.

::

    /recover (e-mail) ──code to that address──> /recover/code
        ──> /recover/number (the new number) ──SMS code──> /recover/number/code
        ──> number bound, bound_at = now, the old number released ──> logged in

The pages never say whether an address has an account: an unknown address gets
the same answer, and no code ever works for it.
"""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

import recyclecheck

from .flow import complete_login, end_pending, requires, start_pending
from .otp import TOO_MANY_CODES, check_code, client_address, send_email_code, send_sms_code
from .phones import notify_released, parse_phone, release_number
from .state import demo, get_store
from .store import Account, Pending

__all__ = ["bp"]

bp = Blueprint("recovery", __name__, url_prefix="/recover")

RECOVERY_EMAIL = "recovery_email"
RECOVERY_SMS = "recovery_sms"

Page = Response | str | tuple[str, int]


@bp.get("")
def start() -> Page:
    """Step 1: the account's e-mail address."""
    return render_template("recover.html")


@bp.post("")
def send_email() -> Page:
    """Send a code to the address, if an account uses it (the answer is the same if not)."""
    email = request.form.get("email", "").strip()
    state, store = demo(), get_store()
    if state.throttle.blocked(store, "email_per_address", client_address(), state.now()):
        return render_template("recover.html", error=TOO_MANY_CODES), 429
    account = store.account_by_email(email) if 0 < len(email) <= 254 else None
    pending_id = start_pending("recovery", "email_sent", account_id=account.id if account else None)
    if account is not None:
        send_email_code(pending_id, account, RECOVERY_EMAIL)
    else:  # count it all the same, so unknown addresses cost what known ones do
        state.throttle.hit(store, "email_per_address", client_address(), state.now())
    flash("If an account uses that address, we sent it a code.", "info")
    return redirect(url_for("recovery.code"))


@bp.route("/code", methods=["GET", "POST"])
@requires("recovery", "email_sent")
def code(pending: Pending) -> Page:
    """Step 2: the code from the e-mail."""
    if request.method == "GET":
        return render_template("recover_code.html")
    result = check_code(pending, RECOVERY_EMAIL, recipient=f"account:{pending.account_id}")
    if not result.ok:
        return render_template("recover_code.html", error=result.message), result.status
    get_store().update_pending(pending.id, stage="email_verified")
    return redirect(url_for("recovery.number"))


@bp.route("/number", methods=["GET", "POST"])
@requires("recovery", "email_verified")
def number(pending: Pending) -> Page:
    """Step 3: the number to bind (the one you hold now)."""
    if request.method == "GET":
        return render_template("recover_number.html")
    phone = request.form.get("phone", "")
    e164 = parse_phone(phone)
    if e164 is None:
        error = "Enter a valid mobile number."
        return render_template("recover_number.html", phone=phone, error=error), 400
    if not send_sms_code(pending.id, e164, RECOVERY_SMS):
        return render_template("recover_number.html", phone=phone, error=TOO_MANY_CODES), 429
    get_store().update_pending(pending.id, stage="number_code_sent", phone=e164)
    return redirect(url_for("recovery.number_code"))


@bp.route("/number/code", methods=["GET", "POST"])
@requires("recovery", "number_code_sent")
def number_code(pending: Pending) -> Page:
    """Step 4: the SMS code; a right one binds the number and logs in."""
    assert pending.phone is not None
    masked = recyclecheck.mask(pending.phone)
    if request.method == "GET":
        return render_template("recover_number_code.html", masked=masked)
    result = check_code(pending, RECOVERY_SMS, recipient=pending.phone)
    if not result.ok:
        page = render_template("recover_number_code.html", masked=masked, error=result.message)
        return page, result.status
    assert pending.account_id is not None
    _bind(pending.account_id, pending.phone)
    return complete_login(pending.account_id, via="account recovery by e-mail")


@bp.post("/number/change")
@requires("recovery", "number_code_sent")
def change_number(pending: Pending) -> Response:
    """Go back to step 3 to bind another number."""
    get_store().update_pending(pending.id, stage="email_verified", phone=None)
    return redirect(url_for("recovery.number"))


@bp.post("/cancel")
def cancel() -> Response:
    """Abandon the recovery."""
    end_pending()
    return redirect(url_for("login.start"))


def _bind(account_id: int, e164: str) -> None:
    """Bind the number the owner just proved; it stops naming any other account."""
    store, now = get_store(), demo().now_dt()
    with store.transaction():
        account = store.account(account_id)
        assert isinstance(account, Account)
        released = release_number(store, e164, now, keep=account_id)
        # A re-bind by the verified owner: the account is proved (e-mail) and the
        # number is proved (SMS), so bound_at moves to now.  The old number, if any,
        # is simply replaced: it no longer names this account.
        store.set_phone(account_id, e164, now)
        old = f" (replacing {recyclecheck.mask(account.phone)})" if account.phone else ""
        detail = f"Number {recyclecheck.mask(e164)} bound after recovery by e-mail{old}"
        store.add_event(account_id, now, "rebound", detail)
    current_app.logger.info("account %d bound %s", account_id, recyclecheck.mask(e164))
    notify_released(released, e164)
