"""Guard: the one call, its deadline, cache reuse, single flight, breaker and retries."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
import weakref
from typing import Any

import pytest

from recyclecheck import (
    Action,
    ConfigurationError,
    Decision,
    Guard,
    InvalidInput,
    InvalidPhoneNumber,
    MemoryCache,
    Policy,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderUnavailable,
    Reason,
)
from recyclecheck._resilience import WorkerPool
from recyclecheck.providers import ChangedSince, LastChange, NoData, NotCovered, SandboxProvider

from .crowd import run_together
from .fakes import HangingProvider, ScriptedProvider, in_turn

UTC = dt.timezone.utc
CN = "+8613800138000"
BOUND = dt.datetime(2022, 5, 10, 8, 30, tzinfo=UTC)
SLACK = 0.1  # what "a few milliseconds" may stretch to on a loaded 2-core CI machine


@pytest.fixture(autouse=True, params=["check", "acheck"])
def driver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The Guard's contract holds through ``check`` and through ``await acheck``."""
    if request.param == "acheck":

        def check_by_awaiting(self: Guard, phone: Any, **options: Any) -> Decision:
            return asyncio.run(Guard.acheck(self, phone, **options))

        monkeypatch.setattr(Guard, "check", check_by_awaiting)
    return str(request.param)


def guard(provider: object, **kwargs: object) -> Guard:
    return Guard(provider, **kwargs)  # type: ignore[arg-type]


# -- the basic journey -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "bound", "action", "reason"),
    [
        ("+86 138 0013 8000", dt.date(2022, 5, 10), Action.STEP_UP, Reason.REISSUED_AFTER_BINDING),
        ("+86 139 0013 9000", dt.date(2022, 5, 10), Action.ALLOW, Reason.NOT_REISSUED),
        ("+86 137 0013 7000", dt.date(2022, 5, 10), Action.STEP_UP, Reason.NO_DATA),
        ("+86 158 0015 8000", dt.date(2023, 3, 1), Action.STEP_UP, Reason.NOT_COVERED),
        ("+86 136 0013 6000", dt.date(2021, 9, 15), Action.ALLOW, Reason.NOT_REISSUED),
        ("+86 135 0013 5000", dt.date(2021, 9, 15), Action.STEP_UP, Reason.NO_DATA),
    ],
)
def test_demo_sandbox_journeys(phone: str, bound: dt.date, action: Action, reason: Reason) -> None:
    """The demo data covers reissued, never reissued, no data, not covered and old reissues."""
    decision = Guard(SandboxProvider.demo()).check(phone, bound_at=bound)
    assert (decision.action, decision.reason) == (action, reason)
    assert decision.provider == "sandbox"
    assert decision.since == bound - dt.timedelta(days=1)
    assert decision.step_up_required is (action is not Action.ALLOW)


def test_decision_carries_the_change_date_and_masked_number() -> None:
    """reissued_on, masked_number and elapsed are filled in; the full number is nowhere."""
    decision = Guard(SandboxProvider.demo()).check(CN, bound_at=BOUND)
    assert decision.reissued_on == dt.date(2024, 3, 1)
    assert decision.masked_number == "+86 138****8000"
    assert 0 <= decision.elapsed < 1
    assert "13800138000" not in repr(decision)
    assert decision.to_dict()["reason"] == "reissued_after_binding"


def test_decision_is_frozen() -> None:
    """Decisions are immutable values."""
    decision = Guard(SandboxProvider.demo()).check(CN, bound_at=BOUND)
    with pytest.raises(AttributeError):
        decision.action = Action.ALLOW  # type: ignore[misc]


def test_deny_counts_as_step_up_required() -> None:
    """step_up_required is True for DENY so a naive branch never lets it in."""
    decision = Guard(SandboxProvider.demo(), policy=Policy(on_reissued=Action.DENY)).check(
        CN, bound_at=BOUND
    )
    assert decision.action is Action.DENY
    assert decision.step_up_required
    assert not decision.allowed


