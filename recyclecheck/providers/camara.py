"""CAMARA Number Recycling (GSMA Open Gateway): ``POST {apiRoot}/number-recycling/v0.2/check``.

The operator answers one boolean, ``phoneNumberRecycled``: whether the line changed
subscriber *after* ``specifiedDate``.  This adapter asks about the day before
``since`` so that a change on ``since`` itself counts, as :class:`ChangedSince`
promises.  Answers and errors map as follows; anything else, or anything
malformed, raises a :class:`~recyclecheck.ProviderError` and never becomes
"not recycled"::

    200 {"phoneNumberRecycled": true|false}   ChangedSince(since, true|false)
    400 OUT_OF_RANGE                          NotCovered()
    404 IDENTIFIER_NOT_FOUND                  NoData()
    422 SERVICE_NOT_APPLICABLE                NoData()
    401, 403                                  ProviderAuthError
    429                                       ProviderRateLimited (with Retry-After)
    5xx                                       ProviderUnavailable
    other 4xx/2xx, bad body or x-correlator   ProviderResponseError

Auth is one of: a static bearer token (the only way to use a three-legged token,
which identifies the line itself); OAuth2 client credentials with a client
secret (HTTP Basic); or client credentials with a ``private_key_jwt`` assertion.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import re
import time
import urllib.parse
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from .._http import DEFAULT_MAX_BODY, HttpClient, HttpResponse
from .._phone import mask
from ..exceptions import (
    ConfigurationError,
    InvalidInput,
    InvalidPhoneNumber,
    ProviderAuthError,
    ProviderResponseError,
)
from ._answers import Answer, ChangedSince, NoData, NotCovered
from ._jwt import CLIENT_ASSERTION_TYPE, JwtSigner, client_assertion_claims
from ._tokens import TokenCache
from ._wire import env_ca_bundle

__all__ = ["CamaraProvider"]

_LOG = logging.getLogger(__name__)

#: Prefix of every environment variable :meth:`CamaraProvider.from_env` reads.
ENV_PREFIX = "RECYCLECHECK_CAMARA_"
#: Lifetime of a ``private_key_jwt`` client assertion, in seconds.
ASSERTION_LIFETIME = 300
#: Longest token lifetime trusted from a token endpoint, in seconds.
MAX_TOKEN_LIFETIME = 86_400
#: Longest access token accepted, in characters.
MAX_TOKEN_CHARS = 8192

_PHONE = re.compile(r"\+[1-9][0-9]{4,14}")  # the spec's PhoneNumber pattern
_API_VERSION = re.compile(r"v[0-9]+(?:\.[0-9]+)?(?:(?:rc|alpha)[0-9]+)?|vwip")
_BEARER = re.compile(r"[A-Za-z0-9\-._~+/]+=*")  # RFC 6750 b64token
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+(?: [\x21\x23-\x5b\x5d-\x7e]+)*")  # RFC 6749 3.3
_ERROR_CODE = re.compile(r"[A-Z][A-Z_.]{0,95}")  # CAMARA codes; no digits, so never a number
_OAUTH_ERROR = re.compile(r"[a-z][a-z_]{0,63}")  # RFC 6749 5.2 error codes
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})

#: Error (status, code) pairs that are answers rather than failures.
_ANSWERS: Mapping[tuple[int, str], Answer] = {
    (400, "OUT_OF_RANGE"): NotCovered(),
    (404, "IDENTIFIER_NOT_FOUND"): NoData(),
    (422, "SERVICE_NOT_APPLICABLE"): NoData(),
}

_ARG_NAMES = {
    name: name
    for name in (
        "api_root",
        "access_token",
        "token_url",
        "client_id",
        "client_secret",
        "private_key",
        "key_id",
        "api_version",
        "three_legged",
        "scope",
    )
}
_ENV_NAMES = {
    **{name: ENV_PREFIX + name.upper() for name in _ARG_NAMES},
    "private_key": ENV_PREFIX + "PRIVATE_KEY_FILE",
    "scope": "scope",  # not read from the environment
}


@attrs.frozen(kw_only=True)
class _Config:
    """Validated options; secrets stay out of the repr."""

    api_root: str
    check_url: str
    auth: str
    three_legged: bool
    scope: str
    token_url: str | None = None
    client_id: str | None = None
    access_token: str | None = attrs.field(default=None, repr=False)
    client_secret: str | None = attrs.field(default=None, repr=False)
    signer: JwtSigner | None = attrs.field(default=None, repr=False)


def _url(value: object, label: str) -> str:
    """Check an absolute https URL and return it without trailing slashes.

    Plain http is accepted only to loopback; credentials, query and fragment never.
    """
    problem = f"{label} must be an absolute https URL without credentials, query or fragment"
    if not isinstance(value, str) or not value.isascii() or not value.isprintable():
        raise ConfigurationError(problem)
    if any(char in value for char in " ?#\\"):
        raise ConfigurationError(problem)
    try:
        parts = urllib.parse.urlsplit(value)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        raise ConfigurationError(problem) from None
    if parts.scheme not in ("https", "http") or not parts.hostname or "@" in parts.netloc:
        raise ConfigurationError(problem)
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise ConfigurationError(f"{label} must use https (plain http only to localhost)")
    return value.rstrip("/")


def _text(value: object, label: str) -> str:
    if not isinstance(value, str) or not value or not value.isprintable():
        raise ConfigurationError(f"{label} must be a non-empty printable str")
    return value


def _configure(
    names: Mapping[str, str],
    *,
    api_root: object,
    access_token: object,
    token_url: object,
    client_id: object,
    client_secret: object,
    private_key: object,
    key_id: object,
    api_version: object,
    three_legged: object,
    scope: object,
) -> _Config:
    """Validate every option, naming options by ``names`` (arguments or variables)."""
    root = _url(api_root, names["api_root"])
    if not isinstance(api_version, str) or not _API_VERSION.fullmatch(api_version):
        raise ConfigurationError(f"{names['api_version']} must look like v0.2, v0.3 or v0.3rc1")
    if not isinstance(three_legged, bool):
        raise ConfigurationError(f"{names['three_legged']} must be a bool")
    if not isinstance(scope, str) or not _SCOPE.fullmatch(scope):
        raise ConfigurationError(f"{names['scope']} must be space-separated OAuth scope tokens")
    secrets = {
        "access_token": access_token,
        "client_secret": client_secret,
        "private_key": private_key,
    }
    given = [name for name, value in secrets.items() if value is not None]
    if len(given) != 1:
        options = ", ".join(names[name] for name in secrets)
        raise ConfigurationError(f"configure exactly one of {options}")
    auth = given[0]
    if key_id is not None and auth != "private_key":
        raise ConfigurationError(f"{names['key_id']} is only used with {names['private_key']}")
    base = _Config(
        api_root=root,
        check_url=f"{root}/number-recycling/{api_version}/check",
        auth="private_key_jwt" if auth == "private_key" else auth,
        three_legged=three_legged,
        scope=scope,
    )
    if auth == "access_token":
        for unused, value in (("token_url", token_url), ("client_id", client_id)):
            if value is not None:
                raise ConfigurationError(f"{names[unused]} is not used with {names[auth]}")
        if (
            not isinstance(access_token, str)
            or len(access_token) > MAX_TOKEN_CHARS
            or not _BEARER.fullmatch(access_token)
        ):
            raise ConfigurationError(f"{names[auth]} is not a valid bearer token")
        return attrs.evolve(base, access_token=access_token)
    return _client_credentials(
        names,
        base,
        auth,
        token_url=token_url,
        client_id=client_id,
        client_secret=client_secret,
        private_key=private_key,
        key_id=key_id,
    )


def _client_credentials(
    names: Mapping[str, str],
    base: _Config,
    auth: str,
    *,
    token_url: object,
    client_id: object,
    client_secret: object,
    private_key: object,
    key_id: object,
) -> _Config:
    """Validate the options of a client-credentials grant (secret or private key)."""
    for needed, value in (("token_url", token_url), ("client_id", client_id)):
        if value is None:
            raise ConfigurationError(f"{names[needed]} is required with {names[auth]}")
    if base.three_legged:
        raise ConfigurationError(
            f"{names['three_legged']} needs {names['access_token']}: "
            "client-credentials tokens are always two-legged"
        )
    base = attrs.evolve(
        base,
        token_url=_url(token_url, names["token_url"]),
        client_id=_text(client_id, names["client_id"]),
    )
    if auth == "client_secret":
        return attrs.evolve(base, client_secret=_text(client_secret, names[auth]))
    kid = None if key_id is None else _text(key_id, names["key_id"])
    if not isinstance(private_key, (bytes, str)):
        raise ConfigurationError(f"{names[auth]} must be PEM bytes or str")
    try:
        signer = JwtSigner(private_key, key_id=kid)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{names[auth]}: {exc}") from None
    return attrs.evolve(base, signer=signer)


class _DuplicateKey(ValueError):
    pass


def _basic(client_id: str, client_secret: str) -> str:
    """HTTP Basic client authentication, each part form-encoded first (RFC 6749 2.3.1)."""
    pair = f"{urllib.parse.quote_plus(client_id, safe='')}:"
    pair += urllib.parse.quote_plus(client_secret, safe="")
    return "Basic " + base64.b64encode(pair.encode("ascii")).decode("ascii")


def _env_bool(value: str | None, label: str) -> bool:
    if value is None:
        return False
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{label} must be true or false")


class CamaraProvider:
    """CAMARA Number Recycling, as offered by operators through GSMA Open Gateway.

    ``api_root`` is the operator's API root (``https://host[/path]``); the check
    goes to ``{api_root}/number-recycling/{api_version}/check``.  Configure exactly
    one of ``access_token`` (a bearer token you obtained), ``client_secret`` or
    ``private_key`` (both with ``token_url`` and ``client_id``; OAuth2 client
    credentials with ``scope``).  ``three_legged=True`` means ``access_token``
    already identifies the user's line, so no number is sent; such a provider
    serves only that one line.  ``ca_bundle``, ``proxies`` and ``max_body`` go to
    the shared HTTP client.  Nothing is fetched until the first :meth:`lookup`.
    """

    name: str = "camara"

    def __init__(
        self,
        api_root: str,
        *,
        access_token: str | None = None,
        token_url: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        private_key: bytes | str | None = None,
        key_id: str | None = None,
        api_version: str = "v0.2",
        three_legged: bool = False,
        ca_bundle: str | None = None,
        proxies: Mapping[str, str] | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        scope: str = "number-recycling:check",
    ) -> None:
        self._config = _configure(
            _ARG_NAMES,
            api_root=api_root,
            access_token=access_token,
            token_url=token_url,
            client_id=client_id,
            client_secret=client_secret,
            private_key=private_key,
            key_id=key_id,
            api_version=api_version,
            three_legged=three_legged,
            scope=scope,
        )
        self._http = HttpClient(
            provider=self.name, ca_bundle=ca_bundle, proxies=proxies, max_body=max_body
        )
        self._tokens = TokenCache(self._fetch_token) if self._config.access_token is None else None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CamaraProvider:
        """Build a provider from ``RECYCLECHECK_CAMARA_*`` variables (``os.environ`` by default).

        ``API_ROOT`` is required; then ``ACCESS_TOKEN``, or ``TOKEN_URL`` and
        ``CLIENT_ID`` with ``CLIENT_SECRET`` or ``PRIVATE_KEY_FILE`` (and optional
        ``KEY_ID``); optional ``API_VERSION`` and ``THREE_LEGGED`` (true/false),
        and ``RECYCLECHECK_CA_BUNDLE`` (a PEM file of the roots to trust instead of
        the default ones).  Empty variables count as unset.  Errors name the
        variable, never its value.
        """
        env = os.environ if environ is None else environ

        def get(key: str) -> str | None:
            return env.get(ENV_PREFIX + key) or None

        api_root = get("API_ROOT")
        if api_root is None:
            raise ConfigurationError(f"{ENV_PREFIX}API_ROOT is not set")
        private_key: bytes | None = None
        key_file = get("PRIVATE_KEY_FILE")
        if key_file is not None:
            try:
                private_key = Path(key_file).read_bytes()
            except OSError:
                raise ConfigurationError(
                    f"{ENV_PREFIX}PRIVATE_KEY_FILE could not be read"
                ) from None
        options: dict[str, Any] = {
            "access_token": get("ACCESS_TOKEN"),
            "token_url": get("TOKEN_URL"),
            "client_id": get("CLIENT_ID"),
            "client_secret": get("CLIENT_SECRET"),
            "private_key": private_key,
            "key_id": get("KEY_ID"),
            "api_version": get("API_VERSION") or "v0.2",
            "three_legged": _env_bool(get("THREE_LEGGED"), ENV_PREFIX + "THREE_LEGGED"),
        }
        _configure(_ENV_NAMES, api_root=api_root, scope="number-recycling:check", **options)
        return cls(api_root, ca_bundle=env_ca_bundle(env), **options)

    def lookup(self, number: str, since: dt.date) -> Answer:
        """Ask whether ``number`` (E.164) changed subscriber on or after ``since``.

        Returns :class:`ChangedSince`, :class:`NotCovered` (``OUT_OF_RANGE``) or
        :class:`NoData`; raises a :class:`~recyclecheck.ProviderError` otherwise.
        """
        if not isinstance(number, str) or not _PHONE.fullmatch(number):
            raise InvalidPhoneNumber("number must be E.164: '+' and 5 to 15 digits")
        if type(since) is not dt.date or since == dt.date.min:
            raise InvalidInput("since must be a datetime.date")
        # The operator reports changes strictly after specifiedDate; asking about the
        # day before makes a change on `since` itself count.
        payload = {"specifiedDate": (since - dt.timedelta(days=1)).isoformat()}
        if not self._config.three_legged:
            payload["phoneNumber"] = number
        correlator = str(uuid.uuid4())
        headers = {
            "Authorization": f"Bearer {self._bearer()}",
            "Content-Type": "application/json",
            "x-correlator": correlator,
        }
        body = json.dumps(payload, separators=(",", ":")).encode("ascii")
        response = self._http.request("POST", self._config.check_url, headers=headers, body=body)
        answer = self._answer(response, correlator, since)
        if _LOG.isEnabledFor(logging.DEBUG):  # mask() parses the number: only when it shows
            _LOG.debug(
                "camara check of %s: %s (status %d, x-correlator %s)",
                mask(number),
                type(answer).__name__,
                response.status,
                correlator,
            )
        return answer

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()

    def __repr__(self) -> str:
        config = self._config
        return (
            f"<CamaraProvider {config.api_root!r} auth={config.auth} "
            f"check_url={config.check_url!r} three_legged={config.three_legged}>"
        )

    # -- answers --------------------------------------------------------------------

    def _answer(self, response: HttpResponse, correlator: str, since: dt.date) -> Answer:
        echoed = response.headers.get("x-correlator")
        if echoed is not None and echoed != correlator:
            raise ProviderResponseError(
                "x-correlator echo does not match the request",
                provider=self.name,
                status=response.status,
            )
        if response.status == 200:
            return ChangedSince(since=since, changed=self._recycled(response))
        code = self._error_code(response)
        if code is not None and (response.status, code) in _ANSWERS:
            return _ANSWERS[response.status, code]
        if response.status == 401 and self._tokens is not None:
            self._tokens.invalidate()  # a fresh token may succeed, so one retry is allowed
            raise ProviderAuthError(
                "access token refused", provider=self.name, status=401, code=code, retryable=True
            )
        self._http.raise_for_status(response, code=code)
        raise ProviderResponseError("unexpected status", provider=self.name, status=response.status)

    def _recycled(self, response: HttpResponse) -> bool:
        if response.content_type != "application/json":
            raise ProviderResponseError(
                "answer is not application/json", provider=self.name, status=response.status
            )
        body = self._http.json_body(response)
        if not isinstance(body, dict) or set(body) != {"phoneNumberRecycled"}:
            raise ProviderResponseError(
                "answer is not exactly {phoneNumberRecycled}",
                provider=self.name,
                status=response.status,
            )
        value = body["phoneNumberRecycled"]
        if type(value) is not bool:
            raise ProviderResponseError(
                "phoneNumberRecycled is not a JSON boolean",
                provider=self.name,
                status=response.status,
            )
        return value

    def _error_code(self, response: HttpResponse) -> str | None:
        """Return the ``code`` of a well-formed ErrorInfo whose ``status`` matches, else None."""
        try:
            body = self._http.json_body(response)
        except ProviderResponseError:
            return None
        if not isinstance(body, dict):
            return None
        status, code, message = body.get("status"), body.get("code"), body.get("message")
        if type(status) is not int or status != response.status or not isinstance(message, str):
            return None
        if not isinstance(code, str) or not _ERROR_CODE.fullmatch(code):
            return None
        return code

    # -- tokens ---------------------------------------------------------------------

    def _bearer(self) -> str:
        if self._tokens is None:
            assert self._config.access_token is not None  # noqa: S101 - set with no token cache
            return self._config.access_token
        return self._tokens.get()

    def _fetch_token(self) -> tuple[str, float]:
        """Run one client-credentials grant; return (token, lifetime in seconds)."""
        config = self._config
        assert config.token_url is not None  # noqa: S101 - set in every OAuth mode
        assert config.client_id is not None  # noqa: S101
        fields = {"grant_type": "client_credentials", "scope": config.scope}
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if config.signer is not None:
            claims = client_assertion_claims(
                config.client_id,
                config.token_url,
                now=time.time(),
                jti=str(uuid.uuid4()),
                lifetime=ASSERTION_LIFETIME,
            )
            fields["client_id"] = config.client_id
            fields["client_assertion_type"] = CLIENT_ASSERTION_TYPE
            fields["client_assertion"] = config.signer.sign(claims)
        else:
            assert config.client_secret is not None  # noqa: S101
            headers["Authorization"] = _basic(config.client_id, config.client_secret)
        body = urllib.parse.urlencode(fields).encode("ascii")
        try:
            response = self._http.request("POST", config.token_url, headers=headers, body=body)
            if response.status != 200:
                self._token_refused(response)
            grant = self._http.json_body(response)
        except ProviderResponseError as exc:
            raise ProviderAuthError(
                f"token endpoint: {exc.message}", provider=self.name, status=exc.status
            ) from None
        token, lifetime = self._read_grant(grant)
        _LOG.debug("camara access token obtained, valid for %ds", lifetime)
        return token, float(lifetime)

    def _token_refused(self, response: HttpResponse) -> None:
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
            "token request refused", provider=self.name, status=response.status, code=code
        )

    def _read_grant(self, grant: object) -> tuple[str, int]:
        def refuse(why: str) -> ProviderAuthError:
            return ProviderAuthError(f"token endpoint: {why}", provider=self.name, status=200)

        if not isinstance(grant, dict):
            raise refuse("answer is not a JSON object")
        token = grant.get("access_token")
        if (
            not isinstance(token, str)
            or len(token) > MAX_TOKEN_CHARS
            or not _BEARER.fullmatch(token)
        ):
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
            or not set(self._config.scope.split()) <= set(granted.split())
        ):
            raise refuse("token lacks the requested scope")
        return token, min(expires_in, MAX_TOKEN_LIFETIME)
