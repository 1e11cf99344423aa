"""Shared test configuration: live tests stay off unless asked for; one real redis-server."""

from __future__ import annotations

import logging
import os
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
