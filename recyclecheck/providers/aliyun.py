"""Alibaba Cloud Dytnsapi ``DescribePhoneTwiceTelVerify``: the 二次号 (reissued number) check.

Was a mainland China mobile number reissued by its carrier since a date?  One signed
(ACS3-HMAC-SHA256) RPC call per lookup.  By default the number travels as the SHA-256
hex of its 11 digits, never in clear.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import secrets
import urllib.parse
from collections.abc import Mapping
from typing import Any

from .._http import DEFAULT_MAX_BODY, HttpClient, HttpResponse, rate_limited
from .._phone import mask as mask_number
from ..exceptions import (
    ConfigurationError,
    ProviderAuthError,
    ProviderResponseError,
)
from . import _acs3
from ._answers import Answer, ChangedSince, NoData, NotCovered
from ._wire import (
    Strict,
    check_base_url,
    check_credential,
    check_e164,
    check_since,
    env_ca_bundle,
    env_value,
)

__all__ = ["AliyunProvider"]

_log = logging.getLogger(__name__)

_ACTION = "DescribePhoneTwiceTelVerify"
_VERSION = "2020-02-17"
_MASKS = ("NORMAL", "MD5", "SHA256")
#: Alibaba rejects a StartTime that is not after 1970-01-01 00:00:00.
_FIRST_DAY = dt.date(1970, 1, 2)

# +86, then an 11-digit mobile number (1[3-9]xxxxxxxxx).  ASCII digits only.
_CN_MOBILE = re.compile(r"\+86(1[3-9][0-9]{9})")
# The key id is spliced into "Credential=<id>,SignedHeaders=...": no comma, no space.
_ACCESS_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
# Provider codes are echoed into exceptions: only code-shaped text, never a digit run
# long enough to carry part of a number.
_SAFE_CODE = re.compile(r"(?!.*[0-9]{5})[A-Za-z][A-Za-z0-9._-]{0,79}")

_VERDICTS: Mapping[str, bool | None] = {
    "0": None,  # cannot be determined
    "1": True,  # reissued (二次号)
    "2": False,  # not reissued since StartTime
    "3": True,  # number cancelled (已注销)
    "4": True,  # transferred to a new owner
}
_NOT_SUPPORTED = frozenset({"PortabilityNumberNotSupported", "RequestNumberNotSupported"})
_AUTH_CODES = frozenset(
    {
        "IncompleteSignature",
        "InvalidAuthorization",
        "MissingSecurityToken",
        "NoPermission",
        "SignatureDoesNotMatch",
        "SignatureNonceUsed",
    }
)
_AUTH_PREFIXES = (
    "Forbidden",
    "InvalidAccessKeyId",
    "InvalidAccessKeySecret",
    "InvalidSecurityToken",
    "InvalidTimeStamp",
)

_ENV_ACCESS_KEY_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
_ENV_ACCESS_KEY_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"  # noqa: S105 - a variable name
_ENV_AUTH_CODE = "RECYCLECHECK_ALIYUN_AUTH_CODE"
_ENV_ENDPOINT = "RECYCLECHECK_ALIYUN_ENDPOINT"
_ENV_MASK = "RECYCLECHECK_ALIYUN_MASK"
_DEFAULT_ENDPOINT = "https://dytnsapi.aliyuncs.com"
# The shared client reads raw bytes and does not undo Content-Encoding: ask for none.


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _new_nonce() -> str:
    return secrets.token_hex(16)


def _endpoint(url: object) -> tuple[str, str]:
    """Validate the endpoint; return ``(scheme://host[:port], Host header value)``."""
    parts = urllib.parse.urlsplit(check_base_url(url, "endpoint"))
    if parts.path:  # RPC calls go to "/": a path here would be signed but never honoured
        raise ConfigurationError("endpoint must be scheme://host[:port] with no path")
    netloc = parts.netloc.lower()
    return f"{parts.scheme.lower()}://{netloc}", netloc


def _safe_code(value: object) -> str | None:
    return value if isinstance(value, str) and _SAFE_CODE.fullmatch(value) else None


def _is_auth_code(code: str) -> bool:
    return code in _AUTH_CODES or code.startswith(_AUTH_PREFIXES)


def _is_rate_code(code: str) -> bool:
    return code == "RequestFrequencyLimit" or code.startswith("Throttling")


class AliyunProvider:
    """Ask Alibaba Cloud's Cell Phone Number Service whether a number is a 二次号.

    ``access_key_id`` and ``access_key_secret`` are a RAM AccessKey allowed
    ``dytns:DescribePhoneTwiceTelVerify``; ``auth_code`` is the 授权码 the
    console issues once the 二次号 tag is approved.  ``mask`` picks how the
    number travels: ``"SHA256"`` (default) or ``"MD5"`` send the lower-case hex
    hash of the 11 national digits, ``"NORMAL"`` sends the digits in clear.

    Only mainland China mobile numbers (+86, 11 digits) are checked; any other
    number is :class:`NotCovered` without a request.  Answers are
    :class:`ChangedSince` (VerifyResult 1, 3, 4: changed; 2: unchanged) or
    :class:`NoData` (0).  ``ca_bundle``, ``proxies`` and ``max_body`` configure
    the shared HTTP client.
    """

    name: str = "aliyun"

    def __init__(
        self,
        access_key_id: str,
        access_key_secret: str,
        auth_code: str,
        *,
        endpoint: str = _DEFAULT_ENDPOINT,
        mask: str = "SHA256",
        ca_bundle: str | None = None,
        proxies: Mapping[str, str] | None = None,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        if not isinstance(access_key_id, str) or not _ACCESS_KEY_ID.fullmatch(access_key_id):
            raise ConfigurationError("access_key_id must be 1-128 letters, digits, '.', '_', '-'")
        if not isinstance(mask, str) or mask.upper() not in _MASKS:
            raise ConfigurationError("mask must be one of NORMAL, MD5, SHA256")
        self._access_key_secret = check_credential(access_key_secret, "access_key_secret")
        self._auth_code = check_credential(auth_code, "auth_code")
        self._base, self._host = _endpoint(endpoint)
        self._access_key_id = access_key_id
        self._mask = mask.upper()
        self._http = HttpClient(
            provider=self.name,
            ca_bundle=ca_bundle,
            proxies=proxies,
            max_body=max_body,
            base_url=self._base,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AliyunProvider:
        """Build the provider from environment variables (``os.environ`` unless given).

        Required: ``ALIBABA_CLOUD_ACCESS_KEY_ID``, ``ALIBABA_CLOUD_ACCESS_KEY_SECRET`` and
        ``RECYCLECHECK_ALIYUN_AUTH_CODE``; optional: ``RECYCLECHECK_ALIYUN_ENDPOINT``,
        ``RECYCLECHECK_ALIYUN_MASK`` and ``RECYCLECHECK_CA_BUNDLE`` (a PEM file of
        the roots to trust instead of the default ones).  A missing or empty
        required variable raises :class:`ConfigurationError` naming the variable
        (never its value).
        """
        env = os.environ if environ is None else environ
        return cls(
            env_value(env, _ENV_ACCESS_KEY_ID, required=True) or "",
            env_value(env, _ENV_ACCESS_KEY_SECRET, required=True) or "",
            env_value(env, _ENV_AUTH_CODE, required=True) or "",
            endpoint=env_value(env, _ENV_ENDPOINT, required=False) or _DEFAULT_ENDPOINT,
            mask=env_value(env, _ENV_MASK, required=False) or "SHA256",
            ca_bundle=env_ca_bundle(env),
        )

    def __repr__(self) -> str:
        return f"AliyunProvider(endpoint={self._base!r}, mask={self._mask!r})"

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()

    def _inline_ready(self, number: str) -> bool:
        # The Guard may run this lookup on the caller's thread: a number outside
        # mainland China is answered without I/O, and every step of a request is
        # bounded by the deadline once a warm connection is there.
        return _CN_MOBILE.fullmatch(number) is None or self._http.ready_inline()

    def lookup(self, number: str, since: dt.date) -> Answer:
        """Ask whether ``number`` (E.164) was reissued, cancelled or transferred since ``since``.

        ``StartTime`` is ``since`` at 00:00:00.  Alibaba reads it as China
        time (UTC+8), eight hours *before* ``since`` begins in UTC: the window
        asked about is only ever wider, which can turn "not reissued" into
        "reissued" but never the reverse.
        """
        number = check_e164(number)
        since = check_since(since)
        match = _CN_MOBILE.fullmatch(number)
        if match is None or since < _FIRST_DAY:
            if _log.isEnabledFor(logging.DEBUG):
                _log.debug("aliyun: %s not covered, no request made", mask_number(number))
            return NotCovered()
        response = self._send(match.group(1), since)
        answer = self._answer(response, since)
        if _log.isEnabledFor(logging.DEBUG):  # mask() parses the number: only when it shows
            _log.debug("aliyun: %s -> %s", mask_number(number), type(answer).__name__)
        return answer

    def _input_number(self, digits: str) -> str:
        if self._mask == "NORMAL":
            return digits
        algorithm = hashlib.md5 if self._mask == "MD5" else hashlib.sha256
        return algorithm(digits.encode("ascii"), usedforsecurity=False).hexdigest()

    def _send(self, digits: str, since: dt.date) -> HttpResponse:
        params = {
            "AuthCode": self._auth_code,
            "InputNumber": self._input_number(digits),
            "Mask": self._mask,
            "StartTime": f"{since.isoformat()} 00:00:00",
        }
        signed = _acs3.sign_request(
            access_key_id=self._access_key_id,
            access_key_secret=self._access_key_secret,
            method="POST",
            host=self._host,
            action=_ACTION,
            version=_VERSION,
            params=params,
            body=b"",
            date=_now(),
            nonce=_new_nonce(),
        )
        url = f"{self._base}/?{signed.query_string}"
        headers = dict(signed.headers)
        return self._http.request("POST", url, headers=headers, body=b"")

    def _answer(self, response: HttpResponse, since: dt.date) -> Answer:
        """Turn one response into an answer, or raise the matching ProviderError."""
        payload: Any
        try:
            payload = self._http.json_body(response)
        except ProviderResponseError:
            if 200 <= response.status < 300:
                raise
            payload = None  # an HTML or empty error page: the status speaks
        raw_code = payload.get("Code") if isinstance(payload, dict) else None
        code = _safe_code(raw_code)
        status = response.status
        if code is not None and _is_rate_code(code):
            raise rate_limited(
                self.name,
                status=status,
                code=code,
                retry_after=response.headers.get("Retry-After"),
            )
        if code is not None and _is_auth_code(code):
            raise ProviderAuthError(
                "credentials refused", provider=self.name, status=status, code=code
            )
        self._http.raise_for_status(response, code=code)
        strict = Strict(self.name, status)
        answer = strict.obj(payload, "answer")
        if strict.string(strict.field(answer, "Code", "Code"), "Code") in _NOT_SUPPORTED:
            return NotCovered()
        if raw_code != "OK":
            message = "provider error" if code else "unrecognised provider error code"
            raise strict.error(message, code=code)
        data = strict.obj(strict.field(answer, "Data", "Data"), "Data")
        result = strict.string(strict.field(data, "VerifyResult", "VerifyResult"), "VerifyResult")
        if result not in _VERDICTS:
            raise strict.error("VerifyResult is not one of '0'..'4'")
        if data.get("Carrier") is not None:
            strict.string(data["Carrier"], "Carrier")
        changed = _VERDICTS[result]
        return NoData() if changed is None else ChangedSince(since=since, changed=changed)
