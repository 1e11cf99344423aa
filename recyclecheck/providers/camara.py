"""CAMARA Number Recycling (GSMA Open Gateway): ``POST {apiRoot}/number-recycling/v0.3/check``.

API 0.3.0 (release r3.3) by default, 0.2.0 (``/v0.2``) on request; both take the
same body.  The operator answers one boolean, ``phoneNumberRecycled``: whether
the line changed subscriber *after* ``specifiedDate``.  This adapter asks about
the day before ``since`` so that a change on ``since`` itself counts, as
:class:`ChangedSince` promises.  The body holds only ``specifiedDate`` (exactly
``YYYY-MM-DD``, never after yesterday in UTC, so never in the future anywhere)
and, with a two-legged token, ``phoneNumber``.  Answers and errors map as
follows; anything else, or anything malformed, raises a
:class:`~recyclecheck.ProviderError` and never becomes "not recycled"::

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
secret (HTTP Basic); or client credentials with a ``private_key_jwt`` assertion
(see :mod:`._camara_auth`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from .._http import DEFAULT_MAX_BODY, HttpClient, HttpResponse
from .._phone import mask
from ..exceptions import ConfigurationError, ProviderAuthError, ProviderResponseError
from ._answers import Answer, ChangedSince, NoData, NotCovered
from ._camara_auth import CamaraAuth, TokenClient, configure_auth
from ._tokens import TokenCache
from ._wire import check_base_url, check_e164, check_since, env_ca_bundle

__all__ = ["API_VERSIONS", "DEFAULT_API_VERSION", "CamaraProvider", "check_body"]

_LOG = logging.getLogger(__name__)

#: Prefix of every environment variable :meth:`CamaraProvider.from_env` reads.
ENV_PREFIX = "RECYCLECHECK_CAMARA_"
#: The API versions this adapter speaks: 0.3.0 (release r3.3) and 0.2.0 (release r2.2).
API_VERSIONS = ("v0.3", "v0.2")
#: The version asked for unless another is chosen.
DEFAULT_API_VERSION = "v0.3"

_ERROR_CODE = re.compile(r"[A-Z][A-Z_.]{0,95}")  # CAMARA codes; no digits, so never a number
_DAY = dt.timedelta(days=1)

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
    """Validated options; the auth part keeps its secrets out of the repr."""

    api_root: str
    check_url: str
    three_legged: bool
    auth: CamaraAuth


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
    root = check_base_url(api_root, names["api_root"])
    if api_version not in API_VERSIONS:
        choices = " or ".join(API_VERSIONS)
        raise ConfigurationError(f"{names['api_version']} must be {choices}")
    if not isinstance(three_legged, bool):
        raise ConfigurationError(f"{names['three_legged']} must be a bool")
    auth = configure_auth(
        names,
        access_token=access_token,
        token_url=token_url,
        client_id=client_id,
        client_secret=client_secret,
        private_key=private_key,
        key_id=key_id,
        three_legged=three_legged,
        scope=scope,
    )
    return _Config(
        api_root=root,
        check_url=f"{root}/number-recycling/{api_version}/check",
        three_legged=three_legged,
        auth=auth,
    )


def _env_bool(value: str | None, label: str) -> bool:
    if value is None:
        return False
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{label} must be true or false")


def _utc_today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


def check_body(number: str | None, specified: dt.date) -> bytes:
    """The JSON body of a check: ``specifiedDate``, and ``phoneNumber`` unless ``None``.

    Only the two properties CAMARA declares (0.3 refuses any other), the date as
    exactly ``YYYY-MM-DD`` and the number as E.164; anything else raises.
    """
    if type(specified) is not dt.date:
        raise TypeError("specifiedDate must be a datetime.date")
    payload = {"specifiedDate": specified.isoformat()}  # always 10 characters
    if number is not None:
        payload["phoneNumber"] = check_e164(number)
    return json.dumps(payload, separators=(",", ":")).encode("ascii")


class CamaraProvider:
    """CAMARA Number Recycling, as offered by operators through GSMA Open Gateway.

    ``api_root`` is the operator's API root (``https://host[/path]``); the check
    goes to ``{api_root}/number-recycling/{api_version}/check``, where
    ``api_version`` is ``"v0.3"`` (0.3.0, the default) or ``"v0.2"`` (0.2.0).
    Configure exactly one of ``access_token`` (a bearer token you obtained),
    ``client_secret`` or ``private_key`` (both with ``token_url`` and
    ``client_id``; OAuth2 client credentials with ``scope``).
    ``three_legged=True`` means ``access_token`` already identifies the user's
    line, so no number is sent; such a provider serves only that one line.
    ``ca_bundle``, ``proxies`` and ``max_body`` go to the shared HTTP client.
    Nothing is fetched until the first :meth:`lookup`.
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
        api_version: str = DEFAULT_API_VERSION,
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
        auth = self._config.auth
        self._token_client = (
            None
            if auth.access_token is not None
            else TokenClient(auth, self._http, provider=self.name)
        )
        self._tokens = TokenCache(self._fetch_token) if self._token_client is not None else None
        # Seam for tests: the UTC date that bounds what may be asked.
        self._today: Callable[[], dt.date] = _utc_today

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CamaraProvider:
        """Build a provider from ``RECYCLECHECK_CAMARA_*`` variables (``os.environ`` by default).

        ``API_ROOT`` is required; then ``ACCESS_TOKEN``, or ``TOKEN_URL`` and
        ``CLIENT_ID`` with ``CLIENT_SECRET`` or ``PRIVATE_KEY_FILE`` (and optional
        ``KEY_ID``); optional ``API_VERSION`` (``v0.3``, the default, or ``v0.2``)
        and ``THREE_LEGGED`` (true/false), and ``RECYCLECHECK_CA_BUNDLE`` (a PEM
        file of the roots to trust instead of the default ones).  Empty variables
        count as unset.  Errors name the variable, never its value.
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
            "api_version": get("API_VERSION") or DEFAULT_API_VERSION,
            "three_legged": _env_bool(get("THREE_LEGGED"), ENV_PREFIX + "THREE_LEGGED"),
        }
        _configure(_ENV_NAMES, api_root=api_root, scope="number-recycling:check", **options)
        return cls(api_root, ca_bundle=env_ca_bundle(env), **options)

    def lookup(self, number: str, since: dt.date) -> Answer:
        """Ask whether ``number`` (E.164) changed subscriber on or after ``since``.

        Returns :class:`ChangedSince`, :class:`NotCovered` (``OUT_OF_RANGE``) or
        :class:`NoData`; raises a :class:`~recyclecheck.ProviderError` otherwise.
        A ``since`` the operator cannot be asked about (after today in UTC, or
        ``date.min``) is :class:`NotCovered` without a request.
        """
        number = check_e164(number)
        since = check_since(since)
        # The operator reports changes strictly after specifiedDate; asking about the
        # day before makes a change on `since` itself count.
        specified = self._specified_date(since)
        if specified is None:
            if _LOG.isEnabledFor(logging.DEBUG):  # mask() parses the number: only when it shows
                _LOG.debug("camara: %s not asked, date out of range", mask(number))
            return NotCovered()
        correlator = str(uuid.uuid4())
        headers = {
            "Authorization": f"Bearer {self._bearer()}",
            "Content-Type": "application/json",
            "x-correlator": correlator,
        }
        body = check_body(None if self._config.three_legged else number, specified)
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

    def _specified_date(self, since: dt.date) -> dt.date | None:
        """``since - 1 day``, or None when that is not a date the operator can evaluate.

        A ``specifiedDate`` of at most yesterday (UTC) is in the past in every time
        zone, so the operator never sees a future date (which CAMARA answers with
        ``OUT_OF_RANGE``, and which says nothing about a change that already happened).
        """
        if since == dt.date.min or since > self._today():
            return None
        return since - _DAY

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()

    def __repr__(self) -> str:
        config = self._config
        return (
            f"<CamaraProvider {config.api_root!r} auth={config.auth.mode} "
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
            token = self._config.auth.access_token
            assert token is not None  # noqa: S101 - set with no token cache
            return token
        return self._tokens.get()

    def _fetch_token(self) -> tuple[str, float]:
        """Run one client-credentials grant; return (token, lifetime in seconds)."""
        assert self._token_client is not None  # noqa: S101 - set in every OAuth mode
        return self._token_client.fetch()
