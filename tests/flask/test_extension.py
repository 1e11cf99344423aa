"""recyclecheck.flask: one Guard per app from app.config, its lifetime, its logs and hook."""

from __future__ import annotations

import datetime as dt
import gc
import inspect
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

import recyclecheck
import recyclecheck.flask as rcflask
from recyclecheck._registry import PROVIDERS
from recyclecheck.flask import RecycleCheck, State, build_policy, build_provider
from recyclecheck.providers import (
    AliyunProvider,
    CamaraProvider,
    LastChange,
    NoData,
    RndProvider,
    SandboxProvider,
    TelesignProvider,
    TwilioProvider,
)
from recyclecheck.testing import FakeProviderServer

from ..redisserver import RedisServer

BOUND = dt.date(2022, 5, 10)
SECRET = "s3cret-value-for-tests-0123456789"


def _app(**config: Any) -> Flask:
    app = Flask("rcapp")
    app.config.update(config)
    return app


class ClosingProvider:
    """A provider that counts its close() calls."""

    name = "closing"

    def __init__(self) -> None:
        self.closed = 0

    def lookup(self, number: str, since: dt.date) -> LastChange:
        return LastChange(None)

    def close(self) -> None:
        self.closed += 1


class NoDataProvider:
    """A provider that records the dates it is asked about and knows nothing."""

    name = "no-data"

    def __init__(self) -> None:
        self.asked: list[dt.date] = []

    def lookup(self, number: str, since: dt.date) -> NoData:
        self.asked.append(since)
        return NoData()


@pytest.fixture
def ext() -> RecycleCheck:
    return RecycleCheck()


# -- building the Guard ---------------------------------------------------------------------


def test_defaults_give_a_guard_on_the_demo_sandbox(ext: RecycleCheck) -> None:
    """No configuration at all: the demo sandbox, the secure policy, 0.8 s."""
    app = _app()
    ext.init_app(app)
    state = app.extensions["recyclecheck"]
    assert isinstance(state, State)
    guard = state.guard
    assert guard.provider_name == "sandbox"
    assert guard.timeout == 0.8
    assert guard.policy == recyclecheck.Policy()
    assert {key: app.config[key] for key in rcflask.CONFIG_DEFAULTS} == dict(
        rcflask.CONFIG_DEFAULTS
    )
    with app.app_context():
        assert ext.guard is guard
        assert ext.check("+86 138 0013 8000", bound_at=BOUND).reason == "reissued_after_binding"
    state.close()


def test_the_constructor_takes_the_app_too() -> None:
    """RecycleCheck(app) is init_app(app)."""
    app = _app()
    RecycleCheck(app)
    assert isinstance(app.extensions["recyclecheck"], State)
    app.extensions["recyclecheck"].close()


def test_each_app_gets_its_own_guard_from_its_own_config(ext: RecycleCheck) -> None:
    """App factory: one extension object, two apps, two Guards, no shared state."""
    first, second = _app(), _app(RECYCLECHECK_POLICY="fail_open", RECYCLECHECK_TIMEOUT=0.3)
    ext.init_app(first)
    ext.init_app(second)
    with first.app_context():
        assert ext.check("+86 137 0013 7000", bound_at=BOUND).action == "step_up"
        first_guard = ext.guard
    with second.app_context():
        assert ext.check("+86 137 0013 7000", bound_at=BOUND).action == "allow"
        assert ext.guard is not first_guard
        assert ext.guard.timeout == 0.3
    assert vars(ext) == {}
    for app in (first, second):
        app.extensions["recyclecheck"].close()


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("RECYCLECHECK_TIMEOUT", "0.25", 0.25),
        ("RECYCLECHECK_TIMEOUT", dt.timedelta(milliseconds=400), 0.4),
        ("RECYCLECHECK_TIMEOUT", 2, 2.0),
        ("RECYCLECHECK_DEFAULT_REGION", "cn", "CN"),
    ],
)
def test_values_from_the_environment_or_python_are_accepted(
    ext: RecycleCheck, key: str, value: object, expected: object
) -> None:
    """Numeric strings (from environment variables), timedeltas, lower-case regions."""
    app = _app(**{key: value})
    ext.init_app(app)
    guard = app.extensions["recyclecheck"].guard
    assert (guard.timeout if key == "RECYCLECHECK_TIMEOUT" else guard.default_region) == expected
    app.extensions["recyclecheck"].close()


