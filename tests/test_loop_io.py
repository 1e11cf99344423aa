"""``_loop_io``'s driver on its own: a greenlet parked on a socket in the event loop's
selector, resumed when the socket is ready, at the deadline, or with an error the loop
raised, and its end always handed to ``finish`` (never to the loop)."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from recyclecheck import _loop_io

pytestmark = pytest.mark.skipif(not _loop_io.available(), reason="needs recyclecheck[async]")


def drive(call: Callable[[], Any], after: Callable[[], Any] | None = None) -> tuple[Any, Any]:
    """Run ``call`` on a fresh loop through ``run_on_loop``; ``(result, error)`` it ended with.

    ``after`` runs as a loop callback once ``call`` has parked."""
    ended: list[tuple[Any, Any]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def finish(result: Any, error: BaseException | None) -> None:
            ended.append((result, error))
            done.set_result(None)

        _loop_io.run_on_loop(loop, call, finish)
        if after is not None:
            loop.call_soon(after)
        await asyncio.wait_for(done, 5)

    asyncio.run(main())
    (outcome,) = ended
    return outcome


def test_a_parked_call_resumes_when_its_socket_is_readable() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.setblocking(False)
        loop_thread = threading.get_ident()

        def call() -> Any:
            assert _loop_io.on_loop()
            assert threading.get_ident() == loop_thread
            ready = _loop_io.wait_for_socket(ours.fileno(), _loop_io.READ, time.monotonic() + 5)
            return ready, ours.recv(10)

        result, error = drive(call, after=lambda: theirs.send(b"hello"))
    assert error is None
    assert result == (True, b"hello")
    assert not _loop_io.on_loop()  # the flag lived in the greenlet's own context


def test_a_parked_call_is_told_when_the_deadline_passes() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        started = time.monotonic()

        def call() -> Any:
            return _loop_io.wait_for_socket(ours.fileno(), _loop_io.READ, started + 0.1)

        result, error = drive(call)
    assert (result, error) == (False, None)
    assert 0.09 <= time.monotonic() - started < 2


def test_a_socket_the_loop_cannot_watch_is_an_oserror_for_the_call() -> None:
    def call() -> Any:
        return _loop_io.wait_for_socket(-1, _loop_io.READ, time.monotonic() + 5)

    result, error = drive(call)
    assert result is None
    assert isinstance(error, OSError)


def test_what_the_call_raises_goes_to_finish() -> None:
    def call() -> Any:
        raise KeyError("boom")

    result, error = drive(call)
    assert result is None
    assert isinstance(error, KeyError)


def test_a_failing_finish_is_logged_not_raised_into_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    raised_in_loop: list[Any] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: raised_in_loop.append(context))

        def finish(result: Any, error: BaseException | None) -> None:
            raise RuntimeError("a bug in finish")

        _loop_io.run_on_loop(loop, lambda: 42, finish)
        await asyncio.sleep(0.01)

    with caplog.at_level(logging.ERROR, logger="recyclecheck"):
        asyncio.run(main())
    assert raised_in_loop == []
    assert "finishing a lookup on the event loop failed" in caplog.text


def test_without_greenlet_nothing_runs_on_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_loop_io, "_greenlet", False)
    assert not _loop_io.available()
    assert not _loop_io.ended_with_its_loop(Exception())
