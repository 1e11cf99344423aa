"""Provider calls on the event loop's own thread, never blocking it (``acheck``'s fast path).

``acheck`` may not block the loop, so without this module every lookup it
starts hops to a worker thread and back, and the hop back (waking the loop
through its self-pipe, then one more loop pass) costs about a tenth of a local
round trip.  With a warm, deadline-bound pooled connection nothing in a
lookup waits except the socket itself, so the lookup runs in a greenlet on the
loop's thread instead: each send or receive that would block parks the
greenlet and waits for the socket in the loop's selector (``add_reader`` /
``add_writer``), then the loop switches back in.  The provider adapter and
``requests`` run unchanged; only the deadline-bound sockets of ``_sockets``
know the difference (:func:`wait_for_socket`).

Everything else keeps the worker path: a new connection (DNS and handshakes
are not loop-aware, so the lookup raises ``NeedsWorker`` before sending a
byte), a retry, a proxy, a quota that does I/O.  Without ``greenlet``
installed (the ``recyclecheck[async]`` extra) every ``acheck`` lookup takes
the worker path.

The loop drives the greenlet through callbacks, not through the awaiting
task, so a cancelled ``acheck`` leaves the call running to its deadline and
its answer lands in the cache, as on a worker.
"""

from __future__ import annotations

import contextvars
import importlib
import logging
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

__all__ = ["available", "ended_with_its_loop", "on_loop", "run_on_loop", "wait_for_socket"]

logger = logging.getLogger("recyclecheck")

#: The ``greenlet`` module once asked for; ``False`` when it is not installed (the
#: ``recyclecheck[async]`` extra).  Loaded on the first ``acheck``, not on import.
_greenlet: Any = None

_ON_LOOP: ContextVar[bool] = ContextVar("recyclecheck_on_loop", default=False)

READ = "read"
WRITE = "write"


def _module() -> Any:
    global _greenlet  # noqa: PLW0603 - a load-once cache of an optional import
    if _greenlet is None:
        try:
            _greenlet = importlib.import_module("greenlet")
        except ImportError:
            _greenlet = False
    return _greenlet


def available() -> bool:
    """Whether lookups can run on the event loop's thread (``greenlet`` is installed)."""
    return bool(_module())


def on_loop() -> bool:
    """Whether the running lookup is a greenlet on an event loop's thread."""
    return _ON_LOOP.get()


def wait_for_socket(fd: int, direction: str, deadline: float) -> bool:
    """Park this lookup until ``fd`` is ready for ``direction``; ``False`` at the deadline.

    Only called from inside :func:`run_on_loop`'s greenlet (``on_loop()`` is true).
    Raises ``OSError`` when the loop cannot watch ``fd`` (a socket closed under it).
    """
    parent = _greenlet.getcurrent().parent
    answer = parent.switch((fd, direction, deadline))
    if isinstance(answer, BaseException):
        raise answer
    return bool(answer)


def run_on_loop(
    loop: Any,
    call: Callable[[], Any],
    finish: Callable[[Any, BaseException | None], None],
) -> None:
    """Run ``call`` in a greenlet on ``loop``'s thread; ``finish(result, error)`` at its end.

    Must be called on the loop's thread.  ``call`` runs at once up to its first
    wait; ``finish`` runs on the loop's thread, either before this returns or
    from a loop callback, and must not raise.  If the loop is closed while the
    call waits, dropping its callbacks kills the greenlet: ``call`` then ends
    with ``GreenletExit`` and ``finish`` still runs, so no flight is left open.
    """

    def body() -> None:
        _ON_LOOP.set(True)  # in the greenlet's own copy of the caller's context
        try:
            result, error = call(), None
        except BaseException as exc:  # handed to ``finish``, never to the loop
            result, error = None, exc
        try:
            finish(result, error)
        except Exception:  # a bug of ours; kept out of the loop's callback machinery
            logger.exception("recyclecheck: finishing a lookup on the event loop failed")

    worker = _module().greenlet(body)
    worker.gr_context = contextvars.copy_context()
    _Driver(loop, worker).step(None)


class _Driver:
    """Switches into a lookup's greenlet and parks it on the loop between switches.

    A class, not a closure that names itself, so no reference cycle keeps a
    greenlet alive once its loop has dropped the callbacks (see ``_park``).
    """

    __slots__ = ("loop", "worker")

    def __init__(self, loop: Any, worker: Any) -> None:
        self.loop = loop
        self.worker = worker

    def step(self, ready: bool | BaseException | None) -> None:
        worker = self.worker
        worker.parent = _greenlet.getcurrent()
        wait = worker.switch() if ready is None else worker.switch(ready)
        if not worker.dead:
            _park(self.loop, wait, self.step)


def _park(
    loop: Any, wait: tuple[int, str, float], step: Callable[[bool | BaseException], None]
) -> None:
    """Resume the greenlet once the socket is ready (``True``) or the deadline passed.

    No reference cycle among the callbacks: when the loop is closed under a
    parked lookup, dropping its handles frees the greenlet at once, and
    freeing it ends the lookup (``GreenletExit``), so nothing waits for a
    garbage collection to settle the flight.
    """
    fd, direction, deadline = wait
    add, remove = (
        (loop.add_reader, loop.remove_reader)
        if direction == READ
        else (loop.add_writer, loop.remove_writer)
    )
    resumed: list[bool] = []

    def expire() -> None:
        if not resumed:
            resumed.append(False)
            remove(fd)
            step(False)

    timer = loop.call_at(loop.time() + max(0.0, deadline - time.monotonic()), expire)

    def ready() -> None:
        if not resumed:
            resumed.append(True)
            remove(fd)
            timer.cancel()
            step(True)

    try:
        add(fd, ready)
    except (OSError, ValueError) as exc:  # a closed socket (fd -1) or one the loop refuses
        resumed.append(False)
        timer.cancel()
        step(OSError(f"cannot wait for the socket: {type(exc).__name__}"))


def ended_with_its_loop(error: BaseException) -> bool:
    """Whether ``error`` ended a lookup because its loop was closed under it."""
    return bool(_greenlet) and isinstance(error, _greenlet.GreenletExit)
