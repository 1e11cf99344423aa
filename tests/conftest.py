"""Shared test configuration: live tests stay off unless asked for; one real redis-server;
no test can hold the run for ever."""

from __future__ import annotations

import faulthandler
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from .privacy import leaks
from .redisserver import RedisServer, running_redis


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``@pytest.mark.live`` tests unless RECYCLECHECK_LIVE=1 is set."""
    if os.environ.get("RECYCLECHECK_LIVE") == "1":
        return
    skip_live = pytest.mark.skip(reason="live provider test; set RECYCLECHECK_LIVE=1 to run")
    for item in items:
        if "live" in item.keywords:
            item.add_marker(skip_live)


#: Seconds past a test's own timeout (pytest-timeout's) after which the run is ended.
HARD_STOP_GRACE = 60.0


class _Backstop:
    """Ends the run, with every thread's stack, when a test outlives its timeout by the grace.

    pytest-timeout (``timeout_method = "signal"``) fails a stuck test with
    every thread's stack and the run goes on.  But its alarm fires once, and
    only where the main thread runs Python code: a teardown that hangs after
    it fired, or a wait in C code that never returns, would still hold CI.
    One daemon thread for the session watches the running test's time; past
    the grace it writes faulthandler's dump of every thread to the real
    stderr and exits the process.
    """

    def __init__(self, stderr_fd: int) -> None:
        self.fd = stderr_fd
        self._changed = threading.Condition()
        self._deadline: float | None = None
        self._test = ""
        threading.Thread(target=self._watch, name="test-backstop", daemon=True).start()

    def arm(self, test: str, seconds: float) -> None:
        with self._changed:
            self._test, self._deadline = test, time.monotonic() + seconds
            self._changed.notify()

    def disarm(self) -> None:
        with self._changed:
            self._deadline = None
            self._changed.notify()

    def _watch(self) -> None:
        with self._changed:
            while self._deadline is None or time.monotonic() < self._deadline:
                left = None if self._deadline is None else self._deadline - time.monotonic()
                self._changed.wait(left)
            test = self._test
        os.write(
            self.fd,
            f"\n+++ {test} is still running {HARD_STOP_GRACE:g}s past its timeout: "
            f"every thread's stack, then exit +++\n".encode(),
        )
        faulthandler.dump_traceback(file=self.fd, all_threads=True)
        os._exit(1)


_BACKSTOP = pytest.StashKey[_Backstop]()


def pytest_configure(config: pytest.Config) -> None:
    """Start the backstop, writing to a copy of the real stderr (capture swaps fd 2 per test)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, OSError):
        assert sys.__stderr__ is not None
        fd = sys.__stderr__.fileno()
    config.stash[_BACKSTOP] = _Backstop(os.dup(fd))


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop watching; close the stderr copy."""
    backstop = config.stash.get(_BACKSTOP, None)
    if backstop is not None:
        backstop.disarm()
        os.close(backstop.fd)
        del config.stash[_BACKSTOP]


@pytest.hookimpl(optionalhook=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: object) -> None:
    """Arm the backstop whenever pytest-timeout arms its own alarm, with its timeout.

    Returns None, so pytest-timeout's own implementation still runs.
    """
    backstop = item.config.stash.get(_BACKSTOP, None)
    timeout = getattr(settings, "timeout", None)
    if backstop is not None and timeout:
        backstop.arm(item.nodeid, float(timeout) + HARD_STOP_GRACE)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """Disarm the backstop once the test, teardown included, is over."""
    yield
    backstop = item.config.stash.get(_BACKSTOP, None)
    if backstop is not None:
        backstop.disarm()


def pytest_enter_pdb(config: pytest.Config) -> None:
    """Never end a debugging session."""
    backstop = config.stash.get(_BACKSTOP, None)
    if backstop is not None:
        backstop.disarm()


def pytest_exception_interact(node: pytest.Item | pytest.Collector) -> None:
    """Never end a post-mortem (``--pdb``) session."""
    backstop = node.config.stash.get(_BACKSTOP, None)
    if backstop is not None and node.config.getoption("usepdb", False):
        backstop.disarm()


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        extras = " ".join(str(v) for k, v in vars(record).items() if k.startswith("recyclecheck"))
        self.texts.append(f"{record.name}: {text} {extras}")


@pytest.fixture(autouse=True)
def _no_phone_number_in_any_log() -> Iterator[None]:
    """Across the whole suite: no log record, at any level, carries a phone number."""
    handler = _Collect()
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
    leaked = [text for text in handler.texts if leaks(text)]
    assert not leaked, f"phone number in log output: {leaked[:3]}"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A throwaway redis-server for the whole session (skipped without one, see tests.redisserver)."""
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server
