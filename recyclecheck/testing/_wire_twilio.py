"""Fake Twilio Lookup v2 ``reassigned_number``: ``GET /v2/PhoneNumbers/{number}``.

HTTP Basic auth (Account SID + Auth Token, refused with 401 and error 20003);
``Fields`` selects the package (unrequested packages are ``null``);
``LastVerifiedDate`` (``YYYYMMDD``) is the date asked about, echoed as
``YYYY-MM-DD``.  Scripted answers render as ``is_number_reassigned``:

=====================================  ====================================
script, asked about date ``L``         ``reassigned_number``
=====================================  ====================================
reissued on ``D >= L``, or changed     ``"yes"``
never, ``D < L``, or unchanged         ``"no"`` (``"no_data_available"``
                                       when ``L`` is before 2021)
no data, or coverage starting after L  ``"no_data_available"``
not covered                            ``error_code`` 60610 (outside coverage)
any script, for a number outside the   ``error_code`` 60607 (unsupported
US                                     country)
=====================================  ====================================

The package is "only available for US phone numbers", so a number of any other
country (Canada and the Caribbean included) gets 60607 whatever its script
(see :mod:`._coverage`).

``POST /v2/batch/query`` (Basic auth as above) takes ``{"phone_numbers": [{
"correlation_id", "phone_number", "fields": ["reassigned_number"],
"reassigned_number": {"last_verified_date": "YYYYMMDD"}}, ...]}`` and answers
``{"phone_numbers": [...]}``, one item per request item in order: the Lookup
body above (without ``url``) plus the ``correlation_id`` echoed and
``twilio_error_code``.  Per item:

=====================================  ====================================
request item                           answer item
=====================================  ====================================
the same number again in one request   ``twilio_error_code`` 60626
number scripted with a                 ``twilio_error_code``: 60616
``ProviderError``                      (``ProviderRateLimited``), 60606
                                       (``ProviderAuthError``), 60600
                                       (``ProviderResponseError``), 60608
                                       (timeouts and outages)
no or a malformed                      ``twilio_error_code`` 60600
``last_verified_date``
otherwise                              as ``GET /v2/PhoneNumbers`` answers
=====================================  ====================================

A body without a list of 1 to :data:`MAX_BATCH` items is a 400 (error 60600).
Twilio documents no maximum; the fake refuses more than the adapter's own cap,
so a chunking slip shows.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

import phonenumbers

from ..exceptions import (
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderResponseError,
)
from ..providers._answers import Answer
from ..providers.twilio import MAX_BATCH, TwilioProvider
from ._backend import Backend, Credentials
from ._coverage import twilio_covers, twilio_verdict
from ._wire_base import Incoming, Parsed, Reply, Verdict, build_adapter
from ._wire_batch import BatchParsed

__all__ = [
    "BATCH_PATH",
    "DEFAULT_BASE_URL",
    "MAX_BATCH",
    "WIRE",
    "TwilioWire",
    "error_body",
    "render_batch_item",
    "render_lookup",
]

#: Where Twilio's Lookup API lives.
DEFAULT_BASE_URL = "https://lookups.twilio.com"
#: The batch endpoint, relative to the base URL.
BATCH_PATH = "/v2/batch/query"

_PATH = re.compile(r"/v2/PhoneNumbers/([^/]+)")
_YYYYMMDD = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})")
_PACKAGES = (
    "caller_name",
    "sim_swap",
    "call_forwarding",
    "line_status",
    "line_type_intelligence",
    "identity_match",
    "reassigned_number",
    "sms_pumping_risk",
    "phone_number_quality_score",
    "pre_fill",
)
_MESSAGES = {
    20003: "Authenticate",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    20503: "Service Unavailable",
    60600: "Unprocessable or invalid request",
}
_INVALID = 60600
_REPEATED = 60626  # the same phone number more than once in one bulk request


def _failure_code(error: ProviderError) -> int:
    """The ``twilio_error_code`` a batch item scripted with ``error`` carries."""
    if isinstance(error, ProviderRateLimited):
        return 60616  # the package's request rate
    if isinstance(error, ProviderAuthError):
        return 60606  # the package is not enabled for the account
    if isinstance(error, ProviderResponseError):
        return _INVALID
    return 60608  # Twilio's data source failed (timeouts and outages alike)


def error_body(code: int, status: int) -> dict[str, object]:
    """Twilio's error body: ``{code, message, more_info, status}``."""
    return {
        "code": code,
        "message": _MESSAGES.get(code, "Error"),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def _date(text: str | None) -> dt.date | None:
    match = _YYYYMMDD.fullmatch(text or "")
    if match is None:
        return None
    try:
        return dt.date(*(int(part) for part in match.groups()))
    except ValueError:
        return None


def _e164(raw: str) -> str | None:
    try:
        parsed = phonenumbers.parse(raw, "US")  # Twilio's default country is +1
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _lookup_body(raw: str, e164: str | None, base_url: str) -> dict[str, object]:
    body: dict[str, object] = {
        "calling_country_code": None,
        "country_code": None,
        "phone_number": e164 or raw,
        "national_format": None,
        "valid": e164 is not None,
        "validation_errors": [] if e164 is not None else ["NOT_A_NUMBER"],
    }
    if e164 is not None:
        parsed = phonenumbers.parse(e164, None)
        body["calling_country_code"] = str(parsed.country_code)
        body["country_code"] = phonenumbers.region_code_for_number(parsed)
        body["national_format"] = phonenumbers.format_number(
            parsed, phonenumbers.PhoneNumberFormat.NATIONAL
        )
    body.update(dict.fromkeys(_PACKAGES))
    body["url"] = f"{base_url}/v2/PhoneNumbers/{urllib.parse.quote(e164 or raw, safe='+')}"
    return body


def render_lookup(
    number: str, asked: dt.date, answer: Answer, *, base_url: str = DEFAULT_BASE_URL
) -> Reply:
    """The ``200`` Lookup body answering ``answer`` about ``number`` for ``LastVerifiedDate``."""
    body = _lookup_body(number, number, base_url)
    body["reassigned_number"] = _package(number, asked, answer)
    return Reply.json(200, body)


def _package(number: str, asked: dt.date, answer: Answer) -> dict[str, object]:
    if not twilio_covers(number):
        return _package_error("60607")  # Lookup Unsupported Country
    said = twilio_verdict(answer, asked)
    if said is Verdict.NOT_COVERED:
        return _package_error("60610")  # outside coverage
    flag = {
        Verdict.CHANGED: "yes",
        Verdict.UNCHANGED: "no",
        Verdict.NO_DATA: "no_data_available",
        Verdict.TOO_EARLY: "no_data_available",
    }[said]
    return {
        "last_verified_date": asked.isoformat(),
        "is_number_reassigned": flag,
        "error_code": None,
    }


def render_batch_item(
    item: object, backend: Backend, *, repeated: bool = False
) -> dict[str, object]:
    """The answer item for one request item of ``POST /v2/batch/query``."""
    fields: dict[str, Any] = item if isinstance(item, dict) else {}
    raw = fields.get("phone_number")
    raw = raw if isinstance(raw, str) else ""
    e164 = _e164(raw)
    body = _lookup_body(raw, e164, "")
    del body["url"]
    correlation = fields.get("correlation_id")
    result: dict[str, object] = {
        "correlation_id": correlation if isinstance(correlation, str) else None,
        "twilio_error_code": None,
        **body,
    }
    wanted = fields.get("fields")
    if e164 is None or not isinstance(wanted, list) or "reassigned_number" not in wanted:
        return result  # invalid numbers in-band; unrequested packages null
    failure = backend.failure(e164)
    since = _batch_date(fields.get("reassigned_number"))
    if repeated:
        result["twilio_error_code"] = _REPEATED
    elif failure is not None:
        result["twilio_error_code"] = _failure_code(failure)
    elif since is None:
        result["twilio_error_code"] = _INVALID
    else:
        result["reassigned_number"] = _package(e164, since, backend.answer(e164))
    return result


def _batch_date(options: object) -> dt.date | None:
    value = options.get("last_verified_date") if isinstance(options, dict) else None
    return _date(value) if isinstance(value, str) else None


def _batch_items(request: Incoming) -> list[object] | None:
    payload = request.json()
    items = payload.get("phone_numbers") if isinstance(payload, dict) else None
    return items if isinstance(items, list) else None


def _item_number(item: object) -> str | None:
    raw = item.get("phone_number") if isinstance(item, dict) else None
    return _e164(raw) if isinstance(raw, str) else None


def _package_error(code: str) -> dict[str, object]:
    return {"last_verified_date": None, "is_number_reassigned": None, "error_code": code}


class TwilioWire:
    """Twilio Lookup v2 as the fake providers speak it."""

    name = "twilio"

    def environment(self, url: str, credentials: Credentials) -> dict[str, str]:
        """What this adapter's ``from_env()`` reads, pointing it at a fake at ``url``."""
        return {
            "TWILIO_ACCOUNT_SID": credentials.twilio_account_sid,
            "TWILIO_AUTH_TOKEN": credentials.twilio_auth_token,
            "RECYCLECHECK_TWILIO_BASE_URL": url,
        }

    def adapter(
        self, url: str, credentials: Credentials, transport: Mapping[str, Any], **overrides: Any
    ) -> TwilioProvider:
        """A :class:`TwilioProvider` pointed at ``url`` with the accepted SID and token."""
        accepted = {
            "account_sid": credentials.twilio_account_sid,
            "auth_token": credentials.twilio_auth_token,
            "base_url": url,
        }
        return build_adapter(TwilioProvider, accepted, transport, overrides)

    def route(self, method: str, route: str) -> str | None:
        """``GET /v2/PhoneNumbers/{number}`` is the lookup, ``POST /v2/batch/query`` the batch."""
        if method == "POST" and route == BATCH_PATH:
            return "batch"
        return "lookup" if method == "GET" and _PATH.fullmatch(route) else None

    def parse(self, request: Incoming, endpoint: str, backend: Backend) -> Parsed:
        """The number from the path, the date from ``LastVerifiedDate``; a batch's numbers."""
        if endpoint == "batch":
            items = _batch_items(request) or []
            numbers = tuple(_item_number(item) for item in items)
            return BatchParsed(endpoint, numbers=numbers, per_item_failures=True)
        match = _PATH.fullmatch(request.route)
        raw = urllib.parse.unquote(match.group(1)) if match else ""
        return Parsed(endpoint, _e164(raw), _date(request.params().get("LastVerifiedDate")))

    def respond(self, request: Incoming, parsed: Parsed, backend: Backend) -> Reply:
        """Check Basic auth, then answer the Lookup."""
        if backend.credentials is not None and not self._authorised(request, backend):
            return self.refused(request, parsed)
        if isinstance(parsed, BatchParsed):
            return self._batch(request, parsed, backend)
        match = _PATH.fullmatch(request.route)
        raw = urllib.parse.unquote(match.group(1)) if match else ""
        params = request.params()
        fields = {field.strip() for field in params.get("Fields", "").split(",")}
        if parsed.number is None or "reassigned_number" not in fields:
            # Invalid numbers are reported in-band; unrequested packages are null.
            return Reply.json(200, _lookup_body(raw, parsed.number, request.base_url))
        if parsed.since is None:
            return Reply.json(400, error_body(60600, 400))
        answer = backend.answer(parsed.number)
        return render_lookup(parsed.number, parsed.since, answer, base_url=request.base_url)

    @staticmethod
    def _batch(request: Incoming, parsed: BatchParsed, backend: Backend) -> Reply:
        """Answer each item of a batch, in order; a body of no usable items is a 400."""
        items = _batch_items(request)
        if not items or len(items) > MAX_BATCH:
            return Reply.json(400, error_body(_INVALID, 400))
        counts: dict[str, int] = {}
        for number in parsed.numbers:
            if number is not None:
                counts[number] = counts.get(number, 0) + 1
        answers = [
            render_batch_item(item, backend, repeated=number is not None and counts[number] > 1)
            for item, number in zip(items, parsed.numbers, strict=True)
        ]
        return Reply.json(200, {"phone_numbers": answers})

    @staticmethod
    def _authorised(request: Incoming, backend: Backend) -> bool:
        credentials = backend.credentials
        assert credentials is not None  # noqa: S101 - checked by the caller
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(token, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        same_user = hmac.compare_digest(user.encode(), credentials.twilio_account_sid.encode())
        same_secret = hmac.compare_digest(password.encode(), credentials.twilio_auth_token.encode())
        return same_user and same_secret

    def refused(self, request: Incoming, parsed: Parsed) -> Reply:
        """401 with error 20003, as Twilio refuses bad credentials."""
        return Reply.json(
            401, error_body(20003, 401), {"WWW-Authenticate": 'Basic realm="Twilio API"'}
        )

    def rate_limited(self, request: Incoming, parsed: Parsed, retry_after: str | None) -> Reply:
        """429 with error 20429 (too many concurrent requests)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else None
        return Reply.json(429, error_body(20429, 429), headers)

    def server_error(self, request: Incoming, parsed: Parsed, status: int) -> Reply:
        """5xx with error 20503 (for 503) or 20500."""
        return Reply.json(status, error_body(20503 if status == 503 else 20500, status))


#: The one Twilio wire instance.
WIRE = TwilioWire()
