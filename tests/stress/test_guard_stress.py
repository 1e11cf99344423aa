"""The Guard under forced thread switching: no check ever sticks, and each gets its own answer.

Every case runs its checks on daemon threads through :func:`run_together`, so a
stuck check fails the test with every thread's stack instead of hanging it.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping

import pytest

from recyclecheck import Action, Decision, Guard, MemoryCache, Reason, mask
from recyclecheck.exceptions import ProviderUnavailable
from recyclecheck.providers import Answer, LastChange, NoData, SandboxProvider

from ..crowd import rounds, run_together

#: Bound once for every number here: before each scripted change that should count.
BOUND = dt.date(2023, 6, 1)
REISSUED_ON = dt.date(2024, 3, 1)
#: Each demo number (and two unlisted ones) with the reason a check bound on BOUND must give.
DEMO = {
    "+8613800138000": Reason.REISSUED_AFTER_BINDING,
    "+8613900139000": Reason.NOT_REISSUED,
    "+8613700137000": Reason.NO_DATA,
    "+8615800158000": Reason.NOT_COVERED,
    "+8613600136000": Reason.NOT_REISSUED,
    "+14155552671": Reason.REISSUED_AFTER_BINDING,
    "+12025550134": Reason.NOT_REISSUED,
    "+8613812345678": Reason.NO_DATA,
    "+8613912345678": Reason.NO_DATA,
}
#: pytest-timeout's bound: far above each case's own (a stuck thread fails it at STUCK).
pytestmark = pytest.mark.timeout(60)
#: Seconds each thread keeps checking, and the bound after which a thread counts as stuck.
SPIN = 1.0
STUCK = 10.0
#: Scheduling allowance over a check's timeout under forced switching on a busy machine.
SLACK = 0.5
NEVER_OPEN = 10**9


def number(i: int) -> str:
    """The ``i``-th test number: a distinct, valid Chinese mobile number."""
    return f"+86138{i:08d}"


def expect(decision: Decision, e164: str, reason: Reason, *, provider: str) -> None:
    """The decision is the one this number must get (default policy), naming it masked."""
    assert decision.reason is reason, f"{mask(e164)}: {decision.reason} (wanted {reason})"
    wanted = Action.ALLOW if reason is Reason.NOT_REISSUED else Action.STEP_UP
    assert decision.action is wanted
    assert decision.masked_number == mask(e164)
    assert decision.provider == provider


def scripted(i: int) -> tuple[Answer, Reason]:
    """A provider answer for the ``i``-th number and the reason it must become."""
    kind = i % 3
    if kind == 0:
        return LastChange(REISSUED_ON), Reason.REISSUED_AFTER_BINDING
    if kind == 1:
        return LastChange(None), Reason.NOT_REISSUED
    return NoData(), Reason.NO_DATA


class Counting:
    """A custom provider answering from a table, counting calls per number.

    ``hold`` runs inside each lookup before it answers (to keep a flight open,
    or to call back into a Guard); the table's numbers answer as scripted,
    others raise what ``fail`` gives them, or ``NoData()``.
    """

    name = "counting"

    def __init__(
        self,
        answers: Mapping[str, Answer],
        *,
        hold: Callable[[str], None] | None = None,
        fail: Mapping[str, Exception] | None = None,
    ) -> None:
        self.answers = dict(answers)
        self.hold = hold
        self.fail = dict(fail or {})
        self.calls: Counter[str] = Counter()
        self.running = 0
        self.most_running = 0
        self._lock = threading.Lock()

    def lookup(self, e164: str, since: dt.date) -> Answer:
        with self._lock:
            self.calls[e164] += 1
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            if self.hold is not None:
                self.hold(e164)
            if e164 in self.fail:
                raise self.fail[e164]
            return self.answers.get(e164, NoData())
        finally:
            with self._lock:
                self.running -= 1


# -- (1) distinct numbers against the demo sandbox ------------------------------------------


@pytest.mark.parametrize(
    "cache",
    [
        pytest.param(None, id="default-cache"),
        pytest.param(lambda: MemoryCache(max_entries=0), id="no-cache"),
    ],
)
def test_distinct_numbers_against_the_demo_sandbox(
    cache: Callable[[], MemoryCache] | None,
) -> None:
    """Nine threads, each checking its own demo number over and over, never stick (issue 8 §1).

    Without a cache (and for the demo's no-data and not-covered numbers even
    with one) every check is a provider call that the sandbox answers at once,
    so a flight often lands before the caller has finished setting it up.
    """
    guard = Guard(SandboxProvider.demo(), timeout=5, cache=cache() if cache else None)

    def keep_checking(e164: str, reason: Reason) -> int:
        done = 0
        for _ in rounds(SPIN, 2_000):
            expect(guard.check(e164, bound_at=BOUND), e164, reason, provider="sandbox")
            done += 1
        return done

    tasks = [lambda n=n, r=r: keep_checking(n, r) for n, r in DEMO.items()]
    counts = run_together(tasks, within=STUCK, name="demo-check")
    assert all(count > 0 for count in counts)
    assert guard.breaker.state == "closed"


# -- (2) the same numbers from many threads: one provider call each -------------------------


def test_many_threads_checking_the_same_numbers_share_one_provider_call() -> None:
    """Sixteen threads check the same four numbers at once, round after round: one call each.

    Each lookup is held open until all sixteen checks of its round have
    started (and a little longer), so every check of a number joins the one
    flight, or, arriving after it landed, reads its fact from the cache.
    """
    threads, per_round, most_rounds = 16, 4, 12
    round_numbers = [
        [number(r * per_round + k) for k in range(per_round)] for r in range(most_rounds)
    ]
    outcomes = {
        e164: scripted(r * per_round + k)
        for r, numbers in enumerate(round_numbers)
        for k, e164 in enumerate(numbers)
    }
    # Only cacheable answers: a no-data answer is never cached, so a check arriving
    # after its flight landed would rightly ask again.
    for e164, (answer, _) in outcomes.items():
        if isinstance(answer, NoData):
            outcomes[e164] = (LastChange(None), Reason.NOT_REISSUED)
    entered: Counter[int] = Counter()
    all_in = threading.Condition()
    round_of = {e164: r for r, numbers in enumerate(round_numbers) for e164 in numbers}

    def hold(e164: str) -> None:
        with all_in:
            all_in.wait_for(lambda: entered[round_of[e164]] == threads, timeout=5)
        time.sleep(0.3)  # the last ones in are still on their way to the flight

    provider = Counting({n: a for n, (a, _) in outcomes.items()}, hold=hold)
    guard = Guard(provider, timeout=5, breaker_threshold=NEVER_OPEN)
    done_rounds: list[int] = []
    stop_at = time.monotonic() + 2 * SPIN
    going = [True]

    def decide() -> None:  # run by one thread as the barrier opens: all see one verdict
        going[0] = time.monotonic() < stop_at

    start = threading.Barrier(threads, action=decide)

    def checker(index: int) -> list[Decision]:
        decisions = []
        for r, numbers in enumerate(round_numbers):
            start.wait(STUCK)
            if not going[0]:
                break
            e164 = numbers[index % per_round]
            with all_in:
                entered[r] += 1
                all_in.notify_all()
            decision = guard.check(e164, bound_at=BOUND)
            expect(decision, e164, outcomes[e164][1], provider="counting")
            decisions.append(decision)
            if index == 0:
                done_rounds.append(r)
        return decisions

    results = run_together(
        [lambda i=i: checker(i) for i in range(threads)], within=STUCK + 4 * SPIN, name="same"
    )
    checked = {n for numbers in round_numbers[: len(done_rounds)] for n in numbers}
    assert len(done_rounds) >= 2
    assert dict(provider.calls) == dict.fromkeys(checked, 1)
    assert sum(len(d) for d in results) == threads * len(done_rounds)
    # The callers that waited on the flight were not served from the cache; the rest were.
    assert any(not d.cached for decisions in results for d in decisions)


# -- (3) fast, failing and too-slow custom providers ----------------------------------------


def test_a_provider_that_answers_at_once_from_many_threads() -> None:
    """Twelve threads check six shared numbers with no cache: every check is a fresh flight."""
    numbers = [number(i) for i in range(6)]
    outcomes = {e164: scripted(i) for i, e164 in enumerate(numbers)}
    provider = Counting({n: a for n, (a, _) in outcomes.items()})
    guard = Guard(provider, timeout=5, cache=MemoryCache(max_entries=0))

    def keep_checking(offset: int) -> int:
        done = 0
        for i in rounds(SPIN, 5_000):
            e164 = numbers[(offset + i) % len(numbers)]
            expect(guard.check(e164, bound_at=BOUND), e164, outcomes[e164][1], provider="counting")
            done += 1
        return done

    counts = run_together([lambda o=o: keep_checking(o) for o in range(12)], within=STUCK)
    # Concurrent checks of one number may share a call, never make more than one each.
    assert 0 < sum(provider.calls.values()) <= sum(counts)
    assert guard.breaker.state == "closed"


def test_a_provider_that_raises_fails_only_its_own_numbers() -> None:
    """Numbers whose lookup raises become provider_unavailable; the healthy ones are unaffected."""
    numbers = [number(i) for i in range(8)]
    failing = {
        numbers[1]: RuntimeError("boom"),
        numbers[4]: ProviderUnavailable("down", provider="counting"),
        numbers[7]: KeyError(numbers[7]),  # its text must reach no log (the autouse check)
    }
    outcomes = {e164: scripted(i) for i, e164 in enumerate(numbers)}
    provider = Counting({n: a for n, (a, _) in outcomes.items()}, fail=failing)
    guard = Guard(
        provider, timeout=5, cache=MemoryCache(max_entries=0), breaker_threshold=NEVER_OPEN
    )

    def keep_checking(offset: int) -> int:
        done = 0
        for i in rounds(SPIN, 5_000):
            e164 = numbers[(offset + i) % len(numbers)]
            wanted = Reason.PROVIDER_UNAVAILABLE if e164 in failing else outcomes[e164][1]
            expect(guard.check(e164, bound_at=BOUND), e164, wanted, provider="counting")
            done += 1
        return done

    counts = run_together([lambda o=o: keep_checking(o) for o in range(10)], within=STUCK)
    assert all(counts)
    assert set(provider.calls) == set(numbers)


def test_a_failing_provider_opens_the_circuit_once_and_stays_bounded() -> None:
    """Under concurrent failures the breaker opens, and later checks make no provider call."""
    threshold, threads = 5, 10
    provider = Counting({}, fail={number(i): RuntimeError("down") for i in range(200)})
    guard = Guard(provider, timeout=5, breaker_threshold=threshold, breaker_recovery=60)

    def keep_checking(offset: int) -> int:
        done = 0
        for i in rounds(SPIN / 2, 20):
            e164 = number(offset * 20 + i)
            decision = guard.check(e164, bound_at=BOUND)
            expect(decision, e164, Reason.PROVIDER_UNAVAILABLE, provider="counting")
            done += 1
        return done

    run_together([lambda o=o: keep_checking(o) for o in range(threads)], within=STUCK)
    assert guard.breaker.state == "open"
    # Calls that passed allow() before the circuit opened may still have been made.
    assert threshold <= sum(provider.calls.values()) <= threshold + threads


@pytest.mark.parametrize("lands", [False, True], ids=["hangs-until-released", "sleeps-3x-deadline"])
def test_a_provider_slower_than_the_deadline_never_holds_a_check(lands: bool) -> None:
    """A lookup that outlives the deadline (and then lands, or not till the end): each check
    answers in time, and no more lookups run at once than there are slots."""
    timeout, max_workers = 0.1, 4
    release = threading.Event()

    def slow(_e164: str) -> None:
        if lands:
            time.sleep(3 * timeout)
        else:
            release.wait(STUCK)

    provider = Counting({}, hold=slow)
    guard = Guard(provider, timeout=timeout, max_workers=max_workers, breaker_threshold=NEVER_OPEN)
    worst: list[float] = []

    def keep_checking(offset: int) -> int:
        done = 0
        for i in rounds(SPIN, 400):  # refused checks are instant: enough to outlast a lookup
            e164 = number(offset * 1000 + i)
            started = time.monotonic()
            decision = guard.check(e164, bound_at=BOUND)
            worst.append(max(time.monotonic() - started, decision.elapsed))
            expect(decision, e164, Reason.PROVIDER_UNAVAILABLE, provider="counting")
            done += 1
        return done

    try:
        run_together([lambda o=o: keep_checking(o) for o in range(8)], within=STUCK)
    finally:
        release.set()
    assert max(worst) <= timeout + SLACK, f"a check took {max(worst):.3f}s"
    # Late lookups hold their slots: never more of them at once than max_workers.
    assert 0 < provider.most_running <= max_workers
    if lands:  # slots came back as lookups landed: more calls than slots were made
        assert sum(provider.calls.values()) > max_workers


# -- (8) re-entrancy: the Guard called again from its own hook and its own provider -----------


def test_an_on_decision_hook_that_checks_again() -> None:
    """A hook calling guard.check for another number, from many threads, never sticks."""
    primary = {number(i): scripted(i) for i in range(0, 6)}
    shadow = {number(100 + i): scripted(i + 1) for i in range(0, 6)}
    table = {n: a for n, (a, _) in {**primary, **shadow}.items()}
    inner: list[tuple[str, Decision]] = []
    guard: Guard

    def hook(decision: Decision) -> None:
        for i, e164 in enumerate(primary):
            if decision.masked_number == mask(e164):
                other = list(shadow)[i]
                inner.append((other, guard.check(other, bound_at=BOUND)))

    guard = Guard(Counting(table), timeout=5, cache=MemoryCache(max_entries=0), on_decision=hook)

    def keep_checking(offset: int) -> int:
        done = 0
        for i in rounds(SPIN, 2_000):
            e164 = list(primary)[(offset + i) % len(primary)]
            expect(guard.check(e164, bound_at=BOUND), e164, primary[e164][1], provider="counting")
            done += 1
        return done

    counts = run_together([lambda o=o: keep_checking(o) for o in range(8)], within=STUCK)
    assert len(inner) == sum(counts)
    for other, decision in inner:
        expect(decision, other, shadow[other][1], provider="counting")


def test_a_provider_whose_lookup_checks_another_number() -> None:
    """A custom provider that calls guard.check (for a number it answers directly) never sticks."""
    outer = {number(i): scripted(i) for i in range(6)}
    nested = {number(200 + i): scripted(i + 2) for i in range(6)}
    pairs = dict(zip(outer, nested, strict=True))
    inner: list[tuple[str, Decision]] = []
    guard: Guard

    def hold(e164: str) -> None:
        if e164 in pairs:
            other = pairs[e164]
            inner.append((other, guard.check(other, bound_at=BOUND)))

    table = {n: a for n, (a, _) in {**outer, **nested}.items()}
    # Each outer lookup holds a slot while its inner one needs another.
    guard = Guard(
        Counting(table, hold=hold), timeout=5, cache=MemoryCache(max_entries=0), max_workers=32
    )

    def keep_checking(offset: int) -> int:
        done = 0
        for i in rounds(SPIN, 2_000):
            e164 = list(outer)[(offset + i) % len(outer)]
            expect(guard.check(e164, bound_at=BOUND), e164, outer[e164][1], provider="counting")
            done += 1
        return done

    counts = run_together([lambda o=o: keep_checking(o) for o in range(8)], within=STUCK)
    assert all(counts)
    assert inner
    for other, decision in inner:
        expect(decision, other, nested[other][1], provider="counting")


def test_a_provider_whose_lookup_checks_its_own_number_is_bounded() -> None:
    """A lookup that checks the number it is looking up waits on its own flight: bounded, not stuck.

    The inner check joins the outer check's flight and waits out its own
    deadline; the outer caller gets provider_unavailable at its deadline (or,
    woken a moment late, the no-data answer the lookup gave once the inner
    check had given up), and the worker is free again.
    """
    timeout = 0.2
    guard: Guard
    inner: list[Decision] = []

    def hold(e164: str) -> None:
        inner.append(guard.check(e164, bound_at=BOUND))

    guard = Guard(
        Counting({}, hold=hold),
        timeout=timeout,
        cache=MemoryCache(max_entries=0),
        breaker_threshold=NEVER_OPEN,
    )

    def check_once(i: int) -> Decision:
        return guard.check(number(300 + i), bound_at=BOUND)

    decisions = run_together([lambda i=i: check_once(i) for i in range(6)], within=STUCK)
    for i, decision in enumerate(decisions):
        assert decision.masked_number == mask(number(300 + i))
        assert decision.reason in (Reason.PROVIDER_UNAVAILABLE, Reason.NO_DATA)
        assert decision.action is Action.STEP_UP
        assert decision.elapsed <= timeout + SLACK
    settle = time.monotonic() + STUCK
    while guard.pool.in_flight and time.monotonic() < settle:
        time.sleep(0.01)
    assert guard.pool.in_flight == 0, "a lookup that checked its own number never ended"
    assert len(inner) == 6
    assert {d.reason for d in inner} == {Reason.PROVIDER_UNAVAILABLE}
