"""RedisCache against a real redis-server: sealed values, keyed names, expiry, outages,
and the strict reads and writes that let Guard.record_change fail loudly."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import logging
import os
import random
import socket
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from recyclecheck import Action, CacheUnavailable, ConfigurationError, FactCache, Guard, Reason
from recyclecheck._facts import Fact, merge
from recyclecheck._redis_cache import UPDATE_ATTEMPTS, RedisCache
from recyclecheck._redis_client import MAX_SOCKET_TIMEOUT
from recyclecheck.providers import LastChange

from .crowd import run_together
from .fakes import ScriptedProvider
from .privacy import leaks
from .rawserver import free_port
from .redisserver import FAST, REQUIRE, RedisServer

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError:  # pragma: no cover - the tests extra installs redis
    if REQUIRE:
        raise
    pytest.skip("redis-py is not installed", allow_module_level=True)

pytestmark = pytest.mark.redis

SECRET = b"cache-secret-0123456789abcdef"
GUARD_SECRET = b"guard-secret-0123456789abcdef"
E164 = "+8613900139000"
NATIONAL = "13900139000"
UTC = dt.timezone.utc
QUIET = Fact(quiet_from=dt.date(2023, 4, 1), quiet_until=time.time() + 3600)
CHANGE = Fact(changed_from=dt.date(2024, 3, 1), change_exact=True)


# -- a real redis-server (the session fixture ``redis_server`` is in conftest) ---------


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    conn = redis_server.client()
    conn.flushdb()
    yield conn
    conn.close()


@pytest.fixture
def cache(client: redis.Redis) -> RedisCache:
    return RedisCache(client, secret=SECRET)


def fast_client(port: int) -> redis.Redis:
    """A client of 127.0.0.1:``port`` that gives up at once: short timeouts, no retry."""
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_timeout=FAST,
        socket_connect_timeout=FAST,
        retry=Retry(NoBackoff(), 0),
    )


def closed_port_client() -> redis.Redis:
    return fast_client(free_port())  # nothing listens there any more


@contextlib.contextmanager
def hung_client() -> Iterator[redis.Redis]:
    """A client of a server that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # the kernel completes handshakes; nobody ever replies
        conn = fast_client(listener.getsockname()[1])
        try:
            yield conn
        finally:
            conn.close()


# -- the basics ------------------------------------------------------------------------


def test_satisfies_the_protocol_and_is_shared(cache: RedisCache) -> None:
    """RedisCache is a FactCache whose keys are stable across processes."""
    assert isinstance(cache, FactCache)
    assert cache.shared is True
    assert (cache.ttl, cache.change_ttl) == (3600.0, 30 * 86400.0)


@pytest.mark.parametrize("fact", [QUIET, CHANGE, Fact(changed_from=dt.date(2024, 1, 2))])
def test_round_trip(cache: RedisCache, fact: Fact) -> None:
    """A stored fact reads back equal."""
    cache.set("k1", fact)
    assert cache.get("k1") == fact


def test_round_trip_across_instances(redis_server: RedisServer, cache: RedisCache) -> None:
    """Another process (another client and cache built from the same secret) reads the fact."""
    cache.set("k1", QUIET)
    other = RedisCache(redis_server.client(), secret=SECRET.decode())
    assert other.get("k1") == QUIET


def test_missing_key_is_none(cache: RedisCache) -> None:
    """A key never written reads as None."""
    assert cache.get("never-written") is None


# -- expiry ----------------------------------------------------------------------------


def test_quiet_fact_expires_in_redis(cache: RedisCache, client: redis.Redis) -> None:
    """A quiet-only fact is written with PX up to quiet_until and Redis drops it then."""
    cache.set("k1", Fact(quiet_from=dt.date(2023, 1, 1), quiet_until=time.time() + 0.3))
    name = cache.key_name("k1")
    assert 0 < client.pttl(name) <= 300
    assert cache.get("k1") is not None
    time.sleep(0.45)
    assert cache.get("k1") is None
    assert client.exists(name) == 0


def test_lifetime_is_the_longest_claim(client: redis.Redis) -> None:
    """PX follows the longest-lived claim, read from the injected clock, like MemoryCache."""
    now = 1_000_000.0
    cache = RedisCache(
        client, secret=SECRET, ttl=60, change_ttl=dt.timedelta(days=2), clock=lambda: now
    )
    cache.set("quiet", Fact(quiet_from=dt.date(2023, 1, 1), quiet_until=now + 60))
    cache.set("change", Fact(changed_from=dt.date(2024, 1, 1), quiet_until=now + 60))
    cache.set("stale", Fact(quiet_from=dt.date(2023, 1, 1), quiet_until=now - 1))
    assert 59_000 < client.pttl(cache.key_name("quiet")) <= 60_000
    assert 2 * 86_400_000 - 2000 < client.pttl(cache.key_name("change")) <= 2 * 86_400_000
    assert client.exists(cache.key_name("stale")) == 0  # already lapsed: never written


# -- what Redis holds ------------------------------------------------------------------


def test_value_is_ciphertext(cache: RedisCache, client: redis.Redis) -> None:
    """The stored bytes are version + nonce + AES-GCM output, with no date or JSON in them."""
    fact = Fact(
        changed_from=dt.date(2024, 3, 1),
        change_exact=True,
        quiet_from=dt.date(2024, 3, 2),
        quiet_until=1_900_000_000.0,
    )
    cache.set("k1", fact)
    raw = client.get(cache.key_name("k1"))
    assert isinstance(raw, bytes)
    assert raw[0] == 1
    assert len(raw) == 1 + 12 + len(fact.to_bytes()) + 16
    for needle in (b"2024", b"03-01", b"1900000000", b"true", b"null", b'["'):
        assert needle not in raw[13:]
    assert fact.to_bytes() not in raw


