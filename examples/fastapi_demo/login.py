"""The SMS-code login, the recycled-number check and the step-up, as JSON endpoints.

The journey (``login_id`` names the login in progress; the server keeps its stage)::

    POST /login/sms {phone} ──> a code by SMS, {login_id}   (sent whether or not an account exists)
    POST /login/sms/verify {login_id, code}
        code right, account bound to the number ──> await guard.acheck(number, bound_at)
            allow ─────────────> {"status": "logged_in", session_token}   bound_at unchanged
            step_up / deny ────> {"status": "step_up", login_id}
                POST /login/step-up/password {login_id, password}, or
                POST /login/step-up/email {login_id} then .../email/verify {login_id, code}
                    passed ──> bound_at = now ──> {"status": "logged_in", session_token}
                    wrong ───> 401; after five wrong answers the login is blocked (403)
    GET /me, POST /logout with "Authorization: Bearer <session_token>"

Nothing logs anyone in before the check has answered, and nothing but a
passed step-up moves ``bound_at``.  Logs carry masked numbers and account ids.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Annotated, Literal

import phonenumbers
from fastapi import APIRouter, Depends, HTTPException, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

import recyclecheck

from .state import Demo, DemoDep
from .store import Account, Login, verify_password

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter()

SMS, EMAIL = "sms", "email"
STEP_UP_METHODS = ["password", "email_code"]
MAX_EMAIL_CODES = 3  # e-mail codes per login


def _not_at_this_step() -> HTTPException:
    """Unknown, expired, finished, or at another stage: the same answer for all of them."""
    return HTTPException(status.HTTP_409_CONFLICT, "login_not_at_this_step")


# -- request and response bodies ---------------------------------------------------------


class PhoneIn(BaseModel):
    phone: str = Field(min_length=1, max_length=64)


class LoginIdIn(BaseModel):
    login_id: str = Field(max_length=64)


class CodeIn(LoginIdIn):
    code: str = Field(max_length=16)


class PasswordIn(LoginIdIn):
    password: str = Field(max_length=200)


class LoginStarted(BaseModel):
    login_id: str
    code_expires_in: int


class LoginResult(BaseModel):
    status: Literal["logged_in", "step_up"]
    session_token: str | None = None  # when logged in
    login_id: str | None = None  # when a step-up is needed: pass it to a step-up endpoint
    step_up_methods: list[str] | None = None


class Profile(BaseModel):
    name: str
    email: str
    phone: str  # masked
    phone_bound_at: dt.datetime


# -- step 1: the SMS code ------------------------------------------------------------------


def parse_phone(text: str, region: str | None) -> str | None:
    """The number typed, in E.164, or ``None`` if it is not a valid number."""
    if not text.isprintable():
        return None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if number.extension or not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


@router.post("/login/sms", status_code=status.HTTP_202_ACCEPTED)
async def send_sms_code(body: PhoneIn, demo: DemoDep) -> LoginStarted:
    """Text a code to the number, whether or not an account uses it (no enumeration)."""
    e164 = parse_phone(body.phone, demo.settings.default_region)
    if e164 is None:
        raise HTTPException(422, "invalid_phone_number")
    settings, now = demo.settings, demo.now()
    limit, window = settings.sms_per_number, settings.sms_window
    if not demo.store.may_send_sms(e164, limit=limit, window=window, now=now):
        log.warning("sms to %s refused: too many codes", recyclecheck.mask(e164))
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too_many_codes")
    login_id, login = demo.store.start_login(e164, expires_at=now + settings.login_ttl, now=now)
    code = demo.codes.issue(login, SMS, now=now)
    demo.store.send_sms(e164, f"Your login code is {code}. Never share it.", code)
    log.info("login code sent to %s", recyclecheck.mask(e164))
    return LoginStarted(login_id=login_id, code_expires_in=int(settings.code_ttl))


@router.post("/login/sms/verify", response_model_exclude_none=True)
async def verify_sms_code(body: CodeIn, demo: DemoDep) -> LoginResult:
    """A right code proves the number is held today; recyclecheck says if that is enough."""
    login = demo.store.login(body.login_id, "code_sent", demo.now())
    if login is None:
        raise _not_at_this_step()
    if not demo.codes.check(login, SMS, body.code, now=demo.now()):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "wrong_or_expired_code")
    account = demo.store.account_by_phone(login.phone)
    if account is None:
        demo.store.end_login(login)
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no_account_for_this_number")
    # While the check runs, no endpoint accepts this login (its stage is "checking").
    login.stage, login.account_id = "checking", account.id
    if await _sms_code_is_enough(demo, account):
        # The SMS code alone logs in, and bound_at stays exactly where it is.  It is
        # tempting to "refresh" it here, since the person just proved they hold the
        # number; but that proof is exactly what the new holder of a recycled number
        # can give.  Had the provider not yet learnt of a reissue, refreshing would
        # erase the evidence and every later check would pass them.  Only a passed
        # step-up (or account creation, or a re-bind by a verified owner) moves it.
        return _logged_in(demo, login, account, via="SMS code")
    login.stage = "step_up"
    return LoginResult(status="step_up", login_id=body.login_id, step_up_methods=STEP_UP_METHODS)


async def _sms_code_is_enough(demo: Demo, account: Account) -> bool:
    """Ask recyclecheck, awaiting: the event loop serves other requests meanwhile.

    ``acheck`` answers within the Guard's timeout whatever the provider does;
    a slow or failing provider answers ``step_up`` (``provider_unavailable``).
    """
    try:
        decision = await demo.guard.acheck(account.phone, bound_at=account.bound_at)
    except recyclecheck.InvalidInput:  # a corrupt bound_at is never a reason to let anyone in
        log.warning("account %d has an unusable bound_at: step up", account.id)
        return False
    log.info(
        "login to account %d on %s: %s (%s)",
        account.id,
        decision.masked_number,
        decision.action.value,
        decision.reason.value,
    )
    return decision.allowed


# -- step 2, when recyclecheck asks for it: something only the account's owner has -------


def _at_step_up(demo: Demo, login_id: str) -> tuple[Login, Account]:
    login = demo.store.login(login_id, "step_up", demo.now())
    account = demo.store.accounts.get(login.account_id or 0) if login else None
    if login is None or account is None:
        raise _not_at_this_step()
    return login, account


def _take_attempt(demo: Demo, login: Login) -> None:
    """Count an answer *before* checking it, so concurrent guesses cannot exceed the limit."""
    if login.step_up_attempts >= demo.settings.step_up_attempts:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "login_blocked")
    login.step_up_attempts += 1


def _step_up_failed(demo: Demo, login: Login, detail: str) -> HTTPException:
    if login.step_up_attempts >= demo.settings.step_up_attempts:
        demo.store.end_login(login)
        log.info("login to account %d blocked: too many wrong answers", login.account_id)
        return HTTPException(status.HTTP_403_FORBIDDEN, "login_blocked")
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail)


@router.post("/login/step-up/password", response_model_exclude_none=True)
async def step_up_with_password(body: PasswordIn, demo: DemoDep) -> LoginResult:
    """The account's password as the second factor."""
    login, account = _at_step_up(demo, body.login_id)
    _take_attempt(demo, login)
    # scrypt is tens of milliseconds of CPU: on a worker thread, never on the event loop.
    right = await asyncio.to_thread(verify_password, account.password_hash, body.password)
    if demo.store.login(body.login_id, "step_up", demo.now()) is not login:
        raise _not_at_this_step()  # finished, blocked or expired while the hash ran
    if not right:
        raise _step_up_failed(demo, login, "wrong_password")
    return _step_up_passed(demo, login, account, how="password")


