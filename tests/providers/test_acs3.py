"""Known-answer and property tests for the ACS3-HMAC-SHA256 signer."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recyclecheck.providers import _acs3

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")

# Alibaba's own worked example (help.aliyun.com "V3版本请求体&签名机制" / common-parameters):
# RunInstances on ECS with the placeholder key pair YourAccessKeyId / YourAccessKeySecret.
ECS_QUERY = {
    "ImageId": "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
    "RegionId": "cn-shanghai",
}


def _rfc3986(text: str) -> str:
    """Encode byte by byte, written independently of the signer's urllib-based encoder."""
    return "".join(chr(b) if chr(b) in UNRESERVED else f"%{b:02X}" for b in text.encode("utf-8"))


def _sign_ecs_example(date: str, nonce: str) -> _acs3.SignedRequest:
    return _acs3.sign_request(
        access_key_id="YourAccessKeyId",
        access_key_secret="YourAccessKeySecret",
        method="POST",
        host="ecs.cn-shanghai.aliyuncs.com",
        action="RunInstances",
        version="2014-05-26",
        params=ECS_QUERY,
        body=b"",
        date=dt.datetime.fromisoformat(date.replace("Z", "+00:00")),
        nonce=nonce,
    )


def test_vendor_example_signature() -> None:
    """The signer reproduces the Authorization header of Alibaba's published example."""
    signed = _sign_ecs_example("2023-10-26T10:22:32Z", "3156853299f313e23d1673dc12e1703d")
    assert signed.headers["Authorization"] == (
        "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,"
        "SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;"
        "x-acs-signature-nonce;x-acs-version,"
        "Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
    )
    assert signed.query_string == (
        "ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai"
    )


def test_vendor_example_hashed_canonical_request() -> None:
    """The hashed canonical request of the vendor example matches the published value."""
    canonical, signed_headers = _acs3.canonical_request(
        "POST",
        "/",
        _acs3.canonical_query_string(ECS_QUERY),
        {
            "host": "ecs.cn-shanghai.aliyuncs.com",
            "x-acs-action": "RunInstances",
            "x-acs-version": "2014-05-26",
            "x-acs-date": "2023-10-26T10:22:32Z",
            "x-acs-signature-nonce": "3156853299f313e23d1673dc12e1703d",
            "x-acs-content-sha256": EMPTY_SHA256,
        },
        EMPTY_SHA256,
    )
    assert _acs3.string_to_sign(canonical) == (
        "ACS3-HMAC-SHA256\n7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
    )
    assert signed_headers == (
        "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version"
    )


def test_second_vendor_example_signature() -> None:
    """A second published example (other date and nonce) also reproduces."""
    signed = _sign_ecs_example("2023-10-26T09:01:01Z", "d410180a5abf7fe235dd9b74aca91fc0")
    assert signed.headers["Authorization"].endswith(
        "Signature=e521358f7776c97df52e6b2891a8bc73026794a071b50c3323388c4e0df64804"
    )


def test_dytnsapi_request_known_answer() -> None:
    """With a pinned clock and nonce, a Dytnsapi request signs to an independently derived value."""
    secret = "TestSecretForKnownAnswer0123456789"
    input_number = hashlib.sha256(b"13800138000").hexdigest()
    params = {
        "StartTime": "2024-02-29 00:00:00",
        "Mask": "SHA256",
        "InputNumber": input_number,
        "AuthCode": "AC1234abcd",
    }
    signed = _acs3.sign_request(
        access_key_id="LTAI5tKnownAnswerKey",
        access_key_secret=secret,
        method="POST",
        host="dytnsapi.aliyuncs.com",
        action="DescribePhoneTwiceTelVerify",
        version="2020-02-17",
        params=params,
        body=b"",
        date=dt.datetime(2026, 11, 28, 12, 0, 0, tzinfo=dt.timezone.utc),
        nonce="0123456789abcdef0123456789abcdef",
    )
    # Step by step from the documented algorithm, without the signer's helpers.
    query = (
        f"AuthCode=AC1234abcd&InputNumber={input_number}&Mask=SHA256"
        "&StartTime=2024-02-29%2000%3A00%3A00"
    )
    headers = (
        "host:dytnsapi.aliyuncs.com\n"
        "x-acs-action:DescribePhoneTwiceTelVerify\n"
        f"x-acs-content-sha256:{EMPTY_SHA256}\n"
        "x-acs-date:2026-11-28T12:00:00Z\n"
        "x-acs-signature-nonce:0123456789abcdef0123456789abcdef\n"
        "x-acs-version:2020-02-17\n"
    )
    names = "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version"
    canonical = f"POST\n/\n{query}\n{headers}\n{names}\n{EMPTY_SHA256}"
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    expected = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()

    assert signed.query_string == query
    assert signed.headers["Authorization"] == (
        f"ACS3-HMAC-SHA256 Credential=LTAI5tKnownAnswerKey,SignedHeaders={names},"
        f"Signature={expected}"
    )
    # Pinned literal (also derived with the openssl CLI): catches both drifting together.
    assert expected == "f9729f501a612a20f5253cb69cfe24c58eeaaccbca7532fab75ac2dcb23db3bf"
    assert signed.headers["x-acs-content-sha256"] == EMPTY_SHA256
    assert signed.headers["x-acs-date"] == "2026-11-28T12:00:00Z"


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        ("2024-02-29 00:00:00", "2024-02-29%2000%3A00%3A00"),
        ("a+b", "a%2Bb"),
        ("a*b", "a%2Ab"),
        ("a/b", "a%2Fb"),
        ("~-_.", "~-_."),
        ("a=b&c", "a%3Db%26c"),
        ("号", "%E5%8F%B7"),
        ("", ""),
    ],
)
def test_percent_encode_is_rfc3986(raw: str, encoded: str) -> None:
    """Spaces become %20 (not +), reserved characters are escaped, unreserved ones kept."""
    assert _acs3.percent_encode(raw) == encoded