def test_every_write_uses_a_fresh_nonce(cache: RedisCache, client: redis.Redis) -> None:
    """Writing the same fact twice stores different bytes."""
    cache.set("k1", QUIET)
    first = client.get(cache.key_name("k1"))
    cache.set("k1", QUIET)
    second = client.get(cache.key_name("k1"))
    assert first != second
    assert cache.get("k1") == QUIET


def _flip(raw: bytes, index: int) -> bytes:
    return raw[:index] + bytes([raw[index] ^ 0x01]) + raw[index + 1 :]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda raw: _flip(raw, 0), id="version"),
        pytest.param(lambda raw: _flip(raw, 5), id="nonce"),
        pytest.param(lambda raw: _flip(raw, 20), id="ciphertext"),
        pytest.param(lambda raw: _flip(raw, len(raw) - 1), id="tag"),
        pytest.param(lambda raw: raw[:-1], id="truncated"),
        pytest.param(lambda raw: raw[:20], id="short"),
        pytest.param(lambda raw: raw + b"\x00", id="extended"),
        pytest.param(lambda raw: b"", id="empty"),
        pytest.param(lambda raw: b'[null,false,"2020-01-01",9e9]', id="plaintext-fact"),
        pytest.param(lambda raw: b"\x01" + os.urandom(60), id="random"),
        pytest.param(lambda raw: b"x" * 10_000, id="huge"),
    ],
)
def test_tampered_value_reads_as_none(
    cache: RedisCache,
    client: redis.Redis,
    tamper: object,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Any change to the stored bytes makes the entry unreadable, never an exception."""
    cache.set("k1", CHANGE)
    name = cache.key_name("k1")
    raw = client.get(name)
    assert isinstance(raw, bytes)
    client.set(name, tamper(raw))  # type: ignore[operator]
    with caplog.at_level(logging.WARNING, logger="recyclecheck"):
        assert cache.get("k1") is None
    assert "unreadable" in caplog.text


def test_sealed_plaintext_that_is_not_a_fact_reads_as_none(
    cache: RedisCache, client: redis.Redis
) -> None:
    """A value authenticated under our key but holding no Fact reads as None."""
    name = cache.key_name("k1")
    client.set(name, cache._seal(name, b"not json"))
    assert cache.get("k1") is None


def test_value_moved_to_another_key_reads_as_none(cache: RedisCache, client: redis.Redis) -> None:
    """A sealed value copied under another number's key (or prefix) does not authenticate."""
    cache.set("reissued-number", CHANGE)
    raw = client.get(cache.key_name("reissued-number"))
    client.set(cache.key_name("victim-number"), raw)
    assert cache.get("victim-number") is None
    other_prefix = RedisCache(client, secret=SECRET, prefix="other:")
    client.set(other_prefix.key_name("reissued-number"), raw)
    assert other_prefix.get("reissued-number") is None
    assert cache.get("reissued-number") == CHANGE  # the original is untouched


def test_wrong_secret_reads_as_none(cache: RedisCache, client: redis.Redis) -> None:
    """A process with another secret neither finds nor decrypts the entry."""
    cache.set("k1", QUIET)
    wrong = RedisCache(client, secret=b"another-secret-0123456789")
    assert wrong.key_name("k1") != cache.key_name("k1")
    assert wrong.get("k1") is None
    # Even at the right key name, the wrong value key cannot open it.
    client.set(wrong.key_name("k1"), client.get(cache.key_name("k1")))
    assert wrong.get("k1") is None


def test_key_names_are_keyed_hmacs(cache: RedisCache) -> None:
    """prefix + 64 hex digits, stable per secret, never the Guard's key itself."""
    guard_key = hashlib.sha256(b"guard level key").hexdigest()
    name = cache.key_name(guard_key)
    assert name.startswith("recyclecheck:")
    digest = name.removeprefix("recyclecheck:")
    assert len(digest) == 64
    assert int(digest, 16) >= 0
    assert guard_key not in name
    assert digest != hashlib.sha256(guard_key.encode()).hexdigest()  # keyed, not a plain hash
    assert RedisCache(cache._client, secret=SECRET).key_name(guard_key) == name


# -- Redis trouble ---------------------------------------------------------------------


def test_redis_down_is_a_fast_miss(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing listening: get is None, set is silent, both at once; only the type is logged."""
    conn = closed_port_client()
    cache = RedisCache(conn, secret=SECRET)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="recyclecheck"):
        assert cache.get("k1") is None
        cache.set("k1", QUIET)
    assert time.monotonic() - started < 0.5
    assert "ConnectionError" in caplog.text
    port = str(conn.connection_pool.connection_kwargs["port"])
    assert port not in caplog.text
    assert "127.0.0.1" not in caplog.text


def test_redis_stopped_after_use(tmp_path: Path) -> None:
    """A server that dies under pooled connections turns into fast misses."""
    server = RedisServer(tmp_path)
    try:
        cache = RedisCache(server.client(), secret=SECRET)
        cache.set("k1", QUIET)
        assert cache.get("k1") == QUIET
    finally:
        server.stop()
    started = time.monotonic()
    assert cache.get("k1") is None
    cache.set("k1", CHANGE)
    assert time.monotonic() - started < 0.5


def test_hung_redis_times_out() -> None:
    """A server that accepts but never answers costs one socket timeout, not a hang."""
    with hung_client() as conn:
        cache = RedisCache(conn, secret=SECRET)
        started = time.monotonic()
        assert cache.get("k1") is None
        assert time.monotonic() - started < 0.5


class BrokenClient:
    """A duck-typed client whose every command fails; counts calls."""

    def __init__(self) -> None:
        self.calls = 0

    def get(self, name: str) -> bytes:
        self.calls += 1
        raise redis.TimeoutError("Timeout reading from socket")

    def set(self, name: str, value: bytes, px: int) -> bool:
        self.calls += 1
        raise redis.ConnectionError("Connection refused")


def test_breaker_stops_calling_a_failing_redis(caplog: pytest.LogCaptureFixture) -> None:
    """After a few consecutive failures the cache answers misses without touching Redis."""
    broken = BrokenClient()
    cache = RedisCache(broken, secret=SECRET)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="recyclecheck"):
        for _ in range(10):
            assert cache.get("k1") is None
            cache.set("k1", QUIET)
    assert broken.calls == 3
    messages = [record.getMessage() for record in caplog.records]
    assert len([m for m in messages if "redis cache" in m]) == 3
    assert [m for m in messages if "circuit opened" in m] == [
        "recyclecheck circuit opened: provider=redis-cache after 3 consecutive failures; "
        "calls are skipped for 5s"
    ]
    assert "redis=open" in repr(cache)


# -- configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret", [None, b"", b"short", "fifteen-chars!!", 12345, bytearray(32)], ids=repr
)
def test_secret_is_required(client: redis.Redis, secret: object) -> None:
    """No secret, or one under 16 bytes, is a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="secret"):
        RedisCache(client, secret=secret)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"socket_timeout": None}, "socket_timeout"),
        ({"socket_timeout": MAX_SOCKET_TIMEOUT * 2}, "socket_timeout"),
        ({"socket_connect_timeout": 5}, "socket_connect_timeout"),
        ({"decode_responses": True}, "decode_responses"),
        ({"retry": Retry(NoBackoff(), 3)}, "retry"),
    ],
)
def test_slow_clients_are_refused(
    redis_server: RedisServer, options: dict[str, object], match: str
) -> None:
    """A client that could hold a login for seconds is refused at construction."""
    with pytest.raises(ConfigurationError, match=match):
        RedisCache(redis_server.client(**options), secret=SECRET)