@router.post("/login/step-up/email", status_code=status.HTTP_202_ACCEPTED)
async def send_email_code(body: LoginIdIn, demo: DemoDep) -> dict[str, str]:
    """Send a code to the account's e-mail address (which the answer never shows)."""
    login, account = _at_step_up(demo, body.login_id)
    if login.email_codes_sent >= MAX_EMAIL_CODES:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too_many_codes")
    login.email_codes_sent += 1
    code = demo.codes.issue(login, EMAIL, now=demo.now())
    text = f"Your sign-in code is {code}. If you did not try to sign in, ignore this message."
    demo.store.send_email(account.email, text, code)
    log.info("step-up code e-mailed to account %d", account.id)
    return {"status": "email_code_sent"}


@router.post("/login/step-up/email/verify", response_model_exclude_none=True)
async def step_up_with_email_code(body: CodeIn, demo: DemoDep) -> LoginResult:
    """The code sent to the account's e-mail as the second factor."""
    login, account = _at_step_up(demo, body.login_id)
    _take_attempt(demo, login)
    if not demo.codes.check(login, EMAIL, body.code, now=demo.now()):
        raise _step_up_failed(demo, login, "wrong_or_expired_code")
    return _step_up_passed(demo, login, account, how="e-mail code")


def _step_up_passed(demo: Demo, login: Login, account: Account, *, how: str) -> LoginResult:
    # The one place a login moves bound_at: the SMS code proved the number and the
    # second factor proved the account, so whatever happened to the number before
    # now no longer matters.  The next SMS-code login is checked from here.
    account.bound_at = dt.datetime.fromtimestamp(demo.now(), dt.timezone.utc)
    log.info("account %d re-bound its number after a %s step-up", account.id, how)
    return _logged_in(demo, login, account, via=f"SMS code and {how}")


def _logged_in(demo: Demo, login: Login, account: Account, *, via: str) -> LoginResult:
    demo.store.end_login(login)
    token = demo.store.start_session(account.id, expires_at=demo.now() + demo.settings.session_ttl)
    log.info("account %d logged in (%s)", account.id, via)
    return LoginResult(status="logged_in", session_token=token)


# -- the logged-in account -----------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False)


async def current_account(
    demo: DemoDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Account:
    """The account of the ``Authorization: Bearer`` session token (a dependency)."""
    token = credentials.credentials if credentials else ""
    account = demo.store.session_account(token, demo.now()) if token else None
    if account is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "not_logged_in", headers={"WWW-Authenticate": "Bearer"}
        )
    return account


@router.get("/me")
async def me(account: Annotated[Account, Depends(current_account)]) -> Profile:
    """The logged-in account: what a recycled number must never reach."""
    return Profile(
        name=account.name,
        email=account.email,
        phone=recyclecheck.mask(account.phone),
        phone_bound_at=account.bound_at,
    )


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(
    demo: DemoDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Response:
    """End the session."""
    if credentials:
        demo.store.end_session(credentials.credentials)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
