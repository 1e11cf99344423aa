"""In-memory storage: accounts seeded on the sandbox's demo numbers, logins, sessions, outbox.

Every method runs on the event loop's thread and never awaits, so each one is
atomic with respect to other requests (a code checked and used in one call
cannot be used by a concurrent request).  A real app keeps the same rows in
its database.  Login ids and session tokens are 256-bit random values handed
to the client; only their SHA-256 is kept, so a leaked store holds no usable
token.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import secrets
from collections import deque
from typing import Literal

import recyclecheck

__all__ = [
    "SEED_ACCOUNTS",
    "Account",
    "Login",
    "Message",
    "Store",
    "hash_password",
    "verify_password",
]

_UTC = dt.timezone.utc

#: ``code_sent`` → (the SMS code is right) ``checking`` → logged in, or ``step_up`` → logged in.
Stage = Literal["code_sent", "checking", "step_up"]


@dataclasses.dataclass
class Account:
    id: int
    name: str
    email: str
    phone: str  # E.164
    #: When the account last *proved* it holds ``phone`` by more than an SMS code:
    #: account creation, or a passed step-up.  Never a plain SMS-code login.
    bound_at: dt.datetime
    password_hash: str


@dataclasses.dataclass
class IssuedCode:
    """A one-time code as stored: its keyed HMAC, expiry and guesses left (``codes.py``)."""

    digest: str
    expires_at: float
    attempts_left: int


@dataclasses.dataclass
class Login:
    """A login in progress, from "send me a code" to a session or a dead end."""

    key: str  # SHA-256 of the login id the client holds
    phone: str  # E.164, as typed and verified by the SMS code
    expires_at: float
    stage: Stage = "code_sent"
    account_id: int | None = None
    codes: dict[str, IssuedCode] = dataclasses.field(default_factory=dict)
    step_up_attempts: int = 0
    email_codes_sent: int = 0


@dataclasses.dataclass(frozen=True)
class Message:
    """What the fake SMS and e-mail gateways "sent" (``GET /dev/outbox`` shows them)."""

    channel: Literal["sms", "email"]
    to: str  # masked
    text: str
    code: str


@dataclasses.dataclass(frozen=True)
class _Seed:
    name: str
    email: str
    phone: str
    password: str
    bound_at: dt.datetime


#: When the seeded accounts were created with their numbers: their first ``bound_at``.
_CREATED = dt.datetime(2022, 5, 10, 9, 30, tzinfo=_UTC)

#: One account per story, on the numbers of ``SandboxProvider.demo()``.  The passwords
#: are public on purpose: this is a demo database, rebuilt at every start.
SEED_ACCOUNTS = (
    # Reissued to someone else in 2024: whoever holds it now must not get in by SMS.
    _Seed("Alice Liu", "alice@example.com", "+8613800138000", "alice-demo-password", _CREATED),
    # Never reissued: the SMS code logs straight in.
    _Seed("Bo Wang", "bo@example.com", "+8613900139000", "bo-demo-password", _CREATED),
    # The provider has no data: one step-up, then SMS codes are enough (guard.py).
    _Seed("Chen Jing", "chen@example.com", "+8613700137000", "chen-demo-password", _CREATED),
)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def hash_password(password: str) -> str:
    """scrypt, salted.  CPU-heavy on purpose: call it off the event loop."""
    salt = secrets.token_bytes(16)
    # n=2**14 keeps the demo and its tests quick; production wants more (OWASP: 2**17).
    derived = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"{salt.hex()}${derived.hex()}"


def verify_password(stored: str, password: str) -> bool:
    """Compare in constant time.  CPU-heavy on purpose: call it off the event loop."""
    salt, expected = stored.split("$")
    derived = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=2**14, r=8, p=1)
    return hmac.compare_digest(derived.hex(), expected)


def _mask_email(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"


class Store:
    """Accounts, logins, sessions, the SMS throttle and the outbox, in memory."""

    def __init__(self) -> None:
        self.accounts: dict[int, Account] = {}
        self._logins: dict[str, Login] = {}
        self._sessions: dict[str, tuple[int, float]] = {}
        self._sms_sent: dict[str, deque[float]] = {}
        self.outbox: deque[Message] = deque(maxlen=50)

    @classmethod
    def seeded(cls) -> Store:
        """A store with the demo accounts (hashes the passwords: call it off the loop)."""
        store = cls()
        for number, seed in enumerate(SEED_ACCOUNTS, start=1):
            store.accounts[number] = Account(
                number,
                seed.name,
                seed.email,
                seed.phone,
                seed.bound_at,
                hash_password(seed.password),
            )
        return store

    def account_by_phone(self, e164: str) -> Account | None:
        return next((a for a in self.accounts.values() if a.phone == e164), None)

    # -- logins ---------------------------------------------------------------------------

    def start_login(self, e164: str, *, expires_at: float, now: float) -> tuple[str, Login]:
        """A new login for ``e164``: the id to hand to the client, and the row."""
        self._logins = {k: v for k, v in self._logins.items() if v.expires_at > now}
        login_id = secrets.token_urlsafe(32)
        login = Login(key=_digest(login_id), phone=e164, expires_at=expires_at)
        self._logins[login.key] = login
        return login_id, login

    def login(self, login_id: str, stage: Stage, now: float) -> Login | None:
        """The live login ``login_id`` if it is at ``stage``; anything else is ``None``."""
        login = self._logins.get(_digest(login_id))
        if login is None or login.expires_at <= now or login.stage != stage:
            return None
        return login

    def end_login(self, login: Login) -> None:
        self._logins.pop(login.key, None)

    # -- sessions -------------------------------------------------------------------------

    def start_session(self, account_id: int, *, expires_at: float) -> str:
        token = secrets.token_urlsafe(32)
        self._sessions[_digest(token)] = (account_id, expires_at)
        return token

    def session_account(self, token: str, now: float) -> Account | None:
        account_id, expires_at = self._sessions.get(_digest(token), (None, 0.0))
        if account_id is None or expires_at <= now:
            return None
        return self.accounts.get(account_id)

    def end_session(self, token: str) -> None:
        self._sessions.pop(_digest(token), None)

    # -- the fake gateways and their throttle ---------------------------------------------

    def may_send_sms(self, e164: str, *, limit: int, window: float, now: float) -> bool:
        """Count one SMS to ``e164``; ``False`` (and not counted) past ``limit`` per ``window``."""
        sent = self._sms_sent.setdefault(e164, deque())
        while sent and sent[0] <= now - window:
            sent.popleft()
        if len(sent) >= limit:
            return False
        sent.append(now)
        return True

    def send_sms(self, e164: str, text: str, code: str) -> None:
        self.outbox.append(Message("sms", recyclecheck.mask(e164), text, code))

    def send_email(self, address: str, text: str, code: str) -> None:
        self.outbox.append(Message("email", _mask_email(address), text, code))
