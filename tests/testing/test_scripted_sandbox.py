"""ScriptedSandbox and DecisionLog: the objects behind the pytest fixtures, used directly."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator

import pytest

import recyclecheck.testing
from recyclecheck import (
    Action,
    ConfigurationError,
    Decision,
    Guard,
    ProviderAuthError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
    Reason,
)
from recyclecheck.providers import ChangedSince, LastChange, NoData, NotCovered, SandboxProvider
from recyclecheck.testing import DecisionLog, RecordedLookup, ScriptedSandbox

CN, CN_OTHER = "+8613800138000", "+8613900139000"
SINCE = dt.date(2022, 5, 9)
BOUND = dt.date(2022, 5, 10)


@pytest.fixture
def sandbox() -> Iterator[ScriptedSandbox]:
    sandbox = ScriptedSandbox()
    yield sandbox
    sandbox.release()


# -- answers ---------------------------------------------------------------------------


def test_each_helper_scripts_its_answer(sandbox: ScriptedSandbox) -> None:
    """The helpers script exactly the answers SandboxProvider would give."""
    sandbox.reissued(CN, on=dt.date(2024, 3, 1))
    assert sandbox.lookup(CN, SINCE) == LastChange(dt.date(2024, 3, 1))
    sandbox.reissued("+86 138 0013 8000", on="2024-03-02", covered_since="2021-01-27")
    assert sandbox.lookup(CN, SINCE) == LastChange(dt.date(2024, 3, 2), dt.date(2021, 1, 27))
    sandbox.never_reissued(CN)
    assert sandbox.lookup(CN, SINCE) == LastChange(None)
    sandbox.never_reissued(CN, covered_since=dt.date(2023, 1, 1))
    assert sandbox.lookup(CN, SINCE) == LastChange(None, dt.date(2023, 1, 1))
    sandbox.no_data(CN)
    assert sandbox.lookup(CN, SINCE) == NoData()
    sandbox.not_covered(CN)
    assert sandbox.lookup(CN, SINCE) == NotCovered()
    sandbox.script(CN, ChangedSince(SINCE, True))
    assert sandbox.lookup(CN, SINCE) == ChangedSince(SINCE, True)
    assert sandbox.lookup(CN_OTHER, SINCE) == NoData()


def test_starts_from_a_script_and_takes_the_demo() -> None:
    """The constructor and update() take anything SandboxProvider takes, the demo included."""
    sandbox = ScriptedSandbox({CN: None}, name="inhouse")
    assert sandbox.name == "inhouse"
    assert sandbox.lookup(CN, SINCE) == LastChange(None)
    sandbox.update(SandboxProvider.demo().scripted)
    assert sandbox.lookup(CN, SINCE) == LastChange(dt.date(2024, 3, 1))
    assert "numbers=" in repr(sandbox)
    assert "8000" not in repr(sandbox)


@pytest.mark.parametrize(
    "bad",
    [
        lambda s: s.reissued(CN, on=dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)),
        lambda s: s.reissued(CN, on="March 1st"),
        lambda s: s.reissued(CN, on=20240301),
        lambda s: s.never_reissued(CN, covered_since="2021-13-01"),
        lambda s: s.reissued("not a number", on="2024-03-01"),
        lambda s: s.script(CN, "reissued"),
        lambda s: s.down(error=RuntimeError),
        lambda s: s.down(error="down"),
        lambda s: s.down("not a number"),
        lambda s: s.slow(-1),
        lambda s: s.slow("1"),
        lambda s: s.up("12"),
        lambda s: s.guard(isolate="yes"),
        lambda s: s.guard(timeout=0),
        lambda s: s.lookups_of("12"),
    ],
)
def test_bad_scripts_are_configuration_errors(sandbox: ScriptedSandbox, bad: object) -> None:
    """Dates, numbers, errors, delays and options are validated before anything changes."""
    with pytest.raises(ConfigurationError):
        bad(sandbox)  # type: ignore[operator]


def test_bad_name() -> None:
    """The name is validated like SandboxProvider's."""
    with pytest.raises(ConfigurationError):
        ScriptedSandbox(name="")


# -- outages ---------------------------------------------------------------------------