def test_national_format_needs_a_region() -> None:
    """default_region and the per-call region both work; per-call wins."""
    provider = ScriptedProvider()
    assert Guard(provider, default_region="CN").check("13800138000", bound_at=BOUND).allowed
    assert Guard(provider).check("13800138000", bound_at=BOUND, region="CN").allowed
    assert provider.calls[0][0] == CN
    with pytest.raises(InvalidPhoneNumber):
        Guard(provider).check("13800138000", bound_at=BOUND)


@pytest.mark.parametrize(
    ("phone", "bound_at", "error"),
    [
        ("not a number", BOUND, InvalidPhoneNumber),
        (None, BOUND, InvalidPhoneNumber),
        (CN, dt.datetime(2022, 5, 10, 8, 30), InvalidInput),
        (CN, dt.datetime.now(UTC) + dt.timedelta(hours=1), InvalidInput),
        (CN, "2022-05-10", InvalidInput),
    ],
)
def test_bad_input_raises_before_any_provider_call(
    phone: object, bound_at: object, error: type
) -> None:
    """Only caller mistakes raise out of check, and they raise before any I/O."""
    provider = ScriptedProvider()
    with pytest.raises(error):
        guard(provider).check(phone, bound_at=bound_at)  # type: ignore[attr-defined]
    assert provider.count == 0


def test_bad_input_raises_even_when_the_number_is_cached() -> None:
    """A cached number still gets its bound_at validated."""
    g = Guard(ScriptedProvider())
    g.check(CN, bound_at=BOUND)
    with pytest.raises(InvalidInput):
        g.check(CN, bound_at=dt.datetime(2022, 5, 10))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout": 0},
        {"timeout": -1},
        {"timeout": 61},
        {"timeout": "1"},
        {"max_workers": 0},
        {"breaker_threshold": 0},
        {"secret": b"short"},
        {"policy": "strict"},
        {"on_decision": 42},
        {"default_region": "XX"},
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, object]) -> None:
    """Nonsense options fail at construction, not at the first login."""
    with pytest.raises((ConfigurationError, InvalidInput)):
        guard(ScriptedProvider(), **kwargs)


def test_provider_must_look_like_a_provider() -> None:
    """Something without name and lookup is refused."""
    with pytest.raises(ConfigurationError):
        guard(object())


def test_timeout_accepts_timedelta() -> None:
    """Durations may be given as timedelta, like stamina."""
    assert Guard(ScriptedProvider(), timeout=dt.timedelta(milliseconds=250)).timeout == 0.25


# -- the cache ---------------------------------------------------------------------------


def test_fact_reuse_makes_no_provider_call() -> None:
    """A second check answered by the cached fact does not call the provider."""
    provider = ScriptedProvider(lambda n, s: LastChange(dt.date(2024, 3, 1)))
    g = Guard(provider)
    first = g.check(CN, bound_at=BOUND)
    second = g.check("+86 138-0013-8000", bound_at=dt.date(2023, 1, 1))
    assert provider.count == 1
    assert not first.cached
    assert second.cached
    assert second.reason is Reason.REISSUED_AFTER_BINDING
    assert second.reissued_on == dt.date(2024, 3, 1)


def test_change_fact_does_not_answer_a_later_binding_once_stale() -> None:
    """A binding after the known change needs a fresh quiet observation."""
    provider = ScriptedProvider(lambda n, s: LastChange(dt.date(2024, 3, 1)))
    fresh = Guard(provider)
    fresh.check(CN, bound_at=BOUND)
    assert fresh.check(CN, bound_at=dt.date(2024, 6, 1)).cached
    stale = Guard(provider, cache=MemoryCache(ttl=0))  # quiet claims are stale at once
    stale.check(CN, bound_at=BOUND)
    before = provider.count
    assert stale.check(CN, bound_at=dt.date(2023, 1, 1)).cached
    decision = stale.check(CN, bound_at=dt.date(2024, 6, 1))
    assert decision.reason is Reason.NOT_REISSUED
    assert not decision.cached
    assert provider.count == before + 1


