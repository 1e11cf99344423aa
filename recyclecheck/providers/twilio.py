"""Twilio Lookup v2 ``reassigned_number``: was this US number disconnected since a date.

One ``GET /v2/PhoneNumbers/{number}?Fields=reassigned_number&LastVerifiedDate=YYYYMMDD``
with HTTP Basic auth; the answer is boolean-shaped (:class:`ChangedSince`).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import urllib.parse
from collections.abc import Mapping
from typing import Any

from .._http import DEFAULT_MAX_BODY, HttpClient, HttpResponse, rate_limited
from .._phone import mask
from ..exceptions import (
    ProviderAuthError,
    ProviderResponseError,
    ProviderUnavailable,
)
from ._answers import Answer, ChangedSince, NoData, NotCovered
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

__all__ = ["DEFAULT_BASE_URL", "TwilioProvider", "parse_lookup"]

#: Where Twilio's Lookup API lives.
DEFAULT_BASE_URL = "https://lookups.twilio.com"

_NAME = "twilio"
_log = logging.getLogger("recyclecheck.providers.twilio")

# Twilio error codes (https://www.twilio.com/docs/api/errors/<code>).
_RATE_LIMITED = frozenset({"20429", "60611", "60616", "60626"})  # concurrency, quota, pace
_REFUSED = frozenset({"20003"})  # bad credentials
# Account-level approval: the reassigned_number package is enabled per account only after
# Twilio approves a carrier registration (error 60606, "Lookup Package is Not Enabled").
_NEEDS_APPROVAL = frozenset({"60606"})
_NOT_COVERED = frozenset({"60607", "60610"})  # unsupported country; outside coverage
_UPSTREAM = frozenset({"60608"})  # Twilio's data source replied with an error

_VERDICTS = {"yes": True, "no": False}


class TwilioProvider:
    """Ask Twilio Lookup v2 whether a number was reassigned since a date.

    ``account_sid`` and ``auth_token`` are an Account SID and Auth Token, or
    (better, revocable) an API Key SID and secret.  ``base_url`` may point at a
    sandbox; ``ca_bundle``, ``proxies`` and ``max_body`` configure the shared
    HTTP client.  The account must be approved for the ``reassigned_number``
    package, which covers US numbers only.
    """

    name: str = _NAME

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        ca_bundle: str | None = None,
        proxies: Mapping[str, str] | None = None,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        user = check_credential(account_sid, "account_sid", colon=False)
        secret = check_credential(auth_token, "auth_token")
        self._base_url = check_base_url(base_url)
        self._authorization = basic_authorization(user, secret)
        self._http = HttpClient(
            provider=_NAME,
            ca_bundle=ca_bundle,
            proxies=proxies,
            max_body=max_body,
            base_url=self._base_url,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TwilioProvider:
        """Build from environment variables (``environ`` defaults to ``os.environ``).

        Reads ``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN`` and the optional
        ``RECYCLECHECK_TWILIO_BASE_URL`` and ``RECYCLECHECK_CA_BUNDLE`` (a PEM
        file of the roots to trust instead of the default ones).
        """
        env = os.environ if environ is None else environ
        return cls(
            env_value(env, "TWILIO_ACCOUNT_SID", required=True) or "",
            env_value(env, "TWILIO_AUTH_TOKEN", required=True) or "",
            base_url=env_value(env, "RECYCLECHECK_TWILIO_BASE_URL", required=False)
            or DEFAULT_BASE_URL,
            ca_bundle=env_ca_bundle(env),
        )

    def __repr__(self) -> str:
        return f"<TwilioProvider base_url={self._base_url!r}>"

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()

    def _inline_ready(self, number: str) -> bool:
        # The Guard may run this lookup on the caller's thread: every step after
        # this is bounded by the deadline once a warm connection is there.
        return self._http.ready_inline()

    def lookup(self, number: str, since: dt.date) -> Answer:
        """Ask whether the E.164 ``number`` was reassigned on or after ``since``."""
        number = check_e164(number)
        since = check_since(since)
        response = self._http.request(
            "GET",
            f"{self._base_url}/v2/PhoneNumbers/{urllib.parse.quote(number, safe='')}",
            params={
                "Fields": "reassigned_number",
                "LastVerifiedDate": f"{since.year:04d}{since.month:02d}{since.day:02d}",
            },
            headers={"Authorization": self._authorization},
        )
        if response.status != 200:
            answer: Answer = self._failed(response)
        else:
            answer = parse_lookup(self._http.json_body(response), number, since)
        if _log.isEnabledFor(logging.DEBUG):  # mask() parses the number: only when it shows
            _log.debug("twilio answered %s for %s", type(answer).__name__, mask(number))
        return answer

    def _failed(self, response: HttpResponse) -> NotCovered:
        """Map an error response: NotCovered for coverage codes, else raise."""
        try:
            body = self._http.json_body(response)
        except ProviderResponseError:
            body = None  # e.g. a proxy's HTML page: the status alone decides
        code = error_code(body.get("code")) if isinstance(body, dict) else None
        status = response.status
        if status >= 500 and code not in _RATE_LIMITED:
            self._http.raise_for_status(response, code=code)
        if code is not None or status in (401, 403, 429):
            return _map_code(code, status, response.headers.get("Retry-After"))
        self._http.raise_for_status(response)
        raise ProviderResponseError("unexpected status", provider=_NAME, status=status)


def _map_code(code: str | None, status: int, retry_after: str | None) -> NotCovered:
    """Map a Twilio error code from an error body or a package's ``error_code``.

    Coverage codes give NotCovered; every other code raises the matching ProviderError.
    """
    if status == 429 or code in _RATE_LIMITED:
        raise rate_limited(_NAME, status=status, code=code, retry_after=retry_after)
    if code in _NOT_COVERED:
        return NotCovered()
    if code in _NEEDS_APPROVAL:
        raise ProviderAuthError(
            "the account is not enabled for the reassigned_number package: "
            "it needs Twilio's approval (carrier registration) first",
            provider=_NAME,
            status=status,
            code=code,
        )
    if status in (401, 403) or code in _REFUSED:
        raise ProviderAuthError("credentials refused", provider=_NAME, status=status, code=code)
    if code in _UPSTREAM:
        raise ProviderUnavailable(
            "Twilio's data source failed", provider=_NAME, status=status, code=code
        )
    raise ProviderResponseError(
        "provider reported an error", provider=_NAME, status=status, code=code
    )


def parse_lookup(payload: object, number: str, since: dt.date) -> Answer:
    """Turn a decoded ``200`` Lookup body into an answer about ``number`` since ``since``.

    Only ``valid: true``, the same number echoed, a null ``error_code``, the
    asked date echoed and ``is_number_reassigned: "no"`` give a permissive
    ``ChangedSince(since, False)``; anything malformed raises
    :class:`ProviderResponseError`.
    """
    strict = Strict(_NAME)
    body = strict.obj(payload, "body")
    if not strict.boolean(strict.field(body, "valid", "valid"), "valid"):
        return NoData()  # Twilio cannot evaluate a number it holds invalid
    if strict.string(strict.field(body, "phone_number", "phone_number"), "phone_number") != number:
        raise strict.error("answer is about another number")
    package = strict.field(body, "reassigned_number", "reassigned_number")
    if package is None:
        return NotCovered()  # Twilio leaves a package null where it does not apply
    return _parse_package(strict, strict.obj(package, "reassigned_number"), since)


def _parse_package(strict: Strict, package: dict[str, Any], since: dt.date) -> Answer:
    raw_code = strict.field(package, "error_code", "reassigned_number.error_code")
    if raw_code is not None:
        code = error_code(raw_code)
        if code is None:
            raise strict.error("reassigned_number.error_code is not an error code")
        return _map_code(code, 200, None)
    verdict = strict.string(
        strict.field(package, "is_number_reassigned", "reassigned_number.is_number_reassigned"),
        "reassigned_number.is_number_reassigned",
    )
    if verdict not in (*_VERDICTS, "no_data_available"):
        raise strict.error("reassigned_number.is_number_reassigned has an unknown value")
    echoed = strict.iso_date(
        strict.field(package, "last_verified_date", "reassigned_number.last_verified_date"),
        "reassigned_number.last_verified_date",
    )
    if echoed != since:
        raise strict.error("answer is about another date")
    if verdict == "no_data_available":
        return NoData()
    return ChangedSince(since, _VERDICTS[verdict])