class PoolOnly:
    """A duck-typed client exposing only connection_pool.connection_kwargs."""

    def __init__(self, **kwargs: object) -> None:
        self.connection_pool = types.SimpleNamespace(connection_kwargs=kwargs)

    def get(self, name: str) -> None:
        return None

    def set(self, name: str, value: bytes, px: int) -> bool:
        return True


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"socket_timeout": FAST, "socket_connect_timeout": FAST}, None),
        ({"socket_timeout": FAST, "path": "/run/redis.sock"}, None),  # unix: no connect wait
        ({"socket_timeout": FAST, "socket_connect_timeout": FAST, "retry": None}, None),
        ({"socket_timeout": FAST}, "socket_connect_timeout"),  # absent: the library default
        ({"socket_timeout": True, "socket_connect_timeout": FAST}, "socket_timeout"),
        ({"socket_timeout": 0, "socket_connect_timeout": FAST}, "socket_timeout"),
        (
            {"socket_timeout": FAST, "socket_connect_timeout": FAST, "retry_on_timeout": True},
            "retry",
        ),
    ],
)
def test_client_checks_read_connection_kwargs(kwargs: dict[str, object], match: str | None) -> None:
    """The checks read connection_kwargs as redis-py 5+ fills them."""
    if match is None:
        RedisCache(PoolOnly(**kwargs), secret=SECRET)  # type: ignore[arg-type]
    else:
        with pytest.raises(ConfigurationError, match=match):
            RedisCache(PoolOnly(**kwargs), secret=SECRET)  # type: ignore[arg-type]


def test_clients_without_readable_settings_are_trusted() -> None:
    """A client that exposes no connection_kwargs (e.g. a cluster client) is accepted."""
    RedisCache(BrokenClient(), secret=SECRET)  # type: ignore[arg-type]


def test_connect_timeout_may_default_to_socket_timeout(redis_server: RedisServer) -> None:
    """socket_connect_timeout=None means redis-py connects within socket_timeout: accepted."""
    cache = RedisCache(redis_server.client(socket_connect_timeout=None), secret=SECRET)
    cache.set("k1", QUIET)
    assert cache.get("k1") == QUIET


def test_default_client_is_refused() -> None:
    """redis.Redis() with its defaults (multi-second timeouts or none, retries) is refused."""
    with pytest.raises(ConfigurationError):
        RedisCache(redis.Redis(port=free_port()), secret=SECRET)


def test_url_client_needs_a_connect_timeout() -> None:
    """from_url clients must say socket_connect_timeout too."""
    port = free_port()
    with pytest.raises(ConfigurationError, match="socket_connect_timeout"):
        RedisCache(
            redis.Redis.from_url(f"redis://127.0.0.1:{port}/0?socket_timeout=0.05"),
            secret=SECRET,
        )
    cache = RedisCache(
        redis.Redis.from_url(
            f"redis://127.0.0.1:{port}/0?socket_timeout=0.05&socket_connect_timeout=0.05",
            retry=Retry(NoBackoff(), 0),
        ),
        secret=SECRET,
    )
    assert cache.get("k1") is None


