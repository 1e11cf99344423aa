"""The pytest plugin, from an app's point of view: a login handler's contract tests run on it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# Imported out here, not first inside an in-process pytester run: pytester drops the modules an
# inner run imported, and cryptography's Rust core keeps the x509 classes of their first import,
# so a second run's trustme would fail its own isinstance checks.
import trustme  # noqa: F401

pytest_plugins = ["pytester"]

#: A minimal app: SMS-code login guarded by recyclecheck, with its Guard built once.
APP = '''
"""The app under test: SMS-code login with a recycled-number check."""

import recyclecheck
from recyclecheck.providers import TwilioProvider

VALID_CODE = "123456"


class Account:
    def __init__(self, phone, bound_at):
        self.phone = phone
        self.bound_at = bound_at


_guard = None


def guard():
    """The app's one Guard, built on first use (production: Twilio, from the environment)."""
    global _guard
    if _guard is None:
        _guard = recyclecheck.Guard(TwilioProvider.from_env(), timeout=0.5)
    return _guard


def login(phone, code, account):
    if code != VALID_CODE:
        return "bad_code"
    decision = guard().check(phone, bound_at=account.bound_at)
    return "logged_in" if decision.allowed else "step_up"
'''

#: Inner runs fail on any warning and on unregistered markers, as a strict app suite would.
STRICT = ("-W", "error", "--strict-markers", "-p", "no:cacheprovider")


def run(pytester: pytest.Pytester, tests: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(app=APP, test_login=textwrap.dedent(tests))
    return pytester.runpytest(*STRICT, *args)


def test_sandbox_fixtures_script_each_answer(pytester: pytest.Pytester) -> None:
    """reissued steps up, never logs in, no data / not covered step up; scripts change mid-test."""
    result = run(
        pytester,
        """
        import datetime as dt

        import pytest

        import app

        PHONE = "+86 138 0013 8000"
        ACCOUNT = app.Account(PHONE, dt.datetime(2022, 5, 10, 8, 30, tzinfo=dt.timezone.utc))


        @pytest.fixture(autouse=True)
        def _use_sandbox(monkeypatch, recyclecheck_guard):
            monkeypatch.setattr(app, "_guard", recyclecheck_guard)


        def test_reissued_after_binding_steps_up(recyclecheck_sandbox, recyclecheck_decisions):
            recyclecheck_sandbox.reissued(PHONE, on=dt.date(2024, 3, 1))
            assert app.login(PHONE, "123456", ACCOUNT) == "step_up"
            assert recyclecheck_decisions.last.reason == "reissued_after_binding"
            assert recyclecheck_decisions.last.reissued_on == dt.date(2024, 3, 1)


        def test_reissued_before_binding_logs_in(recyclecheck_sandbox):
            recyclecheck_sandbox.reissued(PHONE, on="2019-06-01")
            assert app.login(PHONE, "123456", ACCOUNT) == "logged_in"


        def test_never_reissued_logs_in(recyclecheck_sandbox, recyclecheck_decisions):
            recyclecheck_sandbox.never_reissued(PHONE)
            assert app.login(PHONE, "123456", ACCOUNT) == "logged_in"
            assert recyclecheck_decisions.reasons == ["not_reissued"]


        @pytest.mark.parametrize("script", ["no_data", "not_covered", "unlisted", "coverage"])
        def test_unknowns_step_up(recyclecheck_sandbox, recyclecheck_decisions, script):
            if script == "no_data":
                recyclecheck_sandbox.no_data(PHONE)
            elif script == "not_covered":
                recyclecheck_sandbox.not_covered(PHONE)
            elif script == "coverage":
                recyclecheck_sandbox.never_reissued(PHONE, covered_since="2023-01-01")
            assert app.login(PHONE, "123456", ACCOUNT) == "step_up"
            expected = "no_data" if script in ("no_data", "unlisted") else "not_covered"
            assert recyclecheck_decisions.reasons == [expected]


        def test_scripts_change_between_logins_on_one_guard(recyclecheck_sandbox, recyclecheck_decisions):
            recyclecheck_sandbox.never_reissued(PHONE)
            assert app.login(PHONE, "123456", ACCOUNT) == "logged_in"
            assert app.login(PHONE, "123456", ACCOUNT) == "logged_in"
            assert recyclecheck_decisions[1].cached
            recyclecheck_sandbox.reissued(PHONE, on=dt.date(2024, 3, 1))
            assert app.login(PHONE, "123456", ACCOUNT) == "step_up"
            assert recyclecheck_decisions.actions == ["allow", "allow", "step_up"]


        def test_a_wrong_code_never_reaches_the_provider(recyclecheck_sandbox, recyclecheck_decisions):
            assert app.login(PHONE, "000000", ACCOUNT) == "bad_code"
            assert recyclecheck_sandbox.lookups == []
            assert len(recyclecheck_decisions) == 0


        def test_the_provider_is_asked_about_the_day_before_the_binding(recyclecheck_sandbox):
            app.login(PHONE, "123456", ACCOUNT)
            (lookup,) = recyclecheck_sandbox.lookups_of(PHONE)
            assert lookup.since == dt.date(2022, 5, 9)
            assert "8000" in repr(lookup) and "0013" not in repr(lookup)
        """,
    )
    result.assert_outcomes(passed=10)


def test_outages_step_up_within_the_deadline(pytester: pytest.Pytester) -> None:
    """down, hang and slow all step up with provider_unavailable, never later than the timeout."""
    result = run(
        pytester,
        """
        import datetime as dt
        import time

        import pytest

        import app
        from recyclecheck import ProviderAuthError, ProviderRateLimited, ProviderTimeout

        PHONE, OTHER = "+86 138 0013 8000", "+86 139 0013 9000"
        ACCOUNT = app.Account(PHONE, dt.date(2022, 5, 10))
        TIMEOUT = 0.2


        @pytest.fixture(autouse=True)
        def guard(monkeypatch, recyclecheck_sandbox, recyclecheck_decisions):
            guard = recyclecheck_sandbox.guard(timeout=TIMEOUT, on_decision=recyclecheck_decisions)
            monkeypatch.setattr(app, "_guard", guard)
            recyclecheck_sandbox.never_reissued(PHONE)
            recyclecheck_sandbox.never_reissued(OTHER)
            return guard


        def timed_login(phone=PHONE):
            started = time.monotonic()
            result = app.login(phone, "123456", app.Account(phone, dt.date(2022, 5, 10)))
            return result, time.monotonic() - started


        @pytest.mark.parametrize(
            "outage",
            ["down", "timeout", "rate_limited", "auth", "hang", "slow"],
        )
        def test_outage_steps_up_in_time(recyclecheck_sandbox, recyclecheck_decisions, outage):
            if outage == "down":
                recyclecheck_sandbox.down()
            elif outage == "timeout":
                recyclecheck_sandbox.down(error=ProviderTimeout)
            elif outage == "rate_limited":
                recyclecheck_sandbox.down(error=ProviderRateLimited("busy", retry_after=30))
            elif outage == "auth":
                recyclecheck_sandbox.down(error=ProviderAuthError)
            elif outage == "hang":
                recyclecheck_sandbox.hang()
            else:
                recyclecheck_sandbox.slow(5)
            result, elapsed = timed_login()
            assert result == "step_up"
            assert recyclecheck_decisions.last.reason == "provider_unavailable"
            assert elapsed < TIMEOUT + 0.15
            if outage in ("hang", "slow"):
                assert elapsed >= TIMEOUT * 0.9  # it really waited for the provider


        def test_a_short_delay_still_answers(recyclecheck_sandbox):
            recyclecheck_sandbox.slow(0.05)
            result, elapsed = timed_login()
            assert result == "logged_in"
            assert 0.05 <= elapsed < TIMEOUT


        def test_one_number_down_leaves_the_others(recyclecheck_sandbox):
            recyclecheck_sandbox.hang(PHONE)
            assert timed_login(OTHER)[0] == "logged_in"
            assert timed_login(PHONE)[0] == "step_up"


        def test_the_provider_comes_back(recyclecheck_sandbox, recyclecheck_decisions, guard):
            recyclecheck_sandbox.down()
            for _ in range(5):  # enough consecutive failures to open the circuit breaker
                assert timed_login()[0] == "step_up"
            assert guard.breaker.state == "open"
            asked = len(recyclecheck_sandbox.lookups)
            assert timed_login()[0] == "step_up"
            assert len(recyclecheck_sandbox.lookups) == asked  # the open circuit skips the provider
            recyclecheck_sandbox.up()
            assert timed_login() == ("logged_in", pytest.approx(0, abs=TIMEOUT))
            assert recyclecheck_decisions.reasons[-1] == "not_reissued"


        def test_outside_isolation_a_cached_reissue_survives_an_outage(recyclecheck_sandbox, monkeypatch):
            guard = recyclecheck_sandbox.guard(isolate=False, timeout=TIMEOUT)
            monkeypatch.setattr(app, "_guard", guard)
            recyclecheck_sandbox.reissued(PHONE, on="2024-03-01")
            assert app.login(PHONE, "123456", ACCOUNT) == "step_up"
            recyclecheck_sandbox.down()
            assert guard.check(PHONE, bound_at=ACCOUNT.bound_at).cached
            assert len(recyclecheck_sandbox.lookups) == 1
        """,
    )
    result.assert_outcomes(passed=10)


def test_fake_server_over_real_http(pytester: pytest.Pytester) -> None:
    """The app's own TwilioProvider.from_env() and an AliyunProvider talk to the fake server."""
    result = run(
        pytester,
        """
        import datetime as dt
        import time

        import pytest

        import app
        import recyclecheck
        from recyclecheck.testing import Hang, ServerError

        US, US_NEVER = "+1 201 555 0123", "+1 201 555 0124"
        CN = "+86 138 0013 8000"
        BOUND = dt.date(2022, 5, 10)


        @pytest.fixture(autouse=True)
        def _fresh_app_guard(monkeypatch):
            monkeypatch.setattr(app, "_guard", None)
            yield
            if app._guard is not None:
                app._guard.close()


        def test_twilio_from_env(recyclecheck_fake_server_env):
            server = recyclecheck_fake_server_env
            server.script(US, dt.date(2024, 3, 1))
            server.script(US_NEVER, None)
            assert app.login(US, "123456", app.Account(US, BOUND)) == "step_up"
            assert app.login(US_NEVER, "123456", app.Account(US_NEVER, BOUND)) == "logged_in"
            assert [(r.provider, r.endpoint) for r in server.requests] == [("twilio", "lookup")] * 2
            assert server.requests[0].since == dt.date(2022, 5, 9)


        def test_twilio_hanging_steps_up_within_the_deadline(recyclecheck_fake_server_env):
            recyclecheck_fake_server_env.script(US_NEVER, None)
            recyclecheck_fake_server_env.inject(Hang())
            started = time.monotonic()
            assert app.login(US_NEVER, "123456", app.Account(US_NEVER, BOUND)) == "step_up"
            assert 0.45 <= time.monotonic() - started < 0.5 + 0.15  # the app's timeout=0.5


        def test_twilio_one_503_is_retried(recyclecheck_fake_server_env):
            recyclecheck_fake_server_env.script(US_NEVER, None)
            recyclecheck_fake_server_env.inject(ServerError(503), times=1)
            assert app.login(US_NEVER, "123456", app.Account(US_NEVER, BOUND)) == "logged_in"
            assert [r.fault for r in recyclecheck_fake_server_env.requests] == [ServerError(503), None]


        @pytest.mark.recyclecheck_fake_server({CN: dt.date(2024, 3, 1)}, tls=True)
        def test_aliyun_over_https(recyclecheck_fake_server, monkeypatch):
            server = recyclecheck_fake_server
            assert server.url.startswith("https://")
            with recyclecheck.Guard(server.aliyun(), timeout=0.5) as guard:
                monkeypatch.setattr(app, "_guard", guard)
                assert app.login(CN, "123456", app.Account(CN, BOUND)) == "step_up"
            (request,) = server.requests
            assert request.provider == "aliyun"
            assert request.masked == "+86 138****8000"


        @pytest.mark.parametrize(
            "recyclecheck_fake_server", [{"tls": False}, {"tls": True}], indirect=True
        )
        def test_indirect_parametrisation(recyclecheck_fake_server):
            scheme = "https" if recyclecheck_fake_server.tls else "http"
            assert recyclecheck_fake_server.url.startswith(scheme + "://")
        """,
    )
    result.assert_outcomes(passed=6)


def test_fake_server_env_refuses_tls(pytester: pytest.Pytester) -> None:
    """Asking for from_env() variables with a TLS server fails with a clear message."""
    result = run(
        pytester,
        """
        import pytest


        @pytest.mark.recyclecheck_fake_server(tls=True)
        def test_env(recyclecheck_fake_server_env):
            pass
        """,
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*recyclecheck_fake_server_env needs a plain-HTTP server*"])


def test_bad_server_options_are_usage_errors(pytester: pytest.Pytester) -> None:
    """Two positional marker arguments, or a non-dict parameter, are reported as misuse."""
    result = run(
        pytester,
        """
        import pytest


        @pytest.mark.recyclecheck_fake_server({}, {})
        def test_two_positionals(recyclecheck_fake_server):
            pass


        @pytest.mark.parametrize("recyclecheck_fake_server", [True], indirect=True)
        def test_not_a_dict(recyclecheck_fake_server):
            pass
        """,
    )
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*takes at most one positional*", "*with dicts of options*"])


def test_responses_mock_variant(pytester: pytest.Pytester) -> None:
    """mock_twilio on recyclecheck_responses answers the app's real TwilioProvider."""
    result = run(
        pytester,
        """
        import datetime as dt

        import pytest

        import app
        from recyclecheck.testing import mock_twilio

        US, US_NEVER = "+1 201 555 0123", "+1 201 555 0124"
        BOUND = dt.date(2022, 5, 10)


        @pytest.fixture(autouse=True)
        def _twilio_credentials(monkeypatch):
            monkeypatch.setattr(app, "_guard", None)
            monkeypatch.setenv("TWILIO_ACCOUNT_SID", "ACany")
            monkeypatch.setenv("TWILIO_AUTH_TOKEN", "any-token")


        def test_twilio_mocked(recyclecheck_responses):
            mock_twilio(recyclecheck_responses, {US: dt.date(2024, 3, 1), US_NEVER: None})
            assert app.login(US, "123456", app.Account(US, BOUND)) == "step_up"
            assert app.login(US_NEVER, "123456", app.Account(US_NEVER, BOUND)) == "logged_in"
            assert len(recyclecheck_responses.calls) == 2


        def test_unmocked_requests_step_up(recyclecheck_responses):
            assert app.login(US, "123456", app.Account(US, BOUND)) == "step_up"
        """,
    )
    result.assert_outcomes(passed=2)


def test_teardown_releases_hung_lookups(pytester: pytest.Pytester) -> None:
    """A test that leaves a lookup hanging (no deadline ends it soon) does not hold up the run."""
    result = run(
        pytester,
        """
        import datetime as dt
        import threading
        import time


        def test_leaves_a_hung_lookup(recyclecheck_sandbox):
            recyclecheck_sandbox.hang()
            guard = recyclecheck_sandbox.guard(timeout=60)
            done = threading.Event()
            thread = threading.Thread(
                target=lambda: (guard.check("+86 138 0013 8000", bound_at=dt.date(2022, 5, 10)), done.set()),
                daemon=True,
            )
            thread.start()
            while not recyclecheck_sandbox.lookups:
                time.sleep(0.01)
            test_leaves_a_hung_lookup.state = (guard, done)


        def test_then_it_was_released():
            guard, done = test_leaves_a_hung_lookup.state
            assert done.wait(5)
            assert guard.pool.in_flight == 0
        """,
    )
    result.assert_outcomes(passed=2)


def test_plugin_is_registered_through_the_entry_point(pytester: pytest.Pytester) -> None:
    """In a fresh interpreter the fixtures exist; -p no:recyclecheck removes them."""
    pytester.makepyfile(
        test_fixture="""
        def test_fixture(recyclecheck_sandbox, recyclecheck_guard, recyclecheck_decisions):
            recyclecheck_sandbox.never_reissued("+86 139 0013 9000")
            decision = recyclecheck_guard.check("+86 139 0013 9000", bound_at=__import__("datetime").date(2022, 5, 10))
            assert decision.allowed and recyclecheck_decisions.last is decision
        """
    )
    result = pytester.runpytest_subprocess(*STRICT)
    result.assert_outcomes(passed=1)
    disabled = pytester.runpytest_subprocess(*STRICT, "-p", "no:recyclecheck")
    disabled.assert_outcomes(errors=1)
    disabled.stdout.fnmatch_lines(["*fixture 'recyclecheck_sandbox' not found*"])


def test_fixture_reference_lists_every_fixture(pytester: pytest.Pytester) -> None:
    """pytest --fixtures shows each recyclecheck fixture with its docstring."""
    result = pytester.runpytest("--fixtures", "-p", "no:cacheprovider")
    for name in (
        "recyclecheck_sandbox",
        "recyclecheck_guard",
        "recyclecheck_decisions",
        "recyclecheck_fake_server",
        "recyclecheck_fake_server_env",
        "recyclecheck_responses",
    ):
        result.stdout.fnmatch_lines([f"{name} -- *pytest_plugin.py:*"])


def test_plugin_module_imports_no_test_extras() -> None:
    """Loading the plugin (as pytest does in every session) imports neither responses nor trustme."""
    code = (
        "import sys\n"
        "import recyclecheck.testing.pytest_plugin\n"
        "assert 'responses' not in sys.modules, 'responses'\n"
        "assert 'trustme' not in sys.modules, 'trustme'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
