"""Routing by country with fallback inside one deadline, per-provider lanes, and facts
that combine across providers (a reissue reported by any of them wins)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest

from recyclecheck import (
    Action,
    ConfigurationError,
    Fallback,
    Guard,
    MemoryCache,
    Reason,
    Route,
    Router,
)
from recyclecheck.exceptions import ProviderTimeout, ProviderUnavailable
from recyclecheck.providers import ChangedSince, LastChange, NoData, NotCovered, SandboxProvider

BOUND = dt.date(2022, 5, 10)
CN = "+8613800138000"
US = "+12015550124"
GB = "+447400123456"


class Scripted:
    """A provider answering from a function, counting calls (thread-safe)."""

    def __init__(self, name: str, answer: Any, *, delay: float = 0.0) -> None:
        self.name = name
        self.answer = answer
        self.delay = delay
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def lookup(self, number: str, since: dt.date) -> Any:
        with self._lock:
            self.calls.append(number)
        if self.delay:
            time.sleep(self.delay)
        answer = self.answer(number, since) if callable(self.answer) else self.answer
        if isinstance(answer, BaseException):
            raise answer
        return answer


def quiet(name: str, **options: Any) -> Scripted:
    return Scripted(name, lambda _n, since: ChangedSince(since, False), **options)


def test_each_number_takes_its_route() -> None:
    """Region routes win over calling-code routes; the rest take the default chain."""
    aliyun, rnd, camara, uk = quiet("aliyun"), quiet("rnd"), quiet("camara"), quiet("uk")
    router = Router({"+86": [aliyun], "+1": [rnd], "GB": [uk]}, default=[camara])
    guard = Guard(router, timeout=1)
    assert guard.check(CN, bound_at=BOUND).provider == "aliyun"
    assert guard.check(US, bound_at=BOUND).provider == "rnd"
    assert guard.check(GB, bound_at=BOUND).provider == "uk"
    assert guard.check("+33612345678", bound_at=BOUND).provider == "camara"
    assert (len(aliyun.calls), len(rnd.calls), len(uk.calls), len(camara.calls)) == (1, 1, 1, 1)


def test_a_number_no_route_covers_is_not_covered() -> None:
    guard = Guard(Router({"+86": [quiet("aliyun")]}), timeout=1)
    decision = guard.check(US, bound_at=BOUND)
    assert (decision.action, decision.reason) == (Action.STEP_UP, Reason.NOT_COVERED)
    assert decision.provider == "router"


@pytest.mark.parametrize(
    "first_answer",
    [NotCovered(), NoData(), ProviderUnavailable("down", provider="rnd", retryable=False)],
    ids=["not-covered", "no-data", "failure"],
)
def test_the_next_provider_is_asked_after_an_unknown(first_answer: Any) -> None:
    """Decision.provider names the provider whose answer decided."""
    first, second = Scripted("rnd", first_answer), quiet("twilio")
    guard = Guard(Router({"+1": [first, second]}), timeout=1)
    decision = guard.check(US, bound_at=BOUND)
    assert (decision.action, decision.reason, decision.provider) == (
        Action.ALLOW,
        Reason.NOT_REISSUED,
        "twilio",
    )
    assert len(first.calls) == len(second.calls) == 1


@pytest.mark.parametrize(
    ("first_answer", "reason"),
    [
        (NotCovered(), Reason.NOT_COVERED),
        (NoData(), Reason.NO_DATA),
        (ProviderUnavailable("down", provider="rnd"), Reason.PROVIDER_UNAVAILABLE),
    ],
)
def test_fallback_is_configurable_per_route(first_answer: Any, reason: Reason) -> None:
    """A route that does not fall back on this kind of answer stops at the first provider."""
    kinds = {Reason.NOT_COVERED: "not_covered", Reason.NO_DATA: "no_data"}
    others = [f for f in ("not_covered", "no_data", "failure") if f != kinds.get(reason, "failure")]
    first, second = Scripted("rnd", first_answer), quiet("twilio")
    route = Route([first, second], fall_back_on=others)
    decision = Guard(Router({"+1": route}), timeout=1).check(US, bound_at=BOUND)
    assert (decision.reason, decision.provider) == (reason, "rnd")
    assert second.calls == []


def test_a_definite_answer_stops_the_walk() -> None:
    first = Scripted("rnd", LastChange(dt.date(2024, 3, 1)))
    second = quiet("twilio")
    decision = Guard(Router({"+1": [first, second]}), timeout=1).check(US, bound_at=BOUND)
    assert (decision.reason, decision.provider) == (Reason.REISSUED_AFTER_BINDING, "rnd")
    assert decision.reissued_on == dt.date(2024, 3, 1)
    assert second.calls == []


def test_when_every_provider_falls_back_the_last_one_decides() -> None:
    first, second = Scripted("rnd", NoData()), Scripted("twilio", NotCovered())
    decision = Guard(Router({"+1": [first, second]}), timeout=1).check(US, bound_at=BOUND)
    assert (decision.action, decision.reason, decision.provider) == (
        Action.STEP_UP,
        Reason.NOT_COVERED,
        "twilio",
    )


def test_a_hanging_first_provider_leaves_time_for_the_second() -> None:
    """The first of two providers gets half the budget; the second answers in time."""
    hanging = Scripted("rnd", NoData(), delay=5)
    second = quiet("twilio")
    guard = Guard(Router({"+1": [hanging, second]}), timeout=0.6)
    started = time.monotonic()
    decision = guard.check(US, bound_at=BOUND)
    wall = time.monotonic() - started
    assert (decision.reason, decision.provider) == (Reason.NOT_REISSUED, "twilio")
    assert 0.3 - 0.05 <= wall <= 0.6 + 0.1
    assert guard.lanes["rnd"].breaker.state == "closed"  # one timeout, under the threshold


def test_one_providers_outage_neither_blocks_nor_poisons_another() -> None:
    """Each provider has its own breaker: rnd's open circuit skips rnd, not twilio."""
    failing = Scripted("rnd", ProviderUnavailable("down", provider="rnd", retryable=False))
    healthy = quiet("twilio")
    cn = quiet("aliyun")
    guard = Guard(
        Router({"+1": [failing, healthy], "+86": [cn]}),
        timeout=1,
        breaker_threshold=3,
        cache=MemoryCache(max_entries=0),
    )
    for _ in range(6):
        decision = guard.check(US, bound_at=BOUND)
        assert (decision.reason, decision.provider) == (Reason.NOT_REISSUED, "twilio")
        assert guard.check(CN, bound_at=BOUND).reason is Reason.NOT_REISSUED
    assert guard.lanes["rnd"].breaker.state == "open"
    assert guard.lanes["twilio"].breaker.state == "closed"
    assert guard.lanes["aliyun"].breaker.state == "closed"
    assert len(failing.calls) == 3  # the open circuit stopped the calls
    assert len(healthy.calls) == 6


