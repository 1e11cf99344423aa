"""Known-answer and property tests for Telesign's TSA (HMAC-SHA256) and Basic auth."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recyclecheck.providers._telesign_auth import (
    AUTH_METHOD,
    decode_api_key,
    digest_headers,
    http_date,
    new_nonce,
    string_to_sign,
)
from recyclecheck.providers._wire import basic_authorization

# The official SDK's published test vector (python_telesign tests/test_rest.py).
CUSTOMER_ID = "FFFFFFFF-EEEE-DDDD-1234-AB1234567890"
API_KEY = "EXAMPLE----TE8sTgg45yusumoN6BYsBVkh+yRJ5czgsnCehZaOYldPJdmFh6NeX8kunZ2zU1YWaUw/0wV6xfw=="
DATE = "Wed, 14 Dec 2016 18:20:12 GMT"
NONCE = "A1592C6F-E384-4CDB-BC42-C3AB970369E9"
RESOURCE = "/v1/resource"
FORM = "application/x-www-form-urlencoded"


def sign(method: str, content_type: str, body: bytes = b"") -> str:
    return digest_headers(
        CUSTOMER_ID,
        decode_api_key(API_KEY),
        method=method,
        resource=RESOURCE,
        date=DATE,
        nonce=NONCE,
        content_type=content_type,
        body=body,
    )["Authorization"]


def test_vector_post_form() -> None:
    """Official vector: POST with body ``test=param``."""
    assert sign("POST", FORM, b"test=param") == (
        "TSA FFFFFFFF-EEEE-DDDD-1234-AB1234567890:2xVlmbrxLjYrrPun3G3WMNG6Jon4yKcTeOoK9DjXJ/Q="
    )


def test_vector_post_unicode_form() -> None:
    """Official vector: POST with a percent-encoded non-ASCII body ``test=%CF%BF``."""
    assert sign("POST", FORM, b"test=%CF%BF") == (
        "TSA FFFFFFFF-EEEE-DDDD-1234-AB1234567890:h8d4I0RTxErbxYXuzCOtNqb/f0w3Ck8e5SEkGNj01+8="
    )


def test_vector_get_without_body() -> None:
    """Official vector: GET, empty Content-Type, no body."""
    assert sign("GET", "") == (
        "TSA FFFFFFFF-EEEE-DDDD-1234-AB1234567890:aUm7I+9GKl3ww7PNeeJntCT0iS7b+EmRKEE4LnRzChQ="
    )


def test_vector_basic() -> None:
    """Official vector: Basic auth with the same credentials."""
    assert basic_authorization(CUSTOMER_ID, API_KEY) == (
        "Basic RkZGRkZGRkYtRUVFRS1ERERELTEyMzQtQUIxMjM0NTY3ODkwOkVYQU1QTEUtLS0tVEU4c1RnZzQ1eXVzdW"
        "1vTjZCWXNCVmtoK3lSSjVjemdzbkNlaFphT1lsZFBKZG1GaDZOZVg4a3VuWjJ6VTFZV2FVdy8wd1Y2eGZ3PT0="
    )


def test_vector_date_from_pinned_clock() -> None:
    """The Date header of the vector comes from its POSIX time, in RFC 7231 form."""
    assert http_date(1481739612) == DATE


def test_string_to_sign_layout() -> None:
    """The body sits between the nonce and the resource, each on its own line."""
    assert string_to_sign(
        method="POST",
        content_type="application/json",
        date=DATE,
        nonce=NONCE,
        resource="/v1/phoneid/15555551212",
        body=b'{"a":1}',
    ) == (
        b"POST\napplication/json\n" + DATE.encode() + b"\nx-ts-auth-method:HMAC-SHA256\n"
        b"x-ts-nonce:" + NONCE.encode() + b'\n{"a":1}\n/v1/phoneid/15555551212'
    )


def test_body_line_needs_a_content_type() -> None:
    """As in the SDK, a body without a Content-Type is not signed (and no blank line)."""
    without = string_to_sign(
        method="GET", content_type="", date=DATE, nonce=NONCE, resource=RESOURCE, body=b"x=1"
    )
    assert without == string_to_sign(
        method="GET", content_type="", date=DATE, nonce=NONCE, resource=RESOURCE
    )
    assert b"x=1" not in without


def test_headers_sent() -> None:
    """A signed request carries Date, the auth method, the nonce and the Content-Type."""
    headers = digest_headers(
        CUSTOMER_ID,
        b"key",
        method="POST",
        resource=RESOURCE,
        date=DATE,
        nonce=NONCE,
        content_type="application/json",
        body=b"{}",
    )
    assert set(headers) == {
        "Authorization",
        "Date",
        "Content-Type",
        "x-ts-auth-method",
        "x-ts-nonce",
    }
    assert headers["x-ts-auth-method"] == AUTH_METHOD == "HMAC-SHA256"
    assert headers["Date"] == DATE
    assert headers["x-ts-nonce"] == NONCE
    assert "Content-Type" not in digest_headers(
        CUSTOMER_ID, b"key", method="GET", resource=RESOURCE, date=DATE, nonce=NONCE
    )


def test_nonces_are_fresh_uuid4s() -> None:
    """Every request gets its own random UUID4 nonce."""
    nonces = {new_nonce() for _ in range(50)}
    assert len(nonces) == 50
    assert all(uuid.UUID(nonce).version == 4 for nonce in nonces)


@pytest.mark.parametrize("key", ["", "====", "!!!!", "abc"])
def test_unusable_keys(key: str) -> None:
    """A key that decodes to nothing, or has broken padding, is refused."""
    with pytest.raises(ValueError, match="base64"):
        decode_api_key(key)


def test_key_decoding_matches_the_sdk() -> None:
    """Like the SDK, characters outside the base64 alphabet are skipped."""
    assert decode_api_key(API_KEY) == base64.b64decode(API_KEY)


@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    body=st.binary(max_size=200),
    resource=st.from_regex(r"/v1/[a-z0-9/]{0,30}", fullmatch=True),
    key=st.binary(min_size=1, max_size=64),
)
def test_signature_is_hmac_of_exact_bytes(
    method: str, body: bytes, resource: str, key: bytes
) -> None:
    """The signature is HMAC-SHA256 over the layout with the body's exact bytes."""
    headers = digest_headers(
        "cid",
        key,
        method=method,
        resource=resource,
        date=DATE,
        nonce=NONCE,
        content_type="application/json",
        body=body,
    )
    lines = [
        method,
        "application/json",
        DATE,
        "x-ts-auth-method:HMAC-SHA256",
        f"x-ts-nonce:{NONCE}",
    ]
    message = (
        "\n".join(lines).encode() + (b"\n" + body if body else b"") + b"\n" + resource.encode()
    )
    expected = base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()
    assert headers["Authorization"] == f"TSA cid:{expected}"


@given(
    body=st.binary(min_size=1, max_size=100),
    index=st.integers(min_value=0),
    flip=st.integers(1, 255),
)
def test_any_body_change_changes_the_signature(body: bytes, index: int, flip: int) -> None:
    """Flipping any byte of the body invalidates the signature."""
    position = index % len(body)
    tampered = bytearray(body)
    tampered[position] ^= flip
    assert sign("POST", "application/json", body) != sign(
        "POST", "application/json", bytes(tampered)
    )
