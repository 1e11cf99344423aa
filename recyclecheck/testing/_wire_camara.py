"""Fake CAMARA Number Recycling (v0.3 and v0.2) with its OAuth2 client-credentials token endpoint.

``POST /oauth2/token`` takes ``grant_type=client_credentials`` authenticated by
HTTP Basic (client secret) or a ``private_key_jwt`` assertion, whose signature
is verified with the client's public key (``iss``/``sub``/``aud``/``exp`` and a
one-time ``jti`` are checked); refusals are RFC 6749 ``invalid_client`` (401).
Issued bearer tokens carry ``expires_in``; a static token is accepted too.

``POST /number-recycling/{version}/check`` takes ``{"phoneNumber",
"specifiedDate"}`` and answers whether the subscriber changed strictly
*after* ``specifiedDate``; ``x-correlator`` is echoed on every answer, and a
missing, unknown or expired token gets ``401 UNAUTHENTICATED``.  Scripted
answers render as:

========================================  ===================================
script, asked about ``P`` (= since - 1)   answer
========================================  ===================================
reissued on ``D > P``, or changed         ``200 {"phoneNumberRecycled": true}``
never, ``D <= P``, or unchanged           ``200 {"phoneNumberRecycled": false}``
no data                                   ``404 IDENTIFIER_NOT_FOUND``
not covered, or coverage starting after   ``400 OUT_OF_RANGE``
a ``specifiedDate`` after tomorrow (UTC)  ``400 OUT_OF_RANGE``
========================================  ===================================

The fake plays one operator whose subscribers are the scripted numbers: any
other number is one it does not serve, hence ``IDENTIFIER_NOT_FOUND`` (see
:mod:`._coverage`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import json
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ..exceptions import ConfigurationError
from ..providers._answers import Answer
from ..providers._jwt import CLIENT_ASSERTION_TYPE
from ..providers.camara import CamaraProvider
from ._backend import Backend, Credentials
from ._coverage import camara_in_range
from ._wire_base import Incoming, Parsed, Reply, Verdict, build_adapter, verdict

__all__ = ["SCOPE", "TOKEN_PATH", "WIRE", "CamaraWire", "error_body", "render_check"]

#: Where the fake token endpoint lives, relative to the server's root.
TOKEN_PATH = "/oauth2/token"  # noqa: S105 - a path, not a secret
#: The scope the check needs.
SCOPE = "number-recycling:check"

_CHECK = re.compile(r"/number-recycling/(v[0-9]+(?:\.[0-9]+)?(?:(?:rc|alpha)[0-9]+)?|vwip)/check")
_PHONE = re.compile(r"\+[1-9][0-9]{4,14}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MESSAGES = {
    "INVALID_ARGUMENT": "Client specified an invalid argument, request body or query param.",
    "OUT_OF_RANGE": "Client specified an invalid range.",
    "UNAUTHENTICATED": "Request not authenticated due to missing, invalid, or expired credentials.",
    "IDENTIFIER_NOT_FOUND": "Device identifier not found.",
    "MISSING_IDENTIFIER": "The device cannot be identified.",
    "TOO_MANY_REQUESTS": "Rate limit reached.",
    "INTERNAL": "Unknown server error. Typically a server bug.",
    "BAD_GATEWAY": "An upstream internal service cannot be reached.",
    "UNAVAILABLE": "Service Unavailable.",
    "TIMEOUT": "Request timeout exceeded.",
}
_SERVER_CODES = {500: "INTERNAL", 502: "BAD_GATEWAY", 503: "UNAVAILABLE", 504: "TIMEOUT"}
#: Longest validity a client assertion may claim, in seconds.
_MAX_ASSERTION_LIFETIME = 3600
_CLOCK_SKEW = 60


def error_body(status: int, code: str) -> dict[str, object]:
    """CAMARA's ``ErrorInfo``: ``{status, code, message}``."""
    return {"status": status, "code": code, "message": _MESSAGES.get(code, code)}


def render_check(since: dt.date, answer: Answer) -> Reply:
    """The answer to a check whose ``specifiedDate`` is the day before ``since``."""
    today = dt.datetime.now(dt.timezone.utc).date()
    if not camara_in_range(since - dt.timedelta(days=1), today):
        return Reply.json(400, error_body(400, "OUT_OF_RANGE"))
    said = verdict(answer, since)
    if said is Verdict.CHANGED or said is Verdict.UNCHANGED:
        return Reply.json(200, {"phoneNumberRecycled": said is Verdict.CHANGED})
    if said is Verdict.NO_DATA:
        return Reply.json(404, error_body(404, "IDENTIFIER_NOT_FOUND"))
    return Reply.json(400, error_body(400, "OUT_OF_RANGE"))


def _echo(request: Incoming, reply: Reply) -> Reply:
    correlator = request.headers.get("x-correlator")
    if correlator is None:
        return reply
    return Reply(reply.status, {**reply.headers, "x-correlator": correlator}, reply.body)


