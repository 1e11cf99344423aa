"""Fake Telesign Phone ID with the ``number_deactivation`` add-on: ``POST /v1/phoneid/{digits}``.

Auth is TSA digest (HMAC-SHA256 over method, Content-Type, Date, auth method,
nonce, body and path, recomputed with the SDK's own signer) or Basic; a bad
signature gets the real 401 with code 10008, a missing or unreadable
``Authorization`` 401 with code 10009.  The date asked about is
``addons.number_deactivation.last_verified`` (RFC 3339).  Scripted answers
render date-shaped:

==============================  ==============================================
script, asked about date ``S``  ``number_deactivation``
==============================  ==============================================
reissued on ``D``               ``last_deactivated`` D; ``recycled`` if D >= S
never reissued                  ``last_deactivated`` null, ``not_recycled``
covered since ``C``             ``tracking_since`` C (``cannot_be_determined``
                                when C > S and no change on or after S)
changed / unchanged (boolean)   ``recycled`` / ``not_recycled``, no dates
no data                         add-on status 2805 (no information)
not covered                     add-on status 2803 (out of coverage)
a number outside the US         add-on status 2803, whatever the script
==============================  ==============================================

The add-on covers the United States (see :mod:`._coverage`).
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
import secrets
from collections.abc import Mapping
from typing import Any

import phonenumbers

from ..providers import _telesign_auth
from ..providers._answers import Answer, ChangedSince, LastChange, NoData, NotCovered
from ..providers._wire import basic_authorization
from ..providers.telesign import TelesignProvider
from ._backend import Backend, Credentials
from ._coverage import telesign_covers
from ._wire_base import Incoming, Parsed, Reply, build_adapter

__all__ = ["DEFAULT_BASE_URL", "WIRE", "TelesignWire", "error_body", "render_phoneid"]

#: Telesign's worldwide REST endpoint for full-service accounts.
DEFAULT_BASE_URL = "https://rest-ww.telesign.com"

_PATH = re.compile(r"/v1/phoneid/([0-9]+)")
_TSA = re.compile(r"TSA ([^:\s]+):(\S+)")
_MESSAGES = {
    -90001: "System Error",
    -10001: "Invalid Request",
    -10000: "System unavailable, please try again later.",
    10008: "Invalid signature.",
    10009: "Invalid authorization header.",
    10019: "Rate Limit Exceeded",
    11000: "Invalid value for parameter phone_number.",
}
_ADDON_STATUS = {
    2800: "Request successfully completed",
    2803: "Out of coverage",
    2805: "No information for phone_number",
    2807: "Invalid parameters",
}


def _now_text() -> str:
    return (
        dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
    )


def error_body(code: int) -> dict[str, object]:
    """Telesign's error body: ``{reference_id, external_id, status, errors}``."""
    message = _MESSAGES.get(code, "Error")
    return {
        "reference_id": secrets.token_hex(16).upper(),
        "external_id": None,
        "status": {"updated_on": _now_text(), "code": code, "description": message},
        "errors": [{"code": code, "description": message}],
    }


def _stamp(day: dt.date | None) -> str | None:
    return None if day is None else f"{day.isoformat()}T00:00:00Z"


def _addon(asked: dt.date, answer: Answer) -> dict[str, Any]:
    if isinstance(answer, (NoData, NotCovered)):
        code = 2805 if isinstance(answer, NoData) else 2803
        return {"status": {"code": code, "description": _ADDON_STATUS[code]}}
    if isinstance(answer, ChangedSince):
        changed: dt.date | None = None
        tracked: dt.date | None = None
        flag = "recycled" if answer.changed else "not_recycled"
    else:
        assert isinstance(answer, LastChange)  # noqa: S101 - Answer is a closed union
        changed, tracked = answer.on, answer.covered_since
        if changed is not None and changed >= asked:
            flag = "recycled"
        elif tracked is not None and tracked > asked:
            flag = "cannot_be_determined"
        else:
            flag = "not_recycled"
    return {
        "carrier_name": "Fake Wireless" if changed is not None else None,
        "last_deactivated": _stamp(changed),
        "status": {"code": 2800, "description": _ADDON_STATUS[2800]},
        "tracking_since": _stamp(tracked),
        "recycled_since_last_verification": flag,
    }


def _phoneid_body(
    digits: str, addon: Mapping[str, Any] | None, *, completed: bool = True
) -> dict[str, object]:
    try:
        parsed = phonenumbers.parse("+" + digits, None)
        country, national = str(parsed.country_code), str(parsed.national_number)
        region = phonenumbers.region_code_for_number(parsed) or "ZZ"
    except phonenumbers.NumberParseException:
        country, national, region = "", digits, "ZZ"
    body: dict[str, object] = {
        "reference_id": secrets.token_hex(16).upper(),
        "external_id": None,
        "status": {
            "updated_on": _now_text(),
            "code": 300 if completed else 301,
            "description": "Transaction successfully completed"
            if completed
            else "Transaction partially completed",
        },
        "phone_type": {"code": "2", "description": "MOBILE"},
        "numbering": {
            "original": {
                "phone_number": national,
                "complete_phone_number": digits,
                "country_code": country,
            }
        },
        "location": {"country": {"iso2": region}},
        "carrier": {"name": "Fake Wireless"},
        "blocklisting": {"blocked": False, "block_code": 0, "block_description": "Not blocked"},
    }
    if addon is not None:
        body["number_deactivation"] = addon
    return body