def test_default_region_parses_national_numbers(ext: RecycleCheck) -> None:
    """RECYCLECHECK_DEFAULT_REGION reaches the Guard."""
    app = _app(RECYCLECHECK_DEFAULT_REGION="CN")
    ext.init_app(app)
    with app.app_context():
        assert ext.check("138 0013 8000", bound_at=BOUND).reason == "reissued_after_binding"
    app.extensions["recyclecheck"].close()


def test_a_policy_object_and_a_provider_object_are_used_as_given(ext: RecycleCheck) -> None:
    """RECYCLECHECK_POLICY may be a Policy; RECYCLECHECK_PROVIDER any provider."""
    policy = recyclecheck.Policy(on_reissued=recyclecheck.Action.DENY)
    provider = SandboxProvider({"+86 138 0013 8000": dt.date(2024, 3, 1)}, name="mine")
    app = _app(RECYCLECHECK_POLICY=policy, RECYCLECHECK_PROVIDER=provider)
    ext.init_app(app)
    guard = app.extensions["recyclecheck"].guard
    assert guard.provider is provider
    assert guard.policy is policy
    with app.app_context():
        assert ext.check("+86 138 0013 8000", bound_at=BOUND).action == "deny"
    app.extensions["recyclecheck"].close()


def test_a_policy_trusting_recent_bindings_answers_without_the_provider(
    ext: RecycleCheck,
) -> None:
    """Policy(trust_recent_binding=30) in RECYCLECHECK_POLICY: a recent binding is not looked up."""
    provider = NoDataProvider()
    policy = recyclecheck.Policy(trust_recent_binding=30)
    app = _app(RECYCLECHECK_POLICY=policy, RECYCLECHECK_PROVIDER=provider)
    ext.init_app(app)
    recent = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)
    with app.app_context():
        trusted = ext.check("+86 138 0013 8000", bound_at=recent)
        asked = ext.check("+86 138 0013 8000", bound_at=BOUND)
    assert (trusted.action.value, trusted.reason.value) == ("allow", "recently_bound")
    assert (trusted.provider, trusted.cached) == ("policy", False)
    assert (asked.reason.value, asked.provider) == ("no_data", "no-data")
    assert provider.asked == [BOUND - dt.timedelta(days=1)]  # only the old binding was looked up
    app.extensions["recyclecheck"].close()


def test_a_sandbox_file(ext: RecycleCheck, tmp_path: Path) -> None:
    """RECYCLECHECK_SANDBOX_FILE scripts the sandbox."""
    path = tmp_path / "numbers.json"
    path.write_text(json.dumps({"numbers": {"+8618600186000": {"reissued_on": None}}}))
    app = _app(RECYCLECHECK_SANDBOX_FILE=str(path))
    ext.init_app(app)
    with app.app_context():
        assert ext.check("+86 186 0018 6000", bound_at=BOUND).action == "allow"
        assert ext.check("+86 138 0013 8000", bound_at=BOUND).reason == "no_data"
    app.extensions["recyclecheck"].close()


def test_build_provider_is_what_init_app_builds(tmp_path: Path) -> None:
    """The public builder, for composing the configured provider."""
    assert isinstance(build_provider({}), SandboxProvider)
    provider = ClosingProvider()
    assert build_provider({"RECYCLECHECK_PROVIDER": provider}) is provider
    assert len(build_provider({"RECYCLECHECK_PROVIDER": " Sandbox "})) == len(
        SandboxProvider.demo()
    )


