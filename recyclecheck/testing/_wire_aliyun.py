"""Fake Alibaba Cloud Dytnsapi ``DescribePhoneTwiceTelVerify`` (RPC style, ``POST /?...``).

Every request must carry an ``ACS3-HMAC-SHA256`` signature; the fake recomputes
it with the SDK's own signer from the query, the signed headers and the body
hash, and refuses a mismatch with the real ``SignatureDoesNotMatch`` body.  An
unknown AccessKey id gets ``InvalidAccessKeyId.NotFound``, a stale
``x-acs-date`` ``InvalidTimeStamp.Expired``, a reused nonce
``SignatureNonceUsed``.  ``InputNumber`` may be the 11 digits (``Mask=NORMAL``)
or their MD5/SHA-256 hex, matched against the scripted numbers.  Scripted
answers render as ``Data.VerifyResult``:

=========================================  ==========================================
script, ``StartTime`` on day ``S``         answer
=========================================  ==========================================
reissued on ``D >= S``, or changed         ``"1"`` (二次号)
never, ``D < S``, or unchanged             ``"2"``
no data, or coverage starting after ``S``  ``"0"`` (cannot be determined)
not covered                                ``Code: RequestNumberNotSupported``
a China Broadnet (192) or virtual          ``Code: RequestNumberNotSupported``,
operator number (162, 165, 167, 170, 171)  whatever the script
=========================================  ==========================================

Only numbers the fake can read are checked that way: digits sent in clear, or
a hash of a scripted number; an unscripted hash is "cannot be determined" (see
:mod:`._coverage`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import uuid
from collections.abc import Mapping
from typing import Any

from ..providers import _acs3
from ..providers._answers import Answer, NoData
from ..providers.aliyun import AliyunProvider
from ._backend import Backend, Credentials
from ._coverage import aliyun_supports
from ._wire_base import Incoming, Parsed, Reply, Verdict, build_adapter, verdict

__all__ = ["ACTION", "DEFAULT_ENDPOINT", "VERSION", "WIRE", "AliyunWire", "render_verify"]

#: Alibaba's Cell Phone Number Service endpoint.
DEFAULT_ENDPOINT = "https://dytnsapi.aliyuncs.com"
#: The RPC action and API version this fake serves.
ACTION = "DescribePhoneTwiceTelVerify"
VERSION = "2020-02-17"

_AUTHORIZATION = re.compile(
    r"ACS3-HMAC-SHA256 Credential=([^,\s]+),SignedHeaders=([a-z0-9;-]+),Signature=([0-9a-f]{64})"
)
_START_TIME = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2}) [0-9]{2}:[0-9]{2}:[0-9]{2}")
_MASK_DIGITS = {"NORMAL": re.compile(r"1[3-9][0-9]{9}")}
_HASHES = {
    "MD5": ("md5", re.compile(r"[0-9a-fA-F]{32}")),
    "SHA256": ("sha256", re.compile(r"[0-9a-fA-F]{64}")),
}
#: How far ``x-acs-date`` may be from the server's clock.
_MAX_SKEW = 15 * 60
_MESSAGES = {
    "IncompleteSignature": "The request signature does not conform to Aliyun standards.",
    "InvalidAccessKeyId.NotFound": "Specified access key is not found.",
    "SignatureDoesNotMatch": "Specified signature does not match our calculation.",
    "SignatureNonceUsed": "Specified signature nonce was used already.",
    "InvalidTimeStamp.Expired": "Specified time stamp or date value is expired.",
    "InvalidAction.NotFound": "Specified api is not found, please check your url and method.",
    "InvalidVersion": "Specified parameter Version is not valid.",
    "Forbidden.AuthCode": "The AuthCode is not valid for this account.",
    "InvalidParameter": "The specified parameter is not valid.",
    "RequestNumberNotSupported": "This number is not supported",
    "Throttling.User": "Request was denied due to user flow control.",
    "ServiceUnavailable": "The request has failed due to a temporary failure of the server.",
    "InternalError": "The request processing has failed due to some unknown error.",
}


def error_body(code: str, *, host_id: bool = False) -> dict[str, object]:
    """Alibaba's error body: ``{Code, Message, RequestId[, HostId]}``."""
    body: dict[str, object] = {
        "Code": code,
        "Message": _MESSAGES.get(code, code),
        "RequestId": str(uuid.uuid4()).upper(),
    }
    if host_id:
        body["HostId"] = "dytnsapi.aliyuncs.com"
    return body


