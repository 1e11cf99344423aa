"""RECYCLECHECK_CA_BUNDLE: every registered adapter's from_env() trusts the roots it names,
and refuses at configuration time a bundle it cannot use (naming the variable only)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from recyclecheck import ConfigurationError, ProviderUnavailable
from recyclecheck._registry import PROVIDERS
from recyclecheck.providers import ChangedSince, LastChange
from recyclecheck.testing import FakeProviderServer

US, CN = "+12015550124", "+8613800138000"
#: A number each adapter covers (Alibaba Cloud answers mainland China only).
COVERED = {name: CN if name == "aliyun" else US for name in PROVIDERS}
SINCE = dt.date(2024, 1, 1)


@pytest.fixture(scope="module")
def tls_server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer({US: dt.date(2024, 3, 1), CN: dt.date(2024, 3, 1)}, tls=True) as fake:
        assert fake.ca_bundle is not None
        yield fake


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_from_env_trusts_the_ca_bundle_variable(name: str, tls_server: FakeProviderServer) -> None:
    """The variable reaches the adapter: it answers over HTTPS from a private CA, and the
    same adapter without it refuses the server's certificate."""
    entry = PROVIDERS[name]
    untrusting = entry.from_env(tls_server.environment())
    trusting = entry.from_env(
        {**tls_server.environment(), "RECYCLECHECK_CA_BUNDLE": str(tls_server.ca_bundle)}
    )
    try:
        with pytest.raises(ProviderUnavailable):
            untrusting.lookup(COVERED[name], SINCE)
        answer = trusting.lookup(COVERED[name], SINCE)
    finally:
        untrusting.close()  # type: ignore[attr-defined]
        trusting.close()  # type: ignore[attr-defined]
    assert answer in (ChangedSince(SINCE, changed=True), LastChange(dt.date(2024, 3, 1)))


@pytest.mark.parametrize("name", sorted(PROVIDERS))
@pytest.mark.parametrize("kind", ["missing", "directory", "not PEM"])
def test_from_env_refuses_an_unusable_ca_bundle(
    name: str, kind: str, tmp_path: Path, tls_server: FakeProviderServer
) -> None:
    path = {"missing": tmp_path / "missing.pem", "directory": tmp_path}.get(
        kind, tmp_path / "roots.pem"
    )
    (tmp_path / "roots.pem").write_text("not a certificate\n")
    environ = {**tls_server.environment(), "RECYCLECHECK_CA_BUNDLE": str(path)}
    with pytest.raises(ConfigurationError, match="RECYCLECHECK_CA_BUNDLE") as info:
        PROVIDERS[name].from_env(environ)
    assert str(tmp_path) not in str(info.value)
