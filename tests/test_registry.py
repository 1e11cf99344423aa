"""The provider registry is the one table of buildable providers, and it tells the truth
about the environment variables each adapter reads; routed setups are built from it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from recyclecheck import ConfigurationError, Guard, Reason, Router
from recyclecheck._registry import PROVIDERS, provider_from_env
from recyclecheck.cli import main
from recyclecheck.testing import FakeProviderServer

US = "+12015550124"
CN = "+8613800138000"


class Recording(Mapping[str, str]):
    """An environment that notes every variable asked for."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return self.values.get(key, default)

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return key in self.values

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer({US: None, CN: dt.date(2024, 3, 1)}) as server:
        yield server


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_each_entry_lists_every_variable_its_from_env_reads(
    name: str, fake: FakeProviderServer
) -> None:
    environ = Recording(dict(fake.environment()))
    provider = provider_from_env(name, environ)
    assert provider.name == name
    assert environ.asked <= set(PROVIDERS[name].variables), environ.asked - set(
        PROVIDERS[name].variables
    )


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_the_fake_server_builds_each_registered_adapter_by_name(
    name: str, fake: FakeProviderServer
) -> None:
    """`server.provider(name)` takes the registry's name and builds the registry's class."""
    provider = fake.provider(name)
    assert isinstance(provider, PROVIDERS[name].load())
    assert provider.name == name


def test_an_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match="aliyun, camara, rnd, telesign, twilio"):
        provider_from_env("nexmo", {})


def test_router_from_env_builds_each_provider_once(fake: FakeProviderServer) -> None:
    environ = {
        **fake.environment(),
        "RECYCLECHECK_ROUTES": "+86=aliyun; +1=rnd,twilio; *=camara",
    }
    router = Router.from_env(environ)
    assert [p.name for p in router.providers] == ["aliyun", "rnd", "twilio", "camara"]
    guard = Guard(router, timeout=2)
    assert guard.check(US, bound_at=dt.date(2022, 5, 10)).provider == "rnd"
    cn = guard.check(CN, bound_at=dt.date(2022, 5, 10))
    assert (cn.provider, cn.reason) == ("aliyun", Reason.REISSUED_AFTER_BINDING)
    guard.close()


@pytest.mark.parametrize(
    "spec", ["", "+86", "+86=", "=aliyun", "+86=nexmo", "+999=aliyun", "CN=aliyun,aliyun"]
)
def test_bad_routes_are_configuration_errors(spec: str, fake: FakeProviderServer) -> None:
    with pytest.raises(ConfigurationError):
        Router.from_env({**fake.environment(), "RECYCLECHECK_ROUTES": spec})


def test_cli_routes_file_routes_by_country(
    tmp_path: Path, fake: FakeProviderServer, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    """`recyclecheck check --routes FILE` routes a routed setup from the shell."""
    for key, value in fake.environment().items():
        monkeypatch.setenv(key, value)
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps({"routes": {"+86": ["aliyun"]}, "default": ["twilio"]}))
    code = main(["check", CN, "--bound-at", "2022-05-10", "--routes", str(routes), "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["provider"] == "aliyun"
    code = main(["check", US, "--bound-at", "2022-05-10", "--routes", str(routes), "--json"])
    assert json.loads(capsys.readouterr().out)["provider"] == "twilio"
    routes.write_text("{not json")
    assert main(["check", US, "--bound-at", "2022-05-10", "--routes", str(routes)]) == 1


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_the_responses_mocks_know_every_registered_provider(name: str) -> None:
    """`mock_provider(name)` takes every registry name."""
    from recyclecheck.testing import mock_provider  # noqa: PLC0415

    options = {"api_root": "https://operator.example/camara"} if name == "camara" else {}
    with mock_provider(name, {US: None}, **options):
        pass


def test_the_fake_servers_wires_are_exactly_the_registry() -> None:
    """Every wire is a registered provider and every registered provider has a wire."""
    from recyclecheck.testing._server import WIRES  # noqa: PLC0415

    names = [wire.name for wire in WIRES]
    assert len(names) == len(set(names))
    assert set(names) == set(PROVIDERS)
