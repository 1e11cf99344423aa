"""Telesign "TSA" digest auth (HMAC-SHA256), as the official SDKs compute it.

Pure functions: the caller passes the ``Date`` and nonce, so tests pin both.
The string to sign is these lines joined by newlines::

    METHOD
    Content-Type
    Date
    x-ts-auth-method:HMAC-SHA256
    x-ts-nonce:NONCE
    BODY          (only when both a Content-Type and a body are present)
    RESOURCE      (the URL path, no host, no query)

signed with the base64-decoded API key; the header is ``TSA <customer_id>:<base64 MAC>``.
The body enters as the exact bytes sent, so the signature can never drift from them.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
import hmac
import uuid

__all__ = [
    "AUTH_METHOD",
    "decode_api_key",
    "digest_headers",
    "http_date",
    "new_nonce",
    "string_to_sign",
]

#: The ``x-ts-auth-method`` this signer implements.
AUTH_METHOD = "HMAC-SHA256"


def decode_api_key(api_key: str) -> bytes:
    """Decode a Telesign API key into HMAC key bytes, as the SDKs do.

    Like ``base64.b64decode`` there, characters outside the base64 alphabet are
    skipped (Telesign's own published test key contains ``-``).  Raises
    ``ValueError`` when nothing usable is left.
    """
    try:
        key = base64.b64decode(api_key)
    except (binascii.Error, ValueError):
        raise ValueError("api_key is not base64") from None
    if not key:
        raise ValueError("api_key is not base64")
    return key


def string_to_sign(
    *, method: str, content_type: str, date: str, nonce: str, resource: str, body: bytes = b""
) -> bytes:
    """Build the exact bytes Telesign's server signs for this request."""
    head = (
        f"{method}\n{content_type}\n{date}\nx-ts-auth-method:{AUTH_METHOD}\nx-ts-nonce:{nonce}"
    ).encode()
    middle = b"\n" + body if content_type and body else b""
    return head + middle + b"\n" + resource.encode()


def digest_headers(
    customer_id: str,
    key: bytes,
    *,
    method: str,
    resource: str,
    date: str,
    nonce: str,
    content_type: str = "",
    body: bytes = b"",
) -> dict[str, str]:
    """Return the headers of a TSA-signed request.

    They are ``Authorization``, ``Date``, ``x-ts-auth-method``, ``x-ts-nonce``
    and, when given, ``Content-Type``; ``key`` is the decoded API key
    (:func:`decode_api_key`).
    """
    message = string_to_sign(
        method=method,
        content_type=content_type,
        date=date,
        nonce=nonce,
        resource=resource,
        body=body,
    )
    mac = base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode("ascii")
    headers = {
        "Authorization": f"TSA {customer_id}:{mac}",
        "Date": date,
        "x-ts-auth-method": AUTH_METHOD,
        "x-ts-nonce": nonce,
    }
    if content_type:
        headers["Content-Type"] = content_type
    return headers


def http_date(timestamp: float) -> str:
    """Format a POSIX timestamp as an RFC 7231 ``Date`` (``Wed, 14 Dec 2016 18:20:12 GMT``)."""
    return email.utils.formatdate(timestamp, usegmt=True)


def new_nonce() -> str:
    """Return a fresh random nonce (a UUID4), one per request."""
    return str(uuid.uuid4())
