"""DecisionLog: every Decision a Guard made, for assertions."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import overload

from .._decision import Decision
from .._policy import Action, Reason

__all__ = ["DecisionLog"]


class DecisionLog(Sequence[Decision]):
    """Every :class:`~recyclecheck.Decision` a Guard made, oldest first.

    Pass it as ``Guard(on_decision=log)``: calling it records a decision.  It
    is a read-only sequence (``len(log)``, ``log[0]``, iteration) with
    :attr:`last`, :attr:`actions` and :attr:`reasons` for short assertions::

        assert log.reasons == ["reissued_after_binding", "not_reissued"]

    Thread-safe.  The ``pytest`` fixture ``recyclecheck_decisions`` gives a fresh
    one per test, already wired into ``recyclecheck_guard``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._decisions: list[Decision] = []

    def __call__(self, decision: Decision) -> None:
        """Record ``decision`` (the ``on_decision`` hook)."""
        with self._lock:
            self._decisions.append(decision)

    @overload
    def __getitem__(self, index: int) -> Decision: ...

    @overload
    def __getitem__(self, index: slice) -> list[Decision]: ...

    def __getitem__(self, index: int | slice) -> Decision | list[Decision]:
        with self._lock:
            return self._decisions[index]

    def __len__(self) -> int:
        with self._lock:
            return len(self._decisions)

    def __iter__(self) -> Iterator[Decision]:
        with self._lock:
            return iter(list(self._decisions))

    @property
    def last(self) -> Decision:
        """The most recent decision; ``IndexError`` when none was made."""
        with self._lock:
            if not self._decisions:
                raise IndexError("no decision recorded yet")
            return self._decisions[-1]

    @property
    def actions(self) -> list[Action]:
        """The action of each decision, in order (``Action`` compares equal to its value)."""
        with self._lock:
            return [decision.action for decision in self._decisions]

    @property
    def reasons(self) -> list[Reason]:
        """The reason of each decision, in order (``Reason`` compares equal to its value)."""
        with self._lock:
            return [decision.reason for decision in self._decisions]

    def clear(self) -> None:
        """Forget every recorded decision."""
        with self._lock:
            self._decisions.clear()

    def __repr__(self) -> str:
        return f"<DecisionLog {len(self)} decisions: {', '.join(map(str, self.reasons))}>"