@pytest.mark.parametrize(
    "options",
    [{"ttl": -1}, {"change_ttl": float("nan")}, {"prefix": b"rc:"}, {"clock": 1.0}],
    ids=repr,
)
def test_bad_options(client: redis.Redis, options: dict[str, object]) -> None:
    """Bad ttl, prefix or clock values are ConfigurationErrors."""
    with pytest.raises(ConfigurationError):
        RedisCache(client, secret=SECRET, **options)  # type: ignore[arg-type]


def test_not_a_client() -> None:
    """Something without get/set is not a client."""
    with pytest.raises(ConfigurationError, match="client"):
        RedisCache(object(), secret=SECRET)  # type: ignore[arg-type]


def test_repr_shows_no_secret(cache: RedisCache) -> None:
    """repr names the prefix and TTLs, never the secret or derived keys."""
    text = repr(cache)
    assert text.startswith("<RedisCache prefix='recyclecheck:' ttl=3600")
    assert SECRET.decode() not in text
    assert cache._name_key.hex() not in text
    assert "127.0.0.1" not in text


def test_non_str_key_never_raises(cache: RedisCache) -> None:
    """Even a wrong key type reads as a miss and writes nothing."""
    assert cache.get(123) is None  # type: ignore[arg-type]
    cache.set(123, QUIET)  # type: ignore[arg-type]


def test_importing_recyclecheck_does_not_need_redis() -> None:
    """recyclecheck and its Redis backend import with redis-py absent."""
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "import recyclecheck, recyclecheck._redis_cache\n"
        "assert 'redis' not in {m for m in sys.modules if sys.modules[m] is not None}\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- with the Guard --------------------------------------------------------------------


class SpyCache:
    """Wraps a cache and records the keys the Guard uses."""

    shared = True

    def __init__(self, inner: RedisCache) -> None:
        self.inner = inner
        self.ttl = inner.ttl
        self.change_ttl = inner.change_ttl
        self.keys: set[str] = set()
        self.written: set[str] = set()

    def get(self, key: str) -> Fact | None:
        self.keys.add(key)
        return self.inner.get(key)

    def set(self, key: str, fact: Fact) -> None:
        self.keys.add(key)
        self.written.add(key)
        self.inner.set(key, fact)


def _wait_for_write_back(client: redis.Redis, stored: int) -> None:
    """The answer reaches the login before the fact reaches Redis: wait for the fact."""
    deadline = time.monotonic() + 5
    while client.dbsize() <= stored and time.monotonic() < deadline:
        time.sleep(0.005)
    assert client.dbsize() > stored


def _answers(number: str, since: dt.date) -> LastChange:
    return LastChange(dt.date(2024, 3, 1) if number == "+8613800138000" else None)


def test_two_guards_share_facts(redis_server: RedisServer, client: redis.Redis) -> None:
    """A second Guard (another process, same secrets) answers from Redis without the provider."""
    first_provider = ScriptedProvider(_answers, name="sandbox")
    second_provider = ScriptedProvider(_answers, name="sandbox")
    shared = RedisCache(client, secret=SECRET)
    first = Guard(first_provider, cache=shared, secret=GUARD_SECRET)
    second = Guard(second_provider, cache=shared, secret=GUARD_SECRET)
    elsewhere = Guard(
        ScriptedProvider(_answers, name="sandbox"),
        cache=RedisCache(redis_server.client(), secret=SECRET),
        secret=GUARD_SECRET.decode(),
    )
    bound = dt.datetime(2023, 1, 1, tzinfo=UTC)

    for number, action in ((E164, Action.ALLOW), ("+86 138 0013 8000", Action.STEP_UP)):
        stored = client.dbsize()
        fresh = first.check(number, bound_at=bound)
        assert (fresh.action, fresh.cached) == (action, False)
        _wait_for_write_back(client, stored)
        for guard in (second, elsewhere):
            reused = guard.check(number, bound_at=bound)
            assert reused.cached is True
            assert (reused.action, reused.reason) == (fresh.action, fresh.reason)
    assert first_provider.count == 2
    assert second_provider.count == 0
    assert elsewhere.provider.count == 0  # type: ignore[attr-defined]
    assert len(client.keys("*")) == 2


def test_guard_with_other_secret_misses(client: redis.Redis) -> None:
    """A Guard keyed with another secret finds nothing and asks its provider."""
    shared = RedisCache(client, secret=SECRET)
    bound = dt.date(2023, 1, 1)
    Guard(ScriptedProvider(_answers, name="sandbox"), cache=shared, secret=GUARD_SECRET).check(
        E164, bound_at=bound
    )
    other = ScriptedProvider(_answers, name="sandbox")
    decision = Guard(other, cache=shared, secret=b"y" * 32).check(E164, bound_at=bound)
    assert (decision.cached, other.count) == (False, 1)
    assert decision.reason is Reason.NOT_REISSUED


def test_guard_with_redis_cache_needs_a_secret(cache: RedisCache) -> None:
    """A shared cache without Guard(secret=...) is refused."""
    with pytest.raises(ConfigurationError, match="secret"):
        Guard(ScriptedProvider(_answers), cache=cache)


