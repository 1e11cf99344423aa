"""One-time codes: random, stored hashed, single-use, expiring, with limited guesses.

A code is six digits from :mod:`secrets`.  Only a keyed HMAC of it is kept,
bound to the login and the purpose (``sms`` or ``email``), so a code sent for
one login or one step is worthless anywhere else.  A right code is used up
at once; a new code for the same step replaces the old one; after
``attempts`` wrong guesses the code is gone.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from .store import IssuedCode, Login

__all__ = ["Codes"]

DIGITS = 6


class Codes:
    """Issues and checks the codes of a :class:`Login`, keeping only their HMACs."""

    def __init__(self, *, ttl: float, attempts: int, secret: bytes | None = None) -> None:
        self._key = secret or secrets.token_bytes(32)  # per process: codes live minutes
        self.ttl = ttl
        self.attempts = attempts

    def _digest(self, login: Login, purpose: str, code: str) -> str:
        message = f"{login.key}\x00{purpose}\x00{code}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def issue(self, login: Login, purpose: str, *, now: float) -> str:
        """A fresh code for this step of this login; the previous one stops working."""
        code = f"{secrets.randbelow(10**DIGITS):0{DIGITS}d}"
        login.codes[purpose] = IssuedCode(
            self._digest(login, purpose, code), now + self.ttl, self.attempts
        )
        return code

    def check(self, login: Login, purpose: str, submitted: str, *, now: float) -> bool:
        """True once for the right code, in time; every other answer is False."""
        issued = login.codes.get(purpose)
        if issued is None or issued.expires_at <= now:
            login.codes.pop(purpose, None)
            return False
        issued.attempts_left -= 1
        if issued.attempts_left <= 0:
            del login.codes[purpose]  # this was the last guess, right or wrong
        candidate = "".join(submitted.split())
        expected = issued.digest.encode()
        if not hmac.compare_digest(expected, self._digest(login, purpose, candidate).encode()):
            return False
        login.codes.pop(purpose, None)  # single use
        return True
