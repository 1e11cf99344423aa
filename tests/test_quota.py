"""Provider quotas: a refusal, not a queue.

The in-process bucket with an injected clock; the Guard with a quota (an empty
bucket answers ``provider_unavailable`` at once, the provider is not called and
the breaker never hears of it; cached and joined checks take no token; a quota
per provider behind a Router); the Redis bucket against a real redis-server
(one bucket for a fleet, never more calls than ``burst + rate x elapsed``;
Redis down or a black hole degrades to the in-process bucket within the
deadline; the event loop never waits on Redis); the ``from_url`` builders; and
stress under forced thread switching.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from recyclecheck import (
    Action,
    ConfigurationError,
    Fact,
    Guard,
    Quota,
    Reason,
    RedisCache,
    RedisTokenBucket,
    Route,
    Router,
    TokenBucket,
)
from recyclecheck._redis_client import FAST_SOCKET_TIMEOUT
from recyclecheck.providers import Answer, LastChange

from .crowd import rounds, run_together
from .fakes import ScriptedProvider
from .rawserver import free_port
from .redisserver import RedisServer

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError:  # pragma: no cover - the tests extra installs redis; Redis tests skip
    redis = None

pytestmark = pytest.mark.timeout(60)

BOUND = dt.date(2023, 6, 1)
SECRET = b"cache-secret-0123456789abcdef"
#: A check answered without a provider call should take microseconds; this is the
#: allowance for a busy two-core machine, far below any provider's latency here.
AT_ONCE = 0.1
#: Scheduling allowance over a deadline on a busy machine.
SLACK = 0.25
#: Socket timeouts of the clients of tests that need Redis to answer: on a loaded
#: two-core machine a redis-server can miss 50 ms, and the bucket would then (rightly)
#: pace locally, which those tests are not about.
STEADY = 0.25


def number(i: int) -> str:
    """The ``i``-th test number: a distinct, valid Chinese mobile number."""
    return f"+86138{i:08d}"


def us_number(i: int) -> str:
    """The ``i``-th test number in the US (a valid New Jersey number)."""
    return f"+1201555{i:04d}"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def drain(quota: Quota, most: int = 10_000) -> int:
    """Take every token there is now; return how many."""
    taken = 0
    while taken < most and quota.try_acquire():
        taken += 1
    return taken


def frozen_bucket(burst: int) -> TokenBucket:
    """A bucket whose clock never moves: exactly ``burst`` tokens, ever."""
    return TokenBucket(rate=1.0, burst=burst, clock=Clock())


def rate_limited_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "rate limited" in r.getMessage()]


# == the in-process bucket ================================================================


def test_bucket_starts_full_then_refuses() -> None:
    """``burst`` tokens at once, then none until time passes; refusals answer at once."""
    bucket = TokenBucket(rate=2, burst=3, clock=Clock())
    assert [bucket.try_acquire() for _ in range(5)] == [True, True, True, False, False]


def test_bucket_refills_at_its_rate() -> None:
    """``rate`` tokens a second come back, a fraction of a token grants nothing."""
    clock = Clock()
    bucket = TokenBucket(rate=4, burst=2, clock=clock)
    assert drain(bucket) == 2
    clock.advance(0.25)  # one token
    assert drain(bucket) == 1
    clock.advance(0.125)  # half a token
    assert drain(bucket) == 0
    clock.advance(0.125)  # the other half
    assert drain(bucket) == 1
    clock.advance(0.5)  # two tokens
    assert drain(bucket) == 2


def test_bucket_never_holds_more_than_burst() -> None:
    """However long it stays idle, a bucket holds ``burst`` tokens at most."""
    clock = Clock()
    bucket = TokenBucket(rate=100, burst=5, clock=clock)
    drain(bucket)
    clock.advance(3600)
    assert drain(bucket) == 5


def test_inexact_clock_steps_still_add_up_to_whole_tokens() -> None:
    """Ten steps of 0.1 s at 10 a second give a token each, though 0.1 is no binary fraction."""
    clock = Clock(100.2)
    bucket = TokenBucket(rate=10, burst=1, clock=clock)
    assert drain(bucket) == 1
    for _ in range(10):
        clock.now = round(clock.now + 0.1, 10)  # 100.3 - 100.2 == 0.0999999999999943
        assert drain(bucket) == 1


def test_a_clock_reading_from_the_past_adds_nothing() -> None:
    """A stale reading (a thread that read the clock before another) neither adds nor stalls."""
    clock = Clock()
    bucket = TokenBucket(rate=1, burst=1, clock=clock)
    assert drain(bucket) == 1
    clock.advance(-10)
    assert drain(bucket) == 0
    clock.advance(10.5)  # half a second after the last reading counted
    assert drain(bucket) == 0
    clock.advance(0.5)
    assert drain(bucket) == 1


def test_bucket_reads_its_clock_outside_its_lock() -> None:
    """User code (the injected clock) never runs under the bucket's lock."""
    holder: list[TokenBucket] = []
    seen: list[bool] = []

    def clock() -> float:
        if holder:
            seen.append(holder[0]._lock.locked())
        return 5.0

    bucket = TokenBucket(rate=1, burst=2, clock=clock)
    holder.append(bucket)
    drain(bucket)
    assert seen
    assert not any(seen)


