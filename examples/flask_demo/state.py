"""Per-app state (clock, keys, limits, the fake gateways) and the per-request store."""

from __future__ import annotations

import collections
import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import current_app, g

import recyclecheck

from .security import Codes, Throttle
from .store import Store

__all__ = ["DemoState", "RecentDecisions", "demo", "get_store"]

EXTENSION_KEY = "flask_demo"


class RecentDecisions:
    """The Guard's last decisions, for the developer panel (masked numbers only).

    The demo passes it as ``RECYCLECHECK_ON_DECISION``: the same hook would
    feed metrics in production.
    """

    def __init__(self, size: int = 4) -> None:
        self._items: collections.deque[recyclecheck.Decision] = collections.deque(maxlen=size)
        self._lock = threading.Lock()
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def __call__(self, decision: recyclecheck.Decision) -> None:
        with self._lock:
            self._items.appendleft(decision)
            self.counts[(decision.action.value, decision.reason.value)] += 1

    def latest(self) -> list[recyclecheck.Decision]:
        """Newest first."""
        with self._lock:
            return list(self._items)


@dataclass
class DemoState:
    """What the demo keeps per app, in ``app.extensions["flask_demo"]``."""

    database: str
    clock: Callable[[], float]
    codes: Codes
    throttle: Throttle
    pending_ttl: float
    step_up_attempts: int
    development: bool
    decisions: RecentDecisions = field(default_factory=RecentDecisions)

    def now(self) -> float:
        """Epoch seconds from the demo's clock."""
        return self.clock()

    def now_dt(self) -> dt.datetime:
        """The demo clock as an aware UTC datetime."""
        return dt.datetime.fromtimestamp(self.clock(), dt.timezone.utc)


def demo() -> DemoState:
    """The current app's :class:`DemoState`."""
    state = current_app.extensions[EXTENSION_KEY]
    assert isinstance(state, DemoState)
    return state


def get_store() -> Store:
    """This request's connection to the demo database (closed at teardown)."""
    store = g.get("demo_store")
    if store is None:
        store = g.demo_store = Store(demo().database)
    assert isinstance(store, Store)
    return store


def close_store(_exc: BaseException | None = None) -> None:
    """``teardown_appcontext``: close the request's connection, if it opened one."""
    store = g.pop("demo_store", None)
    if store is not None:
        store.close()
