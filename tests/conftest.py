"""Shared test configuration: live tests stay off unless asked for."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``@pytest.mark.live`` tests unless RECYCLECHECK_LIVE=1 is set."""
    if os.environ.get("RECYCLECHECK_LIVE") == "1":
        return
    skip_live = pytest.mark.skip(reason="live provider test; set RECYCLECHECK_LIVE=1 to run")
    for item in items:
        if "live" in item.keywords:
            item.add_marker(skip_live)