def test_bucket_is_exact_across_threads() -> None:
    """Eight threads racing for a frozen bucket take exactly ``burst`` tokens between them."""
    bucket = frozen_bucket(50)
    counts = run_together([lambda: drain(bucket, 1000) for _ in range(8)], within=20)
    assert sum(counts) == 50
    assert drain(bucket) == 0


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"rate": 0, "burst": 1}, "rate"),
        ({"rate": -1, "burst": 1}, "rate"),
        ({"rate": float("nan"), "burst": 1}, "rate"),
        ({"rate": float("inf"), "burst": 1}, "rate"),
        ({"rate": True, "burst": 1}, "rate"),
        ({"rate": "10", "burst": 1}, "rate"),
        ({"rate": 1, "burst": 0}, "burst"),
        ({"rate": 1, "burst": 1.5}, "burst"),
        ({"rate": 1, "burst": True}, "burst"),
        ({"rate": 1, "burst": 1, "clock": 5.0}, "clock"),
    ],
    ids=repr,
)
def test_bucket_options_are_checked(options: dict[str, Any], match: str) -> None:
    """Rates that are not positive and finite, bursts that are not positive ints: refused."""
    with pytest.raises(ConfigurationError, match=match):
        TokenBucket(**options)


def test_buckets_are_quotas() -> None:
    """Both buckets satisfy the public Quota protocol; repr shows the pace."""
    assert isinstance(TokenBucket(rate=1, burst=1), Quota)
    assert repr(TokenBucket(rate=2.5, burst=3)) == "<TokenBucket rate=2.5/s burst=3>"
    assert isinstance(object(), Quota) is False


# == the Guard with a quota ===============================================================