def test_down_takes_a_class_or_an_instance_and_raises_a_fresh_copy(
    sandbox: ScriptedSandbox,
) -> None:
    """down() raises the error (a new copy per lookup); up() restores the script underneath."""
    sandbox.never_reissued(CN)
    sandbox.down()
    with pytest.raises(ProviderUnavailable) as first:
        sandbox.lookup(CN, SINCE)
    with pytest.raises(ProviderUnavailable) as second:
        sandbox.lookup(CN, SINCE)
    assert first.value is not second.value
    assert first.value.provider == "sandbox"
    sandbox.down(error=ProviderRateLimited("busy", retry_after=3))
    with pytest.raises(ProviderRateLimited) as limited:
        sandbox.lookup(CN, SINCE)
    assert limited.value.retry_after == 3
    sandbox.up()
    assert sandbox.lookup(CN, SINCE) == LastChange(None)


def test_a_numbers_outage_wins_and_up_number_leaves_the_provider_down(
    sandbox: ScriptedSandbox,
) -> None:
    """Per-number outages win over the provider's; up(number) ends only the number's."""
    sandbox.never_reissued(CN)
    sandbox.never_reissued(CN_OTHER)
    sandbox.down("+86 138 0013 8000", error=ProviderAuthError)
    assert sandbox.lookup(CN_OTHER, SINCE) == LastChange(None)
    with pytest.raises(ProviderAuthError):
        sandbox.lookup(CN, SINCE)
    sandbox.down(error=ProviderTimeout)
    with pytest.raises(ProviderAuthError):
        sandbox.lookup(CN, SINCE)
    sandbox.up(CN)
    with pytest.raises(ProviderTimeout):
        sandbox.lookup(CN, SINCE)
    sandbox.up()
    assert sandbox.lookup(CN, SINCE) == LastChange(None)


def test_slow_and_hang_outside_a_check(sandbox: ScriptedSandbox) -> None:
    """Without a deadline, slow() delays the answer and hang() fails at once."""
    sandbox.never_reissued(CN)
    sandbox.slow(dt.timedelta(milliseconds=50))
    started = time.monotonic()
    assert sandbox.lookup(CN, SINCE) == LastChange(None)
    assert time.monotonic() - started >= 0.05
    sandbox.hang()
    started = time.monotonic()
    with pytest.raises(ProviderTimeout):
        sandbox.lookup(CN, SINCE)
    assert time.monotonic() - started < 0.05


def test_hang_ends_at_the_guards_deadline_without_a_retry(sandbox: ScriptedSandbox) -> None:
    """A hung lookup holds until the deadline: one lookup, provider_unavailable after timeout."""
    sandbox.never_reissued(CN)
    sandbox.hang(CN)
    guard = sandbox.guard(timeout=0.2)
    decision = guard.check(CN, bound_at=BOUND)
    assert decision.reason is Reason.PROVIDER_UNAVAILABLE
    assert 0.18 <= decision.elapsed < 0.3
    assert len(sandbox.lookups) == 1
    assert guard.check(CN_OTHER, bound_at=BOUND).reason is Reason.NO_DATA


def test_release_ends_waiting_lookups_without_a_retry(sandbox: ScriptedSandbox) -> None:
    """release() (and any script change) ends a waiting lookup at once; the Guard does not retry it."""
    sandbox.slow(30)
    guard = sandbox.guard(timeout=30)
    result: list[Decision] = []
    thread = threading.Thread(
        target=lambda: result.append(guard.check(CN, bound_at=BOUND)), daemon=True
    )
    thread.start()
    while not sandbox.lookups:
        time.sleep(0.005)
    sandbox.no_data(CN_OTHER)  # any script change releases
    thread.join(5)
    assert not thread.is_alive()
    assert result[0].reason is Reason.PROVIDER_UNAVAILABLE
    assert len(sandbox.lookups) == 1


# -- Guards ----------------------------------------------------------------------------


def test_isolated_guards_forget_on_every_change(sandbox: ScriptedSandbox) -> None:
    """An isolated Guard's cache and breaker are reset by a script change; others are not."""
    isolated = sandbox.guard(timeout=0.2, breaker_threshold=2)
    production = sandbox.guard(timeout=0.2, breaker_threshold=2, isolate=False)
    sandbox.never_reissued(CN)
    for guard in (isolated, production):
        assert guard.check(CN, bound_at=BOUND).action is Action.ALLOW
    sandbox.reissued(CN, on="2024-03-01")
    assert isolated.check(CN, bound_at=BOUND).reason is Reason.REISSUED_AFTER_BINDING
    stale = production.check(CN, bound_at=BOUND)
    assert (stale.reason, stale.cached) == (Reason.NOT_REISSUED, True)

    sandbox.down()
    for guard in (isolated, production):
        for _ in range(2):
            guard.check(CN_OTHER, bound_at=BOUND)
        assert guard.breaker.state == "open"
    sandbox.up()
    assert isolated.breaker.state == "closed"
    assert isolated.check(CN_OTHER, bound_at=BOUND).reason is Reason.NO_DATA
    assert production.breaker.state == "open"