def test_build_policy_is_what_init_app_uses() -> None:
    """The public builder, for adjusting the configured policy."""
    assert build_policy({}) == recyclecheck.Policy()
    assert build_policy({"RECYCLECHECK_POLICY": "fail_open"}) == recyclecheck.Policy.fail_open()
    policy = recyclecheck.Policy(trust_recent_binding=30)
    assert build_policy({"RECYCLECHECK_POLICY": policy}) is policy
    with pytest.raises(recyclecheck.ConfigurationError, match="RECYCLECHECK_POLICY"):
        build_policy({"RECYCLECHECK_POLICY": "lenient"})


ADAPTERS = {
    "aliyun": (AliyunProvider, "+86 138 0013 8000"),
    "camara": (CamaraProvider, "+86 138 0013 8000"),
    "rnd": (RndProvider, "+1 415 555 2671"),
    "telesign": (TelesignProvider, "+1 415 555 2671"),
    "twilio": (TwilioProvider, "+1 415 555 2671"),
}


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_every_adapter_is_built_by_its_from_env(
    ext: RecycleCheck, recyclecheck_fake_server_env: FakeProviderServer, name: str
) -> None:
    """RECYCLECHECK_PROVIDER names the adapter; its credentials come from the environment."""
    adapter, number = ADAPTERS[name]
    server = recyclecheck_fake_server_env
    server.script(number, dt.date(2024, 3, 1))
    app = _app(RECYCLECHECK_PROVIDER=name.upper(), RECYCLECHECK_TIMEOUT=5)
    ext.init_app(app)
    assert isinstance(app.extensions["recyclecheck"].guard.provider, adapter)
    with app.app_context():
        assert ext.check(number, bound_at=BOUND).reason == "reissued_after_binding"
    assert [r.provider for r in server.requests if r.endpoint == "lookup"] == [name]
    app.extensions["recyclecheck"].close()


