"""A real, throwaway redis-server for the tests that need one.

``tests/conftest.py`` exposes :func:`running_redis` as the session fixture
``redis_server``.  Without a ``redis-server`` binary (or without redis-py) the
tests that use it are skipped, unless ``RECYCLECHECK_REQUIRE_REDIS=1`` is set:
then a missing server is a failure, so CI cannot go green without Redis.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .rawserver import free_port

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError:  # pragma: no cover - the tests extra installs redis
    redis = None  # conftest imports this module, so it must import without redis-py

__all__ = ["FAST", "REQUIRE", "RedisServer", "running_redis"]

#: Set RECYCLECHECK_REQUIRE_REDIS=1 to turn "no Redis here" from a skip into a failure.
REQUIRE = os.environ.get("RECYCLECHECK_REQUIRE_REDIS") == "1"
#: The socket timeouts the docs recommend for a RedisCache client.
FAST = 0.05


class RedisServer:
    """A throwaway redis-server on 127.0.0.1, no persistence."""

    def __init__(self, workdir: Path) -> None:
        if redis is None:  # pragma: no cover - the tests extra installs redis
            if REQUIRE:
                pytest.fail("redis-py not installed and RECYCLECHECK_REQUIRE_REDIS=1")
            pytest.skip("redis-py is not installed")
        binary = shutil.which("redis-server")
        if binary is None:
            if REQUIRE:
                pytest.fail("redis-server not found and RECYCLECHECK_REQUIRE_REDIS=1")
            pytest.skip("redis-server not found on PATH")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        probe = redis.Redis(port=self.port, socket_timeout=0.2, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                if probe.ping():
                    break
            except redis.RedisError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail("redis-server did not start")
                time.sleep(0.02)
        probe.close()

    def client(self, **overrides: object) -> redis.Redis:
        """A client built the way the docs say a RedisCache client must be: fast, no retries."""
        options: dict[str, object] = {
            "socket_timeout": FAST,
            "socket_connect_timeout": FAST,
            "retry": Retry(NoBackoff(), 0),
        }
        options.update(overrides)
        return redis.Redis(host="127.0.0.1", port=self.port, **options)  # type: ignore[arg-type]

    def stop(self) -> None:
        """Terminate the server (kill it if it does not go within 5 s)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:  # pragma: no cover
                self.proc.kill()
                self.proc.wait(5)


@contextlib.contextmanager
def running_redis(workdir: Path) -> Iterator[RedisServer]:
    """Start a :class:`RedisServer` in ``workdir``; stop it on exit."""
    server = RedisServer(workdir)
    try:
        yield server
    finally:
        server.stop()
