"""One-time codes and throttles: random, hashed, single-use, short-lived, limited.

- A code is six digits from :mod:`secrets`.  Only a keyed HMAC of it is stored,
  bound to the pending login and the step it is for, so a code sent for one
  step or one login is worthless anywhere else.
- A code expires after ``DEMO_CODE_TTL`` seconds (10 minutes), is used at most
  once (an atomic ``UPDATE ... WHERE used_at IS NULL``), and allows
  ``DEMO_CODE_ATTEMPTS`` guesses; a new code replaces the previous one.
- Throttles count events in a sliding window per number (or account) and per
  client address, under keyed HMACs (the table holds no number or address).
  Every window ends on its own: nothing locks an account for good, and the
  e-mail paths stay open when a password is being guessed.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from .store import Store

__all__ = ["DEFAULT_LIMITS", "CodeCheck", "Codes", "Limit", "Throttle", "session_digest"]

CODE_DIGITS = 6


@dataclass(frozen=True)
class Limit:
    """At most ``count`` events per ``window`` seconds."""

    count: int
    window: float


#: Throttles (name: Limit), overridable per name through ``DEMO_LIMITS``.
DEFAULT_LIMITS: Mapping[str, Limit] = {
    # SMS codes sent, per number and per client address.
    "sms_per_number": Limit(5, 3600.0),
    "sms_per_address": Limit(20, 3600.0),
    # E-mail codes sent (step-up and recovery), per account and per client address.
    "email_per_account": Limit(5, 3600.0),
    "email_per_address": Limit(20, 3600.0),
    # Wrong codes, per recipient (number or account) and per client address.
    "code_failures_per_recipient": Limit(10, 3600.0),
    "code_failures_per_address": Limit(30, 3600.0),
    # Wrong passwords at a step-up, per account and per client address.
    "password_failures_per_account": Limit(10, 3600.0),
    "password_failures_per_address": Limit(30, 3600.0),
}


def _subkey(secret: bytes, purpose: str) -> bytes:
    return hmac.new(secret, f"flask_demo/{purpose}".encode(), hashlib.sha256).digest()


def session_digest(token: str) -> str:
    """The id a session is stored under: SHA-256 of the cookie value (256 random bits)."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


class CodeCheck(enum.Enum):
    """The outcome of checking a submitted code."""

    OK = "ok"
    WRONG = "wrong"
    EXPIRED = "expired"  # none live: never sent, expired, already used or replaced
    EXHAUSTED = "exhausted"  # this code had all its attempts


class Codes:
    """Issues and checks one-time codes, keeping only their keyed HMACs."""

    def __init__(self, secret: bytes, *, ttl: float, attempts: int) -> None:
        self._key = _subkey(secret, "codes")
        self.ttl = ttl
        self.attempts = attempts

    def _digest(self, pending_id: str, purpose: str, code: str) -> str:
        message = f"{pending_id}\x00{purpose}\x00{code}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def issue(self, store: Store, pending_id: str, purpose: str, now: float) -> str:
        """A fresh code for this step of this pending login; the previous one stops working."""
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        store.replace_code(
            pending_id, purpose, self._digest(pending_id, purpose, code), now + self.ttl
        )
        return code

    def check(
        self, store: Store, pending_id: str, purpose: str, submitted: str, now: float
    ) -> CodeCheck:
        """Check ``submitted`` against the live code; a match uses the code up."""
        row = store.live_code(pending_id, purpose, now)
        if row is None:
            return CodeCheck.EXPIRED
        if not store.count_attempt(row["id"], self.attempts):
            return CodeCheck.EXHAUSTED
        candidate = "".join(submitted.split())
        if not (len(candidate) == CODE_DIGITS and candidate.isascii() and candidate.isdigit()):
            return CodeCheck.WRONG
        expected = row["digest"].encode("ascii")
        actual = self._digest(pending_id, purpose, candidate).encode("ascii")
        if not hmac.compare_digest(expected, actual):
            return CodeCheck.WRONG
        return CodeCheck.OK if store.use_code(row["id"], now) else CodeCheck.EXPIRED


class Throttle:
    """Sliding-window limits, keyed by HMACs of what they count (number, address...)."""

    def __init__(self, secret: bytes, limits: Mapping[str, Limit]) -> None:
        self._key = _subkey(secret, "throttle")
        self.limits = dict(limits)

    def _key_of(self, name: str, value: str) -> str:
        return hmac.new(self._key, f"{name}\x00{value}".encode(), hashlib.sha256).hexdigest()

    def blocked(self, store: Store, name: str, value: str, now: float) -> bool:
        """True if ``value`` (a number, address...) used up limit ``name`` in its window."""
        limit = self.limits[name]
        count = store.throttle_count(name, self._key_of(name, value), now - limit.window)
        return count >= limit.count

    def hit(self, store: Store, name: str, value: str, now: float) -> None:
        """Count one event against limit ``name`` for ``value``."""
        store.throttle_add(name, self._key_of(name, value), now)

    def any_blocked(self, store: Store, checks: Mapping[str, str], now: float) -> bool:
        """True if any ``{limit name: value}`` is used up."""
        return any(self.blocked(store, name, value, now) for name, value in checks.items())

    def hit_all(self, store: Store, checks: Mapping[str, str], now: float) -> None:
        """Count one event against each ``{limit name: value}``."""
        for name, value in checks.items():
            self.hit(store, name, value, now)
