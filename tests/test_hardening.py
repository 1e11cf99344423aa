"""Regression tests for the hardening issue: input the memo misread, dates that
overflowed, provider failures that escaped, a cache that broke the deadline, and the
inline HTTP path that must keep every deadline guarantee of the worker path."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from recyclecheck import (
    Action,
    Guard,
    InvalidInput,
    MemoryCache,
    Policy,
    Reason,
    RedisCache,
)
from recyclecheck.providers import LastChange, NoData, SandboxProvider, TwilioProvider
from recyclecheck.testing import Credentials, FakeProviderServer, Hang, Reset

from .redisserver import RedisServer

UTC = dt.timezone.utc
BOUND = dt.date(2022, 5, 10)
US_NEVER = "+12015550124"
SECRET = b"0123456789abcdef0123456789abcdef"


# -- 2. valid input the memo or the arithmetic mishandled ------------------------------


def test_lower_case_region_means_the_same_on_every_check() -> None:
    """region="us" parses on the first check and on every later one (no cached answer)."""
    guard = Guard(SandboxProvider({}), timeout=1)
    for _ in range(3):
        decision = guard.check("201-555-0124", bound_at=BOUND, region="us")
        assert decision.reason is Reason.NO_DATA  # never cached, so every check re-parses


def test_empty_region_is_refused_even_after_the_input_was_seen() -> None:
    """The memo never turns a refused region into an accepted one."""
    guard = Guard(SandboxProvider({}), timeout=1)
    guard.check("+12015550124", bound_at=BOUND, region=None)
    with pytest.raises(InvalidInput, match="region"):
        guard.check("+12015550124", bound_at=BOUND, region="")
    with pytest.raises(InvalidInput, match="region"):
        Guard(SandboxProvider({}), timeout=1).check("+12015550124", bound_at=BOUND, region="")


@pytest.mark.parametrize(
    "bound_at",
    [
        dt.date.min,
        dt.date(1969, 12, 31),
        dt.datetime.min.replace(tzinfo=UTC),
        dt.datetime(1, 1, 1, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=5))),
        dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
        dt.datetime(1969, 12, 31, 23, 59, tzinfo=UTC),
        dt.datetime(1970, 1, 1, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=1))),
    ],
)
def test_bound_at_before_1970_is_a_clear_invalid_input(bound_at: Any) -> None:
    """Never an OverflowError: a bound_at before 1970-01-01 UTC is InvalidInput."""
    guard = Guard(SandboxProvider.demo(), timeout=1)
    with pytest.raises(InvalidInput, match="1970"):
        guard.check("+86 138 0013 8000", bound_at=bound_at)


@pytest.mark.parametrize("bound_at", [dt.date(1970, 1, 1), dt.datetime(1970, 1, 1, tzinfo=UTC)])
def test_bound_at_on_1970_01_01_is_accepted(bound_at: Any) -> None:
    guard = Guard(SandboxProvider.demo(), timeout=1)
    assert guard.check("+86 138 0013 8000", bound_at=bound_at).action is Action.STEP_UP


@pytest.mark.parametrize("policy", [Policy(), Policy.fail_open(), Policy(on_reissued=Action.DENY)])
def test_a_change_dated_at_the_end_of_time_is_never_allowed(policy: Policy) -> None:
    """A reported change on 9999-12-31 is a change (first check and cached check alike)."""
    provider = SandboxProvider({"+12015550124": dt.date.max})
    guard = Guard(provider, policy=policy, timeout=1)
    expected = Action.DENY if policy.on_reissued is Action.DENY else Action.STEP_UP
    first = guard.check(US_NEVER, bound_at=BOUND)
    second = guard.check(US_NEVER, bound_at=BOUND)
    for decision in (first, second):
        assert decision.reason is Reason.REISSUED_AFTER_BINDING
        assert decision.action is expected
        assert decision.reissued_on == dt.date.max
    assert second.cached


class _Raises:
    name = "raises"

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def lookup(self, number: str, since: dt.date) -> Any:
        raise self.error


@pytest.mark.parametrize(
    "error", [asyncio.CancelledError(), KeyboardInterrupt(), SystemExit(3), GeneratorExit()]
)
def test_a_provider_raising_a_base_exception_is_provider_unavailable(
    error: BaseException,
) -> None:
    """Not even a BaseException from a custom provider escapes into the login."""
    guard = Guard(_Raises(error), timeout=1)
    decision = guard.check(US_NEVER, bound_at=BOUND)
    assert decision.reason is Reason.PROVIDER_UNAVAILABLE
    assert decision.action is Action.STEP_UP


# -- 3. the deadline with an out-of-process cache --------------------------------------


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A TCP port that accepts connections and never answers (a wedged Redis)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(2)
        for conn in accepted:
            conn.close()
        listener.close()


def test_a_redis_that_never_answers_cannot_hold_the_check(black_hole: int) -> None:
    """The cache read fits in the check's deadline although Redis' own timeout is longer."""
    client = redis.Redis(
        host="127.0.0.1",
        port=black_hole,
        socket_timeout=0.5,  # the longest RedisCache accepts
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
    )
    cache = RedisCache(client, secret=SECRET)
    guard = Guard(SandboxProvider.demo(), cache=cache, secret=SECRET, timeout=0.2)
    for _ in range(3):
        started = time.monotonic()
        decision = guard.check("+86 139 0013 9000", bound_at=BOUND)
        wall = time.monotonic() - started
        assert wall < 0.2 + 0.1
        # The provider still had time to answer: a wedged cache costs its share only.
        assert decision.reason is Reason.NOT_REISSUED


class _SlowCache:
    """A real RedisCache behind 150 ms of latency per command."""

    shared = True

    def __init__(self, inner: RedisCache, delay: float) -> None:
        self.inner, self.delay = inner, delay
        self.ttl, self.change_ttl = inner.ttl, inner.change_ttl
        self.writes = 0

    def get(self, key: str) -> Any:
        time.sleep(self.delay)
        return self.inner.get(key)

    def set(self, key: str, fact: Any) -> None:
        time.sleep(self.delay)
        self.inner.set(key, fact)
        self.writes += 1


@pytest.mark.redis
def test_a_slow_cache_neither_delays_answers_nor_opens_the_breaker(
    redis_server: RedisServer,
) -> None:
    """The answer goes back before the write-back, which counts against nobody."""
    inner = RedisCache(redis_server.client(), secret=SECRET, prefix="slow-cache:")
    cache = _SlowCache(inner, 0.15)
    numbers = [f"+8613900139{i:03d}" for i in range(12)]
    guard = Guard(
        SandboxProvider(dict.fromkeys(numbers)),
        cache=cache,  # type: ignore[arg-type]
        secret=SECRET,
        timeout=0.2,
        breaker_threshold=3,
    )
    for number in numbers:
        started = time.monotonic()
        decision = guard.check(number, bound_at=BOUND)
        assert time.monotonic() - started < 0.2 + 0.1
        assert decision.reason is Reason.NOT_REISSUED, decision
    assert guard.breaker.state == "closed"
    deadline = time.monotonic() + 5
    while cache.writes < len(numbers) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cache.writes == len(numbers)  # the facts did land, after the answers


# -- 5. the inline path keeps every guarantee ------------------------------------------


class _Recording(TwilioProvider):
    """The Twilio adapter, noting the thread each lookup ran on."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.threads: list[int] = []

    def lookup(self, number: str, since: dt.date) -> Any:
        self.threads.append(threading.get_ident())
        return super().lookup(number, since)


