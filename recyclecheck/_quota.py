"""Provider quotas: a token bucket per provider, asked once per provider call.

A quota is a refusal, not a queue.  Each *new* provider call takes one token
first (a check answered from the cache, or one that joins a call already in
flight for the same number, takes none); when there is none, the check
answers at once with ``provider_unavailable`` (a :class:`ProviderRateLimited`
that the breaker does not count: the provider did nothing wrong) and never
waits for a token to come.

Two buckets, one :class:`Quota` protocol (``try_acquire() -> bool``):

- :class:`TokenBucket` lives in the process: ``burst`` calls at once, then
  ``rate`` a second.  It takes microseconds, so the Guard may ask it on any
  thread, the event loop's included.
- :class:`RedisTokenBucket` is one bucket for a fleet, held in Redis and
  updated atomically by a Lua script that reads the Redis server's own clock
  (``TIME``), so every process agrees on how many tokens have come.  It does
  network I/O, so the Guard only asks it on a worker thread, as the first step
  of the provider call, inside the check's deadline.  When Redis fails it paces
  the process with an in-process bucket instead (logged once per outage).

The Redis state of a bucket is one hash, ``prefix + name`` (a provider's name,
never a phone number): ``tokens`` (a float) and ``at`` (microseconds of the
server clock when ``tokens`` was last brought up to date).  The script adds
``rate x elapsed`` tokens up to ``burst``, takes one if there is one, and sets
the key to expire once the bucket would be full again (a missing key *is* a
full bucket, so idle buckets leave nothing behind).
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from ._deadline import remaining_time
from ._redis_client import (
    check_fast_client,
    fast_redis_client,
)
from .exceptions import ConfigurationError

if TYPE_CHECKING:  # redis is the optional extra ``recyclecheck[redis]``
    import redis

__all__ = ["Quota", "RedisTokenBucket", "TokenBucket", "quotas_by_provider"]

logger = logging.getLogger("recyclecheck")

#: While Redis is failing, one call in this many seconds tries it again; the rest pace locally.
REDIS_RETRY_INTERVAL: Final = 1.0
#: Token counts are floats: a bucket short of a whole token by less than this still grants one.
_EPSILON: Final = 1e-9

#: KEYS[1] the bucket; ARGV: rate (tokens a second), burst, key lifetime (ms).  Returns 1 or 0.
_SCRIPT: Final = """
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local rate = tonumber(ARGV[1]) / 1000000
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil or tokens > burst then
  tokens = burst
elseif now > at then
  tokens = math.min(burst, tokens + (now - at) * rate)
end
local granted = 0
if tokens >= 1 - 1e-9 then
  tokens = tokens - 1
  granted = 1
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
           'at', string.format('%.17g', now))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return granted
