"""Alibaba Cloud's ACS3-HMAC-SHA256 ("V3") request signature, as pure functions.

Nothing here reads the clock or draws random numbers: the caller passes the
request time and nonce, so a known-answer test can pin every byte.  The query
string that is signed is the one returned for the URL, so what is sent and what
is signed can never drift apart.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import urllib.parse
from collections.abc import Mapping

import attrs

__all__ = [
    "ALGORITHM",
    "SignedRequest",
    "canonical_query_string",
    "canonical_request",
    "percent_encode",
    "sha256_hex",
    "sign_request",
    "signature",
    "string_to_sign",
]

#: The algorithm name that opens the string to sign and the Authorization header.
ALGORITHM = "ACS3-HMAC-SHA256"

# A header value may hold any visible ASCII and inner spaces: no CR, LF or other controls.
_HEADER_VALUE = re.compile(r"[\x20-\x7e]*")


def percent_encode(text: str, *, safe: str = "") -> str:
    """Percent-encode the UTF-8 bytes of ``text`` as RFC 3986 asks.

    Only unreserved characters (letters, digits, ``-``, ``_``, ``.``, ``~``)
    and those in ``safe`` stay literal: a space becomes ``%20`` (never ``+``),
    ``:`` becomes ``%3A`` and ``*`` becomes ``%2A``.
    """
    return urllib.parse.quote(text, safe="-_.~" + safe, encoding="utf-8", errors="strict")


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def canonical_query_string(params: Mapping[str, str]) -> str:
    """Encode names and values, sort by encoded name, and join as ``name=value&...``."""
    pairs = sorted((percent_encode(name), percent_encode(value)) for name, value in params.items())
    return "&".join(f"{name}={value}" for name, value in pairs)


def canonical_request(
    method: str,
    path: str,
    query_string: str,
    headers: Mapping[str, str],
    payload_sha256: str,
) -> tuple[str, str]:
    """Return ``(canonical request, signed header names)``.

    ``headers`` are the headers to sign; names are lower-cased and sorted,
    values trimmed.  Each canonical header line ends in a newline, so a blank
    line separates the headers from the signed-header list.
    """
    lowered = {name.lower(): value.strip() for name, value in headers.items()}
    names = sorted(lowered)
    canonical_headers = "".join(f"{name}:{lowered[name]}\n" for name in names)
    signed_headers = ";".join(names)
    text = "\n".join(
        (
            method.upper(),
            percent_encode(path, safe="/") or "/",
            query_string,
            canonical_headers,
            signed_headers,
            payload_sha256,
        )
    )
    return text, signed_headers


def string_to_sign(canonical: str) -> str:
    """``ACS3-HMAC-SHA256`` and the hex SHA-256 of the canonical request, on two lines."""
    return f"{ALGORITHM}\n{sha256_hex(canonical.encode('utf-8'))}"


def signature(access_key_secret: str, to_sign: str) -> str:
    """Hex HMAC-SHA256 of the string to sign, keyed with the AccessKey secret."""
    return hmac.new(
        access_key_secret.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha256
    ).hexdigest()


@attrs.frozen
class SignedRequest:
    """What to send: the query string exactly as signed, and every header, signed or not."""

    query_string: str
    headers: Mapping[str, str] = attrs.field(repr=False)


def sign_request(
    *,
    access_key_id: str,
    access_key_secret: str,
    method: str,
    host: str,
    action: str,
    version: str,
    params: Mapping[str, str],
    body: bytes,
    date: dt.datetime,
    nonce: str,
    path: str = "/",
) -> SignedRequest:
    """Sign one request and return its query string and headers.

    The signed headers are ``host`` and the ``x-acs-*`` headers (action,
    version, date, nonce and body hash).  ``date`` must be timezone-aware; it
    is sent in UTC as ``yyyy-MM-ddTHH:mm:ssZ``.  ``nonce`` must be fresh for
    every request.  Raises :class:`ValueError` for values that would not make
    a well-formed header, rather than send one that could be misread.
    """
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError("date must be timezone-aware")
    if not nonce or not nonce.isascii() or not nonce.isalnum():
        raise ValueError("nonce must be a non-empty ASCII alphanumeric string")
    payload_sha256 = sha256_hex(body)
    signed = {
        "host": host,
        "x-acs-action": action,
        "x-acs-version": version,
        "x-acs-date": date.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "x-acs-signature-nonce": nonce,
        "x-acs-content-sha256": payload_sha256,
    }
    for value in (*signed.values(), access_key_id):
        if not value or not _HEADER_VALUE.fullmatch(value) or "," in value:
            raise ValueError("a signed header value is empty or not printable ASCII")
    query_string = canonical_query_string(params)
    canonical, signed_headers = canonical_request(
        method, path, query_string, signed, payload_sha256
    )
    sig = signature(access_key_secret, string_to_sign(canonical))
    headers = dict(signed)
    headers["Authorization"] = (
        f"{ALGORITHM} Credential={access_key_id},SignedHeaders={signed_headers},Signature={sig}"
    )
    return SignedRequest(query_string=query_string, headers=headers)
