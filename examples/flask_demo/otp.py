"""Sending and checking one-time codes for a pending flow, under the throttles."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, request

import recyclecheck

from .gateways import send_email, send_sms
from .security import CodeCheck
from .state import demo, get_store
from .store import Account, Pending

__all__ = ["CodeResult", "check_code", "client_address", "send_email_code", "send_sms_code"]

#: The same words whatever went wrong: they never tell whether a code exists.
WRONG_CODE = "That code is wrong or has expired. Check the latest message, or ask for a new code."
TOO_MANY_CODES = "Too many codes were requested. Please wait a while and try again."
TOO_MANY_FAILURES = "Too many wrong codes. Please wait a while, or use another way in."


def client_address() -> str:
    """The client's address (behind a proxy, wrap the app in ``ProxyFix`` first)."""
    return request.remote_addr or "unknown"


@dataclass(frozen=True)
class CodeResult:
    """A checked code: ``ok``, or the message and HTTP status to answer with."""

    ok: bool
    message: str = ""
    status: int = 200


def send_sms_code(pending_id: str, e164: str, purpose: str) -> bool:
    """Send a new code for this step by SMS; False if a throttle refused."""
    state, store, now = demo(), get_store(), demo().now()
    limits = {"sms_per_number": e164, "sms_per_address": client_address()}
    if state.throttle.any_blocked(store, limits, now):
        current_app.logger.warning("sms to %s refused: throttled", recyclecheck.mask(e164))
        return False
    state.throttle.hit_all(store, limits, now)
    code = state.codes.issue(store, pending_id, purpose, now)
    minutes = round(state.codes.ttl / 60)
    send_sms(
        e164, f"Your code is {code}. It expires in {minutes} minutes. Never share it.", code=code
    )
    return True


def send_email_code(pending_id: str, account: Account, purpose: str) -> bool:
    """Send a new code for this step to the account's e-mail; False if a throttle refused."""
    state, store, now = demo(), get_store(), demo().now()
    limits = {"email_per_account": str(account.id), "email_per_address": client_address()}
    if state.throttle.any_blocked(store, limits, now):
        current_app.logger.warning("e-mail to account %d refused: throttled", account.id)
        return False
    state.throttle.hit_all(store, limits, now)
    code = state.codes.issue(store, pending_id, purpose, now)
    minutes = round(state.codes.ttl / 60)
    send_email(
        account.email,
        f"Your code is {code}. It expires in {minutes} minutes. If you did not try to "
        "sign in, you can ignore this message: nobody gets in without it.",
        account_id=account.id,
        code=code,
    )
    return True


def check_code(pending: Pending, purpose: str, *, recipient: str) -> CodeResult:
    """Check the form's ``code`` for this step; failures count per recipient and address."""
    state, store, now = demo(), get_store(), demo().now()
    limits = {
        "code_failures_per_recipient": recipient,
        "code_failures_per_address": client_address(),
    }
    if state.throttle.any_blocked(store, limits, now):
        return CodeResult(False, TOO_MANY_FAILURES, 429)
    result = state.codes.check(store, pending.id, purpose, request.form.get("code", ""), now)
    if result is CodeCheck.OK:
        return CodeResult(True)
    state.throttle.hit_all(store, limits, now)
    current_app.logger.info("wrong code for %s (%s)", purpose, result.value)
    return CodeResult(False, WRONG_CODE, 400)