def test_redis_holds_no_number(client: redis.Redis) -> None:
    """Key names hold no digits of the number, its plain hash, nor the Guard's own key."""
    spy = SpyCache(RedisCache(client, secret=SECRET))
    guard = Guard(ScriptedProvider(_answers, name="sandbox"), cache=spy, secret=GUARD_SECRET)
    guard.check(E164, bound_at=dt.date(2023, 1, 1))
    _wait_for_write_back(client, 0)
    (guard_key,) = spy.written  # the provider's fact (the feed namespace is only read)
    assert len(spy.keys) == 2
    names = [name.decode() for name in client.keys("*")]
    assert names == [spy.inner.key_name(guard_key)]
    forbidden = [
        NATIONAL,
        E164,
        E164.lstrip("+"),
        guard_key,
        hashlib.sha256(E164.encode()).hexdigest(),
        hashlib.sha256(NATIONAL.encode()).hexdigest(),
    ]
    for name in names:
        for needle in forbidden:
            assert needle not in name
        value = client.get(name)
        assert isinstance(value, bytes)
        assert NATIONAL.encode() not in value
        assert guard_key.encode() not in value


def test_guard_survives_redis_down() -> None:
    """With Redis unreachable, checks still decide from the provider, quickly."""
    provider = ScriptedProvider(_answers, name="sandbox")
    guard = Guard(
        provider, cache=RedisCache(closed_port_client(), secret=SECRET), secret=GUARD_SECRET
    )
    # Three questions (a flight that just landed is shared while its write-back runs).
    for day in (1, 2, 3):
        decision = guard.check(E164, bound_at=dt.date(2023, 1, day))
        assert (decision.action, decision.cached) == (Action.ALLOW, False)
        assert decision.elapsed < 0.5
    assert provider.count == 3


# -- strict reads and writes: Guard.record_change never loses a later date ------------

LATE = dt.date(2025, 6, 1)
EARLY = dt.date(2023, 1, 1)
BETWEEN = dt.date(2024, 5, 10)  # bound after EARLY, before LATE: only LATE steps it up


@pytest.fixture(params=["refused", "hung"])
def dead(request: pytest.FixtureRequest) -> Iterator[tuple[redis.Redis, str]]:
    """A client of a Redis that is down (nothing listens) or hung (never answers),
    and the exception type its commands fail with."""
    if request.param == "refused":
        conn = closed_port_client()
        yield conn, "ConnectionError"
        conn.close()
        return
    with hung_client() as conn:
        yield conn, "TimeoutError"


class ReadsFail:
    """A client whose GETs go to a dead Redis and whose SETs reach the live one: the
    outage that hits a read but not the write after it."""

    def __init__(self, live: redis.Redis, dead: redis.Redis) -> None:
        self.live, self.dead = live, dead
        self.connection_pool = live.connection_pool  # RedisCache checks its timeouts

    def get(self, name: str) -> object:
        return self.dead.get(name)

    def set(self, name: str, value: bytes, **options: object) -> object:
        return self.live.set(name, value, **options)  # type: ignore[arg-type]

    def pipeline(self) -> SplitPipeline:
        return SplitPipeline(self.live.pipeline(), self.dead.pipeline())


class SplitPipeline:
    """update_strict's transaction split the same way: WATCH and GET go to the dead
    Redis, MULTI/SET/EXEC to the live one (where, unwatched, they would land)."""

    def __init__(self, live: redis.client.Pipeline, dead: redis.client.Pipeline) -> None:
        self.live, self.dead = live, dead

    def watch(self, name: str) -> object:
        return self.dead.watch(name)

    def get(self, name: str) -> object:
        return self.dead.get(name)

    def multi(self) -> None:
        self.live.multi()

    def set(self, name: str, value: bytes, **options: object) -> object:
        return self.live.set(name, value, **options)  # type: ignore[arg-type]

    def execute(self) -> object:
        return self.live.execute()

    def reset(self) -> None:
        self.live.reset()
        self.dead.reset()


def _feed_guard(cache: object) -> Guard:
    return Guard(ScriptedProvider(_answers, name="sandbox"), cache=cache, secret=GUARD_SECRET)  # type: ignore[arg-type]


def _stored(client: redis.Redis) -> dict[object, object]:
    return {name: client.get(name) for name in client.keys("*")}


def test_strict_round_trip(cache: RedisCache, client: redis.Redis) -> None:
    """get_strict and set_strict store and read the same sealed values as get and set."""
    assert cache.get_strict("k1") is None
    cache.set_strict("k1", CHANGE)
    assert cache.get("k1") == cache.get_strict("k1") == CHANGE
    cache.set("k2", QUIET)
    assert cache.get_strict("k2") == QUIET
    assert 0 < client.pttl(cache.key_name("k1")) <= cache.change_ttl * 1000