def test_router_is_built_from_recyclecheck_routes(
    ext: RecycleCheck,
    recyclecheck_fake_server_env: FakeProviderServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RECYCLECHECK_PROVIDER='router' is Router.from_env(): each number takes its route."""
    server = recyclecheck_fake_server_env
    numbers = {"+86 138 0013 8000": "aliyun", "+1 415 555 2671": "rnd", "+44 7400 123456": "camara"}
    for number in numbers:
        server.script(number, dt.date(2024, 3, 1))
    monkeypatch.setenv("RECYCLECHECK_ROUTES", "+86=aliyun; +1=rnd,twilio; *=camara")
    app = _app(RECYCLECHECK_PROVIDER=" Router ", RECYCLECHECK_TIMEOUT=5)
    ext.init_app(app)
    router = app.extensions["recyclecheck"].guard.provider
    assert isinstance(router, recyclecheck.Router)
    assert [type(p) for p in router.providers] == [
        AliyunProvider,
        RndProvider,
        TwilioProvider,
        CamaraProvider,
    ]
    with app.app_context():
        decisions = [ext.check(number, bound_at=BOUND) for number in numbers]
    assert [(d.reason.value, d.provider) for d in decisions] == [
        ("reissued_after_binding", name) for name in numbers.values()
    ]
    asked = [r.provider for r in server.requests if r.endpoint == "lookup"]
    assert asked == list(numbers.values())
    app.extensions["recyclecheck"].close()


def test_a_router_without_routes_names_the_key_and_the_variable(
    ext: RecycleCheck, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No RECYCLECHECK_ROUTES, or a route naming no provider, fails at init_app."""
    monkeypatch.delenv("RECYCLECHECK_ROUTES", raising=False)
    with pytest.raises(
        recyclecheck.ConfigurationError,
        match=r"^RECYCLECHECK_PROVIDER='router': RECYCLECHECK_ROUTES is not set",
    ):
        ext.init_app(_app(RECYCLECHECK_PROVIDER="router"))
    monkeypatch.setenv("RECYCLECHECK_ROUTES", "+86=carrier-pigeon")
    with pytest.raises(recyclecheck.ConfigurationError, match="carrier-pigeon") as raised:
        ext.init_app(_app(RECYCLECHECK_PROVIDER="router"))
    assert str(raised.value).startswith("RECYCLECHECK_PROVIDER='router': ")


def test_an_unknown_provider_name_lists_every_accepted_one(ext: RecycleCheck) -> None:
    """The names are the sandbox, the registry's adapters and the router."""
    with pytest.raises(recyclecheck.ConfigurationError) as raised:
        ext.init_app(_app(RECYCLECHECK_PROVIDER="carrier-pigeon"))
    assert str(raised.value) == (
        "RECYCLECHECK_PROVIDER must be one of 'sandbox', 'aliyun', 'camara', 'rnd', "
        "'telesign', 'twilio', 'router'"
    )
    assert set(PROVIDERS) == set(ADAPTERS)  # every adapter of the registry is tested above


# -- misconfiguration fails at init_app, naming the key ---------------------------------------


BAD_CONFIG = [
    ({"RECYCLECHECK_PROVIDER": "carrier-pigeon"}, "RECYCLECHECK_PROVIDER must be one of"),
    ({"RECYCLECHECK_PROVIDER": 42}, "RECYCLECHECK_PROVIDER"),
    ({"RECYCLECHECK_PROVIDER": object()}, "RECYCLECHECK_PROVIDER"),
    ({"RECYCLECHECK_SANDBOX_FILE": "/nonexistent/numbers.json"}, "RECYCLECHECK_SANDBOX_FILE"),
    ({"RECYCLECHECK_SANDBOX_FILE": 7}, "RECYCLECHECK_SANDBOX_FILE"),
    (
        {"RECYCLECHECK_PROVIDER": "twilio", "RECYCLECHECK_SANDBOX_FILE": "numbers.json"},
        "RECYCLECHECK_SANDBOX_FILE is only read",
    ),
    (
        {"RECYCLECHECK_PROVIDER": ClosingProvider(), "RECYCLECHECK_SANDBOX_FILE": "n.json"},
        "RECYCLECHECK_SANDBOX_FILE is only read",
    ),
    ({"RECYCLECHECK_TIMEOUT": 0}, "RECYCLECHECK_TIMEOUT"),
    ({"RECYCLECHECK_TIMEOUT": -1}, "RECYCLECHECK_TIMEOUT"),
    ({"RECYCLECHECK_TIMEOUT": 61}, "RECYCLECHECK_TIMEOUT"),
    ({"RECYCLECHECK_TIMEOUT": "fast"}, "RECYCLECHECK_TIMEOUT"),
    ({"RECYCLECHECK_TIMEOUT": float("nan")}, "RECYCLECHECK_TIMEOUT"),
    ({"RECYCLECHECK_TIMEOUT": True}, "RECYCLECHECK_TIMEOUT"),
    ({"RECYCLECHECK_TIMEOUT": None}, "RECYCLECHECK_TIMEOUT"),
    ({"RECYCLECHECK_DEFAULT_REGION": "XX"}, "RECYCLECHECK_DEFAULT_REGION"),
    ({"RECYCLECHECK_DEFAULT_REGION": 86}, "RECYCLECHECK_DEFAULT_REGION"),
    ({"RECYCLECHECK_POLICY": "lenient"}, "RECYCLECHECK_POLICY"),
    ({"RECYCLECHECK_POLICY": None}, "RECYCLECHECK_POLICY"),
    ({"RECYCLECHECK_SECRET": "short"}, "RECYCLECHECK_SECRET"),
    ({"RECYCLECHECK_SECRET": 1234567890123456789}, "RECYCLECHECK_SECRET"),
    ({"RECYCLECHECK_REDIS_URL": "redis://localhost:6379/0"}, "needs RECYCLECHECK_SECRET"),
    (
        {"RECYCLECHECK_REDIS_URL": "http://user:hunter2@cache", "RECYCLECHECK_SECRET": SECRET},
        "RECYCLECHECK_REDIS_URL is not a valid Redis URL",
    ),
    ({"RECYCLECHECK_REDIS_URL": 6379, "RECYCLECHECK_SECRET": SECRET}, "RECYCLECHECK_REDIS_URL"),
    (
        {
            "RECYCLECHECK_REDIS_URL": "redis://cache/0?decode_responses=true",
            "RECYCLECHECK_SECRET": SECRET,
        },
        "RECYCLECHECK_REDIS_URL",
    ),
    ({"RECYCLECHECK_ON_DECISION": "metrics.record"}, "RECYCLECHECK_ON_DECISION"),
]


@pytest.mark.parametrize(("config", "message"), BAD_CONFIG)
def test_misconfiguration_fails_at_init_app_naming_the_key(
    ext: RecycleCheck, config: dict[str, object], message: str
) -> None:
    """ConfigurationError from init_app, its message naming the key, never a secret."""
    app = _app(**config)
    with pytest.raises(recyclecheck.ConfigurationError, match=message) as raised:
        ext.init_app(app)
    assert "recyclecheck" not in app.extensions
    assert "hunter2" not in str(raised.value)
    assert SECRET not in str(raised.value)


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_missing_adapter_credentials_name_the_key_and_the_variable(
    ext: RecycleCheck, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An adapter's from_env() failing is reported at init_app, under RECYCLECHECK_PROVIDER."""
    for variable in ("TWILIO_ACCOUNT_SID", "RECYCLECHECK_TELESIGN_CUSTOMER_ID"):
        monkeypatch.delenv(variable, raising=False)
    for variable in ("RECYCLECHECK_CAMARA_API_ROOT", "ALIBABA_CLOUD_ACCESS_KEY_ID"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv("RECYCLECHECK_RND_REFRESH_TOKEN", raising=False)
    with pytest.raises(recyclecheck.ConfigurationError) as raised:
        ext.init_app(_app(RECYCLECHECK_PROVIDER=name))
    text = str(raised.value)
    assert text.startswith(f"RECYCLECHECK_PROVIDER={name!r}: ")
    assert any(part in text for part in ("TWILIO_", "RECYCLECHECK_", "ALIBABA_"))


def test_every_key_is_checked_before_a_provider_is_built(
    ext: RecycleCheck, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong key is reported before an adapter is built (and a pool opened) at all."""
    monkeypatch.delenv("TWILIO_ACCOUNT_SID", raising=False)
    with pytest.raises(recyclecheck.ConfigurationError, match="RECYCLECHECK_TIMEOUT"):
        ext.init_app(_app(RECYCLECHECK_PROVIDER="twilio", RECYCLECHECK_TIMEOUT=0))


def test_a_provider_is_closed_if_the_guard_refuses_it(
    ext: RecycleCheck, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should the Guard refuse what the extension accepted, the built provider is closed."""
    provider = ClosingProvider()

    def refuse(*args: object, **kwargs: object) -> None:
        raise recyclecheck.ConfigurationError("refused")

    monkeypatch.setattr(rcflask, "Guard", refuse)
    with pytest.raises(recyclecheck.ConfigurationError, match="refused"):
        ext.init_app(_app(RECYCLECHECK_PROVIDER=provider))
    assert provider.closed == 1


def test_init_app_twice_for_one_app_is_an_error(ext: RecycleCheck) -> None:
    """A second Guard would leak the first."""
    app = _app()
    ext.init_app(app)
    with pytest.raises(RuntimeError, match="already"):
        RecycleCheck().init_app(app)
    app.extensions["recyclecheck"].close()


def test_using_the_extension_on_an_app_without_init_app_is_an_error(ext: RecycleCheck) -> None:
    """A clear RuntimeError rather than a KeyError."""
    app = _app()
    with app.app_context(), pytest.raises(RuntimeError, match="init_app"):
        _ = ext.guard
    with pytest.raises(RuntimeError, match="init_app"):
        RecycleCheck.state(app)


# -- lifetime ---------------------------------------------------------------------------------


def test_close_closes_the_provider_once(ext: RecycleCheck) -> None:
    """State.close() closes the Guard (and so the provider); again is a no-op."""
    provider = ClosingProvider()
    app = _app(RECYCLECHECK_PROVIDER=provider)
    ext.init_app(app)
    state = RecycleCheck.state(app)
    assert not state.closed
    state.close()
    state.close()
    assert state.closed
    assert provider.closed == 1
    assert "closed=True" in repr(state)


def test_the_guard_is_closed_when_the_app_goes_away(ext: RecycleCheck) -> None:
    """Torn down with the app: nothing keeps the app alive, the Guard is closed."""
    provider = ClosingProvider()
    app = _app(RECYCLECHECK_PROVIDER=provider)
    ext.init_app(app)
    state = RecycleCheck.state(app)
    del app
    gc.collect()
    assert provider.closed == 1
    assert state.closed


def test_the_guard_is_closed_when_the_process_exits(tmp_path: Path) -> None:
    """At interpreter exit the Guard is closed even if the app is still referenced."""
    script = tmp_path / "app.py"
    script.write_text(
        "import datetime as dt\n"
        "from flask import Flask\n"
        "from recyclecheck.flask import RecycleCheck\n"
        "from recyclecheck.providers import LastChange\n"
        "class P:\n"
        "    name = 'p'\n"
        "    def lookup(self, number, since):\n"
        "        return LastChange(None)\n"
        "    def close(self):\n"
        "        print('closed', flush=True)\n"
        "app = Flask('x')\n"
        "app.config['RECYCLECHECK_PROVIDER'] = P()\n"
        "RecycleCheck(app)\n"
        "print('running', flush=True)\n"
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["running", "closed"]


# -- logging and the metrics hook -------------------------------------------------------------


def test_every_decision_reaches_the_app_logger_masked(
    ext: RecycleCheck, caplog: pytest.LogCaptureFixture
) -> None:
    """One INFO line per decision on app.logger, with the masked number and a structured extra."""
    app = _app()
    ext.init_app(app)
    with caplog.at_level(logging.INFO, logger=app.logger.name), app.app_context():
        ext.check("+86 138 0013 8000", bound_at=BOUND)
    records = [r for r in caplog.records if r.name == app.logger.name]
    (record,) = records
    message = record.getMessage()
    assert message.startswith(
        "recyclecheck decision: number=+86 138****8000 action=step_up "
        "reason=reissued_after_binding provider=sandbox cached=False elapsed_ms="
    )
    assert "8613800138000" not in message
    assert record.recyclecheck_decision["masked_number"] == "+86 138****8000"
    app.extensions["recyclecheck"].close()


def test_the_hook_gets_every_decision(ext: RecycleCheck) -> None:
    """RECYCLECHECK_ON_DECISION: called with each Decision (for metrics)."""
    seen: list[recyclecheck.Decision] = []
    app = _app(RECYCLECHECK_ON_DECISION=seen.append)
    ext.init_app(app)
    with app.app_context():
        decision = ext.check("+86 139 0013 9000", bound_at=BOUND)
    assert seen == [decision]
    app.extensions["recyclecheck"].close()


def test_a_failing_hook_never_fails_the_login(
    ext: RecycleCheck, caplog: pytest.LogCaptureFixture
) -> None:
    """The hook's exception is logged by type only (its text may hold anything)."""

    def broken(decision: recyclecheck.Decision) -> None:
        raise ValueError(f"cannot record {decision!r} for +8613900139000")

    app = _app(RECYCLECHECK_ON_DECISION=broken)
    ext.init_app(app)
    with caplog.at_level(logging.INFO), app.app_context():
        assert ext.check("+86 139 0013 9000", bound_at=BOUND).action == "allow"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["recyclecheck on_decision hook raised ValueError"]
    app.extensions["recyclecheck"].close()


def test_the_extension_keeps_no_reference_to_the_app(ext: RecycleCheck) -> None:
    """The Guard's hook holds the app's logger, never the app (so the app can be collected)."""
    app = _app()
    ext.init_app(app)
    hook = app.extensions["recyclecheck"].guard.on_decision
    assert app not in gc.get_referents(hook, *gc.get_referents(hook))
    app.extensions["recyclecheck"].close()


# -- a shared cache ---------------------------------------------------------------------------


def test_redis_url_shares_facts_between_apps(redis_server: RedisServer) -> None:
    """Two processes' worth of apps with one RECYCLECHECK_REDIS_URL and secret share facts."""
    calls: list[str] = []

    class Counting:
        name = "counting"

        def lookup(self, number: str, since: dt.date) -> LastChange | NoData:
            calls.append(number)
            return LastChange(dt.date(2024, 3, 1))

    url = f"redis://127.0.0.1:{redis_server.port}/0"
    apps = []
    for _ in range(2):
        app = _app(
            RECYCLECHECK_PROVIDER=Counting(),
            RECYCLECHECK_REDIS_URL=url,
            RECYCLECHECK_SECRET=SECRET,
        )
        RecycleCheck(app)
        apps.append(app)
    decisions = []
    for app in apps:
        guard = RecycleCheck.state(app).guard
        assert isinstance(guard.cache, recyclecheck.RedisCache)
        decisions.append(guard.check("+86 186 0018 6000", bound_at=BOUND))
        app.extensions["recyclecheck"].close()
    assert [d.cached for d in decisions] == [False, True]
    assert len(calls) == 1
    redis_server.client().flushdb()


def test_redis_url_query_options_override_the_fast_defaults() -> None:
    """A ?socket_timeout= in the URL is honoured, within RedisCache's fail-fast bounds."""
    app = _app(
        RECYCLECHECK_REDIS_URL="redis://127.0.0.1:1/0?socket_timeout=0.2",
        RECYCLECHECK_SECRET=SECRET,
    )
    RecycleCheck(app)
    cache = RecycleCheck.state(app).guard.cache
    assert isinstance(cache, recyclecheck.RedisCache)
    app.extensions["recyclecheck"].close()
    with pytest.raises(recyclecheck.ConfigurationError, match="RECYCLECHECK_REDIS_URL"):
        RecycleCheck(
            _app(
                RECYCLECHECK_REDIS_URL="redis://127.0.0.1:1/0?socket_timeout=5",
                RECYCLECHECK_SECRET=SECRET,
            )
        )


# -- the module's surface ---------------------------------------------------------------------


def test_importing_recyclecheck_does_not_import_flask() -> None:
    """recyclecheck.flask is opt-in: `import recyclecheck` loads neither it nor Flask."""
    code = (
        "import sys, recyclecheck, recyclecheck.providers; "
        "print('flask' in sys.modules, 'recyclecheck.flask' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["False", "False"]
    assert "flask" not in recyclecheck.__all__


def test_the_module_surface_is_documented() -> None:
    """__all__ is sorted and every public name and method has a docstring."""
    assert rcflask.__all__ == sorted(rcflask.__all__)
    assert rcflask.__all__ == [
        "CONFIG_DEFAULTS",
        "EXTENSION_KEY",
        "RecycleCheck",
        "State",
        "build_policy",
        "build_provider",
    ]
    assert inspect.getdoc(rcflask)
    for name in ("RecycleCheck", "State", "build_policy", "build_provider"):
        obj = getattr(rcflask, name)
        assert inspect.getdoc(obj), name
        if inspect.isclass(obj):
            for member_name, member in vars(obj).items():
                if member_name.startswith("_"):
                    continue
                target = member.fget if isinstance(member, property) else member
                if isinstance(target, staticmethod):
                    target = target.__func__
                if callable(target):
                    assert inspect.getdoc(target), f"{name}.{member_name}"
    with pytest.raises(TypeError):
        rcflask.CONFIG_DEFAULTS["RECYCLECHECK_TIMEOUT"] = 1  # type: ignore[index]
