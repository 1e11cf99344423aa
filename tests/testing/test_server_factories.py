"""FakeProviderServer.provider(name): every registered adapter, built by name, against the fake."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from recyclecheck import (
    ConfigurationError,
    Guard,
    ProviderAuthError,
    ProviderUnavailable,
    Reason,
)
from recyclecheck._registry import PROVIDERS
from recyclecheck.testing import FakeProviderServer

US, CN = "+12015550124", "+8613900139000"
BOUND_AT = dt.date(2022, 5, 10)

#: An override per provider that the fake refuses (a wrong secret, key or token).
WRONG: dict[str, dict[str, str]] = {
    "aliyun": {"access_key_secret": "wrong"},
    "camara": {"client_secret": "wrong"},
    "rnd": {"refresh_token": "wrong"},
    "telesign": {"api_key": "d3Jvbmcga2V5"},
    "twilio": {"auth_token": "wrong"},
}


def home(name: str) -> str:
    """A never-reissued number the provider covers."""
    return CN if name == "aliyun" else US


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer({US: None, CN: None}) as server:
        yield server


def check(fake: FakeProviderServer, name: str, **options: Any) -> Reason:
    """The Guard's reason for the provider's home number, built by ``provider(name)``."""
    with Guard(fake.provider(name, **options), timeout=5) as guard:
        decision = guard.check(home(name), bound_at=BOUND_AT)
    assert decision.provider == name
    return decision.reason


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_every_registered_name_answers_a_real_lookup(name: str, fake: FakeProviderServer) -> None:
    """provider(name) is the registry's adapter with accepted credentials, pointed at the fake."""
    fake.reset()
    assert check(fake, name) is Reason.NOT_REISSUED
    assert {request.provider for request in fake.requests} == {name}
    assert [r.endpoint for r in fake.requests if r.endpoint != "token"] == ["lookup"]


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("telesign", {"auth": "basic"}),
        ("camara", {"auth": "token"}),
        ("camara", {"auth": "private_key_jwt"}),
        ("aliyun", {"mask": "MD5"}),
        ("aliyun", {"mask": "NORMAL"}),
    ],
)
def test_each_wires_own_options_pass_through(
    name: str, options: dict[str, str], fake: FakeProviderServer
) -> None:
    """Telesign's and CAMARA's auth and Alibaba's mask are options of provider(name)."""
    assert check(fake, name, **options) is Reason.NOT_REISSUED


def test_the_named_factories_are_the_same_adapters(fake: FakeProviderServer) -> None:
    """server.twilio() and friends build what provider(name) builds."""
    named = [fake.twilio(), fake.telesign(), fake.camara(), fake.aliyun(), fake.rnd()]
    for adapter in named:
        # Each Guard closes its adapter's connections.
        with Guard(adapter), Guard(fake.provider(adapter.name)) as by_name:
            assert type(by_name.provider) is type(adapter)


def test_an_unknown_name_lists_the_known_ones(fake: FakeProviderServer) -> None:
    """A name outside the registry is a ConfigurationError naming every known provider."""
    with pytest.raises(ConfigurationError, match="aliyun, camara, rnd, telesign, twilio"):
        fake.provider("nexmo")


def test_an_unknown_camara_auth_mode_is_refused(fake: FakeProviderServer) -> None:
    """CAMARA's auth is one of three modes, whichever factory is used."""
    message = "auth must be 'token', 'secret' or 'private_key_jwt'"
    with pytest.raises(ConfigurationError, match=message):
        fake.provider("camara", auth="basic")
    with pytest.raises(ConfigurationError, match=message):
        fake.camara("basic")


@pytest.mark.parametrize("name", sorted(WRONG))
def test_overrides_replace_the_accepted_credentials(name: str, fake: FakeProviderServer) -> None:
    """A wrong-credential override wins: the fake refuses, the Guard says provider_unavailable."""
    assert check(fake, name, **WRONG[name]) is Reason.PROVIDER_UNAVAILABLE
    with Guard(fake.provider(name, **WRONG[name])) as guard, pytest.raises(ProviderAuthError):
        guard.provider.lookup(home(name), BOUND_AT)


def test_over_tls_every_adapter_trusts_the_throwaway_ca() -> None:
    """With tls=True, provider(name) carries the CA bundle; overriding it away fails the TLS."""
    with FakeProviderServer({US: None, CN: None}, tls=True) as fake:
        assert fake.url.startswith("https://")
        for name in sorted(PROVIDERS):
            assert check(fake, name) is Reason.NOT_REISSUED, name
        unverified = Guard(fake.provider("twilio", ca_bundle=None))
        with unverified, pytest.raises(ProviderUnavailable, match="TLS"):
            unverified.provider.lookup(US, BOUND_AT)
