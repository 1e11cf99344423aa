"""The public surface: exactly what is documented, each piece with a docstring."""

from __future__ import annotations

import inspect
import subprocess
import sys
import types

import pytest

import recyclecheck
import recyclecheck.exceptions
import recyclecheck.providers

EXPECTED = {
    recyclecheck: [
        "Action",
        "CacheUnavailable",
        "ConfigurationError",
        "Decision",
        "Fact",
        "FactCache",
        "Fallback",
        "FeedRow",
        "Guard",
        "IngestReport",
        "InvalidInput",
        "InvalidPhoneNumber",
        "MemoryCache",
        "Policy",
        "ProviderAuthError",
        "ProviderError",
        "ProviderRateLimited",
        "ProviderResponseError",
        "ProviderTimeout",
        "ProviderUnavailable",
        "Quota",
        "Reason",
        "RecycleCheckError",
        "RedisCache",
        "RedisTokenBucket",
        "Route",
        "Router",
        "RowError",
        "SweepResult",
        "SweepRow",
        "TokenBucket",
        "__version__",
        "ingest",
        "mask",
        "read_feed",
    ],
    recyclecheck.providers: [
        "AliyunProvider",
        "Answer",
        "CamaraProvider",
        "ChangedSince",
        "LastChange",
        "NoData",
        "NotCovered",
        "PROVIDERS",
        "Provider",
        "ProviderEntry",
        "RndProvider",
        "Route",
        "Router",
        "SandboxProvider",
        "TelesignProvider",
        "TwilioProvider",
        "provider_from_env",
        "remaining_time",
    ],
}


@pytest.mark.parametrize("module", list(EXPECTED), ids=lambda m: m.__name__)
def test_all_is_the_documented_surface(module: types.ModuleType) -> None:
    """__all__ equals the documented list, and every name exists (ruff's RUF022 keeps
    it sorted: constants, then classes, then functions)."""
    assert sorted(module.__all__) == sorted(EXPECTED[module])
    for name in module.__all__:
        assert hasattr(module, name), name


@pytest.mark.parametrize("module", list(EXPECTED), ids=lambda m: m.__name__)
def test_no_undeclared_public_names(module: types.ModuleType) -> None:
    """Nothing public leaks into the namespace without being in __all__."""
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }
    assert public <= set(module.__all__), public - set(module.__all__)


def _public_members(obj: type) -> list[tuple[str, object]]:
    return [
        (name, member)
        for name, member in vars(obj).items()
        if not name.startswith("_") and (callable(member) or isinstance(member, property))
    ]


@pytest.mark.parametrize("module", list(EXPECTED), ids=lambda m: m.__name__)
def test_every_public_name_and_method_has_a_docstring(module: types.ModuleType) -> None:
    """Docstrings on every public class, function, method and property."""
    for name in module.__all__:
        obj = getattr(module, name)
        if name == "__version__" or name == "Answer":
            continue
        assert inspect.getdoc(obj), name
        if inspect.isclass(obj):
            for member_name, member in _public_members(obj):
                target = member.fget if isinstance(member, property) else member
                assert inspect.getdoc(target), f"{name}.{member_name}"


def test_exception_tree() -> None:
    """One tree under RecycleCheckError; input errors are also ValueErrors."""
    exc = recyclecheck.exceptions
    for name in exc.__all__:
        assert issubclass(getattr(exc, name), exc.RecycleCheckError)
    assert issubclass(exc.InvalidPhoneNumber, exc.InvalidInput)
    assert issubclass(exc.InvalidInput, ValueError)
    assert issubclass(exc.ConfigurationError, ValueError)
    for name in ("ProviderTimeout", "ProviderUnavailable", "ProviderRateLimited"):
        assert issubclass(getattr(exc, name), exc.ProviderError)
    assert exc.ProviderRateLimited("x", retry_after=3).retry_after == 3


def test_cache_unavailable_says_what_failed_and_pickles() -> None:
    """CacheUnavailable carries the operation and the cause's type; it survives pickling
    (a task queue sends exceptions between processes)."""
    import pickle  # noqa: PLC0415

    error = recyclecheck.CacheUnavailable("write", "TimeoutError")
    assert str(error) == "cache write failed (TimeoutError)"
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.operation, copy.cause) == (
        recyclecheck.CacheUnavailable,
        "write",
        "TimeoutError",
    )
    assert not issubclass(recyclecheck.CacheUnavailable, recyclecheck.ProviderError)


def test_importing_recyclecheck_does_not_import_the_testing_kit() -> None:
    """Test tooling (responses, trustme) never loads in production."""
    code = "import sys, recyclecheck, recyclecheck.providers; print('recyclecheck.testing' in sys.modules, 'responses' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["False", "False"]


def test_importing_the_core_loads_no_adapter_http_or_crypto() -> None:
    """`import recyclecheck` stays small: adapters, requests, urllib3, cryptography, redis,
    asyncio and greenlet load only when used (RedisCache on first access)."""
    code = (
        "import sys, recyclecheck\n"
        "heavy = ('requests', 'urllib3', 'cryptography', 'redis', 'asyncio', 'greenlet',"
        " 'recyclecheck.providers')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
        "recyclecheck.RedisCache\n"
        "print('cryptography' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded, crypto_after = result.stdout.splitlines()
    assert loaded == "[]"
    assert crypto_after == "True"