def test_boolean_facts_are_reused_monotonically() -> None:
    """ "Changed since S" answers earlier questions; "quiet since S" answers later ones."""
    changed = ScriptedProvider(lambda n, since: ChangedSince(since, True))
    g = Guard(changed)
    g.check(CN, bound_at=dt.date(2023, 1, 1))
    assert g.check(CN, bound_at=dt.date(2022, 1, 1)).cached
    assert not g.check(CN, bound_at=dt.date(2023, 6, 1)).cached
    quiet = ScriptedProvider(lambda n, since: ChangedSince(since, False))
    g = Guard(quiet)
    g.check(CN, bound_at=dt.date(2023, 1, 1))
    assert g.check(CN, bound_at=dt.date(2024, 1, 1)).cached
    assert not g.check(CN, bound_at=dt.date(2022, 1, 1)).cached
    assert quiet.count == 2


@pytest.mark.parametrize(
    "behave",
    [
        lambda n, s: NoData(),
        lambda n, s: NotCovered(),
    ],
)
def test_unknowns_are_not_cached(behave: object) -> None:
    """No data and not covered are asked again every time."""
    provider = ScriptedProvider(behave)  # type: ignore[arg-type]
    g = Guard(provider)
    g.check(CN, bound_at=BOUND)
    g.check(CN, bound_at=BOUND)
    assert provider.count == 2


def test_errors_are_not_cached() -> None:
    """A failure is not remembered: the next check asks again."""

    def fail(n: str, s: dt.date) -> LastChange:
        raise ProviderResponseError("bad", provider="scripted")

    provider = ScriptedProvider(fail)
    g = Guard(provider, breaker_threshold=100)
    assert g.check(CN, bound_at=BOUND).reason is Reason.PROVIDER_UNAVAILABLE
    assert g.check(CN, bound_at=BOUND).reason is Reason.PROVIDER_UNAVAILABLE
    assert provider.count == 2


def test_cache_keys_are_keyed_hmacs_and_depend_on_the_secret() -> None:
    """The same secret gives the same key across Guards; no number in any key."""
    cache_a, cache_b, cache_c = MemoryCache(), MemoryCache(), MemoryCache()
    Guard(ScriptedProvider(), cache=cache_a, secret=b"s" * 32).check(CN, bound_at=BOUND)
    Guard(ScriptedProvider(), cache=cache_b, secret=b"s" * 32).check(CN, bound_at=BOUND)
    Guard(ScriptedProvider(), cache=cache_c).check(CN, bound_at=BOUND)
    assert cache_a.keys() == cache_b.keys()
    assert cache_a.keys() != cache_c.keys()
    for key in cache_a.keys() + cache_c.keys():
        assert "13800138000" not in key
        assert "8613800138000" not in key


def test_a_broken_cache_never_fails_a_login() -> None:
    """Cache errors are logged and ignored; the provider still answers."""

    class BrokenCache:
        ttl = 60.0
        change_ttl = 60.0
        shared = False

        def get(self, key: str) -> None:
            raise OSError("down")

        def set(self, key: str, fact: object) -> None:
            raise OSError("down")

    decision = Guard(ScriptedProvider(), cache=BrokenCache()).check(CN, bound_at=BOUND)  # type: ignore[arg-type]
    assert decision.reason is Reason.NOT_REISSUED


# -- single flight ---------------------------------------------------------------------


def test_concurrent_checks_of_one_number_share_one_provider_call() -> None:
    """200 simultaneous checks of one number make one provider call and agree."""
    provider = ScriptedProvider(lambda n, s: LastChange(dt.date(2024, 3, 1)), delay=0.2)
    g = Guard(provider, timeout=5)
    start = threading.Barrier(200)
    results: list[Decision] = []
    lock = threading.Lock()

    def run() -> None:
        start.wait(10)
        decision = g.check(CN, bound_at=BOUND)
        with lock:
            results.append(decision)

    run_together([run] * 200, within=30)
    assert provider.count == 1
    assert len(results) == 200
    assert {(d.action, d.reason, d.reissued_on) for d in results} == {
        (Action.STEP_UP, Reason.REISSUED_AFTER_BINDING, dt.date(2024, 3, 1))
    }


