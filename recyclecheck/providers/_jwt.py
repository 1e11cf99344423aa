"""Compact JWS signing for OAuth2 ``private_key_jwt`` client authentication (RFC 7523).

Pure helpers: no clock reads and no randomness inside, so every signature can be
pinned in a known-answer test.  RS256 for RSA keys (2048 bits or more) and ES256
for P-256 EC keys, with the ES256 signature in the raw ``R || S`` JOSE form.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from ..exceptions import ConfigurationError

__all__ = [
    "CLIENT_ASSERTION_TYPE",
    "JwtSigner",
    "b64url",
    "client_assertion_claims",
]

#: ``client_assertion_type`` value for a JWT client assertion (RFC 7523 section 2.2).
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Smallest RSA modulus accepted for RS256.
MIN_RSA_BITS = 2048
_P256_BYTES = 32


def b64url(data: bytes) -> str:
    """Base64url-encode ``data`` without padding, as JOSE requires."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json(value: Mapping[str, object]) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode("utf-8")


class JwtSigner:
    """Signs JWTs with one private key: RS256 for RSA, ES256 for P-256 EC.

    ``private_key`` is an unencrypted PEM private key (``bytes`` or ``str``);
    ``key_id`` becomes the ``kid`` header.  Any other key type or size raises
    :class:`~recyclecheck.ConfigurationError`, whose message never quotes the key.
    """

    __slots__ = ("_key", "algorithm", "key_id")

    def __init__(self, private_key: bytes | str, *, key_id: str | None = None) -> None:
        if isinstance(private_key, str):
            private_key = private_key.encode("utf-8")
        if not isinstance(private_key, bytes):
            raise ConfigurationError("private_key must be PEM bytes or str")
        if key_id is not None and (not isinstance(key_id, str) or not key_id):
            raise ConfigurationError("key_id must be a non-empty str")
        try:
            key = serialization.load_pem_private_key(private_key, password=None)
        except TypeError:
            raise ConfigurationError("the key is encrypted; pass an unencrypted PEM") from None
        except (ValueError, UnsupportedAlgorithm):
            raise ConfigurationError("not a readable PEM private key") from None
        if isinstance(key, rsa.RSAPrivateKey):
            if key.key_size < MIN_RSA_BITS:
                raise ConfigurationError(f"an RSA key must have at least {MIN_RSA_BITS} bits")
            self.algorithm = "RS256"
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            if not isinstance(key.curve, ec.SECP256R1):
                raise ConfigurationError("an EC key must use the P-256 curve (ES256)")
            self.algorithm = "ES256"
        else:
            raise ConfigurationError("the key must be RSA or P-256 EC")
        self._key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = key
        self.key_id = key_id

    def sign(self, claims: Mapping[str, object]) -> str:
        """Return the compact serialisation ``header.payload.signature`` of ``claims``."""
        header: dict[str, object] = {"alg": self.algorithm, "typ": "JWT"}
        if self.key_id is not None:
            header["kid"] = self.key_id
        signing_input = f"{b64url(_json(header))}.{b64url(_json(claims))}".encode("ascii")
        if isinstance(self._key, rsa.RSAPrivateKey):
            signature = self._key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        else:
            der = self._key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
            r, s = decode_dss_signature(der)
            signature = r.to_bytes(_P256_BYTES, "big") + s.to_bytes(_P256_BYTES, "big")
        return f"{signing_input.decode('ascii')}.{b64url(signature)}"

    def __repr__(self) -> str:
        return f"<JwtSigner {self.algorithm} kid={self.key_id!r}>"


def client_assertion_claims(
    client_id: str, audience: str, *, now: float, jti: str, lifetime: int = 300
) -> dict[str, object]:
    """Build the claims of an RFC 7523 client assertion.

    ``iss`` = ``sub`` = the client, ``aud`` = the token endpoint, a one-time
    ``jti`` and a short validity window from ``now`` (seconds since the epoch).
    """
    issued = int(now)
    return {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": jti,
        "iat": issued,
        "exp": issued + lifetime,
    }
