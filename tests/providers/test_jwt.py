"""Known-answer and verification tests for the private_key_jwt signer."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from recyclecheck.exceptions import ConfigurationError
from recyclecheck.providers._jwt import (
    CLIENT_ASSERTION_TYPE,
    JwtSigner,
    b64url,
    client_assertion_claims,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "camara"
RSA_PEM = (DATA / "test_rsa_key.pem").read_bytes()
EC_PEM = (DATA / "test_ec_p256_key.pem").read_bytes()

CLAIMS = client_assertion_claims(
    "client-42",
    "https://auth.operator.example/oauth2/token",
    now=1_700_000_000.9,
    jti="0f8fad5b-d9cb-469f-a165-70867728950e",
)


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _split(token: str) -> tuple[dict[str, object], dict[str, object], bytes, bytes]:
    header, payload, signature = token.split(".")
    return (
        json.loads(_unb64(header)),
        json.loads(_unb64(payload)),
        f"{header}.{payload}".encode("ascii"),
        _unb64(signature),
    )


def _pem(key: object, password: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def test_b64url_is_unpadded_and_url_safe() -> None:
    """JOSE base64url drops padding and uses '-' and '_'."""
    assert b64url(b"\xfb\xff") == "-_8"
    assert b64url(b"") == ""


def test_client_assertion_claims_follow_rfc7523() -> None:
    """iss = sub = client, aud = token endpoint, integer iat and a five-minute exp."""
    assert CLAIMS == {
        "iss": "client-42",
        "sub": "client-42",
        "aud": "https://auth.operator.example/oauth2/token",
        "jti": "0f8fad5b-d9cb-469f-a165-70867728950e",
        "iat": 1_700_000_000,
        "exp": 1_700_000_300,
    }


def test_rs256_known_answer() -> None:
    """RS256 (PKCS#1 v1.5) is deterministic: a pinned key, clock and jti give one token."""
    token = JwtSigner(RSA_PEM, key_id="kid-1").sign(CLAIMS)
    header, payload, _, _ = _split(token)
    assert token.split(".")[0] == b64url(b'{"alg":"RS256","kid":"kid-1","typ":"JWT"}')
    assert header == {"alg": "RS256", "kid": "kid-1", "typ": "JWT"}
    assert payload == CLAIMS
    assert token == JwtSigner(RSA_PEM.decode("ascii"), key_id="kid-1").sign(CLAIMS)
    assert token.split(".")[2] == RS256_PINNED_SIGNATURE


def test_rs256_verifies_with_the_public_key() -> None:
    """The RS256 signature verifies with the matching RSA public key, and not when altered."""
    signer = JwtSigner(RSA_PEM)
    _, _, signed, signature = _split(signer.sign(CLAIMS))
    public = serialization.load_pem_private_key(RSA_PEM, None).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(InvalidSignature):
        public.verify(signature, signed + b"x", padding.PKCS1v15(), hashes.SHA256())


def test_es256_signature_is_raw_r_and_s() -> None:
    """ES256 signatures are 64 raw bytes (R || S), not DER, and verify with the public key."""
    signer = JwtSigner(EC_PEM, key_id="ec-1")
    header, payload, signed, signature = _split(signer.sign(CLAIMS))
    assert header == {"alg": "ES256", "kid": "ec-1", "typ": "JWT"}
    assert payload == CLAIMS
    assert len(signature) == 64
    public = serialization.load_pem_private_key(EC_PEM, None).public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    public.verify(der, signed, ec.ECDSA(hashes.SHA256()))


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.one_of(st.integers(), st.text(max_size=20), st.booleans()),
        max_size=4,
    )
)
def test_es256_always_verifies(claims: dict[str, object]) -> None:
    """Every ES256 token verifies, including when R or S has leading zero bytes."""
    _, payload, signed, signature = _split(JwtSigner(EC_PEM).sign(claims))
    assert payload == claims
    assert len(signature) == 64
    public = serialization.load_pem_private_key(EC_PEM, None).public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    public.verify(der, signed, ec.ECDSA(hashes.SHA256()))


def test_no_kid_header_without_key_id() -> None:
    """The kid header appears only when a key id is configured."""
    header, _, _, _ = _split(JwtSigner(EC_PEM).sign(CLAIMS))
    assert header == {"alg": "ES256", "typ": "JWT"}


def test_assertion_type_constant() -> None:
    """The client_assertion_type is the RFC 7523 JWT bearer URN."""
    assert CLIENT_ASSERTION_TYPE == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.mark.parametrize(
    "pem",
    [
        pytest.param(_pem(ed25519.Ed25519PrivateKey.generate()), id="ed25519"),
        pytest.param(_pem(ec.generate_private_key(ec.SECP384R1())), id="p384"),
        pytest.param(
            _pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)), id="rsa1024"
        ),
        pytest.param(_pem(ec.generate_private_key(ec.SECP256R1()), b"pw"), id="encrypted"),
        pytest.param(
            serialization.load_pem_private_key(EC_PEM, None)
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            id="public-key",
        ),
        pytest.param(
            b"-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n", id="junk"
        ),
        pytest.param(b"", id="empty"),
    ],
)
def test_unusable_keys_are_configuration_errors(pem: bytes) -> None:
    """Other key types, weak sizes, encrypted and unreadable PEMs are refused up front."""
    with pytest.raises(ConfigurationError) as info:
        JwtSigner(pem)
    assert "BEGIN" not in str(info.value)
    assert "MII" not in str(info.value)


@pytest.mark.parametrize("bad", [None, 42, bytearray(EC_PEM)])
def test_key_must_be_bytes_or_str(bad: object) -> None:
    """A key that is neither bytes nor str is a configuration error."""
    with pytest.raises(ConfigurationError):
        JwtSigner(bad)  # type: ignore[arg-type]


def test_empty_key_id_is_refused() -> None:
    """An empty kid would be sent as an empty header; refuse it."""
    with pytest.raises(ConfigurationError):
        JwtSigner(EC_PEM, key_id="")


def test_repr_shows_no_key_material() -> None:
    """The signer's repr names the algorithm and kid only."""
    text = repr(JwtSigner(RSA_PEM, key_id="kid-1"))
    assert text == "<JwtSigner RS256 kid='kid-1'>"


#: Signature of CLAIMS under test_rsa_key.pem with kid "kid-1", computed once and pinned.
RS256_PINNED_SIGNATURE = (
    "B__xp9KHCQf7xuSvm7zICYjHHDqwTgUl17MZdtdnJ97tU8Z-y_vUXPk-CHNrmJPBVC1IpQsRKpO-284doJdJEvd_"
    "h_2vjVu8SB-5vuTr3qcJPvAMy_W5LiY2Ip92HR0BGzYN1lDUFWRJyRpzbikhAbNDFWIfGXOgFEUHA_e9oV7tCEAB6Y"
    "_KokWMZky5D6ysXCyKUuEh9ZQueTwzXlkhYphYsrXUfzllbvdIpAvBWPAxKop2zl775e5iuzYEtfV73U0boBazuiLK"
    "57zxcSn36oU7RaOkh0GcHajo6hJ-v2h6LM5qjEI4OiY41NZuqub_l430NKGMc-xR7Rh6f1mE2A"
)
