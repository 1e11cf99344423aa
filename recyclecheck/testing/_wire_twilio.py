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
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import re
import urllib.parse

import phonenumbers

from ..providers._answers import Answer
from ._backend import Backend
from ._coverage import twilio_covers, twilio_verdict
from ._wire_base import Incoming, Parsed, Reply, Verdict

__all__ = ["DEFAULT_BASE_URL", "WIRE", "TwilioWire", "error_body", "render_lookup"]

#: Where Twilio's Lookup API lives.
DEFAULT_BASE_URL = "https://lookups.twilio.com"

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


def _package_error(code: str) -> dict[str, object]:
    return {"last_verified_date": None, "is_number_reassigned": None, "error_code": code}


class TwilioWire:
    """Twilio Lookup v2 as the fake providers speak it."""

    name = "twilio"

    def route(self, method: str, route: str) -> str | None:
        """``GET /v2/PhoneNumbers/{number}`` is the lookup."""
        return "lookup" if method == "GET" and _PATH.fullmatch(route) else None

    def parse(self, request: Incoming, endpoint: str, backend: Backend) -> Parsed:
        """The number from the path, the date from ``LastVerifiedDate``."""
        match = _PATH.fullmatch(request.route)
        raw = urllib.parse.unquote(match.group(1)) if match else ""
        return Parsed(endpoint, _e164(raw), _date(request.params().get("LastVerifiedDate")))

    def respond(self, request: Incoming, parsed: Parsed, backend: Backend) -> Reply:
        """Check Basic auth, then answer the Lookup."""
        if backend.credentials is not None and not self._authorised(request, backend):
            return self.refused(request, parsed)
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
