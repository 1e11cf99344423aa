"""Phone input: normalisation, rejection before any I/O, masking."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recyclecheck import InvalidInput, InvalidPhoneNumber, mask
from recyclecheck._phone import MAX_PHONE_LENGTH, NumberMemo, hmac_number, normalize

CN = "+8613800138000"


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("+86 138 0013 8000", None),
        ("+86-138-0013-8000", None),
        ("(+86) 138 0013 8000", None),
        ("0086 138 0013 8000", None),
        ("0086-13800138000", None),
        ("13800138000", "CN"),
        ("13800138000", "cn"),
        ("138 0013 8000", "CN"),
        ("０086 138 0013 8000", None),
        ("＋８６ １３８ ００１３ ８０００", None),
        ("+٨٦١٣٨٠٠١٣٨٠٠٠", None),
        ("+86\u3000138\u30000013\u30008000", None),
        ("  +8613800138000  ", None),
    ],
)
def test_formats_normalise_to_e164(raw: str, region: str | None) -> None:
    """Every common way of writing the number gives the same E.164 string."""
    assert normalize(raw, region).e164 == CN


def test_00_with_a_region_follows_that_regions_rules() -> None:
    """With a region, phonenumbers' own international-prefix rules apply."""
    assert normalize("0086 138 0013 8000", "CN").e164 == CN
    assert normalize("011 86 138 0013 8000", "US").e164 == CN


@pytest.mark.parametrize(
    "raw",
    [
        None,
        13800138000,
        b"+8613800138000",
        ["+8613800138000"],
        "",
        "   ",
        "+86 138 0013 800",
        "+86 138 0013 80001",
        "+999 1234 5678",
        "not a number",
        "+" + "1" * (MAX_PHONE_LENGTH + 1),
        "+86 138 0013 8000" + " " * MAX_PHONE_LENGTH,
        "+86 138\x00 0013 8000",
        "+86 138\n0013 8000",
        "+86 138\u200b0013 8000",
        "+86 138\u202e0013 8000",
        "+1 415 555 2671 ext. 12",
        "13800138000",
    ],
)
def test_bad_input_raises_invalid_phone_number(raw: object) -> None:
    """Non-strings, empty, invalid, oversized, control characters, extensions, national without region."""
    with pytest.raises(InvalidPhoneNumber):
        normalize(raw)


def test_invalid_phone_number_is_a_value_error_and_never_echoes_input() -> None:
    """The error is typed, a ValueError, and its text has none of the digits."""
    with pytest.raises(ValueError, match="could not be parsed") as info:
        normalize("13900139000999999999x")
    assert "139001" not in str(info.value)


def test_unknown_region_is_invalid_input() -> None:
    """A region phonenumbers does not know is refused, not silently ignored."""
    with pytest.raises(InvalidInput):
        normalize("13800138000", "XX")
    with pytest.raises(InvalidInput):
        normalize("13800138000", 86)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("e164", "masked"),
    [
        (CN, "+86 138****8000"),
        ("+14155552671", "+1 415***2671"),
        ("+442079460958", "+44 207***0958"),
        ("+3212345678", "+32 12***678"),
        ("garbage", "+***"),
    ],
)
def test_mask(e164: str, masked: str) -> None:
    """Masks hide the middle digits and keep enough for a person to recognise the number."""
    assert mask(e164) == masked


def test_phone_number_repr_is_masked() -> None:
    """repr and str of a normalised number never show it whole."""
    number = normalize(CN)
    assert CN not in repr(number)
    assert "13800138000" not in str(number)
    assert number.masked == "+86 138****8000"


def test_hmac_depends_on_key_and_context() -> None:
    """Keyed HMACs differ by key and by context, and never contain the number."""
    a = hmac_number(b"k" * 32, "sandbox", CN)
    assert a != hmac_number(b"j" * 32, "sandbox", CN)
    assert a != hmac_number(b"k" * 32, "twilio", CN)
    assert "13800138000" not in a
    assert len(a) == 64


def test_number_memo_is_bounded() -> None:
    """The input memo never grows past its bound."""
    memo = NumberMemo(max_entries=3)
    for i in range(10):
        memo.put(str(i), ("k", "m"))
    assert memo.get("9") == ("k", "m")
    assert memo.get("0") is None
    assert len(memo._entries) == 3


@st.composite
def valid_numbers(draw: st.DrawFn) -> str:
    region = draw(st.sampled_from(["CN", "US", "GB", "DE", "IN", "BR", "JP", "FR", "NG", "AU"]))
    example = phonenumbers.example_number_for_type(
        region, draw(st.sampled_from([phonenumbers.PhoneNumberType.MOBILE]))
    )
    fmt = draw(
        st.sampled_from(
            [
                phonenumbers.PhoneNumberFormat.E164,
                phonenumbers.PhoneNumberFormat.INTERNATIONAL,
                phonenumbers.PhoneNumberFormat.RFC3966,
            ]
        )
    )
    text = phonenumbers.format_number(example, fmt)
    return text.removeprefix("tel:")


@settings(max_examples=200)
@given(valid_numbers())
def test_normalisation_is_idempotent(raw: str) -> None:
    """Normalising an E.164 result gives it back unchanged."""
    once = normalize(raw).e164
    assert normalize(once).e164 == once
    assert once.startswith("+")
    assert once[1:].isdigit()


@settings(max_examples=300)
@given(st.text(max_size=80))
def test_arbitrary_text_is_valid_or_invalid_phone_number(text: str) -> None:
    """Any string either normalises to E.164 or raises InvalidPhoneNumber; never anything else."""
    try:
        number = normalize(text)
    except InvalidPhoneNumber:
        return
    assert phonenumbers.is_valid_number(phonenumbers.parse(number.e164))
    assert number.e164[1:] not in number.masked


@settings(max_examples=200)
@given(valid_numbers())
def test_mask_never_reveals_the_whole_number(raw: str) -> None:
    """At least three digits of the national number are hidden."""
    number = normalize(raw)
    assert number.masked.count("*") >= 2
    assert number.e164[1:] not in number.masked.replace(" ", "")
