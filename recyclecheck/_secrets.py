"""The one rule for secrets that key HMACs and ciphers: bytes or str, long enough."""

from __future__ import annotations

from .exceptions import ConfigurationError

__all__ = ["MIN_SECRET_BYTES", "secret_bytes"]

#: Shortest secret accepted: 128 bits.
MIN_SECRET_BYTES = 16


def secret_bytes(secret: object, *, owner: str) -> bytes:
    """``secret`` as bytes (a ``str`` is UTF-8 encoded), at least :data:`MIN_SECRET_BYTES`.

    ``owner`` names what needs it in the error (``"Guard(secret=...)"``); the
    error never shows the value.
    """
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    if not isinstance(key, bytes) or len(key) < MIN_SECRET_BYTES:
        raise ConfigurationError(
            f"{owner} needs a secret (bytes or str) of at least {MIN_SECRET_BYTES} bytes"
        )
    return key