def test_many_threads_with_different_numbers_do_not_cross_talk() -> None:
    """64 threads checking 64 numbers each get their own number's answer."""
    numbers = [f"+86138{i:08d}" for i in range(64)]
    reissued = {n for i, n in enumerate(numbers) if i % 2}
    provider = ScriptedProvider(
        lambda n, s: LastChange(dt.date(2024, 3, 1) if n in reissued else None), delay=0.01
    )
    g = Guard(provider, timeout=5, max_workers=64)
    out: dict[str, Reason] = {}
    lock = threading.Lock()

    def run(number: str) -> None:
        for _ in range(5):
            decision = g.check(number, bound_at=BOUND)
            with lock:
                assert out.setdefault(number, decision.reason) is decision.reason

    run_together([lambda n=n: run(n) for n in numbers], within=30)
    for number in numbers:
        expected = Reason.REISSUED_AFTER_BINDING if number in reissued else Reason.NOT_REISSUED
        assert out[number] is expected


# -- the deadline ------------------------------------------------------------------------


def test_a_provider_that_never_returns_cannot_hold_the_login() -> None:
    """check returns within timeout plus a few milliseconds with provider_unavailable."""
    provider = HangingProvider()
    try:
        g = Guard(provider, timeout=0.2)
        started = time.monotonic()
        decision = g.check(CN, bound_at=BOUND)
        elapsed = time.monotonic() - started
        assert decision.reason is Reason.PROVIDER_UNAVAILABLE
        assert decision.action is Action.STEP_UP
        assert 0.2 <= elapsed < 0.2 + SLACK
    finally:
        provider.release.set()


def test_a_hanging_provider_cannot_pile_up_threads() -> None:
    """With every worker stuck, further checks answer at once and no thread is added."""
    provider = HangingProvider()
    try:
        g = Guard(provider, timeout=0.05, max_workers=4, breaker_threshold=1_000)
        for i in range(40):
            g.check(f"+86138{i:08d}", bound_at=BOUND)
        assert g.pool.threads <= 4
        assert provider.started <= 4
        decision = g.check("+8613999999999", bound_at=BOUND)
        assert decision.reason is Reason.PROVIDER_UNAVAILABLE
        assert decision.elapsed < 0.02  # the check's own time (an event loop's start-up aside)
    finally:
        provider.release.set()


@pytest.mark.parametrize(
    "exc",
    [RuntimeError("boom"), KeyError("x"), TypeError(), ZeroDivisionError(), RecursionError()],
)
def test_a_provider_raising_anything_gives_provider_unavailable(exc: BaseException) -> None:
    """User-written providers may raise anything; check still returns a Decision."""

    def fail(n: str, s: dt.date) -> LastChange:
        raise exc

    decision = Guard(ScriptedProvider(fail)).check(CN, bound_at=BOUND)
    assert decision.reason is Reason.PROVIDER_UNAVAILABLE
    assert decision.action is Action.STEP_UP


@pytest.mark.parametrize("junk", [None, True, "not_reissued", {"changed": False}, Action.ALLOW])
def test_a_provider_returning_junk_never_allows(junk: object) -> None:
    """Only real Answer values are believed, even under fail_open."""
    for policy in (Policy(), Policy.fail_open()):
        decision = Guard(ScriptedProvider(lambda n, s: junk), policy=policy).check(  # type: ignore[arg-type,return-value]
            CN, bound_at=BOUND
        )
        assert decision.reason is Reason.PROVIDER_UNAVAILABLE


# -- retries -----------------------------------------------------------------------------


def test_one_retry_for_a_retryable_failure() -> None:
    """A transient failure is retried exactly once within the deadline."""
    provider = ScriptedProvider(in_turn(ProviderUnavailable("503", status=503), LastChange(None)))
    assert Guard(provider).check(CN, bound_at=BOUND).reason is Reason.NOT_REISSUED
    assert provider.count == 2


def test_never_more_than_one_retry() -> None:
    """Two transient failures give provider_unavailable after exactly two calls."""

    def down(n: str, s: dt.date) -> LastChange:
        raise ProviderUnavailable("503", status=503)

    provider = ScriptedProvider(down)
    assert Guard(provider).check(CN, bound_at=BOUND).reason is Reason.PROVIDER_UNAVAILABLE
    assert provider.count == 2