def test_empty_bucket_answers_at_once_without_the_provider(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No token: provider_unavailable at once, no call, logged as rate limited, breaker closed."""
    provider = ScriptedProvider(name="paced", delay=0.3)
    guard = Guard(provider, quota=frozen_bucket(1), breaker_threshold=2, timeout=0.8)
    first = guard.check(number(1), bound_at=BOUND)
    assert (first.action, first.reason) == (Action.ALLOW, Reason.NOT_REISSUED)
    with caplog.at_level(logging.INFO, logger="recyclecheck"):
        refused = [guard.check(number(i), bound_at=BOUND) for i in range(2, 22)]
    for decision in refused:
        assert (decision.action, decision.reason) == (Action.STEP_UP, Reason.PROVIDER_UNAVAILABLE)
        assert (decision.provider, decision.cached) == ("paced", False)
        assert decision.elapsed < AT_ONCE  # the provider takes 0.3 s: it was never waited for
    assert provider.count == 1
    assert guard.breaker.state == "closed"  # 20 refusals, threshold 2: the provider did no wrong
    assert guard.pool.in_flight == 0
    lines = rate_limited_lines(caplog)
    assert len(lines) == 20
    assert lines[0] == (
        "recyclecheck rate limited: provider=paced quota empty, answered without a call"
    )
    assert not [r for r in caplog.records if "provider failure" in r.getMessage()]


def test_an_empty_bucket_is_never_a_wait_even_when_tokens_come_soon() -> None:
    """A token due in 200 ms is not waited for: the check is refused now."""
    provider = ScriptedProvider(name="paced")
    guard = Guard(provider, quota=TokenBucket(rate=5, burst=1))
    guard.check(number(1), bound_at=BOUND)
    refused = guard.check(number(2), bound_at=BOUND)
    assert refused.reason is Reason.PROVIDER_UNAVAILABLE
    assert refused.elapsed < AT_ONCE
    time.sleep(0.21)
    assert guard.check(number(3), bound_at=BOUND).reason is Reason.NOT_REISSUED
    assert provider.count == 2


def test_cached_checks_take_no_token() -> None:
    """Checks answered from the cache leave the bucket alone."""
    provider = ScriptedProvider(name="paced")
    guard = Guard(provider, quota=frozen_bucket(2))
    assert guard.check(number(1), bound_at=BOUND).cached is False
    for _ in range(10):
        again = guard.check(number(1), bound_at=BOUND)
        assert (again.reason, again.cached) == (Reason.NOT_REISSUED, True)
    assert guard.check(number(2), bound_at=BOUND).reason is Reason.NOT_REISSUED  # token two
    assert guard.check(number(3), bound_at=BOUND).reason is Reason.PROVIDER_UNAVAILABLE
    assert provider.count == 2


def test_joining_a_call_in_flight_takes_no_token() -> None:
    """Eight logins of one number share one call and one token."""
    release = threading.Event()

    def held(number: str, since: dt.date) -> Answer:
        release.wait(10)
        return LastChange(None)

    provider = ScriptedProvider(held, name="paced")
    guard = Guard(provider, quota=frozen_bucket(2), timeout=5)

    def login() -> Reason:
        return guard.check(number(1), bound_at=BOUND).reason

    def release_soon() -> Reason:
        time.sleep(0.3)  # every login has joined the call by then
        release.set()
        return Reason.NOT_REISSUED

    reasons = run_together([login] * 8 + [release_soon], within=20)
    assert set(reasons) == {Reason.NOT_REISSUED}
    assert provider.count == 1
    assert guard.check(number(2), bound_at=BOUND).reason is Reason.NOT_REISSUED  # token two
    assert guard.check(number(3), bound_at=BOUND).reason is Reason.PROVIDER_UNAVAILABLE


def test_a_quota_per_provider_behind_a_router() -> None:
    """Each provider draws on its own bucket; a refusal falls back to the next provider."""
    first = ScriptedProvider(name="first")
    second = ScriptedProvider(name="second")
    router = Router({"+86": [first, second]}, default=[second])
    guard = Guard(
        router, quota={"first": frozen_bucket(1), "second": frozen_bucket(2)}, breaker_threshold=1
    )
    decided = [
        guard.check(number(1), bound_at=BOUND),  # first's token
        guard.check(number(2), bound_at=BOUND),  # first refuses: second's token
        guard.check(us_number(1), bound_at=BOUND),  # second only: its last token
        guard.check(number(3), bound_at=BOUND),  # both refuse
    ]
    assert [(d.provider, d.reason) for d in decided] == [
        ("first", Reason.NOT_REISSUED),
        ("second", Reason.NOT_REISSUED),
        ("second", Reason.NOT_REISSUED),
        ("second", Reason.PROVIDER_UNAVAILABLE),
    ]
    assert (first.count, second.count) == (1, 2)
    assert {lane.breaker.state for lane in guard.lanes.values()} == {"closed"}


def test_a_route_that_does_not_fall_back_on_failure_stops_at_the_refusal() -> None:
    """The refusal is a failure like any other for the route's rules."""
    first = ScriptedProvider(name="first")
    second = ScriptedProvider(name="second")
    router = Router({"+86": Route((first, second), fall_back_on=["not_covered"])})
    guard = Guard(router, quota={"first": frozen_bucket(1)})
    guard.check(number(1), bound_at=BOUND)
    refused = guard.check(number(2), bound_at=BOUND)
    assert (refused.provider, refused.reason) == ("first", Reason.PROVIDER_UNAVAILABLE)
    assert (first.count, second.count) == (1, 0)


def test_one_quota_is_drawn_on_by_every_provider() -> None:
    """``quota=bucket`` paces all of a Router's providers together."""
    first = ScriptedProvider(name="first")
    second = ScriptedProvider(name="second")
    guard = Guard(Router({"+86": [first]}, default=[second]), quota=frozen_bucket(2))
    assert guard.check(number(1), bound_at=BOUND).reason is Reason.NOT_REISSUED
    assert guard.check(us_number(1), bound_at=BOUND).reason is Reason.NOT_REISSUED
    assert guard.check(number(2), bound_at=BOUND).reason is Reason.PROVIDER_UNAVAILABLE
    assert guard.check(us_number(2), bound_at=BOUND).reason is Reason.PROVIDER_UNAVAILABLE
    assert (first.count, second.count) == (1, 1)


@pytest.mark.parametrize(
    ("quota", "match"),
    [
        (42, "quota must be a Quota"),
        ("bucket", "quota must be a Quota"),
        (TokenBucket, "quota must be a Quota"),  # the class, not a bucket
        ({"twilo": TokenBucket(rate=1, burst=1)}, "'twilo', not among the Guard's providers"),
        ({"paced": 10}, r"quota\['paced'\] must be a Quota"),
        ({"paced": None}, r"quota\['paced'\] must be a Quota"),
    ],
    ids=["int", "str", "class", "unknown-name", "int-value", "none-value"],
)
def test_quota_configuration_is_checked(quota: object, match: str) -> None:
    """A quota that is not one, or one for a provider the Guard does not have, is refused."""
    with pytest.raises(ConfigurationError, match=match):
        Guard(ScriptedProvider(name="paced"), quota=quota)  # type: ignore[arg-type]


def test_a_quota_that_raises_refuses_and_never_fails_the_check(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A broken custom quota is a refusal (logged by type), not an exception or a failure."""

    class Broken:
        def try_acquire(self) -> bool:
            raise RuntimeError("quota store on fire: +8613800000001")

    provider = ScriptedProvider(name="paced", delay=0.3)
    guard = Guard(provider, quota=Broken(), breaker_threshold=1)
    with caplog.at_level(logging.WARNING, logger="recyclecheck"):
        decision = guard.check(number(1), bound_at=BOUND)
    assert decision.reason is Reason.PROVIDER_UNAVAILABLE
    assert decision.elapsed < 0.3  # one hand-off to a worker, no wait (the provider: 0.3 s)
    assert provider.count == 0
    assert guard.breaker.state == "closed"
    assert rate_limited_lines(caplog) == [
        "recyclecheck rate limited: provider=paced quota raised RuntimeError, "
        "answered without a call"
    ]


class Recorder:
    """A custom quota (so: one that may do I/O) recording the threads that ask it."""

    def __init__(self, guard_holder: list[Guard], grant: bool = True) -> None:
        self.threads: list[int] = []
        self.lane_locked: list[bool] = []
        self.grant = grant
        self._guards = guard_holder

    def try_acquire(self) -> bool:
        self.threads.append(threading.get_ident())
        for guard in self._guards:
            self.lane_locked.extend(lane._flights_lock.locked() for lane in guard.lanes.values())
        return self.grant


def test_a_quota_that_may_block_is_asked_on_a_worker_never_the_caller() -> None:
    """check() and acheck() both leave a custom quota to a worker thread, with no lock held."""
    guards: list[Guard] = []
    quota = Recorder(guards)
    guard = Guard(ScriptedProvider(name="paced"), quota=quota)
    guards.append(guard)
    caller = threading.get_ident()
    assert guard.check(number(1), bound_at=BOUND).reason is Reason.NOT_REISSUED

    async def main() -> int:
        await guard.acheck(number(2), bound_at=BOUND)
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert len(quota.threads) == 2
    assert caller not in quota.threads
    assert loop_thread not in quota.threads
    assert quota.lane_locked == [False, False]


class InlineReady(ScriptedProvider):
    """A provider that says every call may run on the caller's thread; records threads."""

    def __init__(self) -> None:
        super().__init__(name="inline")
        self.threads: list[int] = []

    def _inline_ready(self, e164: str) -> bool:
        return True

    def lookup(self, number: str, since: dt.date) -> Answer:
        self.threads.append(threading.get_ident())
        return super().lookup(number, since)


def test_an_in_process_bucket_keeps_the_inline_path() -> None:
    """With a TokenBucket the lookup still runs on the caller's thread, token included."""
    caller = threading.get_ident()
    seen_on: list[int] = []

    class Spying(TokenBucket):
        def try_acquire(self) -> bool:
            seen_on.append(threading.get_ident())
            return super().try_acquire()

    provider = InlineReady()
    guard = Guard(provider, quota=Spying(rate=1, burst=5))
    guard.check(number(1), bound_at=BOUND)
    assert provider.threads == [caller]
    assert seen_on == [caller]


def test_a_quota_that_may_block_never_runs_the_lookup_inline() -> None:
    """With any other quota (Redis), the inline path is off: token and lookup on a worker."""
    caller = threading.get_ident()
    provider = InlineReady()
    guard = Guard(provider, quota=Recorder([]))
    guard.check(number(1), bound_at=BOUND)
    assert provider.count == 1
    assert provider.threads[0] != caller


def test_acheck_refused_by_an_empty_bucket_answers_at_once() -> None:
    """The async path refuses the same way, without a worker."""
    provider = ScriptedProvider(name="paced", delay=0.3)
    guard = Guard(provider, quota=frozen_bucket(1))
    guard.check(number(1), bound_at=BOUND)

    async def main() -> list[Any]:
        return await asyncio.gather(*(guard.acheck(number(i), bound_at=BOUND) for i in range(9)))

    decisions = asyncio.run(main())
    refused = [d for d in decisions if d.reason is Reason.PROVIDER_UNAVAILABLE]
    assert len(refused) == 8  # number(1) is cached
    assert max(d.elapsed for d in refused) < AT_ONCE
    assert provider.count == 1


# == the Redis bucket =====================================================================

needs_redis = pytest.mark.redis


def unique_name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    conn = steady_client(redis_server)
    yield conn
    conn.close()


def steady_client(server: RedisServer) -> redis.Redis:
    """A client of the test server that waits long enough for a busy machine (still refused
    by nothing: within the 0.5 s a bucket accepts)."""
    return server.client(socket_timeout=STEADY, socket_connect_timeout=STEADY)


def refusing() -> TokenBucket:
    """A fallback with no token: a Redis timeout under load is then a refusal, never a grant,
    so a bound on the shared bucket's grants is a bound on the calls."""
    bucket = frozen_bucket(1)
    bucket.try_acquire()
    return bucket


def closed_port_client(**overrides: Any) -> redis.Redis:
    """A fast client for a port nothing listens on."""
    options: dict[str, Any] = {
        "socket_timeout": FAST_SOCKET_TIMEOUT,
        "socket_connect_timeout": FAST_SOCKET_TIMEOUT,
        "retry": Retry(NoBackoff(), 0),
    }
    options.update(overrides)
    return redis.Redis(host="127.0.0.1", port=free_port(), **options)


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port where the kernel completes every handshake and nobody ever answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


def hole_client(port: int, timeout: float = FAST_SOCKET_TIMEOUT) -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "redis quota" in r.getMessage()]


@needs_redis
def test_redis_bucket_is_one_bucket_for_every_process(redis_server: RedisServer) -> None:
    """Two clients, one name: one bucket; another name is another bucket."""
    name = unique_name()
    clients = [steady_client(redis_server), steady_client(redis_server)]
    try:
        here, there = (RedisTokenBucket(c, name=name, rate=0.001, burst=3) for c in clients)
        assert [here.try_acquire(), here.try_acquire()] == [True, True]
        assert [there.try_acquire(), there.try_acquire()] == [True, False]
        assert here.try_acquire() is False
        other = RedisTokenBucket(clients[0], name=unique_name(), rate=0.001, burst=1)
        assert [other.try_acquire(), other.try_acquire()] == [True, False]
        assert isinstance(here, Quota)
    finally:
        for c in clients:
            c.close()


@needs_redis
def test_redis_bucket_refills_on_the_servers_clock(client: redis.Redis) -> None:
    """Tokens come back at ``rate`` (real time), counted from Redis TIME, up to ``burst``."""
    bucket = RedisTokenBucket(client, name=unique_name(), rate=20, burst=2)
    started = time.monotonic()
    assert drain(bucket) == 2
    time.sleep(0.3)
    refilled = drain(bucket)
    elapsed = time.monotonic() - started
    assert 2 <= refilled <= 20 * elapsed  # ~6 after 0.3 s; never more than time allows
    seconds, micros = client.time()
    at = float(client.hget(bucket.key, "at"))
    assert abs(at - (seconds * 1_000_000 + micros)) < 5_000_000  # the server's clock, in µs
    time.sleep(0.15)
    assert drain(bucket) == 2  # capped at burst


@needs_redis
def test_redis_holds_one_key_per_bucket_and_no_number(client: redis.Redis) -> None:
    """After checks of many numbers Redis holds the bucket's key, which expires, and nothing else."""
    client.flushdb()
    name = unique_name()
    bucket = RedisTokenBucket(client, name=name, rate=1, burst=5, prefix="rc:quota:")
    guard = Guard(ScriptedProvider(name="paced"), quota=bucket)
    numbers = [number(i) for i in range(8)]
    for each in numbers:
        guard.check(each, bound_at=BOUND)
    assert client.keys("*") == [f"rc:quota:{name}".encode()]
    assert bucket.key == f"rc:quota:{name}"
    state = client.hgetall(bucket.key)
    assert set(state) == {b"tokens", b"at"}
    assert 0 < client.pttl(bucket.key) <= 6_000  # full again after 5 s: then it is not needed
    stored = b" ".join([bucket.key.encode(), *state.values()])
    for each in numbers:
        assert each[3:].encode() not in stored


@needs_redis
def test_redis_bucket_reloads_its_script(
    client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """After SCRIPT FLUSH (or a Redis restart) EVALSHA's NOSCRIPT loads the script again."""
    bucket = RedisTokenBucket(client, name=unique_name(), rate=0.001, burst=3)
    with caplog.at_level(logging.WARNING, logger="recyclecheck"):
        assert bucket.try_acquire() is True
        client.script_flush()
        assert bucket.try_acquire() is True
        assert bucket.try_acquire() is True
        assert bucket.try_acquire() is False  # Redis's count, not the fallback's fresh one
    assert outage_lines(caplog) == []
    assert bucket.fallback.try_acquire() is True  # the fallback was never used


@needs_redis
def test_two_guards_sharing_a_bucket_stay_under_its_pace(redis_server: RedisServer) -> None:
    """Two "processes", three threads each, 1.5 s: calls <= burst + rate x elapsed in total."""
    rate, burst, spin = 20.0, 5, 1.5
    name = unique_name()
    clients = [steady_client(redis_server), steady_client(redis_server)]
    providers = [ScriptedProvider(name="fleet"), ScriptedProvider(name="fleet")]
    guards = [
        Guard(
            p,
            quota=RedisTokenBucket(c, name=name, rate=rate, burst=burst, fallback=refusing()),
            max_workers=8,
            timeout=2,
        )
        for p, c in zip(providers, clients, strict=True)
    ]
    serial = itertools.count()

    def login_loop(guard: Guard) -> list[Reason]:
        reasons = []
        for _ in rounds(spin, 100_000):
            reasons.append(guard.check(number(next(serial)), bound_at=BOUND).reason)
        return reasons

    try:
        started = time.monotonic()
        results = run_together(
            [lambda g=g: login_loop(g) for g in guards for _ in range(3)], within=30
        )
        elapsed = time.monotonic() - started
    finally:
        for c in clients:
            c.close()
    calls = sum(p.count for p in providers)
    reasons = [r for each in results for r in each]
    assert set(reasons) <= {Reason.NOT_REISSUED, Reason.PROVIDER_UNAVAILABLE}
    assert reasons.count(Reason.NOT_REISSUED) == calls
    assert calls <= burst + rate * elapsed
    assert calls >= burst + rate * spin * 0.5  # the bucket paces, it does not starve
    assert all(p.count > 0 for p in providers)  # both processes drew on the one bucket
    assert len(reasons) > 3 * calls  # demand far above the pace: refusals happened
    assert {g.breaker.state for g in guards} == {"closed"}


@needs_redis
def test_a_shared_empty_bucket_answers_at_once(client: redis.Redis) -> None:
    """Refused by Redis: provider_unavailable in a hand-off and a round trip, breaker closed."""
    provider = ScriptedProvider(name="paced", delay=0.3)
    bucket = RedisTokenBucket(client, name=unique_name(), rate=0.001, burst=1)
    guard = Guard(provider, quota=bucket, breaker_threshold=1)
    assert guard.check(number(1), bound_at=BOUND).reason is Reason.NOT_REISSUED
    for i in range(2, 12):
        refused = guard.check(number(i), bound_at=BOUND)
        assert refused.reason is Reason.PROVIDER_UNAVAILABLE
        assert refused.elapsed < 0.2  # the provider would take 0.3 s
    assert provider.count == 1
    assert guard.breaker.state == "closed"


def test_redis_down_degrades_to_the_local_bucket(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing listening: the fallback paces at once, one warning per outage, no address."""
    if redis is None:
        pytest.skip("redis-py is not installed")
    conn = closed_port_client(password="hunter2-redis-password")
    bucket = RedisTokenBucket(conn, name="twilio", rate=0.001, burst=3)
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG, logger="recyclecheck"):
        granted = [bucket.try_acquire() for _ in range(20)]
    assert time.monotonic() - started < 0.5
    assert granted == [True] * 3 + [False] * 17
    assert outage_lines(caplog) == [
        "recyclecheck redis quota unavailable (ConnectionError): bucket=twilio is paced by "
        "the in-process fallback until Redis answers again"
    ]
    port = str(conn.connection_pool.connection_kwargs["port"])
    for secret in (port, "127.0.0.1", "hunter2"):
        assert secret not in caplog.text
        assert secret not in repr(bucket)
    assert "redis=down" in repr(bucket)
    conn.close()


def test_guard_with_redis_down_keeps_its_deadline() -> None:
    """A Guard whose Redis is down answers from the local bucket within its deadline."""
    if redis is None:
        pytest.skip("redis-py is not installed")
    conn = closed_port_client()
    provider = ScriptedProvider(name="paced")
    guard = Guard(
        provider, timeout=0.5, quota=RedisTokenBucket(conn, name="paced", rate=0.001, burst=2)
    )
    decisions = [guard.check(number(i), bound_at=BOUND) for i in range(6)]
    assert [d.reason for d in decisions] == [Reason.NOT_REISSUED] * 2 + [
        Reason.PROVIDER_UNAVAILABLE
    ] * 4
    assert max(d.elapsed for d in decisions) < 0.5 + SLACK
    assert provider.count == 2
    assert guard.breaker.state == "closed"
    conn.close()


def test_a_black_hole_degrades_within_the_deadline(
    black_hole: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A Redis that accepts and never answers costs one socket timeout, then nothing."""
    if redis is None:
        pytest.skip("redis-py is not installed")
    conn = hole_client(black_hole, timeout=0.2)  # each Redis attempt: 0.2 s at least
    provider = ScriptedProvider(name="paced")
    bucket = RedisTokenBucket(conn, name="paced", rate=0.001, burst=3)
    guard = Guard(provider, timeout=0.9, quota=bucket)
    with caplog.at_level(logging.WARNING, logger="recyclecheck"):
        decisions = [guard.check(number(i), bound_at=BOUND) for i in range(5)]
    assert [d.reason for d in decisions] == [Reason.NOT_REISSUED] * 3 + [
        Reason.PROVIDER_UNAVAILABLE
    ] * 2
    assert decisions[0].elapsed < 0.9  # one read timeout (0.2 s) on a worker, in time
    assert max(d.elapsed for d in decisions[1:]) < AT_ONCE  # Redis is left alone meanwhile
    assert len(outage_lines(caplog)) == 1
    assert "TimeoutError" in outage_lines(caplog)[0]
    assert guard.breaker.state == "closed"
    conn.close()


@needs_redis
def test_a_deadline_too_close_for_redis_paces_locally(client: redis.Redis) -> None:
    """With less time left than Redis may take, the call is paced locally: never late."""
    bucket = RedisTokenBucket(client, name=unique_name(), rate=0.001, burst=1)
    guard = Guard(ScriptedProvider(name="paced"), timeout=0.06, quota=bucket)  # worst case 0.1 s
    assert guard.check(number(1), bound_at=BOUND).reason is Reason.NOT_REISSUED
    assert guard.check(number(2), bound_at=BOUND).reason is Reason.PROVIDER_UNAVAILABLE
    assert client.exists(bucket.key) == 0  # Redis was never asked
    assert bucket.try_acquire() is True  # outside a check: Redis is asked, its bucket is full


class Flaky:
    """A duck-typed client around a real one that can be broken on demand; counts calls."""

    def __init__(self, inner: redis.Redis) -> None:
        self.inner = inner
        self.broken = False
        self.calls = 0
        #: (entered, go_on): the next call signals ``entered`` and waits for ``go_on``.
        self.hold: tuple[threading.Event, threading.Event] | None = None

    def evalsha(self, *args: Any) -> Any:
        self.calls += 1
        hold, self.hold = self.hold, None
        if hold is not None:
            hold[0].set()
            hold[1].wait(10)
        if self.broken:
            raise redis.ConnectionError("Error 111 connecting to cache.internal:6379")
        return self.inner.evalsha(*args)

    def script_load(self, script: str) -> Any:
        return self.inner.script_load(script)


@needs_redis
def test_redis_outage_is_logged_once_and_retried_sparingly(
    client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """While Redis fails, one call per retry interval tries it; its return is logged once."""
    flaky = Flaky(client)
    bucket = RedisTokenBucket(flaky, name=unique_name(), rate=0.001, burst=100)  # type: ignore[arg-type]
    bucket.retry_interval = 60.0
    with caplog.at_level(logging.WARNING, logger="recyclecheck"):
        assert bucket.try_acquire() is True  # from Redis
        flaky.broken = True
        assert all(bucket.try_acquire() for _ in range(50))  # the fallback's tokens
        assert flaky.calls == 2  # the failure, then nothing for 60 s
        bucket.retry_interval = 0.0
        bucket._retry_at = 0.0  # the interval is over
        assert bucket.try_acquire() is True
        assert flaky.calls == 3  # one retry, failed
        flaky.broken = False
        bucket._retry_at = 0.0
        bucket.try_acquire()
        bucket.try_acquire()
    assert flaky.calls == 5
    lines = outage_lines(caplog)
    assert len(lines) == 2
    assert lines[0].startswith("recyclecheck redis quota unavailable (ConnectionError)")
    assert lines[1].startswith(f"recyclecheck redis quota back: bucket={bucket.name} after ")
    assert "cache.internal" not in caplog.text
    assert float(client.hget(bucket.key, "tokens")) == pytest.approx(97, abs=0.01)


@needs_redis
def test_a_call_under_way_when_redis_failed_does_not_end_the_outage(
    client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """A success sent before the failure proves nothing: the outage stays, logged once."""
    flaky = Flaky(client)
    bucket = RedisTokenBucket(flaky, name=unique_name(), rate=0.001, burst=100)  # type: ignore[arg-type]
    bucket.retry_interval = 60.0
    entered, go_on = threading.Event(), threading.Event()
    flaky.hold = (entered, go_on)
    slow = threading.Thread(target=bucket.try_acquire, daemon=True)
    with caplog.at_level(logging.WARNING, logger="recyclecheck"):
        slow.start()
        assert entered.wait(10)  # the slow call is inside Redis
        flaky.broken = True
        assert bucket.try_acquire() is True  # this one fails: the fallback answers
        flaky.broken = False
        go_on.set()  # the slow call, sent before the failure, now succeeds
        slow.join(10)
    assert not slow.is_alive()
    assert "redis=down" in repr(bucket)
    assert len(outage_lines(caplog)) == 1
    assert flaky.calls == 2


def test_acheck_with_a_redis_bucket_never_blocks_the_loop(black_hole: int) -> None:
    """Ten logins whose token sits behind a black hole: the loop keeps ticking meanwhile."""
    if redis is None:
        pytest.skip("redis-py is not installed")
    asked_on: list[int] = []

    class Spying(RedisTokenBucket):
        def try_acquire(self) -> bool:
            asked_on.append(threading.get_ident())
            return super().try_acquire()

    conn = hole_client(black_hole, timeout=0.2)  # a blocked loop would stall >= 0.2 s a call
    bucket = Spying(conn, name="paced", rate=0.001, burst=100)
    bucket.retry_interval = 0.0  # every call goes to the black hole
    guard = Guard(ScriptedProvider(name="paced"), timeout=0.9, quota=bucket)

    async def main() -> tuple[list[Any], float, int]:
        gaps: list[float] = []
        done = asyncio.Event()

        async def tick() -> None:
            last = time.monotonic()
            while not done.is_set():
                await asyncio.sleep(0.005)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        ticker = asyncio.ensure_future(tick())
        decisions = await asyncio.gather(
            *(guard.acheck(number(i), bound_at=BOUND) for i in range(10))
        )
        done.set()
        await ticker
        return decisions, max(gaps), threading.get_ident()

    decisions, worst_gap, loop_thread = asyncio.run(main())
    assert len(asked_on) == 10
    assert loop_thread not in asked_on
    assert worst_gap < 0.1
    assert {d.reason for d in decisions} == {Reason.NOT_REISSUED}  # the fallback's tokens
    assert max(d.elapsed for d in decisions) < 0.9 + SLACK
    conn.close()


# -- configuration -----------------------------------------------------------------------


@needs_redis
@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"socket_timeout": None}, "socket_timeout"),
        ({"socket_timeout": 2.0}, "socket_timeout"),
        ({"socket_connect_timeout": 5.0}, "socket_connect_timeout"),
        ({"retry": None}, "retry"),  # redis-py's default: retries with backoff
    ],
    ids=repr,
)
def test_slow_clients_are_refused(
    redis_server: RedisServer, overrides: dict[str, Any], match: str
) -> None:
    """A client that could hold a login for seconds is refused before any I/O."""
    if overrides == {"retry": None}:
        conn = redis.Redis(
            host="127.0.0.1",
            port=redis_server.port,
            socket_timeout=FAST_SOCKET_TIMEOUT,
            socket_connect_timeout=FAST_SOCKET_TIMEOUT,
        )
    else:
        conn = redis_server.client(**overrides)
    with pytest.raises(ConfigurationError, match=match):
        RedisTokenBucket(conn, name="paced", rate=1, burst=1)
    conn.close()


@needs_redis
@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"name": ""}, "name"),
        ({"name": 7}, "name"),
        ({"name": "two\nlines"}, "name"),
        ({"rate": 0}, "rate"),
        ({"burst": 0}, "burst"),
        ({"prefix": b"rc:"}, "prefix"),
        ({"fallback": object()}, "fallback"),
    ],
    ids=repr,
)
def test_redis_bucket_options_are_checked(
    client: redis.Redis, options: dict[str, Any], match: str
) -> None:
    """Names, paces, prefixes and fallbacks that are not usable are refused."""
    settings: dict[str, Any] = {"name": "paced", "rate": 1, "burst": 1}
    settings.update(options)
    with pytest.raises(ConfigurationError, match=match):
        RedisTokenBucket(client, **settings)