def render_verify(number: str | None, since: dt.date, answer: Answer) -> Reply:
    """The ``200`` answer about ``number`` (None: unrecognised) for a ``StartTime`` on ``since``."""
    said = verdict(answer, since)
    if said is Verdict.NOT_COVERED or (number is not None and not aliyun_supports(number)):
        return Reply.json(200, error_body("RequestNumberNotSupported"))
    result = {
        Verdict.CHANGED: "1",
        Verdict.UNCHANGED: "2",
        Verdict.NO_DATA: "0",
        Verdict.TOO_EARLY: "0",
    }[said]
    body = {
        "Code": "OK",
        "Message": "OK",
        "RequestId": str(uuid.uuid4()).upper(),
        "Data": {"Carrier": "CMCC", "VerifyResult": result},
    }
    return Reply.json(200, body)


def _start_date(value: str | None) -> dt.date | None:
    match = _START_TIME.fullmatch(value or "")
    if match is None:
        return None
    try:
        return dt.date.fromisoformat(match.group(1))
    except ValueError:
        return None


def _number(params: dict[str, str], backend: Backend) -> str | None:
    mask, value = params.get("Mask", "NORMAL").upper(), params.get("InputNumber", "")
    if mask == "NORMAL":
        return "+86" + value if _MASK_DIGITS["NORMAL"].fullmatch(value) else None
    if mask in _HASHES:
        algorithm, shape = _HASHES[mask]
        if shape.fullmatch(value):
            return backend.resolve_hash(algorithm, value, "+86", 11)
    return None


