"""Scriptable providers for Guard tests."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable

from recyclecheck.providers import Answer, LastChange


class ScriptedProvider:
    """Counts calls; answers through ``behave(number, since)`` (return or raise)."""

    def __init__(
        self,
        behave: Callable[[str, dt.date], Answer] | None = None,
        *,
        name: str = "scripted",
        delay: float = 0.0,
    ) -> None:
        self.name = name
        self.behave = behave or (lambda number, since: LastChange(None))
        self.delay = delay
        self.calls: list[tuple[str, dt.date]] = []
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.calls)

    def lookup(self, number: str, since: dt.date) -> Answer:
        with self._lock:
            self.calls.append((number, since))
        if self.delay:
            time.sleep(self.delay)
        return self.behave(number, since)


class HangingProvider:
    """Never returns until released (a user-written provider with no timeout)."""

    name = "hanging"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = 0
        self._lock = threading.Lock()

    def lookup(self, number: str, since: dt.date) -> Answer:
        with self._lock:
            self.started += 1
        self.release.wait(60)
        return LastChange(None)


def in_turn(*outcomes: Answer | Exception) -> Callable[[str, dt.date], Answer]:
    """A behaviour returning (or raising) each outcome in turn, one per call."""
    pending = list(outcomes)

    def behave(number: str, since: dt.date) -> Answer:
        outcome = pending.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return behave