def _oauth_error(status: int, error: str, description: str) -> Reply:
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="fake-camara"'
    return Reply.json(status, {"error": error, "error_description": description}, headers)


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _check_date(value: object) -> dt.date | None:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def _verify_signature(
    credentials: Credentials, alg: object, signing_input: bytes, sig: bytes
) -> bool:
    try:
        key = serialization.load_pem_private_key(credentials.camara_private_key, None).public_key()
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return False
    try:
        if isinstance(key, ec.EllipticCurvePublicKey) and alg == "ES256" and len(sig) == 64:
            der = encode_dss_signature(
                int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
            )
            key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
            return True
        if isinstance(key, rsa.RSAPublicKey) and alg == "RS256":
            key.verify(sig, signing_input, padding.PKCS1v15(), hashes.SHA256())
            return True
    except InvalidSignature:
        return False
    return False


def verify_client_assertion(
    assertion: str, *, client_id: str, audience: str, backend: Backend
) -> bool:
    """Verify an RFC 7523 ``private_key_jwt`` client assertion as an authorisation server does."""
    credentials = backend.credentials
    assert credentials is not None  # noqa: S101 - only called with auth checks on
    parts = assertion.split(".")
    if len(parts) != 3:
        return False
    try:
        header = json.loads(_b64url_decode(parts[0]))
        claims = json.loads(_b64url_decode(parts[1]))
        signature = _b64url_decode(parts[2])
    except (ValueError, binascii.Error, RecursionError):
        return False
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return False
    if "kid" in header and header["kid"] != credentials.camara_key_id:
        return False
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    if not _verify_signature(credentials, header.get("alg"), signing_input, signature):
        return False
    return _claims_valid(claims, client_id=client_id, audience=audience, backend=backend)


def _claims_valid(
    claims: dict[str, Any], *, client_id: str, audience: str, backend: Backend
) -> bool:
    now = backend.clock()
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    exp, iat, jti = claims.get("exp"), claims.get("iat", now), claims.get("jti")
    if (
        claims.get("iss") != client_id
        or claims.get("sub") != client_id
        or audience not in audiences
    ):
        return False
    if not isinstance(exp, int) or isinstance(exp, bool) or not isinstance(iat, (int, float)):
        return False
    if not now - _CLOCK_SKEW < exp <= now + _MAX_ASSERTION_LIFETIME or iat > now + _CLOCK_SKEW:
        return False
    return isinstance(jti, str) and bool(jti) and backend.first_use("camara-jti", jti)


def _auth_arguments(auth: str, url: str, credentials: Credentials) -> dict[str, Any]:
    """The adapter's accepted credentials for one ``auth`` mode, its token endpoint at ``url``."""
    c, token_url = credentials, url + TOKEN_PATH
    modes: dict[str, dict[str, Any]] = {
        "token": {"access_token": c.camara_access_token},
        "secret": {
            "token_url": token_url,
            "client_id": c.camara_client_id,
            "client_secret": c.camara_client_secret,
        },
        "private_key_jwt": {
            "token_url": token_url,
            "client_id": c.camara_client_id,
            "private_key": c.camara_private_key,
            "key_id": c.camara_key_id,
        },
    }
    if auth not in modes:
        raise ConfigurationError("auth must be 'token', 'secret' or 'private_key_jwt'")
    return modes[auth]