def test_not_a_client_is_refused() -> None:
    """Something without evalsha and script_load is not a Redis client."""
    with pytest.raises(ConfigurationError, match="client"):
        RedisTokenBucket(object(), name="paced", rate=1, burst=1)  # type: ignore[arg-type]


# -- from_url ------------------------------------------------------------------------------


def _fast(conn: redis.Redis) -> None:
    kwargs = conn.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == FAST_SOCKET_TIMEOUT == 0.05
    assert kwargs["socket_connect_timeout"] == FAST_SOCKET_TIMEOUT
    assert kwargs["retry"].get_retries() == 0


@needs_redis
def test_from_url_builds_fast_clients(redis_server: RedisServer) -> None:
    """Both from_url builders give a 50 ms, no-retry client, and the objects work."""
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    bucket = RedisTokenBucket.from_url(url, name=unique_name(), rate=0.001, burst=1, prefix="rc:q:")
    cache = RedisCache.from_url(url, secret=SECRET, prefix="rc:c:", ttl=60)
    try:
        _fast(bucket._client)
        _fast(cache._client)
        assert bucket.key.startswith("rc:q:")
        assert (cache.prefix, cache.ttl) == ("rc:c:", 60.0)
        assert [bucket.try_acquire(), bucket.try_acquire()] == [True, False]
        fact = Fact(changed_from=dt.date(2024, 3, 1), change_exact=True)
        cache.set("k1", fact)
        assert cache.get("k1") == fact
    finally:
        bucket._client.close()
        cache._client.close()