@pytest.fixture
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer({US_NEVER: None, "+12015550123": dt.date(2024, 5, 1)}) as server:
        yield server


def _recording(fake: FakeProviderServer) -> _Recording:
    credentials = Credentials()
    return _Recording(
        credentials.twilio_account_sid, credentials.twilio_auth_token, base_url=fake.url
    )


def test_a_warm_connection_runs_the_lookup_on_the_callers_thread(
    fake: FakeProviderServer,
) -> None:
    provider = _recording(fake)
    with Guard(provider, cache=MemoryCache(max_entries=0), timeout=1) as guard:
        assert guard.check(US_NEVER, bound_at=BOUND).reason is Reason.NOT_REISSUED
        assert provider.threads[-1] != threading.get_ident()  # cold: a worker connects
        for _ in range(5):
            assert guard.check(US_NEVER, bound_at=BOUND).reason is Reason.NOT_REISSUED
            assert provider.threads[-1] == threading.get_ident()
        assert guard.pool.in_flight == 0


def test_a_black_hole_on_a_warm_connection_ends_at_the_deadline(
    fake: FakeProviderServer,
) -> None:
    provider = _recording(fake)
    with Guard(provider, cache=MemoryCache(max_entries=0), timeout=0.4) as guard:
        guard.check(US_NEVER, bound_at=BOUND)
        fake.inject(Hang(), number=US_NEVER)
        started = time.monotonic()
        decision = guard.check(US_NEVER, bound_at=BOUND)
        wall = time.monotonic() - started
        assert provider.threads[-1] == threading.get_ident()
        assert decision.reason is Reason.PROVIDER_UNAVAILABLE
        assert wall < 0.4 + 0.1
        assert guard.pool.in_flight == 0  # nothing left pinned