@pytest.mark.parametrize("order", [("rnd", "twilio"), ("twilio", "rnd")])
def test_a_reissue_any_provider_reported_wins_over_anothers_quiet(order: tuple[str, str]) -> None:
    """Cached facts combine: a "not reissued" from one never erases another's reissue."""
    providers = {
        "rnd": Scripted("rnd", LastChange(dt.date(2024, 3, 1))),
        "twilio": quiet("twilio"),
    }
    guard = Guard(Router({"+1": [providers[name] for name in order]}), timeout=1)
    # Each provider's fact lands in its own cache namespace, whichever answered.
    for name in order:
        lane = guard.lanes[name]
        lane.remember(lane.cache_key(US), providers[name].lookup(US, dt.date(2022, 5, 9)))
    decision = guard.check(US, bound_at=BOUND)
    assert decision.cached
    assert (decision.reason, decision.provider) == (Reason.REISSUED_AFTER_BINDING, "rnd")


def test_facts_live_in_each_providers_own_namespace() -> None:
    """The same number's facts from two providers are stored under different keys."""
    rnd, twilio = Scripted("rnd", NoData()), quiet("twilio")
    cache = MemoryCache()
    guard = Guard(Router({"+1": [rnd, twilio]}), timeout=1, cache=cache)
    guard.check(US, bound_at=BOUND)
    assert cache.keys() == [guard.lanes["twilio"].cache_key(US)]
    again = guard.check(US, bound_at=BOUND)
    assert (again.cached, again.provider) == (True, "twilio")
    assert len(rnd.calls) == 1  # the cached fact answered; nobody was asked again


def test_router_lookup_walks_the_chain_on_its_own() -> None:
    router = Router({"+1": [Scripted("rnd", NotCovered()), quiet("twilio")]})
    assert router.lookup(US, dt.date(2022, 5, 9)) == ChangedSince(dt.date(2022, 5, 9), False)
    assert router.lookup(CN, dt.date(2022, 5, 9)) == NotCovered()
    failing = Router({"+1": [Scripted("rnd", ProviderTimeout("slow", provider="rnd"))]})
    with pytest.raises(ProviderTimeout):
        failing.lookup(US, dt.date(2022, 5, 9))


@pytest.mark.parametrize(
    "build",
    [
        lambda: Router({"+999": [quiet("a")]}),  # not a calling code
        lambda: Router({"XX": [quiet("a")]}),  # not a region
        lambda: Router({"+1": [quiet("a"), quiet("a")]}),  # twice in one chain
        lambda: Router({"+1": [quiet("a")]}, default=[quiet("a")]),  # one name, two providers
        lambda: Router({"+1": [Router({})]}),  # routers do not nest
        lambda: Router({"+1": Route([quiet("a")], fall_back_on=["sometimes"])}),
        lambda: Router([("+1", quiet("a"))]),  # type: ignore[arg-type]
    ],
)
def test_routing_mistakes_are_configuration_errors(build: Any) -> None:
    with pytest.raises(ConfigurationError):
        build()


def test_fallback_values_are_stable_strings() -> None:
    assert [str(f) for f in Fallback] == ["not_covered", "no_data", "failure"]


def test_a_router_of_the_demo_sandbox_decides_like_the_sandbox() -> None:
    sandbox = SandboxProvider.demo()
    direct = Guard(sandbox, timeout=1)
    routed = Guard(Router({}, default=[SandboxProvider.demo()]), timeout=1)
    for number in ("+86 138 0013 8000", "+86 139 0013 9000", "+86 137 0013 7000"):
        a, b = direct.check(number, bound_at=BOUND), routed.check(number, bound_at=BOUND)
        assert (a.action, a.reason, a.reissued_on) == (b.action, b.reason, b.reissued_on)
