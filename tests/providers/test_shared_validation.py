"""All five adapters check numbers, dates and base URLs the same way (``providers._wire``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import responses

from recyclecheck.exceptions import ConfigurationError, InvalidInput, InvalidPhoneNumber
from recyclecheck.providers import (
    AliyunProvider,
    CamaraProvider,
    RndProvider,
    TelesignProvider,
    TwilioProvider,
)

API_KEY = "EXAMPLE----TE8sTgg45yusumoN6BYsBVkh+yRJ5czgsnCehZaOYldPJdmFh6NeX8kunZ2zU1YWaUw/0wV6xfw=="

#: Each adapter built against ``url`` (its base URL, API root or endpoint).
ADAPTERS: dict[str, Callable[[str], Any]] = {
    "camara": lambda url: CamaraProvider(url, access_token="static-token.0123456789"),
    "twilio": lambda url: TwilioProvider("AC0123", "secret", base_url=url),
    "telesign": lambda url: TelesignProvider("FFFF-EEEE", API_KEY, base_url=url),
    "aliyun": lambda url: AliyunProvider("LTAIkey", "secret", "auth-code", endpoint=url),
    "rnd": lambda url: RndProvider("refresh-token", "TESTCO", base_url=url),
}
adapters = pytest.mark.parametrize("name", sorted(ADAPTERS))


@pytest.fixture
def no_io() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
        assert not mock.calls


@adapters
@pytest.mark.parametrize(
    "number",
    [
        "+123456",  # 6 digits: E.164 numbers have 7 to 15 here
        "+12345",
        "+1234567890123456",  # 16 digits
        "+0123456789",
        "8613800138000",
        "+86 138 0013 8000",
        "+8613800138000\n",
        "+" + "".join(chr(0xFF10 + int(d)) for d in "8613800138000"),  # full-width digits
        "",
    ],
)
def test_numbers_are_checked_alike(name: str, number: str, no_io: responses.RequestsMock) -> None:
    """One E.164 rule ('+' and 7 to 15 ASCII digits) for every adapter, before any I/O."""
    provider = ADAPTERS[name]("https://provider.example")
    with pytest.raises(InvalidPhoneNumber) as info:
        provider.lookup(number, dt.date(2024, 3, 2))
    assert "8613800138000" not in str(info.value)


@adapters
@pytest.mark.parametrize("number", [None, 8613800138000, b"+8613800138000"])
def test_non_string_numbers_are_also_type_errors(
    name: str, number: Any, no_io: responses.RequestsMock
) -> None:
    """A number that is not a str is an InvalidPhoneNumber that is also a TypeError."""
    with pytest.raises(InvalidPhoneNumber) as info:
        ADAPTERS[name]("https://provider.example").lookup(number, dt.date(2024, 3, 2))
    assert isinstance(info.value, TypeError)


@adapters
@pytest.mark.parametrize(
    "since", [dt.datetime(2024, 3, 2, tzinfo=dt.timezone.utc), "2024-03-02", None, 20240302]
)
def test_since_is_checked_alike(name: str, since: Any, no_io: responses.RequestsMock) -> None:
    """A since that is not a plain date is the same error everywhere: InvalidInput and TypeError."""
    with pytest.raises(InvalidInput) as info:
        ADAPTERS[name]("https://provider.example").lookup("+8613800138000", since)
    assert isinstance(info.value, TypeError)


@adapters
@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:9091",
        "http://127.0.0.1:9091",
        "http://127.0.0.2:9091",
        "http://[::1]:9091",
    ],
)
def test_plain_http_to_loopback_is_accepted_alike(name: str, url: str) -> None:
    """Every adapter may point at a local sandbox over plain http."""
    ADAPTERS[name](url).close()


@adapters
@pytest.mark.parametrize(
    "url",
    [
        "http://provider.example",
        "http://127.0.0.1.example",
        "http://127.evil.example:9091",
        "http://[::2]:9091",
        "http://0.0.0.0:9091",
        "https://provider.example\\@evil.example",
        "https://user:pw@provider.example",
        "https://provider.example?x=1",
        "https://provider.example#f",
        "ftp://provider.example",
        "https://",
    ],
)
def test_bad_base_urls_are_refused_alike(name: str, url: str) -> None:
    """The same URLs fail at construction for every adapter, with a ConfigurationError."""
    with pytest.raises(ConfigurationError):
        ADAPTERS[name](url)