"""
_SCRIPT_SHA: Final = hashlib.sha1(_SCRIPT.encode(), usedforsecurity=False).hexdigest()


@runtime_checkable
class Quota(Protocol):
    """Permission for one provider call, answered at once.

    ``try_acquire()`` takes one token and returns ``True`` when there is one,
    and returns ``False`` at once when there is none: it never waits for a
    token to come.  The Guard asks it once per new provider call, never for an
    answer from the cache nor for a check joining a call already in flight;
    ``False`` makes the check ``provider_unavailable`` without calling the
    provider.  Implementations must be thread-safe.  The Guard asks a
    :class:`TokenBucket` on the caller's thread; any other quota is assumed to
    do I/O and is asked on a worker thread inside the check's deadline (and a
    quota that raises counts as a refusal).
    """

    def try_acquire(self) -> bool:
        """Take one token if there is one (``True``); ``False`` at once if not."""
        ...


def _rate(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError("rate must be a number of calls per second")
    if not 0 < value < math.inf:  # also refuses NaN
        raise ConfigurationError("rate must be a positive, finite number of calls per second")
    return float(value)


def _burst(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError("burst must be a positive int (calls allowed at once)")
    return value


class TokenBucket:
    """An in-process token bucket: up to ``burst`` calls at once, then ``rate`` a second.

    It starts full.  :meth:`try_acquire` is thread-safe, takes microseconds and
    never waits.  ``clock`` (monotonic seconds) is for tests; it is read
    outside the bucket's lock.  For one server, or as each process's share of
    a provider's limit; for a fleet, see :class:`RedisTokenBucket`.
    """

    def __init__(
        self, *, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = _rate(rate)
        self.burst = _burst(burst)
        if not callable(clock):
            raise ConfigurationError("clock must be callable")
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = float(self.burst)
        self._at: float | None = None  # the clock's first reading starts the refill

    def __repr__(self) -> str:
        return f"<TokenBucket rate={self.rate:g}/s burst={self.burst}>"

    def try_acquire(self) -> bool:
        """Take one token if there is one (``True``); ``False`` at once if not."""
        now = self._clock()  # user code (a test clock): never called under the lock
        with self._lock:
            if self._at is None:
                self._at = now
            elif now > self._at:  # a reading older than the last one adds nothing
                self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
                self._at = now
            if self._tokens < 1 - _EPSILON:
                return False
            self._tokens -= 1
            return True


def _check_fast_client(client: object) -> float:
    """Refuse a client without a bucket's commands, or too slow; return its worst case.

    The timeout rule is :func:`~recyclecheck._redis_client.check_fast_client`'s.
    """
    if not callable(getattr(client, "evalsha", None)) or not callable(
        getattr(client, "script_load", None)
    ):
        raise ConfigurationError("client must be a redis.Redis (or have evalsha and script_load)")
    return check_fast_client(client, user="RedisTokenBucket")


def _is_noscript(exc: Exception) -> bool:
    """Redis forgot the script (a restart, ``SCRIPT FLUSH``): load it and call again."""
    return type(exc).__name__ == "NoScriptError" or str(exc).startswith("NOSCRIPT")


class RedisTokenBucket:
    """One token bucket for a fleet, in Redis: ``burst`` calls at once, then ``rate`` a second.

    Every process that builds a bucket with the same ``name`` (and ``prefix``)
    on the same Redis shares it, and should give the same ``rate`` and
    ``burst``.  Each :meth:`try_acquire` is one atomic Lua script (``EVALSHA``,
    loaded with ``SCRIPT LOAD`` when Redis does not know it) that reads the
    Redis server's own clock, so processes whose clocks disagree still share
    one pace.  The key, ``prefix + name``, names a bucket, never a number.

    ``client`` is a ``redis.Redis`` that fails fast (install
    ``recyclecheck[redis]``); :meth:`from_url` builds one.  The constructor
    refuses a client it can see would not (a ``socket_timeout`` or
    ``socket_connect_timeout`` missing or above :data:`MAX_SOCKET_TIMEOUT`,
    automatic retries) and does no I/O.

    :meth:`try_acquire` never raises.  When Redis fails (down, timing out,
    refusing the script), the call is paced by ``fallback``, an in-process
    :class:`TokenBucket` (by default one with the same ``rate`` and
    ``burst``: during an outage each process may then call at the full rate,
    so pass ``TokenBucket(rate=rate / processes, burst=...)`` to keep a fleet
    under the limit even then).  The outage is logged once, with the error's
    type only; while it lasts one call every :data:`REDIS_RETRY_INTERVAL`
    seconds tries Redis again, the rest pace locally at once.  Inside a check
    whose deadline is too close for a Redis round trip at the client's worst
    case, that one call is paced locally too, so the token never makes the
    answer late.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        name: str,
        rate: float,
        burst: int,
        prefix: str = "recyclecheck:quota:",
        fallback: TokenBucket | None = None,
    ) -> None:
        if not isinstance(name, str) or not name or not name.isprintable():
            raise ConfigurationError("name must be a non-empty str (the bucket's name in Redis)")
        if not isinstance(prefix, str):
            raise ConfigurationError("prefix must be a str")
        self.rate = _rate(rate)
        self.burst = _burst(burst)
        if fallback is not None and not isinstance(fallback, TokenBucket):
            raise ConfigurationError("fallback must be a TokenBucket (an in-process bucket)")
        self._worst_case = _check_fast_client(client)
        self.name = name
        #: The Redis key holding this bucket's state.
        self.key = prefix + name
        #: The in-process bucket that paces calls while Redis is unavailable.
        self.fallback = fallback if fallback is not None else TokenBucket(rate=rate, burst=burst)
        self.retry_interval = REDIS_RETRY_INTERVAL
        self._client = client
        # A missing key is a full bucket: keep the state until it would be full again.
        lifetime_ms = math.ceil(self.burst / self.rate * 1000) + 1000
        self._args = (self.key, repr(self.rate), str(self.burst), str(lifetime_ms))
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._retry_at = 0.0

    @classmethod
    def from_url(
        cls, url: str, *, name: str, rate: float, burst: int, **options: Any
    ) -> RedisTokenBucket:
        """Build the bucket on a client for ``url`` that fails fast.

        ``url`` is a ``redis://``, ``rediss://`` or ``unix://`` URL; the client
        gets :data:`FAST_SOCKET_TIMEOUT` socket and connect timeouts and no
        retries (see :func:`fast_redis_client`).  ``options`` are the
        constructor's (``prefix``, ``fallback``).
        """
        return cls(fast_redis_client(url), name=name, rate=rate, burst=burst, **options)

    def __repr__(self) -> str:
        state = "up" if self._down_since is None else "down"
        return (
            f"<RedisTokenBucket {self.name!r} rate={self.rate:g}/s burst={self.burst} "
            f"redis={state}>"
        )

    def try_acquire(self) -> bool:
        """Take one token from the shared bucket (``True``); ``False`` at once if none.

        Never raises: when Redis fails, the in-process ``fallback`` answers.
        """
        if not self._redis_worth_asking():
            return self.fallback.try_acquire()
        started = time.monotonic()
        try:
            granted = self._take()
        except Exception as exc:  # RedisError, OSError, or anything a client may raise
            self._failed(exc)
            return self.fallback.try_acquire()
        self._answered(started)
        return granted

    # -- helpers ----------------------------------------------------------------------

    def _take(self) -> bool:
        try:
            result: object = self._client.evalsha(_SCRIPT_SHA, 1, *self._args)
        except Exception as exc:
            if not _is_noscript(exc):
                raise
            self._client.script_load(_SCRIPT)
            result = self._client.evalsha(_SCRIPT_SHA, 1, *self._args)
        if isinstance(result, bool) or result not in (0, 1):
            raise TypeError("the quota script returned something else than 0 or 1")
        return result == 1

    def _redis_worth_asking(self) -> bool:
        """Whether this call asks Redis: it is up (or due a retry) and there is time for it."""
        left = remaining_time()
        if left is not None and left < self._worst_case:
            return False
        now = time.monotonic()
        with self._lock:
            if self._down_since is None:
                return True
            if now < self._retry_at:
                return False
            self._retry_at = now + self.retry_interval  # this call is the one retry
            return True

    def _failed(self, exc: Exception) -> None:
        now = time.monotonic()
        with self._lock:
            first = self._down_since is None
            if first:
                self._down_since = now
            self._retry_at = now + self.retry_interval
        if first:
            logger.warning(
                "recyclecheck redis quota unavailable (%s): bucket=%s is paced by the "
                "in-process fallback until Redis answers again",
                type(exc).__name__,
                self.name,
            )

    def _answered(self, started: float) -> None:
        """A call that started after the outage began got through: Redis is back.

        One already under way when the outage began proves nothing (a timeout
        that hit its neighbour may not have hit it), so it does not end it.
        """
        if self._down_since is None:
            return
        with self._lock:
            since = self._down_since
            if since is None or started < since:
                return
            self._down_since = None
        logger.warning(
            "recyclecheck redis quota back: bucket=%s after %.1fs paced locally",
            self.name,
            time.monotonic() - since,
        )


