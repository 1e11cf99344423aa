"""CAMARA's authorization: a static bearer token, or an OAuth2 client-credentials grant.

The grant authenticates the client with its secret (HTTP Basic, RFC 6749 2.3.1)
or with a ``private_key_jwt`` assertion (RFC 7523), and its answer is read
strictly.  Validation names options by the caller's spelling (``names``: the
constructor's keywords or ``from_env``'s variables) and never echoes a value;
errors raised while fetching a token carry status and OAuth error codes only.
"""

from __future__ import annotations

import base64
import logging
import re
import time
import urllib.parse
import uuid
from collections.abc import Mapping
from typing import TypeGuard

import attrs

from .._http import HttpClient, HttpResponse
from ..exceptions import ConfigurationError, ProviderAuthError, ProviderResponseError
from ._jwt import CLIENT_ASSERTION_TYPE, JwtSigner, client_assertion_claims
from ._wire import check_base_url

__all__ = [
    "ASSERTION_LIFETIME",
    "MAX_TOKEN_CHARS",
    "MAX_TOKEN_LIFETIME",
    "CamaraAuth",
    "TokenClient",
    "configure_auth",
]

_LOG = logging.getLogger("recyclecheck.providers.camara")

#: Lifetime of a ``private_key_jwt`` client assertion, in seconds.
ASSERTION_LIFETIME = 300
#: Longest token lifetime trusted from a token endpoint, in seconds.
MAX_TOKEN_LIFETIME = 86_400
#: Longest access token accepted, in characters.
MAX_TOKEN_CHARS = 8192

_BEARER = re.compile(r"[A-Za-z0-9\-._~+/]+=*")  # RFC 6750 b64token
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+(?: [\x21\x23-\x5b\x5d-\x7e]+)*")  # RFC 6749 3.3
_OAUTH_ERROR = re.compile(r"[a-z][a-z_]{0,63}")  # RFC 6749 5.2 error codes
_SECRETS = ("access_token", "client_secret", "private_key")


@attrs.frozen(kw_only=True)
class CamaraAuth:
    """Validated authorization options; secrets stay out of the repr.

    ``mode`` is ``access_token``, ``client_secret`` or ``private_key_jwt``.
    """

    mode: str
    scope: str
    token_url: str | None = None
    client_id: str | None = None
    access_token: str | None = attrs.field(default=None, repr=False)
    client_secret: str | None = attrs.field(default=None, repr=False)
    signer: JwtSigner | None = attrs.field(default=None, repr=False)


def _text(value: object, label: str) -> str:
    # Client ids and secrets are form-encoded before they travel: any printable text.
    if not isinstance(value, str) or not value or not value.isprintable():
        raise ConfigurationError(f"{label} must be a non-empty printable str")
    return value


def _bearer(value: object) -> TypeGuard[str]:
    """Whether ``value`` can travel as ``Authorization: Bearer <value>``."""
    return (
        isinstance(value, str) and len(value) <= MAX_TOKEN_CHARS and bool(_BEARER.fullmatch(value))
    )


def configure_auth(
    names: Mapping[str, str],
    *,
    access_token: object,
    token_url: object,
    client_id: object,
    client_secret: object,
    private_key: object,
    key_id: object,
    three_legged: bool,
    scope: object,
) -> CamaraAuth:
    """Validate exactly one way to authorize, naming options by ``names``."""
    if not isinstance(scope, str) or not _SCOPE.fullmatch(scope):
        raise ConfigurationError(f"{names['scope']} must be space-separated OAuth scope tokens")
    given = {
        "access_token": access_token,
        "client_secret": client_secret,
        "private_key": private_key,
    }
    chosen = [name for name in _SECRETS if given[name] is not None]
    if len(chosen) != 1:
        raise ConfigurationError(
            f"configure exactly one of {', '.join(names[n] for n in _SECRETS)}"
        )
    auth = chosen[0]
    if key_id is not None and auth != "private_key":
        raise ConfigurationError(f"{names['key_id']} is only used with {names['private_key']}")
    if auth != "access_token":
        return _client_credentials(
            names,
            auth,
            token_url=token_url,
            client_id=client_id,
            secret=client_secret if auth == "client_secret" else private_key,
            key_id=key_id,
            three_legged=three_legged,
            scope=scope,
        )
    for unused, value in (("token_url", token_url), ("client_id", client_id)):
        if value is not None:
            raise ConfigurationError(f"{names[unused]} is not used with {names[auth]}")
    if not _bearer(access_token):
        raise ConfigurationError(f"{names[auth]} is not a valid bearer token")
    return CamaraAuth(mode="access_token", scope=scope, access_token=access_token)