class CamaraWire:
    """CAMARA Number Recycling and its token endpoint, as the fake providers speak them."""

    name = "camara"

    def environment(self, url: str, credentials: Credentials) -> dict[str, str]:
        """What this adapter's ``from_env()`` reads, pointing it at a fake at ``url``."""
        return {
            "RECYCLECHECK_CAMARA_API_ROOT": url,
            "RECYCLECHECK_CAMARA_TOKEN_URL": url + TOKEN_PATH,
            "RECYCLECHECK_CAMARA_CLIENT_ID": credentials.camara_client_id,
            "RECYCLECHECK_CAMARA_CLIENT_SECRET": credentials.camara_client_secret,
        }

    def adapter(
        self,
        url: str,
        credentials: Credentials,
        transport: Mapping[str, Any],
        *,
        auth: str = "secret",
        **overrides: Any,
    ) -> CamaraProvider:
        """A :class:`CamaraProvider` with its API root at ``url``.

        ``auth`` is ``"token"`` (a static bearer token), ``"secret"`` (client
        credentials with a client secret) or ``"private_key_jwt"``.
        """
        accepted = {"api_root": url, **_auth_arguments(auth, url, credentials)}
        return build_adapter(CamaraProvider, accepted, transport, overrides)

    def route(self, method: str, route: str) -> str | None:
        """``POST /oauth2/token`` and ``POST /number-recycling/{version}/check``."""
        if method != "POST":
            return None
        if route == TOKEN_PATH:
            return "token"
        return "lookup" if _CHECK.fullmatch(route) else None

    def parse(self, request: Incoming, endpoint: str, backend: Backend) -> Parsed:
        """The number and date of a check (``since`` is the day after ``specifiedDate``)."""
        if endpoint != "lookup":
            return Parsed(endpoint)
        payload = request.json()
        if not isinstance(payload, dict):
            return Parsed(endpoint)
        number = payload.get("phoneNumber")
        asked = _check_date(payload.get("specifiedDate"))
        since = asked + dt.timedelta(days=1) if asked is not None and asked < dt.date.max else None
        valid = isinstance(number, str) and _PHONE.fullmatch(number)
        return Parsed(endpoint, number if valid else None, since)

    def respond(self, request: Incoming, parsed: Parsed, backend: Backend) -> Reply:
        """Issue a token, or check the bearer token and answer the check."""
        if parsed.endpoint == "token":
            return self._token(request, backend)
        return _echo(request, self._check(request, parsed, backend))

    # -- the token endpoint ------------------------------------------------------------

    def _token(self, request: Incoming, backend: Backend) -> Reply:
        form = dict(urllib.parse.parse_qsl(request.body.decode("utf-8", "replace")))
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", "only client_credentials")
        if backend.credentials is not None and not self._client_ok(request, form, backend):
            return _oauth_error(401, "invalid_client", "client authentication failed")
        scope = form.get("scope", SCOPE)
        if not set(scope.split()) <= {SCOPE}:
            return _oauth_error(400, "invalid_scope", "scope not allowed for this client")
        token = backend.issue_token("camara")
        grant = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": backend.token_lifetime,
            "scope": scope,
        }
        return Reply.json(200, grant, {"Cache-Control": "no-store", "Pragma": "no-cache"})

    @staticmethod
    def _client_ok(request: Incoming, form: dict[str, str], backend: Backend) -> bool:
        credentials = backend.credentials
        assert credentials is not None  # noqa: S101 - checked by the caller
        client_id = credentials.camara_client_id
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                pair = base64.b64decode(token, validate=True).decode("ascii")
            except (binascii.Error, UnicodeDecodeError):
                return False
            user, _, secret = pair.partition(":")
            same_user = hmac.compare_digest(urllib.parse.unquote_plus(user), client_id)
            same_secret = hmac.compare_digest(
                urllib.parse.unquote_plus(secret).encode(),
                credentials.camara_client_secret.encode(),
            )
            return same_user and same_secret
        assertion = form.get("client_assertion")
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE or not assertion:
            return False
        if form.get("client_id", client_id) != client_id:
            return False
        return verify_client_assertion(
            assertion,
            client_id=client_id,
            audience=request.base_url + request.path,
            backend=backend,
        )

    # -- the check ---------------------------------------------------------------------

    def _check(self, request: Incoming, parsed: Parsed, backend: Backend) -> Reply:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return self.refused(request, parsed)
        credentials = backend.credentials
        if credentials is not None and not (
            hmac.compare_digest(token.encode(), credentials.camara_access_token.encode())
            or backend.token_valid("camara", token)
        ):
            return self.refused(request, parsed)
        payload = request.json()
        if not isinstance(payload, dict) or not set(payload) <= {"phoneNumber", "specifiedDate"}:
            return Reply.json(400, error_body(400, "INVALID_ARGUMENT"))
        if "phoneNumber" not in payload:
            return Reply.json(422, error_body(422, "MISSING_IDENTIFIER"))
        if parsed.number is None or parsed.since is None:
            return Reply.json(400, error_body(400, "INVALID_ARGUMENT"))
        return render_check(parsed.since, backend.answer(parsed.number))

    # -- failures ----------------------------------------------------------------------

    def refused(self, request: Incoming, parsed: Parsed) -> Reply:
        """``invalid_client`` at the token endpoint, ``401 UNAUTHENTICATED`` at the check."""
        if parsed.endpoint == "token":
            return _oauth_error(401, "invalid_client", "client authentication failed")
        reply = Reply.json(401, error_body(401, "UNAUTHENTICATED"), {"WWW-Authenticate": "Bearer"})
        return _echo(request, reply)

    def rate_limited(self, request: Incoming, parsed: Parsed, retry_after: str | None) -> Reply:
        """``429 TOO_MANY_REQUESTS``."""
        headers = {"Retry-After": retry_after} if retry_after is not None else None
        return _echo(request, Reply.json(429, error_body(429, "TOO_MANY_REQUESTS"), headers))

    def server_error(self, request: Incoming, parsed: Parsed, status: int) -> Reply:
        """5xx ``ErrorInfo`` (``INTERNAL``, ``BAD_GATEWAY``, ``UNAVAILABLE``, ``TIMEOUT``)."""
        code = _SERVER_CODES.get(status, "INTERNAL")
        return _echo(request, Reply.json(status, error_body(status, code)))


#: The one CAMARA wire instance.
WIRE = CamaraWire()