def test_canonical_query_sorts_by_name_and_encodes_values() -> None:
    """Parameters are sorted by name and StartTime's space and colons are percent-encoded."""
    query = _acs3.canonical_query_string({"StartTime": "2024-02-29 00:00:00", "AuthCode": "a b"})
    assert query == "AuthCode=a%20b&StartTime=2024-02-29%2000%3A00%3A00"
    assert "+" not in query


def test_canonical_request_lowercases_and_trims_headers() -> None:
    """Header names are lower-cased and sorted, values trimmed, and a blank line follows them."""
    canonical, names = _acs3.canonical_request(
        "post", "/", "", {"X-Acs-Date": " 2026-01-01T00:00:00Z ", "Host": "h.example"}, "ab"
    )
    assert names == "host;x-acs-date"
    assert (
        canonical
        == "POST\n/\n\nhost:h.example\nx-acs-date:2026-01-01T00:00:00Z\n\nhost;x-acs-date\nab"
    )


def test_non_utc_date_is_sent_in_utc() -> None:
    """An aware datetime in another zone is converted to UTC for x-acs-date."""
    china = dt.timezone(dt.timedelta(hours=8))
    signed = _sign_ecs_example("2023-10-26T10:22:32Z", "abc")
    other = _acs3.sign_request(
        access_key_id="YourAccessKeyId",
        access_key_secret="YourAccessKeySecret",
        method="POST",
        host="ecs.cn-shanghai.aliyuncs.com",
        action="RunInstances",
        version="2014-05-26",
        params=ECS_QUERY,
        body=b"",
        date=dt.datetime(2023, 10, 26, 18, 22, 32, tzinfo=china),
        nonce="abc",
    )
    assert other.headers == signed.headers


@pytest.mark.parametrize(
    "change",
    [
        {"date": dt.datetime(2026, 1, 1)},
        {"nonce": ""},
        {"nonce": "abc\r\nx-evil: 1"},
        {"host": "h.example\r\nx-evil: 1"},
        {"access_key_id": "id,Signature=forged"},
        {"access_key_id": ""},
    ],
)
def test_sign_request_rejects_malformed_inputs(change: dict[str, object]) -> None:
    """Naive dates, empty or odd nonces, and header-breaking values raise ValueError."""
    kwargs: dict[str, object] = {
        "access_key_id": "id",
        "access_key_secret": "secret",
        "method": "POST",
        "host": "h.example",
        "action": "A",
        "version": "2020-02-17",
        "params": {},
        "body": b"",
        "date": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        "nonce": "abc",
    }
    kwargs.update(change)
    with pytest.raises(ValueError):
        _acs3.sign_request(**kwargs)  # type: ignore[arg-type]


def test_body_hash_is_signed() -> None:
    """x-acs-content-sha256 is the hex SHA-256 of the exact body bytes."""
    signed = _acs3.sign_request(
        access_key_id="id",
        access_key_secret="secret",
        method="POST",
        host="h.example",
        action="A",
        version="v",
        params={},
        body=b'{"a":1}',
        date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        nonce="abc",
    )
    assert signed.headers["x-acs-content-sha256"] == hashlib.sha256(b'{"a":1}').hexdigest()


@given(st.text())
def test_percent_encode_round_trips_and_uses_only_unreserved(text: str) -> None:
    """Any text (surrogates aside) encodes to unreserved characters and %XX, and decodes back."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return
    encoded = _acs3.percent_encode(text)
    assert encoded == _rfc3986(text)
    assert urllib.parse.unquote(encoded, errors="strict") == text


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=12), max_size=6))
def test_canonical_query_ignores_insertion_order(params: dict[str, str]) -> None:
    """The canonical query depends on the parameters, not on the order they were given in."""
    try:
        forward = _acs3.canonical_query_string(params)
    except UnicodeEncodeError:
        return
    backward = _acs3.canonical_query_string(dict(reversed(list(params.items()))))
    assert forward == backward
    assert " " not in forward
    assert "+" not in forward
