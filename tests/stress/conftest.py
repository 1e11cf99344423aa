"""Every stress test runs under forced thread switching."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

#: Seconds between forced thread switches: a switch at almost every bytecode boundary,
#: so an interleaving that needs a thread to lose the GIL at one exact point comes quickly.
SWITCH_INTERVAL = 1e-6


@pytest.fixture(autouse=True)
def forced_thread_switching() -> Iterator[None]:
    """Switch threads every microsecond for the test, then restore the interpreter's interval."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)