@needs_redis
@pytest.mark.parametrize(
    "build",
    [
        lambda url: RedisTokenBucket.from_url(url, name="paced", rate=1, burst=1),
        lambda url: RedisCache.from_url(url, secret=SECRET),
    ],
    ids=["bucket", "cache"],
)
def test_from_url_refuses_slow_query_options(build: Callable[[str], object]) -> None:
    """A URL's query options win over ours, so a slow one is refused like any slow client."""
    url = f"redis://127.0.0.1:{free_port()}/0?socket_timeout=5"
    with pytest.raises(ConfigurationError, match="socket_timeout"):
        build(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://user:hunter2@cache.internal:6379/0",
        "redis://:hunter2@cache.internal:6379/0?db=x",
        42,
    ],
    ids=["scheme", "query", "not-a-str"],
)
@pytest.mark.parametrize(
    "build",
    [
        lambda url: RedisTokenBucket.from_url(url, name="paced", rate=1, burst=1),
        lambda url: RedisCache.from_url(url, secret=SECRET),
    ],
    ids=["bucket", "cache"],
)
def test_from_url_refuses_bad_urls_without_echoing_them(
    build: Callable[[object], object], url: object
) -> None:
    """A URL that is not a Redis URL is a ConfigurationError that never shows the URL."""
    if redis is None:
        pytest.skip("redis-py is not installed")
    with pytest.raises(ConfigurationError, match="url") as raised:
        build(url)
    assert "hunter2" not in str(raised.value)
    assert "cache.internal" not in str(raised.value)


