"""The Redis fact cache: one cache for a fleet, encrypted values, keyed key names.

Redis is an untrusted store here.  Whoever can read it sees only key names that
are keyed HMACs of the Guard's own (already keyed) cache key, and values sealed
with AES-256-GCM; whoever can write it can delete facts (a cache miss costs one
provider call) but cannot forge one, nor move one from a number to another.

Both keys come from the caller's ``secret`` through HKDF-SHA256 with distinct
labels, so one secret serves both purposes (and may even be the Guard's own
secret) without either use weakening the other::

    name key  = HKDF(secret, info="recyclecheck/redis-cache/v1 key-name")
    value key = HKDF(secret, info="recyclecheck/redis-cache/v1 value-aead")
    redis key = prefix + hex(HMAC-SHA256(name key, guard key))
    value     = 0x01 || nonce (12 random bytes) || AES-256-GCM(value key, nonce,
                Fact.to_bytes(), associated data = 0x01 || redis key)

Entries expire in Redis (``SET ... PX``) when their longest-lived claim does,
exactly as in :class:`~recyclecheck.MemoryCache`.

``get`` and ``set`` never raise (a login never fails for its cache);
``get_strict``, ``set_strict`` and ``update_strict``, for callers off the login
path, raise :class:`~recyclecheck.CacheUnavailable` when Redis did not answer.
All of them go through one ``_command``: the same breaker, the same logging (the
exception type only).

``update_strict`` is a read-change-write that no other writer can interleave
with: Redis cannot merge sealed values itself, so it runs the change here under
optimistic concurrency (``WATCH`` the key, ``GET``, change, then ``MULTI``/
``SET``/``EXEC``, which Redis refuses if the key was written since the
``WATCH``) and starts over on a refusal, at most :data:`UPDATE_ATTEMPTS` times.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import math
import os
import random
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ._cache import DEFAULT_CHANGE_TTL, DEFAULT_TTL, seconds
from ._facts import Fact
from ._redis_client import check_fast_client, fast_redis_client
from ._resilience import CircuitBreaker
from ._secrets import secret_bytes
from .exceptions import CacheUnavailable, ConfigurationError

if TYPE_CHECKING:  # redis is the optional extra ``recyclecheck[redis]``
    import redis

__all__ = ["RedisCache"]

logger = logging.getLogger("recyclecheck")

#: The longest socket timeout (seconds) a client may use: a cache read sits on the login path.
#: Consecutive Redis failures after which the cache stops calling Redis for a while...
BREAKER_THRESHOLD: Final = 3
#: ...and for how long (seconds) before one call probes it again.
BREAKER_RECOVERY: Final = 5.0

_VERSION: Final = b"\x01"
_NONCE_BYTES: Final = 12
_TAG_BYTES: Final = 16
_HKDF_SALT: Final = b"recyclecheck.RedisCache"
_NAME_INFO: Final = b"recyclecheck/redis-cache/v1 key-name"
_VALUE_INFO: Final = b"recyclecheck/redis-cache/v1 value-aead"
#: A serialised Fact is under 100 bytes; anything far larger is not ours.
_MAX_VALUE_BYTES: Final = 4096
#: How many read-change-write rounds ``update_strict`` runs before it gives up on a key
#: that other writers keep changing under it.
UPDATE_ATTEMPTS: Final = 10
#: The longest pause (seconds) between two rounds; each pause is random, up to a cap
#: that doubles from a millisecond, so writers that collided do not collide again.
_UPDATE_PAUSE_CAP: Final = 0.05


def _derive(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=info).derive(secret)


def _check_client(client: object) -> None:
    """Refuse a client that could hold a login for seconds when Redis is unwell."""
    if not callable(getattr(client, "get", None)) or not callable(getattr(client, "set", None)):
        raise ConfigurationError("client must be a redis.Redis (or have get() and set())")
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", None)
    if isinstance(kwargs, Mapping) and kwargs.get("decode_responses"):
        raise ConfigurationError(
            "RedisCache stores bytes: build the client without decode_responses"
        )
    check_fast_client(client, user="RedisCache")


class RedisCache:
    """A fact cache in Redis, shared by every process that holds the same ``secret``.

    ``client`` is a ``redis.Redis`` you build (install ``recyclecheck[redis]``)
    so that it fails fast, because a cache read happens on the login path::

        client = redis.Redis(
            host="cache.internal",
            socket_timeout=0.05,
            socket_connect_timeout=0.05,
            retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
        )
        cache = recyclecheck.RedisCache(client, secret=cache_secret)
        guard = recyclecheck.Guard(provider, cache=cache, secret=guard_secret)

    The constructor raises :class:`~recyclecheck.ConfigurationError` when it can
    see that the client would not fail fast: no ``socket_timeout`` or
    ``socket_connect_timeout`` (or one above :data:`MAX_SOCKET_TIMEOUT`),
    automatic retries, or ``decode_responses``.  It does no I/O.

    ``secret`` (bytes or str, at least 16 bytes, the same across the fleet)
    keys the HMAC that names entries and the AES-256-GCM key that seals them;
    changing it (or ``prefix``) empties the cache, old entries expire on their
    own.  ``prefix`` starts every key name.  ``ttl`` is how long "no change up
    to now" is trusted, ``change_ttl`` how long a known change is kept
    (seconds or ``timedelta``).  ``clock`` (epoch seconds) is for tests.

    ``get`` and ``set`` never raise: a missing, expired, tampered or unreadable
    entry reads as ``None``; a Redis error or timeout is logged (exception type
    only) and reads as a miss.  After :data:`BREAKER_THRESHOLD` consecutive
    Redis failures the cache stops calling Redis for :data:`BREAKER_RECOVERY`
    seconds, so an outage costs logins no time.

    ``get_strict`` and ``set_strict`` are the same for callers off the login
    path: they raise :class:`~recyclecheck.CacheUnavailable` when Redis fails,
    times out or the breaker is open.  ``update_strict`` (what
    :meth:`Guard.record_change` uses) reads, changes and writes one entry
    atomically, and raises the same way.
    """

    #: Keys must be stable across processes: the Guard then requires its own secret.
    shared = True

    def __init__(
        self,
        client: redis.Redis,
        *,
        secret: bytes | str,
        prefix: str = "recyclecheck:",
        ttl: float | dt.timedelta = DEFAULT_TTL,
        change_ttl: float | dt.timedelta = DEFAULT_CHANGE_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        key = secret_bytes(secret, owner="RedisCache (the same in every process sharing it)")
        if not isinstance(prefix, str):
            raise ConfigurationError("prefix must be a str")
        if not callable(clock):
            raise ConfigurationError("clock must be callable")
        _check_client(client)
        self.prefix = prefix
        self.ttl = seconds(ttl, name="ttl")
        self.change_ttl = seconds(change_ttl, name="change_ttl")
        self._client = client
        self._clock = clock
        self._name_key = _derive(key, _NAME_INFO)
        self._aead = AESGCM(_derive(key, _VALUE_INFO))
        self._breaker = CircuitBreaker(
            failure_threshold=BREAKER_THRESHOLD, recovery_time=BREAKER_RECOVERY, name="redis-cache"
        )

    @classmethod
    def from_url(cls, url: str, *, secret: bytes | str, **options: Any) -> RedisCache:
        """Build the cache on a client for ``url`` that fails fast enough for a login path.

        ``url`` is a ``redis://``, ``rediss://`` or ``unix://`` URL; the client
        gets 50 ms socket and connect timeouts and no retries, so you need not
        build one yourself.  ``options`` are the constructor's (``prefix``,
        ``ttl``, ``change_ttl``).  Options in the URL's query string win, and
        are checked like any client's.
        """
        return cls(fast_redis_client(url), secret=secret, **options)

    def __repr__(self) -> str:
        return (
            f"<RedisCache prefix={self.prefix!r} ttl={self.ttl:g} "
            f"change_ttl={self.change_ttl:g} redis={self._breaker.state}>"
        )

    # -- FactCache --------------------------------------------------------------------

    def get(self, key: str) -> Fact | None:
        """Return the fact stored under ``key``, if any.

        ``None`` when it is missing, expired or unreadable, or Redis is unavailable.
        """
        try:
            name = self.key_name(key)
        except Exception as exc:
            logger.warning("recyclecheck redis cache read skipped: %s", type(exc).__name__)
            return None
        ok, raw = self._call("read", lambda: self._client.get(name))
        if not ok or raw is None:
            return None
        return self._open(name, raw)

    def set(self, key: str, fact: Fact) -> None:
        """Store ``fact`` sealed under ``key``; it expires with its longest-lived claim.

        Never raises: a failed write is logged and the fact is simply not shared.
        """
        try:
            name = self.key_name(key)
            sealed = self._sealed(name, fact)
        except Exception as exc:
            logger.warning("recyclecheck redis cache write skipped: %s", type(exc).__name__)
            return
        if sealed is not None:
            value, expires_in = sealed
            self._call("write", lambda: self._client.set(name, value, px=expires_in))

    # -- strict, for callers off the login path ---------------------------------------

    def get_strict(self, key: str) -> Fact | None:
        """Return the fact stored under ``key``, if any; raise if Redis did not answer.

        Raises :class:`~recyclecheck.CacheUnavailable` when the ``GET`` failed or
        timed out, or the breaker is open; it is logged as in :meth:`get`.
        ``None`` means Redis answered: nothing is stored, or what is stored
        cannot be opened (tampered, malformed, sealed for another key; logged).
        Such an entry reads as ``None`` for every holder of the secret, so
        overwriting it loses nothing any reader could see, whereas refusing
        would block the key for as long as the entry lives.
        """
        name = self.key_name(key)
        raw = self._command("read", lambda: self._client.get(name))
        return None if raw is None else self._open(name, raw)

    def set_strict(self, key: str, fact: Fact) -> None:
        """Store ``fact`` sealed under ``key``; raise if Redis did not take it.

        Raises :class:`~recyclecheck.CacheUnavailable` when the ``SET`` failed or
        timed out, or the breaker is open; it is logged as in :meth:`set`.  A
        fact whose claims have all lapsed is not stored, as with :meth:`set`.
        """
        name = self.key_name(key)
        sealed = self._sealed(name, fact)
        if sealed is not None:
            value, expires_in = sealed
            self._command("write", lambda: self._client.set(name, value, px=expires_in))

    def update_strict(self, key: str, change: Callable[[Fact | None], Fact]) -> None:
        """Replace the fact under ``key`` with ``change(stored)``, with no write in between.

        ``stored`` is what :meth:`get_strict` would return (``None`` for nothing
        or an entry that cannot be opened); the result is sealed and stored as
        :meth:`set_strict` stores it (a fact whose claims have all lapsed is not
        stored, and what was there stays).  If another writer changed the key
        between the read and the write, Redis refuses the write and the round
        starts over: ``change`` is called once per round, so it must be pure.

        Raises :class:`~recyclecheck.CacheUnavailable` as :meth:`get_strict`
        does when the read fails (``operation="read"``; nothing was written)
        and as :meth:`set_strict` does when the write fails (``"write"``; it may
        or may not have landed, and repeating a pure change is safe), and
        ``CacheUnavailable("write", "WatchError")`` after
        :data:`UPDATE_ATTEMPTS` refused rounds.  Raises
        :class:`~recyclecheck.ConfigurationError` if the client has no
        ``pipeline()`` or redis-py is missing.  What ``change`` raises propagates.
        """
        name = self.key_name(key)
        watch_error = _watch_error_type()
        pipeline = getattr(self._client, "pipeline", None)
        if not callable(pipeline):
            raise ConfigurationError("update_strict needs a client with pipeline() (a redis.Redis)")
        pipe = pipeline()  # no I/O: its connection is taken by the first command
        try:
            for attempt in range(UPDATE_ATTEMPTS):
                if attempt:
                    pause = min(_UPDATE_PAUSE_CAP, 0.001 * 2**attempt)
                    time.sleep(random.uniform(0, pause))  # noqa: S311 - jitter, not a secret
                if self._update_round(pipe, name, change, watch_error):
                    return
        finally:
            _release(pipe)
        logger.warning("recyclecheck redis cache write failed: %s", "WatchError")
        raise CacheUnavailable("write", "WatchError")

    def _update_round(
        self,
        pipe: Any,
        name: str,
        change: Callable[[Fact | None], Fact],
        watch_error: type[Exception],
    ) -> bool:
        """One optimistic round; False when Redis refused the write (the key moved)."""
        raw = self._command("read", lambda: _watch_and_get(pipe, name, watch_error))
        sealed = self._sealed(name, change(None if raw is None else self._open(name, raw)))
        if sealed is None:
            return True  # nothing to store; _release drops the WATCH
        value, expires_in = sealed
        stored = self._command(
            "write", lambda: _set_unless_moved(pipe, name, value, expires_in, watch_error)
        )
        return stored is True

    # -- helpers ----------------------------------------------------------------------

    def key_name(self, key: str) -> str:
        """Return the Redis key name for a Guard cache key: ``prefix`` + a keyed HMAC of it."""
        if not isinstance(key, str):
            raise TypeError("cache keys are str")
        digest = hmac.new(self._name_key, key.encode("utf-8"), hashlib.sha256).hexdigest()
        return self.prefix + digest

    def _sealed(self, name: str, fact: Fact) -> tuple[bytes, int] | None:
        """The value to store under ``name`` and its lifetime (ms), or None: nothing to store."""
        expires_in = self._lifetime(fact)
        if expires_in is None:
            return None
        return self._seal(name, fact.to_bytes()), expires_in

    def _lifetime(self, fact: Fact) -> int | None:
        """Milliseconds until the fact's longest-lived claim lapses, or None if it has."""
        now = self._clock()
        expires_at = fact.quiet_until
        if fact.changed_from is not None:
            expires_at = max(expires_at, now + self.change_ttl)
        if not expires_at > now:  # also refuses NaN
            return None
        return max(1, math.ceil((expires_at - now) * 1000))

    def _call(
        self, what: Literal["read", "write"], command: Callable[[], object]
    ) -> tuple[bool, object]:
        """Run one Redis command unless the breaker is open; never raise."""
        try:
            return True, self._command(what, command)
        except CacheUnavailable:
            return False, None

    def _command(self, what: Literal["read", "write"], command: Callable[[], object]) -> object:
        """Run one Redis command unless the breaker is open; raise ``CacheUnavailable`` if not."""
        if not self._breaker.allow():
            raise CacheUnavailable(what, "circuit open")
        try:
            result = command()
        except Exception as exc:  # RedisError, OSError, or anything a client may raise
            self._breaker.record_failure()
            logger.warning("recyclecheck redis cache %s failed: %s", what, type(exc).__name__)
            raise CacheUnavailable(what, type(exc).__name__) from exc
        self._breaker.record_success()
        return result

    def _aad(self, name: str) -> bytes:
        return _VERSION + name.encode("utf-8")

    def _seal(self, name: str, plaintext: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, self._aad(name))

    def _open(self, name: str, raw: object) -> Fact | None:
        """Decrypt and parse a stored value; ``None`` (logged) if it is not a sealed Fact."""
        if (
            not isinstance(raw, bytes)
            or not 1 + _NONCE_BYTES + _TAG_BYTES <= len(raw) <= _MAX_VALUE_BYTES
            or raw[:1] != _VERSION
        ):
            logger.warning("recyclecheck redis cache entry unreadable: malformed")
            return None
        nonce = raw[1 : 1 + _NONCE_BYTES]
        try:
            plaintext = self._aead.decrypt(nonce, raw[1 + _NONCE_BYTES :], self._aad(name))
        except InvalidTag:
            logger.warning(
                "recyclecheck redis cache entry unreadable: authentication failed "
                "(tampered, moved, or written with another secret)"
            )
            return None
        try:
            return Fact.from_bytes(plaintext)
        except ValueError:
            logger.warning("recyclecheck redis cache entry unreadable: not a fact")
            return None