def quotas_by_provider(quota: object, names: Iterable[str]) -> dict[str, Quota]:
    """Each provider's quota, from ``Guard(quota=...)``: one for all, or a mapping by name.

    Raises :class:`~recyclecheck.ConfigurationError` for anything else, and
    for a name that is not one of ``names`` (a typo would otherwise leave a
    provider without its limit).
    """
    names = list(names)
    if quota is None:
        return {}
    if isinstance(quota, Mapping):
        unknown = sorted(str(name) for name in quota if name not in names)
        if unknown:
            raise ConfigurationError(
                f"quota names {', '.join(map(repr, unknown))}, not among the Guard's "
                f"providers ({', '.join(map(repr, names))})"
            )
        for name, value in quota.items():
            if not _is_quota(value):
                raise ConfigurationError(
                    f"quota[{name!r}] must be a Quota (a TokenBucket or a RedisTokenBucket)"
                )
        return dict(quota)
    if not _is_quota(quota):
        raise ConfigurationError(
            "quota must be a Quota (a TokenBucket or a RedisTokenBucket), or a mapping of "
            "provider name to Quota"
        )
    return dict.fromkeys(names, quota)  # type: ignore[arg-type]  # checked by _is_quota


def _is_quota(value: object) -> bool:
    # A class has a callable try_acquire too: ``quota=TokenBucket`` is a slip, not a quota.
    return not isinstance(value, type) and callable(getattr(value, "try_acquire", None))
