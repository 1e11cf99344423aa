"""The US Reassigned Numbers Database (FCC RND, administered by Somos).

Was a US number permanently disconnected since a date?  A portal refresh token buys a
short-lived id token (cached, refreshed before it lapses, dropped when refused); each
lookup posts one ``tn`` + ``date`` pair.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import logging
import os
import re
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

import phonenumbers

from .._http import DEFAULT_MAX_BODY, HttpClient, HttpResponse, finite_number
from .._phone import mask as mask_number
from ..exceptions import (
    ConfigurationError,
    InvalidPhoneNumber,
    ProviderAuthError,
    ProviderResponseError,
)
from ._answers import Answer, ChangedSince, NoData, NotCovered
from ._tokens import TokenCache

__all__ = ["RndProvider"]

_log = logging.getLogger(__name__)

# Id tokens are cached this long unless their own ``exp`` claim says sooner.
_TOKEN_LIFETIME = 55 * 60.0
_MAX_TOKEN = 8192

_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_COMPANY_ID = re.compile(r"[A-Za-z0-9]{3,10}")
_PRINTABLE = re.compile(r"[\x21-\x7e]{1,2048}")
# The id token goes raw into a header: visible ASCII only, no spaces, CR or LF.
_TOKEN = re.compile(rf"[\x21-\x7e]{{1,{_MAX_TOKEN}}}")
#: NANP regions whose numbers the RND covers: the US and its territories.
_US_REGIONS = frozenset({"US", "PR", "VI", "GU", "AS", "MP"})
_VERDICTS: Mapping[str, bool | None] = {"yes": True, "no": False, "no_data": None}
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
_JSON = {"Content-Type": "application/json"}

_ENV_REFRESH_TOKEN = "RECYCLECHECK_RND_REFRESH_TOKEN"  # noqa: S105 - a variable name
_ENV_COMPANY_ID = "RECYCLECHECK_RND_COMPANY_ID"
_ENV_BASE_URL = "RECYCLECHECK_RND_BASE_URL"
_DEFAULT_BASE_URL = "https://api.reassigned.us"


def _base_url(url: object) -> str:
    """Validate the base URL and return it without a trailing slash."""
    if not isinstance(url, str) or not _PRINTABLE.fullmatch(url):
        raise ConfigurationError("base_url must be an https URL without spaces")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise ConfigurationError("base_url is not a valid URL") from None
    host = parts.hostname or ""
    secure = parts.scheme == "https" or (parts.scheme == "http" and host in _LOOPBACK)
    if not host or not secure:
        raise ConfigurationError("base_url must be https (plain http only for a loopback sandbox)")
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError("base_url must not carry credentials")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise ConfigurationError("base_url must not have a query or fragment")
    return f"{parts.scheme}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def _token_lifetime(token: str, now: float) -> float:
    """Return how long to cache ``token``: 55 minutes, or less if its JWT ``exp`` says so.

    The claim is read, not verified: it only ever shortens caching.
    """
    exp = _jwt_exp(token)
    if exp is None:
        return _TOKEN_LIFETIME
    return max(0.0, min(_TOKEN_LIFETIME, exp - now))


def _jwt_exp(token: str) -> float | None:
    parts = token.split(".")
    if len(parts) != 3 or len(parts[1]) > _MAX_TOKEN:
        return None
    try:
        raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(raw)
    except (ValueError, binascii.Error, RecursionError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if exp is not None and finite_number(exp) else None


def _us_tn(number: str) -> str | None:
    """Return the 10-digit NANP number of a US or US-territory number, else None."""
    if not number.startswith("+1") or len(number) != 12:
        return None
    parsed = phonenumbers.parse(number, None)
    if not phonenumbers.is_valid_number(parsed):
        return None
    if phonenumbers.region_code_for_number(parsed) not in _US_REGIONS:
        return None
    return number[2:]


class RndProvider:
    """Query the FCC Reassigned Numbers Database.

    ``refresh_token`` is the API refresh token from the RND portal and
    ``company_id`` the subscriber's Company ID (3-10 letters or digits).
    Only valid +1 numbers of the US and its territories are asked about; any
    other number is :class:`NotCovered` without a request.  Answers:
    ``disconnected`` ``yes`` -> ``ChangedSince(since, True)``, ``no`` ->
    ``ChangedSince(since, False)``, ``no_data`` -> :class:`NoData`.
    ``ca_bundle``, ``proxies`` and ``max_body`` configure the shared HTTP client.
    """

    name: str = "rnd"

    def __init__(
        self,
        refresh_token: str,
        company_id: str,
        *,
        base_url: str = _DEFAULT_BASE_URL,
        ca_bundle: str | None = None,
        proxies: Mapping[str, str] | None = None,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        if not isinstance(refresh_token, str) or not _TOKEN.fullmatch(refresh_token):
            raise ConfigurationError("refresh_token must be non-empty printable ASCII")
        if not isinstance(company_id, str) or not _COMPANY_ID.fullmatch(company_id):
            raise ConfigurationError("company_id must be 3-10 ASCII letters or digits")
        self._base = _base_url(base_url)
        self._refresh_token = refresh_token
        self._company_id = company_id
        self._http = HttpClient(
            provider=self.name, ca_bundle=ca_bundle, proxies=proxies, max_body=max_body
        )
        self._tokens = TokenCache(self._fetch_token)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RndProvider:
        """Build the provider from environment variables (``os.environ`` unless given).

        Required: ``RECYCLECHECK_RND_REFRESH_TOKEN`` and ``RECYCLECHECK_RND_COMPANY_ID``;
        optional: ``RECYCLECHECK_RND_BASE_URL``.  A missing or empty required variable
        raises :class:`ConfigurationError` naming the variable (never its value).
        """
        env = os.environ if environ is None else environ
        for var in (_ENV_REFRESH_TOKEN, _ENV_COMPANY_ID):
            if not env.get(var):
                raise ConfigurationError(f"environment variable {var} is not set")
        return cls(
            env[_ENV_REFRESH_TOKEN],
            env[_ENV_COMPANY_ID],
            base_url=env.get(_ENV_BASE_URL) or _DEFAULT_BASE_URL,
        )

    def __repr__(self) -> str:
        return f"RndProvider(base_url={self._base!r}, company_id={self._company_id!r})"

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()

    def lookup(self, number: str, since: dt.date) -> Answer:
        """Ask whether ``number`` (E.164) was permanently disconnected on or after ``since``."""
        if not isinstance(number, str):
            raise TypeError("number must be a str in E.164 form")
        if type(since) is not dt.date:
            raise TypeError("since must be a datetime.date")
        if not _E164.fullmatch(number):
            raise InvalidPhoneNumber("number must be in E.164 form")
        tn = _us_tn(number)
        if tn is None:
            _log.debug("rnd: %s not covered, no request made", mask_number(number))
            return NotCovered()
        date = since.isoformat()
        query = {"tnList": [{"tn": tn, "date": date, "companyId": self._company_id}]}
        response = self._http.request(
            "POST",
            f"{self._base}/api/tn",
            headers={"Authorization": self._tokens.get(), **_JSON},
            body=json.dumps(query, separators=(",", ":")).encode("ascii"),
        )
        if response.status in (401, 403):
            # Expired or revoked mid-life: drop it so a retry fetches a fresh one.
            self._tokens.invalidate()
            raise ProviderAuthError(
                "id token refused", provider=self.name, status=response.status, retryable=True
            )
        answer = self._answer(response, tn, date, since)
        _log.debug("rnd: %s -> %s", mask_number(number), type(answer).__name__)
        return answer

    def _fetch_token(self) -> tuple[str, float]:
        body = json.dumps({"refreshToken": self._refresh_token}).encode("ascii")
        response = self._http.request(
            "POST", f"{self._base}/b/public/api/idToken", headers=_JSON, body=body
        )
        if response.status in (400, 401, 403):
            raise ProviderAuthError(
                "refresh token refused", provider=self.name, status=response.status
            )
        self._http.raise_for_status(response)
        payload = self._http.json_body(response)
        token = payload.get("idToken") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            raise ProviderResponseError(
                "token answer has no usable idToken", provider=self.name, status=response.status
            )
        _log.debug("rnd: obtained a new id token")
        return token, _token_lifetime(token, time.time())

    def _answer(self, response: HttpResponse, tn: str, date: str, since: dt.date) -> Answer:
        """Turn one query response into an answer, or raise the matching ProviderError."""
        self._http.raise_for_status(response)
        payload: Any = self._http.json_body(response)
        replies = payload.get("replies") if isinstance(payload, dict) else None
        if not isinstance(replies, list) or len(replies) != 1 or not isinstance(replies[0], dict):
            raise self._bad("answer must hold exactly one reply object", response)
        reply = replies[0]
        if reply.get("tn") != tn:
            raise self._bad("reply is for another number", response)
        echoed = [reply[key] for key in ("dateProvided", "date") if key in reply]
        if not echoed or any(value != date for value in echoed):
            raise self._bad("reply is for another date", response)
        if "companyId" in reply and reply["companyId"] != self._company_id:
            raise self._bad("reply is for another company", response)
        verdict = reply.get("disconnected")
        if not isinstance(verdict, str) or verdict not in _VERDICTS:
            raise self._bad("disconnected missing or not yes/no/no_data", response)
        changed = _VERDICTS[verdict]
        return NoData() if changed is None else ChangedSince(since=since, changed=changed)

    def _bad(self, message: str, response: HttpResponse) -> ProviderResponseError:
        return ProviderResponseError(message, provider=self.name, status=response.status)