# -- optimistic transactions (update_strict) -----------------------------------------


def _watch_error_type() -> type[Exception]:
    try:
        from redis.exceptions import WatchError  # noqa: PLC0415 - the optional extra
    except ImportError:
        raise ConfigurationError(
            "update_strict needs redis-py: pip install 'recyclecheck[redis]'"
        ) from None
    return WatchError


def _watch_and_get(pipe: Any, name: str, watch_error: type[Exception]) -> object:
    """``WATCH`` the key and read it on the pipeline's own connection."""
    pipe.watch(name)
    try:
        return pipe.get(name)
    except watch_error as exc:
        raise _transport_error(exc) from None


def _set_unless_moved(
    pipe: Any, name: str, value: bytes, expires_in: int, watch_error: type[Exception]
) -> bool:
    """``MULTI``/``SET``/``EXEC``; False if Redis refused it because the key was written."""
    pipe.multi()
    pipe.set(name, value, px=expires_in)
    try:
        pipe.execute()
    except watch_error as exc:
        if exc.__context__ is not None:  # the connection failed: the outcome is unknown
            raise _transport_error(exc) from None
        return False
    return True


def _transport_error(exc: BaseException) -> BaseException:
    """The connection error redis-py turned into a ``WatchError``, so it is reported as such.

    redis-py raises ``WatchError`` when a connection that was watching a key
    fails, with the real error as its context; only a ``WatchError`` without
    one means the key was written by someone else.
    """
    return exc.__context__ if exc.__context__ is not None else exc


def _release(pipe: Any) -> None:
    """Drop a WATCH still held (a round that stored nothing, or failed) and free the connection."""
    try:
        pipe.reset()
    except Exception as exc:  # UNWATCH failed: Redis drops the WATCH with the connection
        logger.warning("recyclecheck redis cache release failed: %s", type(exc).__name__)