def test_guard_options_reach_the_guard(sandbox: ScriptedSandbox) -> None:
    """guard(**options) passes Guard's keyword arguments through."""
    log = DecisionLog()
    guard = sandbox.guard(timeout=0.3, default_region="CN", on_decision=log)
    assert isinstance(guard, Guard)
    assert (guard.timeout, guard.provider, guard.provider_name) == (0.3, sandbox, "sandbox")
    guard.check("138 0013 8000", bound_at=BOUND)
    assert log.reasons == [Reason.NO_DATA]


def test_concurrent_checks_and_script_changes(sandbox: ScriptedSandbox) -> None:
    """Many threads checking while the script changes: every decision is one of the scripted ones."""
    guard = sandbox.guard(timeout=1.0, max_workers=32)
    numbers = [f"+86138{index:08d}" for index in range(40)]
    for number in numbers:
        sandbox.never_reissued(number)
    reasons: list[Reason] = []
    stop = threading.Event()

    def work(number: str) -> None:
        while not stop.is_set():
            reasons.append(guard.check(number, bound_at=BOUND).reason)

    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in numbers[:16]]
    for thread in threads:
        thread.start()
    for number in numbers:
        sandbox.reissued(number, on="2024-03-01")
    stop.set()
    for thread in threads:
        thread.join(5)
    assert not any(thread.is_alive() for thread in threads)
    assert reasons
    assert set(reasons) <= {Reason.NOT_REISSUED, Reason.REISSUED_AFTER_BINDING}
    assert guard.check(numbers[0], bound_at=BOUND).reason is Reason.REISSUED_AFTER_BINDING


# -- records ---------------------------------------------------------------------------


def test_lookups_are_recorded_with_masked_reprs(sandbox: ScriptedSandbox) -> None:
    """Every lookup is recorded (E.164 and since); reprs mask the number; reset() forgets."""
    guard = sandbox.guard()
    guard.check("+86 138 0013 8000", bound_at=BOUND)
    guard.check(CN_OTHER, bound_at=BOUND)
    assert sandbox.lookups == [RecordedLookup(CN, SINCE), RecordedLookup(CN_OTHER, SINCE)]
    assert sandbox.lookups_of("+86 138 0013 8000") == [RecordedLookup(CN, SINCE)]
    text = repr(sandbox.lookups)
    assert "+86 138****8000" in text
    assert "0013" not in text
    assert sandbox.lookups[0].masked == "+86 138****8000"
    sandbox.reissued(CN, on="2024-03-01")
    sandbox.down()
    sandbox.reset()
    assert sandbox.lookups == []
    assert sandbox.lookup(CN, SINCE) == NoData()


# -- DecisionLog -----------------------------------------------------------------------


def _decision(reason: Reason, action: Action) -> Decision:
    return Decision(
        action=action,
        reason=reason,
        since=SINCE,
        provider="sandbox",
        masked_number="+86 138****8000",
    )


def test_decision_log_is_a_read_only_sequence() -> None:
    """Calling the log records; it indexes, slices, iterates, and summarises actions and reasons."""
    log = DecisionLog()
    with pytest.raises(IndexError, match="no decision"):
        _ = log.last
    first = _decision(Reason.NOT_REISSUED, Action.ALLOW)
    second = _decision(Reason.NO_DATA, Action.STEP_UP)
    log(first)
    log(second)
    assert len(log) == 2
    assert (log[0], log[-1], log.last) == (first, second, second)
    assert log[:1] == [first]
    assert list(log) == [first, second]
    assert log.actions == ["allow", "step_up"]
    assert log.reasons == [Reason.NOT_REISSUED, "no_data"]
    assert repr(log) == "<DecisionLog 2 decisions: not_reissued, no_data>"
    log.clear()
    assert len(log) == 0


def test_public_names_are_exported_and_documented() -> None:
    """The new kit names are in recyclecheck.testing's __all__, with docstrings on every method."""
    for name in ("DecisionLog", "RecordedLookup", "ScriptedSandbox"):
        assert name in recyclecheck.testing.__all__
        cls = getattr(recyclecheck.testing, name)
        assert cls.__doc__
        for member, value in vars(cls).items():
            if not member.startswith("_") and callable(value):
                assert value.__doc__, f"{name}.{member}"
            if isinstance(value, property):
                assert value.fget is not None
                assert value.fget.__doc__, f"{name}.{member}"