def render_phoneid(digits: str, asked: dt.date, answer: Answer) -> Reply:
    """The ``200`` Phone ID body answering ``answer`` about ``digits`` since ``asked``."""
    if not telesign_covers("+" + digits):
        answer = NotCovered()
    completed = not isinstance(answer, (NoData, NotCovered))
    return Reply.json(200, _phoneid_body(digits, _addon(asked, answer), completed=completed))


def _last_verified(payload: object) -> tuple[bool, dt.date | None]:
    """(add-on requested?, its ``last_verified`` date) from a request body."""
    addons = payload.get("addons") if isinstance(payload, dict) else None
    addon = addons.get("number_deactivation") if isinstance(addons, dict) else None
    if not isinstance(addon, dict):
        return False, None
    value = addon.get("last_verified")
    if not isinstance(value, str):
        return True, None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return True, None
    if moment.tzinfo is None:
        return True, None
    return True, moment.astimezone(dt.timezone.utc).date()


class TelesignWire:
    """Telesign Phone ID as the fake providers speak it."""

    name = "telesign"

    def environment(self, url: str, credentials: Credentials) -> dict[str, str]:
        """What this adapter's ``from_env()`` reads, pointing it at a fake at ``url``."""
        return {
            "RECYCLECHECK_TELESIGN_CUSTOMER_ID": credentials.telesign_customer_id,
            "RECYCLECHECK_TELESIGN_API_KEY": credentials.telesign_api_key,
            "RECYCLECHECK_TELESIGN_BASE_URL": url,
        }

    def adapter(
        self,
        url: str,
        credentials: Credentials,
        transport: Mapping[str, Any],
        *,
        auth: str = "digest",
        **overrides: Any,
    ) -> TelesignProvider:
        """A :class:`TelesignProvider` pointed at ``url``; ``auth``: ``digest`` or ``basic``."""
        accepted = {
            "customer_id": credentials.telesign_customer_id,
            "api_key": credentials.telesign_api_key,
            "base_url": url,
            "auth": auth,
        }
        return build_adapter(TelesignProvider, accepted, transport, overrides)

    def route(self, method: str, route: str) -> str | None:
        """``POST /v1/phoneid/{digits}`` is the lookup."""
        return "lookup" if method == "POST" and _PATH.fullmatch(route) else None

    def parse(self, request: Incoming, endpoint: str, backend: Backend) -> Parsed:
        """The number from the path's digits, the date from ``last_verified``."""
        match = _PATH.fullmatch(request.route)
        digits = match.group(1) if match else ""
        number = "+" + digits if 7 <= len(digits) <= 15 and digits[0] != "0" else None
        return Parsed(endpoint, number, _last_verified(request.json())[1])

    def respond(self, request: Incoming, parsed: Parsed, backend: Backend) -> Reply:
        """Check digest or Basic auth, then answer Phone ID."""
        if backend.credentials is not None:
            refusal = self._check_auth(request, backend)
            if refusal is not None:
                return refusal
        if parsed.number is None:
            return Reply.json(400, error_body(11000))
        payload = request.json() if request.body else {}
        if not isinstance(payload, dict):
            return Reply.json(400, error_body(-10001))
        requested, asked = _last_verified(payload)
        digits = parsed.number[1:]
        if not requested:
            return Reply.json(200, _phoneid_body(digits, None))
        if asked is None:
            addon = {"status": {"code": 2807, "description": _ADDON_STATUS[2807]}}
            return Reply.json(200, _phoneid_body(digits, addon, completed=False))
        return render_phoneid(digits, asked, backend.answer(parsed.number))

    def _check_auth(self, request: Incoming, backend: Backend) -> Reply | None:
        """None when the request is signed (or Basic-authenticated) with the right key."""
        credentials = backend.credentials
        assert credentials is not None  # noqa: S101 - checked by the caller
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            expected = basic_authorization(
                credentials.telesign_customer_id, credentials.telesign_api_key
            )
            if hmac.compare_digest(header.encode(), expected.encode()):
                return None
            return Reply.json(401, error_body(10008))
        match = _TSA.fullmatch(header)
        date, nonce = request.headers.get("Date"), request.headers.get("x-ts-nonce")
        method = request.headers.get("x-ts-auth-method")
        if match is None or not date or not nonce or method != _telesign_auth.AUTH_METHOD:
            return Reply.json(401, error_body(10009))
        expected = _telesign_auth.digest_headers(
            credentials.telesign_customer_id,
            _telesign_auth.decode_api_key(credentials.telesign_api_key),
            method=request.method,
            resource=request.path,
            date=date,
            nonce=nonce,
            content_type=request.headers.get("Content-Type", ""),
            body=request.body,
        )["Authorization"]
        if not hmac.compare_digest(header.encode(), expected.encode()):
            return Reply.json(401, error_body(10008))
        return None

    def refused(self, request: Incoming, parsed: Parsed) -> Reply:
        """401 with code 10008, "Invalid signature"."""
        return Reply.json(401, error_body(10008))

    def rate_limited(self, request: Incoming, parsed: Parsed, retry_after: str | None) -> Reply:
        """429 with code 10019, "Rate Limit Exceeded"."""
        headers = {"Retry-After": retry_after} if retry_after is not None else None
        return Reply.json(429, error_body(10019), headers)

    def server_error(self, request: Incoming, parsed: Parsed, status: int) -> Reply:
        """503 with code -10000 ("System unavailable"), other 5xx with -90001."""
        return Reply.json(status, error_body(-10000 if status == 503 else -90001))


#: The one Telesign wire instance.
WIRE = TelesignWire()
