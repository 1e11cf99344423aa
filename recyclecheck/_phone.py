"""Phone input: validate and normalise to E.164 with ``phonenumbers``, and mask for people."""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from typing import Any

import phonenumbers

from .exceptions import InvalidInput, InvalidPhoneNumber

__all__ = ["MAX_PHONE_LENGTH", "PhoneNumber", "hmac_number", "mask", "normalize"]

#: Longest phone string accepted; real numbers with formatting fit in far less.
MAX_PHONE_LENGTH = 64

_SUPPORTED_REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)


class PhoneNumber:
    """A validated number: ``e164`` for providers, ``masked`` for people.

    Its ``repr`` and ``str`` show only the masked form.
    """

    __slots__ = ("country_code", "e164", "masked")

    def __init__(self, e164: str, country_code: int, masked: str) -> None:
        self.e164 = e164
        self.country_code = country_code
        self.masked = masked

    def __repr__(self) -> str:
        return f"<PhoneNumber {self.masked}>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PhoneNumber) and hmac.compare_digest(self.e164, other.e164)

    def __hash__(self) -> int:
        return hash(self.e164)


def _check_region(region: str | None) -> str | None:
    if region is None:
        return None
    if not isinstance(region, str) or region.upper() not in _SUPPORTED_REGIONS:
        raise InvalidInput("region must be a two-letter region code phonenumbers supports")
    return region.upper()


def check_region(region: str | None) -> str | None:
    """Validate a default region code (``"CN"``, ``"us"``...) and return it upper-cased."""
    return _check_region(region)


def _has_control_characters(text: str) -> bool:
    # Category C covers control, format (zero-width, bidi overrides), surrogate,
    # private-use and unassigned code points: none belongs in a phone number.
    if text.isascii():  # the common case, checked in C
        return not text.isprintable()
    return any(unicodedata.category(char)[0] == "C" for char in text)


def _international_prefix_00(text: str) -> str:
    """Read a leading ``00`` as ``+`` when no region says otherwise."""
    stripped = text.lstrip()
    if (
        len(stripped) > 2
        and unicodedata.digit(stripped[0], -1) == 0
        and unicodedata.digit(stripped[1], -1) == 0
    ):
        return "+" + stripped[2:]
    return text


def normalize(phone: object, region: str | None = None) -> PhoneNumber:
    """Validate ``phone`` and return it as a :class:`PhoneNumber`.

    National formats need ``region`` (an ISO 3166 code such as ``"CN"``).  Any
    Unicode decimal digits are accepted (full-width digits included), as
    is ``00`` in place of ``+`` when no region is given.  Raises
    :class:`InvalidPhoneNumber` for non-strings, empty, oversized, control
    characters, unparsable, invalid numbers and numbers with an extension.
    """
    if not isinstance(phone, str):
        raise InvalidPhoneNumber(f"phone must be a str, not {type(phone).__name__}")
    if not phone or phone.isspace():
        raise InvalidPhoneNumber("phone is empty")
    if len(phone) > MAX_PHONE_LENGTH:
        raise InvalidPhoneNumber(f"phone is longer than {MAX_PHONE_LENGTH} characters")
    if _has_control_characters(phone):
        raise InvalidPhoneNumber("phone contains control or invisible characters")
    region = _check_region(region)
    text = phone if region is not None else _international_prefix_00(phone)
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        # The parser's message can echo the input, so it is not passed on.
        hint = "" if region else " (national formats need a region)"
        raise InvalidPhoneNumber(f"phone could not be parsed{hint}") from None
    if parsed.extension:
        raise InvalidPhoneNumber("phone numbers with an extension are not accepted")
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumber("phone is not a valid number")
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    country = int(parsed.country_code or 0)
    return PhoneNumber(e164, country, _mask_parts(str(country), e164[len(str(country)) + 1 :]))


def e164_of_validated(phone: str, region: str | None) -> str:
    """E.164 of an input that :func:`normalize` already accepted (the memo says so).

    Skips the checks that already passed; the parse itself is deterministic.
    """
    text = phone if region is not None else _international_prefix_00(phone)
    return phonenumbers.format_number(
        phonenumbers.parse(text, region), phonenumbers.PhoneNumberFormat.E164
    )


def _mask_parts(country: str, national: str) -> str:
    size = len(national)
    if size >= 10:
        head, tail = 3, 4
    elif size >= 8:
        head, tail = 2, 3
    else:
        head, tail = 1, 2
    return f"+{country} {national[:head]}{'*' * (size - head - tail)}{national[size - tail :]}"


def mask(e164: str) -> str:
    """Mask an E.164 number for people: ``+8613800138000`` → ``+86 138****8000``.

    Anything that is not a valid E.164 number is masked whole.
    """
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return "+***"
    country = str(parsed.country_code)
    national = phonenumbers.national_significant_number(parsed)
    if not national:
        return "+***"
    return _mask_parts(country, national)


def memo_key(key: bytes, region: str | None, text: str) -> str:
    """Keyed BLAKE2b of a raw input, naming it in the in-process input memo.

    Keyed BLAKE2b is a MAC like HMAC, at a third of the cost on this hot path.
    """
    message = f"{region or ''}\x1f{text}".encode("utf-8", "surrogatepass")
    return hashlib.blake2b(message, key=key[:64], digest_size=16).hexdigest()


def hmac_number(key: bytes, *parts: str) -> str:
    """Keyed HMAC-SHA256 of a number (and context such as the provider name), for machines."""
    return hmac.digest(key, "\x1f".join(parts).encode("utf-8"), "sha256").hex()


class NumberMemo:
    """Remembers what validated inputs normalised to, without keeping the number.

    Keyed by a keyed HMAC of the raw input and region; the value is the
    number's keyed HMAC and masked form, which is all a cached check needs.
    Bounded; the oldest entries go first.
    """

    __slots__ = ("_entries", "max_entries")

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._entries: dict[str, tuple[Any, ...]] = {}

    def get(self, key: str) -> tuple[Any, ...] | None:
        """The (number HMAC, masked, input is its own E.164) remembered for this input."""
        return self._entries.get(key)

    def put(self, key: str, value: tuple[Any, ...]) -> None:
        """Remember an input's result, evicting the oldest beyond the bound."""
        entries = self._entries
        entries[key] = value
        while len(entries) > self.max_entries:
            try:
                del entries[next(iter(entries))]
            except (KeyError, RuntimeError, StopIteration):  # another thread got there first
                break