class AliyunWire:
    """Alibaba Dytnsapi as the fake providers speak it."""

    name = "aliyun"

    def environment(self, url: str, credentials: Credentials) -> dict[str, str]:
        """What this adapter's ``from_env()`` reads, pointing it at a fake at ``url``."""
        return {
            "ALIBABA_CLOUD_ACCESS_KEY_ID": credentials.aliyun_access_key_id,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": credentials.aliyun_access_key_secret,
            "RECYCLECHECK_ALIYUN_AUTH_CODE": credentials.aliyun_auth_code,
            "RECYCLECHECK_ALIYUN_ENDPOINT": url,
        }

    def adapter(
        self,
        url: str,
        credentials: Credentials,
        transport: Mapping[str, Any],
        *,
        mask: str = "SHA256",
        **overrides: Any,
    ) -> AliyunProvider:
        """An :class:`AliyunProvider` pointed at ``url``, sending the number as ``mask``."""
        accepted = {
            "access_key_id": credentials.aliyun_access_key_id,
            "access_key_secret": credentials.aliyun_access_key_secret,
            "auth_code": credentials.aliyun_auth_code,
            "endpoint": url,
            "mask": mask,
        }
        return build_adapter(AliyunProvider, accepted, transport, overrides)

    def route(self, method: str, route: str) -> str | None:
        """RPC calls go to ``/``."""
        return "lookup" if method in ("POST", "GET") and route in ("", "/") else None

    def parse(self, request: Incoming, endpoint: str, backend: Backend) -> Parsed:
        """The number from ``InputNumber`` (hashes matched to scripts), the day of ``StartTime``."""
        params = request.params()
        return Parsed(endpoint, _number(params, backend), _start_date(params.get("StartTime")))

    def respond(  # noqa: PLR0911 - one early return per refusal the service sends
        self, request: Incoming, parsed: Parsed, backend: Backend
    ) -> Reply:
        """Verify the ACS3 signature and AuthCode, then answer the verification."""
        params = request.params()
        if backend.credentials is not None:
            refusal = self._check_signature(request, params, backend)
            if refusal is not None:
                return refusal
        action = request.headers.get("x-acs-action", params.get("Action"))
        if action != ACTION:
            return Reply.json(404, error_body("InvalidAction.NotFound"))
        if request.headers.get("x-acs-version", params.get("Version")) != VERSION:
            return Reply.json(400, error_body("InvalidVersion"))
        credentials = backend.credentials
        if credentials is not None and not hmac.compare_digest(
            params.get("AuthCode", "").encode(), credentials.aliyun_auth_code.encode()
        ):
            return Reply.json(403, error_body("Forbidden.AuthCode"))
        mask = params.get("Mask", "NORMAL").upper()
        value = params.get("InputNumber", "")
        shape = _MASK_DIGITS["NORMAL"] if mask == "NORMAL" else _HASHES.get(mask, ("", None))[1]
        if shape is None or not shape.fullmatch(value) or parsed.since is None:
            return Reply.json(400, error_body("InvalidParameter"))
        if parsed.number is None:
            # A hash of a number nobody scripted: the carrier cannot tell.
            return render_verify(None, parsed.since, NoData())
        return render_verify(parsed.number, parsed.since, backend.answer(parsed.number))

    def _check_signature(  # noqa: PLR0911 - one early return per refusal
        self, request: Incoming, params: dict[str, str], backend: Backend
    ) -> Reply | None:
        """None when the ACS3 signature is valid, fresh and unused; else the refusal."""
        credentials = backend.credentials
        assert credentials is not None  # noqa: S101 - checked by the caller
        match = _AUTHORIZATION.fullmatch(request.headers.get("Authorization", ""))
        if match is None:
            return Reply.json(400, error_body("IncompleteSignature"))
        key_id, signed_names, given = match.groups()
        if not hmac.compare_digest(key_id.encode(), credentials.aliyun_access_key_id.encode()):
            return Reply.json(404, error_body("InvalidAccessKeyId.NotFound", host_id=True))
        names = signed_names.split(";")
        required = {"host", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"}
        if not required <= set(names) or any(name not in request.headers for name in names):
            return Reply.json(400, error_body("IncompleteSignature"))
        payload_hash = request.headers["x-acs-content-sha256"]
        if not self._fresh(request.headers["x-acs-date"], backend):
            return Reply.json(400, error_body("InvalidTimeStamp.Expired"))
        canonical, _ = _acs3.canonical_request(
            request.method,
            request.path or "/",
            _acs3.canonical_query_string(params),
            {name: request.headers[name] for name in names},
            payload_hash,
        )
        expected = _acs3.signature(
            credentials.aliyun_access_key_secret, _acs3.string_to_sign(canonical)
        )
        body_ok = hmac.compare_digest(payload_hash, hashlib.sha256(request.body).hexdigest())
        if not hmac.compare_digest(given, expected) or not body_ok:
            return Reply.json(400, error_body("SignatureDoesNotMatch", host_id=True))
        if not backend.first_use("aliyun-nonce", request.headers["x-acs-signature-nonce"]):
            return Reply.json(400, error_body("SignatureNonceUsed"))
        return None

    @staticmethod
    def _fresh(stamp: str, backend: Backend) -> bool:
        try:
            sent = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
        except ValueError:
            return False
        return abs(sent.timestamp() - backend.clock()) <= _MAX_SKEW

    def refused(self, request: Incoming, parsed: Parsed) -> Reply:
        """400 ``SignatureDoesNotMatch``, as Alibaba refuses a bad signature."""
        return Reply.json(400, error_body("SignatureDoesNotMatch", host_id=True))

    def rate_limited(self, request: Incoming, parsed: Parsed, retry_after: str | None) -> Reply:
        """429 ``Throttling.User``."""
        headers = {"Retry-After": retry_after} if retry_after is not None else None
        return Reply.json(429, error_body("Throttling.User"), headers)

    def server_error(self, request: Incoming, parsed: Parsed, status: int) -> Reply:
        """503 ``ServiceUnavailable``, other 5xx ``InternalError``."""
        code = "ServiceUnavailable" if status == 503 else "InternalError"
        return Reply.json(status, error_body(code))


#: The one Alibaba wire instance.
WIRE = AliyunWire()