def test_non_retryable_failures_are_not_retried() -> None:
    """Malformed answers are not asked for twice."""

    def bad(n: str, s: dt.date) -> LastChange:
        raise ProviderResponseError("bad")

    provider = ScriptedProvider(bad)
    Guard(provider).check(CN, bound_at=BOUND)
    assert provider.count == 1


def test_retry_after_is_honoured_only_if_it_fits() -> None:
    """A short Retry-After is waited out once; a long one is not waited for."""
    provider = ScriptedProvider(
        in_turn(ProviderRateLimited("429", retry_after=0.05), LastChange(None))
    )
    assert Guard(provider, timeout=1).check(CN, bound_at=BOUND).reason is Reason.NOT_REISSUED
    assert provider.count == 2

    def long_wait(n: str, s: dt.date) -> LastChange:
        raise ProviderRateLimited("429", retry_after=21_600)

    provider = ScriptedProvider(long_wait)
    started = time.monotonic()
    decision = Guard(provider, timeout=1).check(CN, bound_at=BOUND)
    assert decision.reason is Reason.PROVIDER_UNAVAILABLE
    assert time.monotonic() - started < 0.1
    assert provider.count == 1


# -- the circuit breaker -------------------------------------------------------------


def test_breaker_opens_answers_fast_and_recovers() -> None:
    """After repeated failures no call is made; after recovery_time one probe closes it."""
    state = {"down": True}

    def behave(n: str, s: dt.date) -> LastChange:
        if state["down"]:
            raise ProviderResponseError("bad")
        return LastChange(None)

    provider = ScriptedProvider(behave)
    g = Guard(provider, breaker_threshold=3, breaker_recovery=0.2)
    for i in range(3):
        g.check(f"+86138{i:08d}", bound_at=BOUND)
    assert g.breaker.state == "open"
    calls = provider.count
    spent = 0.0
    for i in range(100):
        decision = g.check(f"+86139{i:08d}", bound_at=BOUND)
        assert decision.reason is Reason.PROVIDER_UNAVAILABLE
        spent += decision.elapsed  # the check's own time (an event loop's start-up aside)
    assert provider.count == calls
    assert spent / 100 < 0.001
    state["down"] = False
    time.sleep(0.25)
    assert g.check("+8613700000001", bound_at=BOUND).reason is Reason.NOT_REISSUED
    assert g.breaker.state == "closed"


def test_a_failed_probe_reopens_the_circuit() -> None:
    """Half-open lets one probe through; its failure opens the circuit again."""

    def down(n: str, s: dt.date) -> LastChange:
        raise ProviderResponseError("bad")

    provider = ScriptedProvider(down)
    g = Guard(provider, breaker_threshold=2, breaker_recovery=0.1)
    g.check("+8613800000001", bound_at=BOUND)
    g.check("+8613800000002", bound_at=BOUND)
    time.sleep(0.15)
    before = provider.count
    g.check("+8613800000003", bound_at=BOUND)
    assert provider.count == before + 1
    assert g.breaker.state == "open"
    g.check("+8613800000004", bound_at=BOUND)
    assert provider.count == before + 1


def test_cached_answers_are_served_while_the_circuit_is_open() -> None:
    """An open circuit does not hide facts already known."""
    state = {"down": False}

    def behave(n: str, s: dt.date) -> LastChange:
        if state["down"]:
            raise ProviderResponseError("bad")
        return LastChange(dt.date(2024, 3, 1))

    g = Guard(ScriptedProvider(behave), breaker_threshold=1)
    g.check(CN, bound_at=BOUND)
    state["down"] = True
    g.check("+8613900000000", bound_at=BOUND)
    assert g.breaker.state == "open"
    decision = g.check(CN, bound_at=BOUND)
    assert decision.cached
    assert decision.reason is Reason.REISSUED_AFTER_BINDING


# -- hooks and logging ------------------------------------------------------------------


def test_on_decision_sees_every_decision_and_cannot_break_the_login() -> None:
    """The metrics hook is called; its exceptions are swallowed."""
    seen: list[Decision] = []
    g = Guard(SandboxProvider.demo(), on_decision=seen.append)
    g.check(CN, bound_at=BOUND)
    g.check(CN, bound_at=BOUND)
    assert [d.cached for d in seen] == [False, True]

    def explode(decision: Decision) -> None:
        raise RuntimeError("metrics down")

    decision = Guard(SandboxProvider.demo(), on_decision=explode).check(CN, bound_at=BOUND)
    assert decision.reason is Reason.REISSUED_AFTER_BINDING


