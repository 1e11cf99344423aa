"""The state a fake provider answers from: scripted numbers, credentials and issued tokens.

Shared by :class:`~recyclecheck.testing.FakeProviderServer` and the ``responses``
mocks, so both answer the same script the same way.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

import attrs
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .._phone import normalize
from ..exceptions import ConfigurationError, InvalidInput, ProviderError
from ..providers._answers import Answer, NoData
from ..providers._sandbox import SandboxProvider, Scripted

__all__ = ["Backend", "Credentials", "normalise_number", "normalise_script"]

#: How many nonces and client-assertion ids are remembered to refuse replays.
_REMEMBERED = 4096


def _new_ec_key() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@attrs.frozen(kw_only=True)
class Credentials:
    """The credentials a fake provider accepts; the factories wire adapters with them.

    The defaults are fixed, obviously fake values (the CAMARA client key is a
    fresh P-256 key per instance).  Secrets stay out of the ``repr``.
    """

    twilio_account_sid: str = "AC" + "fa4e" * 8
    twilio_auth_token: str = attrs.field(default="fake-twilio-auth-token", repr=False)
    telesign_customer_id: str = "FFFFFFFF-EEEE-DDDD-1234-AB1234567890"
    telesign_api_key: str = attrs.field(
        default=base64.b64encode(b"recyclecheck fake telesign api key").decode("ascii"),
        repr=False,
    )
    camara_client_id: str = "recyclecheck-fake-client"
    camara_client_secret: str = attrs.field(default="fake-camara-client-secret", repr=False)
    camara_access_token: str = attrs.field(default="fake-camara-static-token", repr=False)
    camara_private_key: bytes = attrs.field(factory=_new_ec_key, repr=False, eq=False)
    camara_key_id: str = "fake-key-1"
    aliyun_access_key_id: str = "LTAIfakeAccessKeyId0001"
    aliyun_access_key_secret: str = attrs.field(default="fake-aliyun-access-key-secret", repr=False)
    aliyun_auth_code: str = attrs.field(default="fake-auth-code", repr=False)
    rnd_refresh_token: str = attrs.field(default="fake-rnd-refresh-token", repr=False)
    rnd_company_id: str = "FAKECO"


def normalise_number(number: object) -> str:
    """Return ``number`` (any international format) as E.164, or raise ConfigurationError."""
    try:
        return normalize(number).e164
    except InvalidInput:
        raise ConfigurationError("a scripted number is not a valid number") from None


def normalise_script(numbers: Mapping[str, Scripted]) -> dict[str, Answer | ProviderError]:
    """Validate scripted numbers exactly as :class:`SandboxProvider` does, keyed by E.164."""
    # One source of truth for what a script may say: the sandbox's own validation.
    return dict(SandboxProvider(numbers).scripted)


class Backend:
    """Scripted answers, accepted credentials and issued tokens; thread-safe.

    ``credentials`` of ``None`` turns every auth check off (the ``responses``
    mocks); ``token_lifetime`` is the ``expires_in`` of issued tokens.
    """

    def __init__(
        self,
        numbers: Mapping[str, Scripted] | None = None,
        *,
        credentials: Credentials | None = None,
        token_lifetime: int = 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(token_lifetime, bool) or not isinstance(token_lifetime, int):
            raise ConfigurationError("token_lifetime must be whole seconds")
        if token_lifetime <= 0:
            raise ConfigurationError("token_lifetime must be positive")
        self.credentials = credentials
        self.token_lifetime = token_lifetime
        self.clock = clock
        self._initial = normalise_script(numbers or {})
        self._lock = threading.Lock()
        self._numbers = dict(self._initial)
        self._tokens: dict[tuple[str, str], float] = {}
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()

    # -- scripted numbers ---------------------------------------------------------

    def script(self, numbers: Mapping[str, Scripted]) -> None:
        """Add or replace scripted numbers."""
        script = normalise_script(numbers)
        with self._lock:
            self._numbers.update(script)

    def answer(self, e164: str) -> Answer:
        """The scripted answer for a number; unlisted numbers give ``NoData()``.

        A number scripted with an error answers through :meth:`failure` instead
        (callers check that first); here it reads as ``NoData()``.
        """
        with self._lock:
            value = self._numbers.get(e164)
        return value if value is not None and not isinstance(value, ProviderError) else NoData()

    def failure(self, e164: str | None) -> ProviderError | None:
        """The error a number is scripted to fail with, if any."""
        if e164 is None:
            return None
        with self._lock:
            value = self._numbers.get(e164)
        return value if isinstance(value, ProviderError) else None

    def scripted_numbers(self) -> list[str]:
        """Every scripted E.164 number."""
        with self._lock:
            return list(self._numbers)

    def resolve_hash(self, algorithm: str, hexdigest: str, prefix: str, digits: int) -> str | None:
        """Find the scripted number whose national digits hash to ``hexdigest``.

        Only numbers starting with ``prefix`` whose national part (the rest)
        has ``digits`` digits are tried.  Unknown hashes give ``None``.
        """
        wanted = hexdigest.lower()
        for e164 in self.scripted_numbers():
            national = e164[len(prefix) :]
            if not e164.startswith(prefix) or len(national) != digits:
                continue
            digest = hashlib.new(algorithm, national.encode("ascii"), usedforsecurity=False)
            if secrets.compare_digest(digest.hexdigest(), wanted):
                return e164
        return None

    # -- tokens -------------------------------------------------------------------

    def issue_token(self, realm: str, *, jwt: bool = False) -> str:
        """Issue a bearer token valid in ``realm`` for ``token_lifetime`` seconds.

        With ``jwt`` the token is shaped like a JWT carrying ``iat`` and ``exp``
        claims (not signed in any way a client could check).
        """
        now = self.clock()
        expires = now + self.token_lifetime
        if jwt:
            claims = {
                "iss": "recyclecheck-fake",
                "iat": int(now),
                "exp": int(expires),
                "jti": secrets.token_hex(8),
            }
            token = ".".join(
                _b64url(part)
                for part in (
                    json.dumps({"alg": "HS256", "typ": "JWT"}).encode(),
                    json.dumps(claims).encode(),
                    secrets.token_bytes(32),
                )
            )
        else:
            token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[realm, token] = expires
        return token

    def token_valid(self, realm: str, token: str) -> bool:
        """Whether ``token`` was issued in ``realm`` and has not expired."""
        with self._lock:
            expires = self._tokens.get((realm, token))
        return expires is not None and self.clock() < expires

    def expire_tokens(self) -> None:
        """Make every issued token expired, as if their lifetime had passed."""
        with self._lock:
            self._tokens.clear()

    def first_use(self, realm: str, value: str) -> bool:
        """Remember ``value`` (a nonce, a ``jti``); False when it was seen before."""
        key = (realm, value)
        with self._lock:
            if key in self._seen:
                return False
            self._seen[key] = None
            while len(self._seen) > _REMEMBERED:
                self._seen.popitem(last=False)
            return True

    def reset(self) -> None:
        """Back to the numbers given at construction, with no tokens or nonces remembered."""
        with self._lock:
            self._numbers = dict(self._initial)
            self._tokens.clear()
            self._seen.clear()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