def _client_credentials(
    names: Mapping[str, str],
    auth: str,
    *,
    token_url: object,
    client_id: object,
    secret: object,
    key_id: object,
    three_legged: bool,
    scope: str,
) -> CamaraAuth:
    """Validate the options of a client-credentials grant (secret or private key)."""
    for needed, value in (("token_url", token_url), ("client_id", client_id)):
        if value is None:
            raise ConfigurationError(f"{names[needed]} is required with {names[auth]}")
    if three_legged:
        raise ConfigurationError(
            f"{names['three_legged']} needs {names['access_token']}: "
            "client-credentials tokens are always two-legged"
        )
    url = check_base_url(token_url, names["token_url"])
    client = _text(client_id, names["client_id"])
    if auth == "client_secret":
        return CamaraAuth(
            mode="client_secret",
            scope=scope,
            token_url=url,
            client_id=client,
            client_secret=_text(secret, names[auth]),
        )
    kid = None if key_id is None else _text(key_id, names["key_id"])
    if not isinstance(secret, (bytes, str)):
        raise ConfigurationError(f"{names[auth]} must be PEM bytes or str")
    try:
        signer = JwtSigner(secret, key_id=kid)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{names[auth]}: {exc}") from None
    return CamaraAuth(
        mode="private_key_jwt", scope=scope, token_url=url, client_id=client, signer=signer
    )


def basic_client_auth(client_id: str, client_secret: str) -> str:
    """HTTP Basic client authentication, each part form-encoded first (RFC 6749 2.3.1)."""
    pair = f"{urllib.parse.quote_plus(client_id, safe='')}:"
    pair += urllib.parse.quote_plus(client_secret, safe="")
    return "Basic " + base64.b64encode(pair.encode("ascii")).decode("ascii")


class TokenClient:
    """Runs the client-credentials grant of one :class:`CamaraAuth` over the adapter's client.

    Every refusal or unusable answer is a :class:`ProviderAuthError`; an
    overloaded or failing endpoint (429, 5xx) keeps its own kind.
    """

    def __init__(self, auth: CamaraAuth, http: HttpClient, *, provider: str) -> None:
        if auth.token_url is None or auth.client_id is None:
            raise ConfigurationError("a token client needs token_url and client_id")
        self._auth = auth
        self._token_url = auth.token_url
        self._client_id = auth.client_id
        self._http = http
        self._provider = provider

    def fetch(self) -> tuple[str, float]:
        """Run one grant; return (token, lifetime in seconds)."""
        fields = {"grant_type": "client_credentials", "scope": self._auth.scope}
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if self._auth.signer is not None:
            claims = client_assertion_claims(
                self._client_id,
                self._token_url,
                now=time.time(),
                jti=str(uuid.uuid4()),
                lifetime=ASSERTION_LIFETIME,
            )
            fields["client_id"] = self._client_id
            fields["client_assertion_type"] = CLIENT_ASSERTION_TYPE
            fields["client_assertion"] = self._auth.signer.sign(claims)
        else:
            assert self._auth.client_secret is not None  # noqa: S101 - set in secret mode
            headers["Authorization"] = basic_client_auth(self._client_id, self._auth.client_secret)
        body = urllib.parse.urlencode(fields).encode("ascii")
        try:
            response = self._http.request("POST", self._token_url, headers=headers, body=body)
            if response.status != 200:
                self._refused(response)
            grant = self._http.json_body(response)
        except ProviderResponseError as exc:
            raise ProviderAuthError(
                f"token endpoint: {exc.message}", provider=self._provider, status=exc.status
            ) from None
        token, lifetime = self._read_grant(grant)
        _LOG.debug("camara access token obtained, valid for %ds", lifetime)
        return token, float(lifetime)

    def _refused(self, response: HttpResponse) -> None:
        if response.status == 429 or response.status >= 500:
            self._http.raise_for_status(response)
        code = None
        try:
            body = self._http.json_body(response)
        except ProviderResponseError:
            body = None
        if isinstance(body, dict):
            error = body.get("error")
            if isinstance(error, str) and _OAUTH_ERROR.fullmatch(error):
                code = error
        raise ProviderAuthError(
            "token request refused", provider=self._provider, status=response.status, code=code
        )

    def _read_grant(self, grant: object) -> tuple[str, int]:
        def refuse(why: str) -> ProviderAuthError:
            return ProviderAuthError(f"token endpoint: {why}", provider=self._provider, status=200)

        if not isinstance(grant, dict):
            raise refuse("answer is not a JSON object")
        token = grant.get("access_token")
        if not _bearer(token):
            raise refuse("no usable access_token")
        token_type = grant.get("token_type")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise refuse("token_type is not bearer")
        expires_in = grant.get("expires_in")
        if type(expires_in) is not int or expires_in <= 0:
            raise refuse("expires_in is not a positive integer")
        granted = grant.get("scope")
        if granted is not None and (
            not isinstance(granted, str)
            or not set(self._auth.scope.split()) <= set(granted.split())
        ):
            raise refuse("token lacks the requested scope")
        return token, min(expires_in, MAX_TOKEN_LIFETIME)
