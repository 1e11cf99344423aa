"""Fact caches: the protocol, the in-process backend, and strict reads and writes.

A cache never fails a login: ``get`` and ``set`` swallow backend trouble.  A
caller off the login path that would act wrongly on a miss that is really an
outage (``Guard.record_change`` merges what it reads into what it writes) uses
:func:`read_strictly`, :func:`write_strictly` and :func:`update_strictly`
instead: they call the cache's optional ``get_strict``/``set_strict``/
``update_strict`` (``RedisCache`` has all three), which raise
:class:`~recyclecheck.CacheUnavailable`.  A cache without them is read and
written with ``get``/``set``, and only what those raise is reported: a cache
that swallows its backend's errors, as the protocol asks, gives no guarantee.

``update_strict(key, change)`` stores ``change(stored)`` with no other write to
the key in between, so two writers merging into one entry at the same instant
cannot lose either's contribution.  ``MemoryCache`` has it too; without it,
:func:`update_strictly` reads and then writes, which is not atomic.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Literal, Protocol, runtime_checkable

from ._facts import Fact
from .exceptions import CacheUnavailable, ConfigurationError

__all__ = [
    "FactCache",
    "MemoryCache",
    "read_strictly",
    "seconds",
    "update_strictly",
    "write_strictly",
]

#: How long "no change up to now" is trusted by default.
DEFAULT_TTL = 3600.0
#: How long "a change happened on D" is kept by default (it never stops being true).
DEFAULT_CHANGE_TTL = 30 * 86400.0
#: Rounds ``MemoryCache.update_strict`` runs before giving up on a key that keeps changing
#: under it (each round takes microseconds; only a ``change`` that writes the key itself,
#: or a crowd of threads writing it without pause, can lose them all).
MEMORY_UPDATE_ROUNDS = 100


def seconds(value: float | dt.timedelta, *, name: str) -> float:
    """Accept seconds as a number or a ``timedelta``; refuse negatives and NaN."""
    if isinstance(value, dt.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name} must be a number of seconds or a timedelta")
    if not value >= 0:  # also catches NaN
        raise ConfigurationError(f"{name} must not be negative")
    return float(value)


@runtime_checkable
class FactCache(Protocol):
    """Where the Guard keeps provider facts, under keyed-HMAC keys.

    ``ttl`` is how long a "no change up to now" observation is trusted;
    ``change_ttl`` how long a known change is kept.  Implementations must be
    thread-safe; ``get`` returns ``None`` for a missing, expired or unreadable
    entry, and neither method may raise for backend trouble (a cache is an
    optimisation, never a reason to fail a login).

    Optionally, for callers off the login path (``Guard.record_change``), a
    cache may also have ``get_strict(key)`` and ``set_strict(key, fact)``: the
    same, except that they raise :class:`~recyclecheck.CacheUnavailable` when
    the backend failed; and ``update_strict(key, change)``, which stores
    ``change(stored)`` with no other write to the key in between (``change``
    is pure and may be called more than once).  They are not part of this
    protocol, so caches written without them still satisfy it.
    """

    ttl: float
    change_ttl: float
    #: True when keys must be stable across processes (the Guard then needs a secret).
    shared: bool

    def get(self, key: str) -> Fact | None:
        """Return the fact stored under ``key``, if any and still alive."""
        ...

    def set(self, key: str, fact: Fact) -> None:
        """Store ``fact`` under ``key``."""
        ...


def read_strictly(cache: FactCache, key: str) -> Fact | None:
    """The fact under ``key``; raise :class:`~recyclecheck.CacheUnavailable` if the read failed.

    Uses ``cache.get_strict`` where the cache has one, else ``cache.get``;
    any other exception either raises becomes ``CacheUnavailable("read", ...)``
    naming its type (the original is the ``__cause__``).
    """
    strict = getattr(cache, "get_strict", None)
    read = strict if callable(strict) else cache.get
    fact: Fact | None = _strictly("read", read, key)
    return fact


def write_strictly(cache: FactCache, key: str, fact: Fact) -> None:
    """Store ``fact``; raise :class:`~recyclecheck.CacheUnavailable` if the write failed.

    Uses ``cache.set_strict`` where the cache has one, else ``cache.set``, as
    :func:`read_strictly` does.
    """
    strict = getattr(cache, "set_strict", None)
    write = strict if callable(strict) else cache.set
    _strictly("write", write, key, fact)


def update_strictly(cache: FactCache, key: str, change: Callable[[Fact | None], Fact]) -> None:
    """Store ``change(stored)`` under ``key``; raise :class:`~recyclecheck.CacheUnavailable` if not.

    Uses ``cache.update_strict`` where the cache has one (``RedisCache`` and
    ``MemoryCache`` do: no other write to the key lands between the read and
    the write).  Otherwise it is :func:`read_strictly` then
    :func:`write_strictly`, which is not atomic: a write by another thread or
    process in between is lost.  Any exception ``update_strict`` raises
    becomes ``CacheUnavailable("write", ...)`` naming its type, except what
    ``change`` itself raised, which propagates unchanged.
    """
    strict = getattr(cache, "update_strict", None)
    if not callable(strict):
        write_strictly(cache, key, change(read_strictly(cache, key)))
        return
    raised: list[BaseException] = []

    def watched(stored: Fact | None) -> Fact:
        try:
            return change(stored)
        except BaseException as exc:
            raised.append(exc)
            raise

    try:
        strict(key, watched)
    except CacheUnavailable:
        raise
    except Exception as exc:
        if exc in raised:  # the change's own error, not the cache's
            raise
        raise CacheUnavailable("write", type(exc).__name__) from exc


def _strictly(operation: Literal["read", "write"], method: Any, *args: object) -> Any:
    try:
        return method(*args)
    except CacheUnavailable:
        raise
    except Exception as exc:  # a custom cache's own error: report its type only
        raise CacheUnavailable(operation, type(exc).__name__) from exc


class MemoryCache:
    """A bounded, thread-safe, in-process LRU cache of facts.

    ``max_entries`` bounds memory (least recently used facts go first);
    ``ttl`` is how long "no change up to now" is trusted, ``change_ttl`` how
    long a known change is kept.  ``clock`` (epoch seconds) is for tests.
    """

    shared = False

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        ttl: float | dt.timedelta = DEFAULT_TTL,
        change_ttl: float | dt.timedelta = DEFAULT_CHANGE_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 0:
            raise ConfigurationError("max_entries must be a non-negative int")
        self.max_entries = max_entries
        self.ttl = seconds(ttl, name="ttl")
        self.change_ttl = seconds(change_ttl, name="change_ttl")
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, Fact]] = OrderedDict()

    def get(self, key: str) -> Fact | None:
        """Return the live fact under ``key`` and mark it recently used."""
        # The clock is the caller's code: never called under the lock (it may read the cache).
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires_at, fact = entry
            if now >= expires_at:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return fact

    def set(self, key: str, fact: Fact) -> None:
        """Store ``fact``; it lives as long as its longest-lived claim."""
        if self.max_entries == 0:
            return
        now = self._clock()
        expires_at = self._expires_at(fact, now)
        if expires_at <= now:
            return
        with self._lock:
            self._store(key, (expires_at, fact))

    def update_strict(self, key: str, change: Callable[[Fact | None], Fact]) -> None:
        """Store ``change(stored)`` under ``key``, with no other write to the key in between.

        ``stored`` is what :meth:`get` would return.  ``change`` and the clock
        run outside the lock (they are the caller's code); if another thread
        wrote the key meanwhile, the round starts over with what it wrote, so
        ``change`` must be pure.  A result whose claims have all lapsed is not
        stored, as with :meth:`set`.  Having no backend, it raises only
        ``CacheUnavailable("write", "contention")``, after
        :data:`MEMORY_UPDATE_ROUNDS` rounds each lost to another write.
        """
        if self.max_entries == 0:
            return
        for _ in range(MEMORY_UPDATE_ROUNDS):
            now = self._clock()
            with self._lock:
                entry = self._entries.get(key)
            stored = entry[1] if entry is not None and now < entry[0] else None
            fact = change(stored)
            now = self._clock()
            expires_at = self._expires_at(fact, now)
            if expires_at <= now:
                return
            with self._lock:
                if self._entries.get(key) is entry:
                    self._store(key, (expires_at, fact))
                    return
        raise CacheUnavailable("write", "contention")

    def _expires_at(self, fact: Fact, now: float) -> float:
        """When the fact's longest-lived claim lapses (epoch seconds)."""
        if fact.changed_from is None:
            return fact.quiet_until
        return max(fact.quiet_until, now + self.change_ttl)

    def _store(self, key: str, entry: tuple[float, Fact]) -> None:
        """Put an entry in and evict the least recently used beyond ``max_entries``.

        The caller holds the lock.
        """
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every fact (e.g. after a provider was found to have given wrong data)."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def keys(self) -> list[str]:
        """The stored keys (keyed HMACs, never numbers), for inspection."""
        with self._lock:
            return list(self._entries)

    def __repr__(self) -> str:
        return f"<MemoryCache entries={len(self)} max_entries={self.max_entries}>"
