"""What a leaked phone number looks like, for the privacy checks."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import unquote

#: A Chinese mobile or a NANP number, with or without its country code, standing alone
#: (not inside a word, a UUID or a longer run of digits).
_NUMBER_LIKE = re.compile(
    r"(?<![\w.-])(?:\+?86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?![\w-])"
    r"|(?<![\w.-])(?:\+?1[ -]?)?\(?[2-9]\d{2}\)?[ -]?[2-9]\d{2}[ -]?\d{4}(?![\w-])"
)


def forbidden_forms(e164: str) -> list[str]:
    """The full number, its digits-only form, national form and unkeyed SHA-256 hashes."""
    digits = e164.lstrip("+")
    national = digits[2:] if digits.startswith("86") else digits[1:]
    return [
        e164,
        digits,
        national,
        hashlib.sha256(e164.encode()).hexdigest(),
        hashlib.sha256(digits.encode()).hexdigest(),
        hashlib.sha256(national.encode()).hexdigest(),
        hashlib.md5(national.encode()).hexdigest(),
    ]


def leaks(text: str, numbers: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Every leaked number-like string or known form of ``numbers`` found in ``text``,
    as it stands or percent-decoded (a number in a URL path or query is ``%2B...``)."""
    found: list[str] = []
    for form in dict.fromkeys((text, unquote(text))):
        found.extend(m.group(0) for m in _NUMBER_LIKE.finditer(form))
        for number in numbers:
            found.extend(f for f in forbidden_forms(number) if f in form)
    return found