def test_decisions_are_logged_with_stable_reason_strings(caplog: pytest.LogCaptureFixture) -> None:
    """The recyclecheck logger records masked number, action and reason."""
    caplog.set_level("INFO", logger="recyclecheck")
    Guard(SandboxProvider.demo()).check(CN, bound_at=BOUND)
    record = next(r for r in caplog.records if r.name == "recyclecheck")
    message = record.getMessage()
    assert "+86 138****8000" in message
    assert "reason=reissued_after_binding" in message
    assert "action=step_up" in message


def test_breaker_transitions_and_pool_saturation_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Operators can alert on the circuit opening, closing and on a saturated pool."""
    caplog.set_level("WARNING", logger="recyclecheck")
    state = {"down": True}

    def behave(n: str, s: dt.date) -> LastChange:
        if state["down"]:
            raise ProviderResponseError("bad")
        return LastChange(None)

    g = Guard(ScriptedProvider(behave), breaker_threshold=2, breaker_recovery=0.05)
    g.check("+8613800000001", bound_at=BOUND)
    g.check("+8613800000002", bound_at=BOUND)
    state["down"] = False
    time.sleep(0.06)
    g.check("+8613800000003", bound_at=BOUND)
    messages = [r.getMessage() for r in caplog.records]
    assert any("circuit opened: provider=scripted" in m for m in messages)
    assert any("circuit closed: provider=scripted" in m for m in messages)

    provider = HangingProvider()
    try:
        hung = Guard(provider, timeout=0.02, max_workers=1, breaker_threshold=1_000)
        hung.check("+8613800000004", bound_at=BOUND)
        hung.check("+8613800000005", bound_at=BOUND)
    finally:
        provider.release.set()
    assert any("PoolSaturated" in r.getMessage() for r in caplog.records)


def test_a_worker_is_free_once_its_caller_has_the_answer() -> None:
    """A caller that got its answer and submits again at once is never refused.

    The worker used to count as busy until it had also run the future's done
    callbacks (the Guard's own runs there), so with as many concurrent logins
    as max_workers some were refused as PoolSaturated against a healthy
    provider.  Here the callback is held open while the caller submits again.
    """
    pool = WorkerPool(1)
    go, in_callback, release = threading.Event(), threading.Event(), threading.Event()
    first = pool.submit(lambda: go.wait(5))
    assert first is not None
    first.add_done_callback(lambda _f: (in_callback.set(), release.wait(5)))
    go.set()
    try:
        assert first.result(timeout=5) is True
        assert in_callback.wait(5)
        second = pool.submit(lambda: "answered")
        assert second is not None, "refused while the only worker had already answered"
    finally:
        release.set()
    assert second.result(timeout=5) == "answered"
    # The first thread was still busy in the callback: a second thread took the task.
    assert pool.threads == 2


def test_policy_and_region_mistakes_are_configuration_errors() -> None:
    """Setting up a Guard wrongly raises ConfigurationError, not InvalidInput."""
    with pytest.raises(ConfigurationError):
        Guard(ScriptedProvider(), default_region="XX")
    with pytest.raises(ConfigurationError):
        Policy(on_reissued=Action.ALLOW)


def test_an_idle_worker_keeps_nothing_of_its_last_lookup() -> None:
    """Once a lookup is answered, the worker holds no reference to its task.

    The task's closure holds the E.164 number; an idle worker used to keep its
    last one until the next lookup came, for as long as the process lived.
    """

    class Task:
        def __call__(self) -> str:
            return "answered"

    pool = WorkerPool(1)
    task = Task()
    gone = threading.Event()
    alive = weakref.ref(task, lambda _ref: gone.set())
    future = pool.submit(task)
    assert future is not None
    assert future.result(timeout=5) == "answered"
    del task, future
    assert gone.wait(5), f"the idle worker still refers to its task: {alive()!r}"
    assert pool.threads == 1
