"""Fact caches: the protocol, the in-process backend, and strict reads and writes.

A cache never fails a login: ``get`` and ``set`` swallow backend trouble.  A
caller off the login path that would act wrongly on a miss that is really an
outage (``Guard.record_change`` merges what it reads into what it writes) uses
:func:`read_strictly` and :func:`write_strictly` instead: they call the cache's
optional ``get_strict``/``set_strict`` (``RedisCache`` has them), which raise
:class:`~recyclecheck.CacheUnavailable`.  A cache without them is read and
written with ``get``/``set``, and only what those raise is reported: a cache
that swallows its backend's errors, as the protocol asks, gives no guarantee.
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

__all__ = ["FactCache", "MemoryCache", "read_strictly", "seconds", "write_strictly"]

#: How long "no change up to now" is trusted by default.
DEFAULT_TTL = 3600.0
#: How long "a change happened on D" is kept by default (it never stops being true).
DEFAULT_CHANGE_TTL = 30 * 86400.0


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
    the backend failed.  They are not part of this protocol, so caches written
    without them still satisfy it.
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
        expires_at = fact.quiet_until
        if fact.changed_from is not None:
            expires_at = max(expires_at, now + self.change_ttl)
        if expires_at <= now:
            return
        with self._lock:
            self._entries[key] = (expires_at, fact)
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
