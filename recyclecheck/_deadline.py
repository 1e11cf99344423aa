"""The one wall-clock deadline of a check, visible to whatever runs inside it.

Two more pieces of per-check context live here because every layer reads them:
whether the lookup runs on the caller's own thread (*inline*), and the signal
an inline lookup raises when it would have to block on something no deadline
bounds (a DNS lookup, a new connection), so the Guard can hand it to a worker
before a single byte was sent.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

__all__ = [
    "NeedsWorker",
    "current_deadline",
    "deadline_scope",
    "inline_scope",
    "is_inline",
    "remaining_time",
]

_DEADLINE: ContextVar[float | None] = ContextVar("recyclecheck_deadline", default=None)
_INLINE: ContextVar[bool] = ContextVar("recyclecheck_inline", default=False)


class NeedsWorker(BaseException):
    """An inline lookup reached a step that may block past the deadline.

    Raised before anything was sent, so the lookup can be started again on a
    worker thread.  A ``BaseException`` so that no adapter's or library's
    ``except Exception`` turns it into a provider failure on the way out.
    """


def remaining_time() -> float | None:
    """Seconds left before the current check's deadline, or ``None`` outside a check.

    Providers use this to size socket timeouts so that no I/O outlives the
    login it serves.  The value can be zero or negative once time has run out.
    """
    deadline = _DEADLINE.get()
    if deadline is None:
        return None
    return deadline - time.monotonic()


def current_deadline() -> float | None:
    """The current check's deadline as a ``time.monotonic()`` value, if any."""
    return _DEADLINE.get()


@contextlib.contextmanager
def deadline_scope(deadline: float) -> Iterator[None]:
    """Run the body with ``deadline`` (a ``time.monotonic()`` value) in force."""
    token = _DEADLINE.set(deadline)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def is_inline() -> bool:
    """Whether the running lookup is on the caller's thread (no blocking allowed)."""
    return _INLINE.get()


@contextlib.contextmanager
def inline_scope() -> Iterator[None]:
    """Mark the body as running on the caller's thread."""
    token = _INLINE.set(True)
    try:
        yield
    finally:
        _INLINE.reset(token)
