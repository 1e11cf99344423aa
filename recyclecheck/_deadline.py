"""The one wall-clock deadline of a check, visible to whatever runs inside it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

__all__ = ["deadline_scope", "remaining_time"]

_DEADLINE: ContextVar[float | None] = ContextVar("recyclecheck_deadline", default=None)


def remaining_time() -> float | None:
    """Seconds left before the current check's deadline, or ``None`` outside a check.

    Providers use this to size socket timeouts so that no I/O outlives the
    login it serves.  The value can be zero or negative once time has run out.
    """
    deadline = _DEADLINE.get()
    if deadline is None:
        return None
    return deadline - time.monotonic()


@contextlib.contextmanager
def deadline_scope(deadline: float) -> Iterator[None]:
    """Run the body with ``deadline`` (a ``time.monotonic()`` value) in force."""
    token = _DEADLINE.set(deadline)
    try:
        yield
    finally:
        _DEADLINE.reset(token)