def test_a_connection_reset_on_the_inline_path_is_retried_on_a_worker(
    fake: FakeProviderServer,
) -> None:
    """The one retry needs a new connection: it moves to a worker and still answers."""
    provider = _recording(fake)
    with Guard(provider, cache=MemoryCache(max_entries=0), timeout=1) as guard:
        guard.check(US_NEVER, bound_at=BOUND)
        fake.inject(Reset(), number=US_NEVER, times=1)
        decision = guard.check(US_NEVER, bound_at=BOUND)
        assert decision.reason is Reason.NOT_REISSUED
        assert provider.threads[-2:][0] == threading.get_ident()  # first try: inline
        assert provider.threads[-1] != threading.get_ident()  # the retry: a worker
        lookups = [r for r in fake.requests if r.endpoint == "lookup"]
        assert len(lookups) == 3  # warm-up, the reset one, exactly one retry


def test_an_inline_lookup_holds_a_worker_slot(fake: FakeProviderServer) -> None:
    """Inline calls count against max_workers like worker calls."""
    provider = _recording(fake)
    with Guard(provider, cache=MemoryCache(max_entries=0), timeout=1, max_workers=1) as guard:
        guard.check(US_NEVER, bound_at=BOUND)
        fake.inject(Hang(), number=US_NEVER)
        seen: list[Any] = []
        thread = threading.Thread(
            target=lambda: seen.append(guard.check(US_NEVER, bound_at=BOUND)), daemon=True
        )
        thread.start()
        deadline = time.monotonic() + 1
        while guard.pool.in_flight == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert guard.pool.in_flight == 1
        other = guard.check("+12015550123", bound_at=BOUND)
        assert other.reason is Reason.PROVIDER_UNAVAILABLE  # the one slot is taken
        thread.join(3)
        assert not thread.is_alive()


def test_a_no_data_answer_is_not_cached_and_the_memo_reparses_consistently() -> None:
    """A memo hit on a national-format input asks the provider about the same number."""
    asked: list[str] = []

    class Provider:
        name = "p"

        def lookup(self, number: str, since: dt.date) -> Any:
            asked.append(number)
            return NoData() if len(asked) < 3 else LastChange(None)

    guard = Guard(Provider(), timeout=1, default_region="CN")
    for _ in range(3):
        guard.check("138 0013 8000", bound_at=BOUND)
    assert asked == ["+8613800138000"] * 3


def test_a_slow_dns_lookup_never_runs_on_the_callers_thread(
    fake: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Name resolution is not bounded by socket timeouts: it runs on a worker, and the
    login still returns at its deadline."""
    resolving: list[int] = []
    real = socket.getaddrinfo

    def slow_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "localhost":
            resolving.append(threading.get_ident())
            time.sleep(1.0)
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow_getaddrinfo)
    credentials = Credentials()
    port = fake.url.rsplit(":", 1)[1]
    provider = TwilioProvider(
        credentials.twilio_account_sid,
        credentials.twilio_auth_token,
        base_url=f"http://localhost:{port}",  # loopback: plain http is allowed
    )
    with Guard(provider, cache=MemoryCache(max_entries=0), timeout=0.3) as guard:
        started = time.monotonic()
        decision = guard.check(US_NEVER, bound_at=BOUND)
        assert time.monotonic() - started < 0.3 + 0.1
        assert decision.reason is Reason.PROVIDER_UNAVAILABLE
        assert resolving
        assert threading.get_ident() not in resolving
