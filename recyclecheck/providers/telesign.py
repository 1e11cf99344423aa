"""Telesign Phone ID ``number_deactivation``: when was this number last deactivated.

One ``POST /v1/phoneid/{digits}`` carrying ``last_verified``; the answer is
date-shaped (:class:`LastChange`) with the flag ``recycled_since_last_verification``
cross-checked against the dates.  Digest (TSA HMAC-SHA256) or Basic auth.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from .._dates import utc_date
from .._http import DEFAULT_MAX_BODY, HttpClient, HttpResponse, rate_limited
from .._phone import mask
from ..exceptions import (
    ConfigurationError,
    ProviderAuthError,
    ProviderResponseError,
    ProviderUnavailable,
)
from . import _telesign_auth
from ._answers import Answer, ChangedSince, LastChange, NoData, NotCovered
from ._wire import (
    Strict,
    basic_authorization,
    check_base_url,
    check_credential,
    check_e164,
    check_since,
    env_ca_bundle,
    env_value,
    error_code,
)

__all__ = ["DEFAULT_BASE_URL", "TelesignProvider", "parse_phoneid"]

#: Telesign's worldwide REST endpoint for full-service accounts.
DEFAULT_BASE_URL = "https://rest-ww.telesign.com"

_NAME = "telesign"
_CONTENT_TYPE = "application/json"
_log = logging.getLogger("recyclecheck.providers.telesign")

# HTTP error-body codes (status.code or errors[].code).
_AUTH_CODES = frozenset(str(code) for code in range(10008, 10016))  # signature, key, account
_RATE_CODES = frozenset({"10019", "10020"})  # rate limit; transaction hard cap
_DOWN_CODES = frozenset({"-10000", "-90001"})  # system unavailable; internal error

# Phone ID top-level status codes: transaction completed, or partially completed.
_PHONEID_OK = frozenset({300, 301})

_FLAGS = frozenset({"recycled", "not_recycled", "cannot_be_determined"})


class TelesignProvider:
    """Ask Telesign Phone ID's ``number_deactivation`` add-on about a number.

    ``customer_id`` and ``api_key`` come from the Telesign portal; the account
    must be full-service with the add-on enabled.  ``auth`` is ``"digest"``
    (TSA HMAC-SHA256, the default: the key never travels) or ``"basic"``.
    ``base_url`` may point at a sandbox; ``ca_bundle``, ``proxies`` and
    ``max_body`` configure the shared HTTP client.
    """

    name: str = _NAME

    def __init__(
        self,
        customer_id: str,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        auth: str = "digest",
        ca_bundle: str | None = None,
        proxies: Mapping[str, str] | None = None,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        self._customer_id = check_credential(customer_id, "customer_id", colon=False)
        secret = check_credential(api_key, "api_key")
        if auth == "digest":
            try:
                self._key = _telesign_auth.decode_api_key(secret)
            except ValueError:
                raise ConfigurationError("api_key is not base64 (as Telesign issues it)") from None
            self._basic = ""
        elif auth == "basic":
            self._key = b""
            self._basic = basic_authorization(self._customer_id, secret)
        else:
            raise ConfigurationError("auth must be 'digest' or 'basic'")
        self._auth = auth
        self._base_url = check_base_url(base_url)
        self._base_path = urllib.parse.urlsplit(self._base_url).path
        self._http = HttpClient(
            provider=_NAME,
            ca_bundle=ca_bundle,
            proxies=proxies,
            max_body=max_body,
            base_url=self._base_url,
        )
        # Seams for tests; the signer itself is pure.
        self._clock: Callable[[], float] = time.time
        self._nonce: Callable[[], str] = _telesign_auth.new_nonce

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TelesignProvider:
        """Build from environment variables (``environ`` defaults to ``os.environ``).

        Reads ``RECYCLECHECK_TELESIGN_CUSTOMER_ID``, ``RECYCLECHECK_TELESIGN_API_KEY``
        and the optional ``RECYCLECHECK_TELESIGN_BASE_URL``,
        ``RECYCLECHECK_TELESIGN_AUTH`` (``digest`` or ``basic``) and
        ``RECYCLECHECK_CA_BUNDLE`` (a PEM file of the roots to trust instead of
        the default ones).
        """
        env = os.environ if environ is None else environ
        auth = env_value(env, "RECYCLECHECK_TELESIGN_AUTH", required=False) or "digest"
        if auth not in ("digest", "basic"):
            raise ConfigurationError("RECYCLECHECK_TELESIGN_AUTH must be 'digest' or 'basic'")
        return cls(
            env_value(env, "RECYCLECHECK_TELESIGN_CUSTOMER_ID", required=True) or "",
            env_value(env, "RECYCLECHECK_TELESIGN_API_KEY", required=True) or "",
            base_url=env_value(env, "RECYCLECHECK_TELESIGN_BASE_URL", required=False)
            or DEFAULT_BASE_URL,
            auth=auth,
            ca_bundle=env_ca_bundle(env),
        )

    def __repr__(self) -> str:
        return f"<TelesignProvider base_url={self._base_url!r} auth={self._auth!r}>"

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()

    def _inline_ready(self, number: str) -> bool:
        # The Guard may run this lookup on the caller's thread: every step after
        # this is bounded by the deadline once a warm connection is there.
        return self._http.ready_inline()

    def lookup(self, number: str, since: dt.date) -> Answer:
        """Ask when the E.164 ``number`` was last deactivated, and whether on or after ``since``."""
        number = check_e164(number)
        since = check_since(since)
        digits = number[1:]
        resource = f"/v1/phoneid/{digits}"
        body = json.dumps(
            {
                "addons": {
                    "number_deactivation": {"last_verified": f"{since.isoformat()}T00:00:00Z"}
                }
            },
            separators=(",", ":"),
        ).encode("ascii")
        response = self._http.request(
            "POST",
            self._base_url + resource,
            headers=self._headers(self._base_path + resource, body),
            body=body,
        )
        if response.status != 200:
            self._failed(response)
        answer = parse_phoneid(self._http.json_body(response), digits, since)
        if _log.isEnabledFor(logging.DEBUG):  # mask() parses the number: only when it shows
            _log.debug("telesign answered %s for %s", type(answer).__name__, mask(number))
        return answer

    def _headers(self, path: str, body: bytes) -> dict[str, str]:
        """Sign the exact body bytes, with a fresh Date and nonce for every request."""
        if self._auth == "basic":
            return {"Authorization": self._basic, "Content-Type": _CONTENT_TYPE}
        return _telesign_auth.digest_headers(
            self._customer_id,
            self._key,
            method="POST",
            resource=path,
            date=_telesign_auth.http_date(self._clock()),
            nonce=self._nonce(),
            content_type=_CONTENT_TYPE,
            body=body,
        )

    def _failed(self, response: HttpResponse) -> NoReturn:
        """Raise the ProviderError matching a non-200 response."""
        try:
            payload = self._http.json_body(response)
        except ProviderResponseError:
            payload = None  # e.g. a proxy's HTML page: the status alone decides
        code = _error_body_code(payload)
        status = response.status
        if status == 429 or code in _RATE_CODES:
            raise rate_limited(
                _NAME, status=status, code=code, retry_after=response.headers.get("Retry-After")
            )
        if status == 401 or code in _AUTH_CODES:
            raise ProviderAuthError("credentials refused", provider=_NAME, status=status, code=code)
        if code in _DOWN_CODES:
            raise ProviderUnavailable("provider failed", provider=_NAME, status=status, code=code)
        self._http.raise_for_status(response, code=code)
        raise ProviderResponseError("unexpected status", provider=_NAME, status=status)


def _error_body_code(payload: object) -> str | None:
    """Return the first ``errors[].code``, else the ``status.code``, of an error body."""
    if not isinstance(payload, dict):
        return None
    errors = payload.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        code = error_code(errors[0].get("code"))
        if code is not None:
            return code
    status = payload.get("status")
    return error_code(status.get("code")) if isinstance(status, dict) else None


def _change_date(moment: dt.datetime) -> dt.date:
    """Date a deactivation: the later of its written date and its UTC date.

    A later change date can only count as "after the binding" more often.
    """
    return max(moment.date(), utc_date(moment))


def _coverage_date(moment: dt.datetime) -> dt.date:
    """Date the start of tracking: the first UTC day covered from midnight.

    A start during a day leaves that day's earlier hours unwatched, so coverage
    counts from the next day (a later start can only mean "not covered" more often).
    """
    # Out of range raises OverflowError: a coverage start past the year 9999 is a bad
    # answer (unlike a change date, which saturates and still counts as a change).
    utc = moment.astimezone(dt.timezone.utc)
    return utc.date() + dt.timedelta(days=0 if utc.time() == dt.time(0) else 1)


def parse_phoneid(payload: object, digits: str, since: dt.date) -> Answer:
    """Turn a decoded ``200`` Phone ID body into an answer about ``digits`` since ``since``.

    ``recycled`` without a deactivation on or after ``since`` still counts as a
    change (``ChangedSince(since, True)``); ``not_recycled`` contradicted by such a
    deactivation reports the deactivation; ``cannot_be_determined`` gives
    NotCovered when tracking began after ``since`` and NoData otherwise.
    Anything malformed raises :class:`ProviderResponseError`.
    """
    strict = Strict(_NAME)
    body = strict.obj(payload, "body")
    if "status" in body:
        status = strict.obj(body["status"], "status")
        code = strict.integer(strict.field(status, "code", "status.code"), "status.code")
        if code not in _PHONEID_OK:
            raise strict.error("Phone ID did not complete", code=str(code))
    _check_echo(strict, body, digits)
    addon = strict.obj(
        strict.field(body, "number_deactivation", "number_deactivation"), "number_deactivation"
    )
    addon_status = strict.obj(
        strict.field(addon, "status", "number_deactivation.status"), "number_deactivation.status"
    )
    addon_code = strict.integer(
        strict.field(addon_status, "code", "number_deactivation.status.code"),
        "number_deactivation.status.code",
    )
    if addon_code != 2800:
        return _addon_failed(strict, addon_code)
    return _answer(strict, addon, since)


def _check_echo(strict: Strict, body: dict[str, Any], digits: str) -> None:
    """Refuse an answer whose echoed number (when Telesign gives one) is another number."""
    if "numbering" not in body:
        return
    numbering = strict.obj(body["numbering"], "numbering")
    if "original" not in numbering:
        return
    original = strict.obj(numbering["original"], "numbering.original")
    if "complete_phone_number" not in original:
        return
    what = "numbering.original.complete_phone_number"
    if strict.string(original["complete_phone_number"], what) != digits:
        raise strict.error("answer is about another number")


def _addon_failed(strict: Strict, code: int) -> Answer:
    """Map a non-success add-on status: an unknown, or a raised ProviderError."""
    if code == 2803:
        return NotCovered()
    if code in (2804, 2805):
        return NoData()
    if code == 2802:
        raise ProviderUnavailable("add-on temporarily unavailable", provider=_NAME, code=str(code))
    if code == 2806:
        raise ProviderAuthError("add-on not enabled", provider=_NAME, code=str(code))
    raise strict.error("add-on refused the request", code=str(code))


def _answer(strict: Strict, addon: dict[str, Any], since: dt.date) -> Answer:
    flag = strict.string(
        strict.field(addon, "recycled_since_last_verification", "recycled_since_last_verification"),
        "recycled_since_last_verification",
    )
    if flag not in _FLAGS:
        raise strict.error("recycled_since_last_verification has an unknown value")
    changed = _optional_date(strict, addon, "last_deactivated", _change_date)
    tracked = _optional_date(strict, addon, "tracking_since", _coverage_date)
    if changed is not None and changed >= since:
        # A deactivation on or after ``since`` is reported whatever the flag says.
        return LastChange(changed, tracked)
    if flag == "recycled":
        # The flag says changed but no date backs it: changed, date unknown.
        return ChangedSince(since, True)
    if flag == "not_recycled":
        # Vouched for from ``since`` at least; a later tracking start means not covered.
        return LastChange(changed, tracked if tracked is not None else since)
    if tracked is not None and tracked > since:
        return NotCovered()
    return NoData()


def _optional_date(
    strict: Strict,
    addon: dict[str, Any],
    key: str,
    to_date: Callable[[dt.datetime], dt.date],
) -> dt.date | None:
    """Read an optional timestamp field (absent or null: none) as a date."""
    value = addon.get(key)
    if value is None:
        return None
    moment = strict.timestamp(value, key)
    try:
        return to_date(moment)
    except OverflowError:
        raise strict.error(f"{key} is out of range") from None