def test_from_url_without_redis_py_says_what_to_install() -> None:
    """recyclecheck imports without redis-py; from_url then names the extra to install."""
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "import recyclecheck\n"
        "try:\n"
        "    recyclecheck.RedisTokenBucket.from_url('redis://x', name='n', rate=1, burst=1)\n"
        "except recyclecheck.ConfigurationError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "pip install 'recyclecheck[redis]'" in out.stdout


# == stress, under forced thread switching =================================================


@pytest.fixture
def forced_switching() -> Iterator[None]:
    """Switch threads every microsecond (as tests/stress does), then restore the interval."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


@pytest.mark.usefixtures("forced_switching")
def test_stress_bucket_never_grants_more_than_burst_plus_rate_x_elapsed() -> None:
    """Sixteen threads on the real clock: grants never exceed burst + rate x elapsed."""
    rate, burst = 200.0, 10
    bucket = TokenBucket(rate=rate, burst=burst)

    def take() -> int:
        taken = 0
        for _ in rounds(0.5, 1_000_000):
            taken += bucket.try_acquire()
        return taken

    started = time.monotonic()
    counts = run_together([take] * 16, within=30)
    elapsed = time.monotonic() - started
    assert sum(counts) <= burst + rate * elapsed
    assert sum(counts) > burst  # it refilled (how much depends on how starved the threads were)


class CountingBucket(TokenBucket):
    """An in-process bucket counting the tokens it granted."""

    def __init__(self, burst: int) -> None:
        super().__init__(rate=1.0, burst=burst, clock=Clock())
        self.granted = 0
        self._count_lock = threading.Lock()

    def try_acquire(self) -> bool:
        granted = super().try_acquire()
        if granted:
            with self._count_lock:
                self.granted += 1
        return granted


@pytest.mark.usefixtures("forced_switching")
def test_stress_guard_takes_one_token_per_provider_call() -> None:
    """Twelve threads over forty shared numbers: tokens granted == provider calls <= burst."""
    bucket = CountingBucket(burst=25)
    provider = ScriptedProvider(name="paced", delay=0.002)
    guard = Guard(provider, quota=bucket, breaker_threshold=1, timeout=5)

    def logins(offset: int) -> list[Reason]:
        reasons = []
        for i in rounds(1.0, 400):
            reasons.append(guard.check(number((offset + i) % 40), bound_at=BOUND).reason)
        return reasons

    results = run_together([lambda o=o: logins(o) for o in range(12)], within=40)
    reasons = {r for each in results for r in each}
    assert reasons <= {Reason.NOT_REISSUED, Reason.PROVIDER_UNAVAILABLE}
    assert bucket.granted == provider.count <= 25
    assert provider.count == 25  # forty numbers asked for: every token was used
    assert guard.breaker.state == "closed"
    deadline = time.monotonic() + 5
    while guard.pool.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert guard.pool.in_flight == 0


@needs_redis
@pytest.mark.usefixtures("forced_switching")
def test_stress_two_guards_on_one_redis_bucket_never_exceed_it(redis_server: RedisServer) -> None:
    """Two "processes" of six threads each on a bucket that barely refills: exactly burst calls."""
    burst = 25
    name = unique_name()
    clients = [steady_client(redis_server), steady_client(redis_server)]
    providers = [ScriptedProvider(name="fleet"), ScriptedProvider(name="fleet")]
    guards = [
        Guard(
            p,
            quota=RedisTokenBucket(c, name=name, rate=1e-4, burst=burst, fallback=refusing()),
            timeout=5,
        )
        for p, c in zip(providers, clients, strict=True)
    ]
    serial = itertools.count()

    def logins(guard: Guard) -> int:
        asked = 0
        for _ in rounds(1.0, 200):
            guard.check(number(next(serial)), bound_at=BOUND)
            asked += 1
        return asked

    try:
        asked = run_together([lambda g=g: logins(g) for g in guards for _ in range(6)], within=40)
    finally:
        for c in clients:
            c.close()
    assert sum(asked) > burst
    assert sum(p.count for p in providers) == burst  # burst + 1e-4 x a few seconds
    assert {g.breaker.state for g in guards} == {"closed"}
