"""Sockets that never wait past the check's deadline, and the connection pool that uses them.

``requests`` gives each socket operation a fresh timeout: a server that sends
its headers (or a chunked body's size lines) one byte a second holds the
calling thread for as long as it likes.  Here every receive and send first
shrinks the socket's timeout to what is left of the current deadline, so the
whole exchange (status line, headers, chunk framing, body) ends by it.

The same connections refuse to connect on the caller's thread: DNS and the
TCP/TLS handshake are not bounded that way, so an inline lookup that would need
a new connection raises :class:`~recyclecheck._deadline.NeedsWorker` before
anything is sent, and the Guard starts it again on a worker.

Only sockets whose type is exactly :class:`socket.socket` or
:class:`ssl.SSLSocket` are bound (TLS inside TLS through an HTTPS proxy uses
another type); a connection whose socket could not be bound is never used
inline, and keeps requests' per-operation timeouts.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

import requests.adapters
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from . import _loop_io
from ._deadline import NeedsWorker, current_deadline, is_inline

__all__ = ["DeadlineAdapter", "has_idle_bound_connection"]


def _shrink(sock: socket.socket) -> None:
    deadline = current_deadline()
    if deadline is None:
        return  # outside a request: the timeout urllib3 set stands
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    sock.settimeout(left)


def _without_blocking(sock: socket.socket, attempt: Callable[[], Any], direction: str) -> Any:
    """``attempt`` on a non-blocking ``sock``, parking the lookup on the loop until it can run.

    For a lookup running on an event loop's thread (``_loop_io``): a receive or
    send that would block waits in the loop's selector instead, until the deadline.
    """
    deadline = current_deadline()
    if deadline is None or deadline <= time.monotonic():
        raise TimeoutError("deadline passed")
    previous = sock.gettimeout()
    sock.settimeout(0.0)
    try:
        while True:
            try:
                return attempt()
            except ssl.SSLWantWriteError:  # TLS may need to write in order to read
                wait = _loop_io.WRITE
            except ssl.SSLWantReadError:
                wait = _loop_io.READ
            except BlockingIOError:
                wait = direction
            if not _loop_io.wait_for_socket(sock.fileno(), wait, deadline):
                raise TimeoutError("deadline passed")
    finally:
        sock.settimeout(previous)  # a worker may use the connection next


def _bounded(
    sock: Any, operation: Callable[..., Any], direction: str, args: Any, kwargs: Any
) -> Any:
    """One receive or send that ends by the deadline.

    On an event loop's thread it waits in the loop's selector; elsewhere in the
    socket, with the socket's timeout shrunk to what is left.
    """
    if _loop_io.on_loop():
        return _without_blocking(sock, lambda: operation(*args, **kwargs), direction)
    _shrink(sock)
    return operation(*args, **kwargs)


class _Shrinking:
    """Every receive and send first shrinks the socket's timeout to the time left.

    On an event loop's thread (``_loop_io``) they never block: each waits for
    the socket in the loop's selector, bounded by the same deadline.
    """

    __slots__ = ()

    def recv(self, *args: Any, **kwargs: Any) -> Any:
        return _bounded(self, super().recv, _loop_io.READ, args, kwargs)  # type: ignore[misc]

    def recv_into(self, *args: Any, **kwargs: Any) -> Any:
        return _bounded(self, super().recv_into, _loop_io.READ, args, kwargs)  # type: ignore[misc]

    def send(self, *args: Any, **kwargs: Any) -> Any:
        return _bounded(self, super().send, _loop_io.WRITE, args, kwargs)  # type: ignore[misc]

    def sendall(self, data: Any, *args: Any) -> Any:
        if not _loop_io.on_loop():
            _shrink(self)  # type: ignore[arg-type]
            return super().sendall(data, *args)  # type: ignore[misc]
        # A non-blocking sendall may fail part-way with no word of what was sent,
        # so the loop sends piece by piece and knows where it stands.
        send = super().send  # type: ignore[misc]
        view = memoryview(data).cast("B")
        sent = 0
        while sent < len(view):
            rest = view[sent:]
            sent += _without_blocking(self, lambda: send(rest, *args), _loop_io.WRITE)  # type: ignore[arg-type]  # noqa: B023 - called before the next pass
        return None


class _DeadlineSocket(_Shrinking, socket.socket):
    """A plain socket whose every receive and send ends by the deadline."""

    __slots__ = ()


class _DeadlineTLSSocket(_Shrinking, ssl.SSLSocket):
    """A TLS socket whose every receive and send ends by the deadline."""


def _bind(sock: object) -> bool:
    """Make ``sock`` deadline-bound in place; ``False`` for socket types we do not know."""
    # Changing the class keeps the socket object (and every reference urllib3 and
    # http.client hold to it); the subclasses add no state, only the shrink.
    if type(sock) is socket.socket:
        sock.__class__ = _DeadlineSocket
        return True
    if type(sock) is ssl.SSLSocket:
        sock.__class__ = _DeadlineTLSSocket
        return True
    return isinstance(sock, (_DeadlineSocket, _DeadlineTLSSocket))


def _connect_bound(conn: HTTPConnection, connect: Callable[[], None]) -> bool:
    """Connect (never on the caller's thread), then bind the new socket to the deadline."""
    if is_inline():
        raise NeedsWorker
    connect()
    return _bind(conn.sock)


class _DeadlineHTTPConnection(HTTPConnection):
    deadline_bound = False

    def connect(self) -> None:
        self.deadline_bound = _connect_bound(self, super().connect)


class _DeadlineHTTPSConnection(HTTPSConnection):
    deadline_bound = False

    def connect(self) -> None:
        self.deadline_bound = _connect_bound(self, super().connect)


class _DeadlineHTTPPool(HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


_POOL_CLASSES = {"http": _DeadlineHTTPPool, "https": _DeadlineHTTPSPool}


class DeadlineAdapter(requests.adapters.HTTPAdapter):
    """An ``HTTPAdapter`` whose pools hand out deadline-bound connections."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """Build the pool manager, then make it use deadline-bound pools."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """Build (once) the manager for ``proxy``, with deadline-bound pools where it has any."""
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if hasattr(manager, "pool_classes_by_scheme") and not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _POOL_CLASSES
        return manager


def has_idle_bound_connection(pool: object) -> bool:
    """Whether ``pool`` would hand out an open, deadline-bound connection now.

    A hint, read without a lock: another thread may take the connection first,
    in which case the inline lookup meets :class:`NeedsWorker` and moves.
    """
    if not isinstance(pool, (_DeadlineHTTPPool, _DeadlineHTTPSPool)):
        return False
    idle = getattr(pool.pool, "queue", None)  # LifoQueue: the last item is handed out next
    if not idle:
        return False
    try:
        conn = idle[-1]
    except IndexError:
        return False
    return conn is not None and conn.deadline_bound and conn.sock is not None