def test_strict_calls_raise_when_redis_fails(
    dead: tuple[redis.Redis, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Down or hung: the strict calls raise CacheUnavailable (the type only, in the message
    and the log); get and set on the same cache still never raise."""
    conn, cause = dead
    cache = RedisCache(conn, secret=SECRET)
    with caplog.at_level(logging.WARNING, logger="recyclecheck"):
        with pytest.raises(CacheUnavailable) as read:
            cache.get_strict("k1")
        with pytest.raises(CacheUnavailable) as write:
            cache.set_strict("k1", CHANGE)
        assert cache.get("k1") is None
    assert (read.value.operation, read.value.cause) == ("read", cause)
    assert (write.value.operation, write.value.cause) == ("write", cause)
    assert str(read.value) == f"cache read failed ({cause})"
    assert str(write.value) == f"cache write failed ({cause})"
    assert isinstance(read.value.__cause__, redis.RedisError)
    assert f"recyclecheck redis cache read failed: {cause}" in caplog.text
    assert f"recyclecheck redis cache write failed: {cause}" in caplog.text
    port = str(conn.connection_pool.connection_kwargs["port"])
    for text in (str(read.value), repr(write.value), caplog.text):
        assert port not in text
        assert cache.key_name("k1") not in text


def test_strict_calls_share_the_breaker() -> None:
    """Strict failures count towards the breaker, and an open breaker is a failure to them."""
    broken = BrokenClient()
    cache = RedisCache(broken, secret=SECRET)  # type: ignore[arg-type]
    for _ in range(3):
        with pytest.raises(CacheUnavailable, match=r"^cache read failed \(TimeoutError\)$"):
            cache.get_strict("k1")
    assert cache.get("k1") is None  # the breaker is open: no call
    with pytest.raises(CacheUnavailable) as read:
        cache.get_strict("k1")
    with pytest.raises(CacheUnavailable) as write:
        cache.set_strict("k1", CHANGE)
    assert (read.value.cause, write.value.cause) == ("circuit open", "circuit open")
    assert broken.calls == 3


def test_an_unreadable_entry_is_no_entry_to_a_strict_read(
    cache: RedisCache, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis answered, but the value does not open: None (logged), as get says.

    Every holder of the secret reads it as nothing, so overwriting it loses
    nothing a reader could see; refusing would block the key while it lives."""
    cache.set("k1", CHANGE)
    name = cache.key_name("k1")
    raw = client.get(name)
    assert isinstance(raw, bytes)
    client.set(name, _flip(raw, 20))
    with caplog.at_level(logging.WARNING, logger="recyclecheck"):
        assert cache.get_strict("k1") is None
    assert "unreadable" in caplog.text


def test_record_change_keeps_a_later_date_when_the_read_fails(
    client: redis.Redis, dead: tuple[redis.Redis, str]
) -> None:
    """A failed read raises CacheUnavailable before anything is written: the later date
    stays, and a login bound between the two dates still steps up from the feed."""
    conn, cause = dead
    guard = _feed_guard(RedisCache(client, secret=SECRET))
    guard.record_change(E164, on=LATE)
    before = _stored(client)
    assert len(before) == 1
    flaky = _feed_guard(RedisCache(ReadsFail(client, conn), secret=SECRET))  # type: ignore[arg-type]
    with pytest.raises(CacheUnavailable) as caught:
        flaky.record_change(NATIONAL, on=EARLY, region="CN")
    assert (caught.value.operation, caught.value.cause) == ("read", cause)
    assert str(caught.value) == f"cache read failed ({cause})"
    for text in (str(caught.value), repr(caught.value)):
        assert not leaks(text, [E164])
    assert _stored(client) == before
    decision = guard.check(E164, bound_at=BETWEEN)
    assert (decision.action, decision.provider, decision.reissued_on) == (
        Action.STEP_UP,
        "feed",
        LATE,
    )


def test_record_change_raises_when_redis_refuses_the_write(tmp_path: Path) -> None:
    """A Redis out of memory answers reads and refuses writes: record_change says so."""
    server = RedisServer(tmp_path)
    try:
        conn = server.client()
        guard = _feed_guard(RedisCache(conn, secret=SECRET))
        conn.config_set("maxmemory", 1)  # noeviction (the default): every SET is refused
        with pytest.raises(CacheUnavailable) as caught:
            guard.record_change(E164, on=LATE)
        assert (caught.value.operation, caught.value.cause) == ("write", "OutOfMemoryError")
        assert not leaks(str(caught.value), [E164])
        assert conn.dbsize() == 0
        conn.close()
    finally:
        server.stop()


def test_record_change_raises_when_redis_is_gone(tmp_path: Path) -> None:
    """A Redis stopped after use: the read fails, so nothing is merged or written."""
    server = RedisServer(tmp_path)
    try:
        guard = _feed_guard(RedisCache(server.client(), secret=SECRET))
        guard.record_change(E164, on=LATE)
    finally:
        server.stop()
    with pytest.raises(CacheUnavailable, match=r"^cache read failed \(ConnectionError\)$"):
        guard.record_change(E164, on=EARLY)


def test_record_change_on_redis_keeps_the_later_date(client: redis.Redis) -> None:
    """With Redis answering, a later date replaces an earlier one and never the reverse."""
    guard = _feed_guard(RedisCache(client, secret=SECRET))
    guard.record_change(E164, on=EARLY)
    assert guard.check(E164, bound_at=EARLY - dt.timedelta(days=1)).reissued_on == EARLY
    guard.record_change(E164, on=LATE)
    guard.record_change(E164, on=EARLY)
    decision = guard.check(E164, bound_at=BETWEEN)
    assert (decision.provider, decision.reissued_on) == ("feed", LATE)
    assert client.dbsize() == 1  # the feed's fact alone: the provider was never asked


def test_record_change_replaces_an_unreadable_entry(client: redis.Redis) -> None:
    """A tampered feed entry reads as nothing, so record_change stores the new date over it."""
    guard = _feed_guard(RedisCache(client, secret=SECRET))
    guard.record_change(E164, on=LATE)
    (name,) = client.keys("*")
    raw = client.get(name)
    assert isinstance(raw, bytes)
    client.set(name, _flip(raw, 20))
    guard.record_change(E164, on=EARLY)
    assert guard.check(E164, bound_at=dt.date(2022, 1, 1)).reissued_on == EARLY


# -- update_strict: the read, merge and write of record_change as one transaction -----


def _changed(day: dt.date) -> Fact:
    return Fact(changed_from=day, change_exact=True)


def _merging(day: dt.date) -> Callable[[Fact | None], Fact]:
    return lambda stored: merge(stored, _changed(day))


class Recording:
    """A change that records each fact it is given and returns ``result``."""

    def __init__(self, result: Fact) -> None:
        self.result = result
        self.seen: list[Fact | None] = []

    def __call__(self, stored: Fact | None) -> Fact:
        self.seen.append(stored)
        return self.result


def _roomy(server: RedisServer) -> redis.Redis:
    """A client with the longest timeouts RedisCache allows: a busy CI machine must not
    turn a stress test's slow answer into a failure."""
    return server.client(
        socket_timeout=MAX_SOCKET_TIMEOUT, socket_connect_timeout=MAX_SOCKET_TIMEOUT
    )


def test_update_strict_round_trip(cache: RedisCache, client: redis.Redis) -> None:
    """Nothing stored: change sees None; its result is sealed and expires as set_strict's."""
    change = Recording(CHANGE)
    cache.update_strict("k1", change)
    cache.update_strict("k1", _merging(EARLY))  # earlier than CHANGE: CHANGE stays
    assert change.seen == [None]
    assert cache.get_strict("k1") == CHANGE
    assert 0 < client.pttl(cache.key_name("k1")) <= cache.change_ttl * 1000
    assert client.dbsize() == 1


def test_update_strict_starts_over_when_another_writer_lands_in_between(
    redis_server: RedisServer, cache: RedisCache
) -> None:
    """Writer A reads (nothing), then writer B's whole update (LATE) lands before A writes
    EARLY: Redis refuses A's write, A starts over from LATE, and LATE stays.
    A plain get-then-set would store EARLY over LATE."""
    other = RedisCache(redis_server.client(), secret=SECRET)
    seen: list[Fact | None] = []

    def early(stored: Fact | None) -> Fact:
        seen.append(stored)
        if len(seen) == 1:
            other.update_strict("k1", _merging(LATE))  # another process, in between
        return merge(stored, _changed(EARLY))

    cache.update_strict("k1", early)
    assert seen == [None, _changed(LATE)]
    assert cache.get_strict("k1") == _changed(LATE)


class Interleaved:
    """A cache whose first update lets another Guard record a change between its read
    and its write."""

    shared = True

    def __init__(self, inner: RedisCache, meanwhile: Callable[[], None]) -> None:
        self.inner, self.meanwhile = inner, meanwhile
        self.ttl, self.change_ttl = inner.ttl, inner.change_ttl
        self.rounds = 0

    def get(self, key: str) -> Fact | None:
        return self.inner.get(key)

    def set(self, key: str, fact: Fact) -> None:
        self.inner.set(key, fact)

    def update_strict(self, key: str, change: Callable[[Fact | None], Fact]) -> None:
        def interleaved(stored: Fact | None) -> Fact:
            self.rounds += 1
            if self.rounds == 1:
                self.meanwhile()
            return change(stored)

        self.inner.update_strict(key, interleaved)


def test_record_change_at_the_same_instant_keeps_the_later_date(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    """Two processes record one number at once, the later date landing between the
    other's read and write: the later date stays."""
    elsewhere = _feed_guard(RedisCache(redis_server.client(), secret=SECRET))
    cache = Interleaved(
        RedisCache(client, secret=SECRET), lambda: elsewhere.record_change(E164, on=LATE)
    )
    _feed_guard(cache).record_change(E164, on=EARLY)
    assert cache.rounds == 2
    decision = elsewhere.check(E164, bound_at=BETWEEN)
    assert (decision.action, decision.provider, decision.reissued_on) == (
        Action.STEP_UP,
        "feed",
        LATE,
    )


def test_update_strict_from_many_processes_keeps_the_latest_date(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    """8 writers (each its own client and cache, as separate processes would be) x 50
    updates of one key with random dates: the latest date of all is what stays."""
    rng = random.Random(1234)
    plans = [[EARLY + dt.timedelta(days=rng.randrange(3000)) for _ in range(50)] for _ in range(8)]
    rounds = [0] * len(plans)

    def writer(index: int) -> Callable[[], None]:
        cache = RedisCache(_roomy(redis_server), secret=SECRET)

        def change(stored: Fact | None, *, day: dt.date) -> Fact:
            rounds[index] += 1
            return merge(stored, _changed(day))

        def run() -> None:
            for day in plans[index]:
                _until_it_lands(cache, "k1", functools.partial(change, day=day))

        return run

    run_together([writer(i) for i in range(len(plans))], within=60, name="update")
    latest = max(day for plan in plans for day in plan)
    assert RedisCache(client, secret=SECRET).get_strict("k1") == _changed(latest)
    assert sum(rounds) > 8 * 50  # some rounds were refused: the writers did collide


def _until_it_lands(cache: RedisCache, key: str, change: Callable[[Fact | None], Fact]) -> None:
    """Repeat an update that gave up on a key others kept writing, as record_change's
    callers may (rare, but 8 writers hammering one key can make it happen)."""
    for _ in range(20):
        try:
            cache.update_strict(key, change)
            return
        except CacheUnavailable as exc:
            if exc.cause != "WatchError":
                raise
    pytest.fail("an update gave up 20 times in a row")


def test_update_strict_gives_up_on_a_key_that_keeps_moving(
    redis_server: RedisServer, cache: RedisCache, caplog: pytest.LogCaptureFixture
) -> None:
    """Every round, someone else writes the key before the EXEC: after UPDATE_ATTEMPTS
    refused rounds, CacheUnavailable("write", "WatchError"); Redis answered every
    command, so the breaker counts no failure."""
    other = redis_server.client()
    calls = 0

    def contended(stored: Fact | None) -> Fact:
        nonlocal calls
        calls += 1
        other.set(cache.key_name("k1"), b"someone else")
        return _changed(EARLY)

    with (
        caplog.at_level(logging.WARNING, logger="recyclecheck"),
        pytest.raises(CacheUnavailable) as caught,
    ):
        cache.update_strict("k1", contended)
    assert (caught.value.operation, caught.value.cause) == ("write", "WatchError")
    assert calls == UPDATE_ATTEMPTS
    assert other.get(cache.key_name("k1")) == b"someone else"
    assert "recyclecheck redis cache write failed: WatchError" in caplog.text
    assert "redis=closed" in repr(cache)
    cache.update_strict("k2", _merging(LATE))  # the cache (and its connection) still work
    assert cache.get_strict("k2") == _changed(LATE)
    other.close()


def test_update_strict_raises_when_redis_fails(
    dead: tuple[redis.Redis, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Down or hung: the read fails, so change is never called and CacheUnavailable
    names the read and the type only."""
    conn, cause = dead
    cache = RedisCache(conn, secret=SECRET)
    change = Recording(CHANGE)
    with (
        caplog.at_level(logging.WARNING, logger="recyclecheck"),
        pytest.raises(CacheUnavailable) as caught,
    ):
        cache.update_strict("k1", change)
    assert (caught.value.operation, caught.value.cause) == ("read", cause)
    assert isinstance(caught.value.__cause__, redis.RedisError)
    assert change.seen == []
    assert f"recyclecheck redis cache read failed: {cause}" in caplog.text
    assert cache.key_name("k1") not in caplog.text + str(caught.value)


def test_update_strict_reports_a_connection_lost_before_the_write(tmp_path: Path) -> None:
    """Redis dies between the read and the EXEC: redis-py calls that a WatchError, but it
    is the lost connection that is reported (no retry), as a failed write."""
    server = RedisServer(tmp_path)
    try:
        cache = RedisCache(server.client(), secret=SECRET)
        calls = 0

        def stop_redis(stored: Fact | None) -> Fact:
            nonlocal calls
            calls += 1
            server.stop()
            return CHANGE

        with pytest.raises(CacheUnavailable) as caught:
            cache.update_strict("k1", stop_redis)
    finally:
        server.stop()
    assert (caught.value.operation, caught.value.cause) == ("write", "ConnectionError")
    assert calls == 1


def test_update_strict_with_the_breaker_open_calls_nothing() -> None:
    """Strict failures open the breaker; then update_strict fails at once, change unasked."""
    cache = RedisCache(closed_port_client(), secret=SECRET)
    for _ in range(3):
        with pytest.raises(CacheUnavailable, match="ConnectionError"):
            cache.update_strict("k1", _merging(LATE))
    with pytest.raises(CacheUnavailable) as caught:
        cache.update_strict("k1", lambda stored: pytest.fail("change was called"))
    assert (caught.value.operation, caught.value.cause) == ("read", "circuit open")


def test_update_strict_replaces_an_unreadable_entry(cache: RedisCache, client: redis.Redis) -> None:
    """A tampered entry reads as None to change, as it does to get_strict."""
    cache.set("k1", _changed(LATE))
    name = cache.key_name("k1")
    raw = client.get(name)
    assert isinstance(raw, bytes)
    client.set(name, _flip(raw, 20))
    change = Recording(_changed(EARLY))
    cache.update_strict("k1", change)
    assert change.seen == [None]
    assert cache.get_strict("k1") == _changed(EARLY)


def test_update_strict_stores_nothing_for_a_lapsed_fact(
    cache: RedisCache, client: redis.Redis
) -> None:
    """A result whose claims have all lapsed is not stored and what was there stays,
    as with set_strict; the WATCH is dropped, so the next update goes through."""
    cache.set("k1", QUIET)
    before = client.get(cache.key_name("k1"))
    cache.update_strict("k1", lambda stored: Fact(quiet_from=EARLY, quiet_until=time.time() - 1))
    assert client.get(cache.key_name("k1")) == before
    cache.update_strict("k1", _merging(LATE))
    assert cache.get_strict("k1") == _changed(LATE)


def test_update_strict_lets_an_error_of_change_through(cache: RedisCache) -> None:
    """What change raises propagates as it is, nothing is written, and the breaker is
    untouched; the cache's connection is released for the next update."""

    def broken(stored: Fact | None) -> Fact:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        cache.update_strict("k1", broken)
    assert cache.get_strict("k1") is None
    cache.update_strict("k1", _merging(LATE))
    assert cache.get_strict("k1") == _changed(LATE)


def test_update_strict_needs_a_pipeline() -> None:
    """A duck-typed client with only get and set cannot run a transaction: a configuration error."""
    cache = RedisCache(BrokenClient(), secret=SECRET)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="pipeline"):
        cache.update_strict("k1", _merging(LATE))
