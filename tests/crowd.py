"""Threads a test starts, which must all finish: a stuck one fails the test, never hangs it.

:func:`run_together` starts every task on its own daemon thread, releases them
at once and joins them against one deadline.  When a thread is still running
at the deadline the test fails at once with the stack of every thread in the
process (named, in the failure message) and faulthandler's dump of all
threads on stderr: a deadlock reads as a failure that shows who holds what,
and the stuck daemons cannot hold the interpreter at exit.
"""

from __future__ import annotations

import faulthandler
import io
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import pytest

__all__ = ["all_stacks", "dump_all_threads", "rounds", "run_together"]

T = TypeVar("T")


def rounds(seconds: float, most: int) -> Iterator[int]:
    """Count rounds up to ``most``, stopping early once ``seconds`` have passed (one at least).

    Stress loops are time-boxed so the suite takes as long on a slow machine as
    on a fast one, and still do plenty of work on both.
    """
    end = time.monotonic() + seconds
    for index in range(most):
        yield index
        if time.monotonic() >= end:
            return


def all_stacks() -> str:
    """Every thread's current stack, each headed by its name, for a failure message."""
    threads = {thread.ident: thread for thread in threading.enumerate()}
    parts = []
    for ident, frame in sys._current_frames().items():
        thread = threads.get(ident)
        name = thread.name if thread is not None else "<not a threading.Thread>"
        daemon = " daemon" if thread is not None and thread.daemon else ""
        stack = "".join(traceback.format_stack(frame))
        parts.append(f"--- thread {name!r} ({ident}{daemon}) ---\n{stack}")
    return "\n".join(parts)


def dump_all_threads() -> None:
    """faulthandler's dump of every thread, on stderr (pytest shows it with the failure)."""
    try:
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    except (AttributeError, ValueError, io.UnsupportedOperation):  # stderr without a descriptor
        if sys.__stderr__ is not None:
            faulthandler.dump_traceback(file=sys.__stderr__, all_threads=True)


def run_together(
    tasks: Sequence[Callable[[], T]], *, within: float, name: str = "stress"
) -> list[T]:
    """Run each task on its own daemon thread, all released at once; return results in order.

    Fails the test if any thread is still running ``within`` seconds after the
    release (with every thread's stack), or if any task raised (with the
    first error chained and a count of the rest).
    """
    go = threading.Event()
    results: list[T | None] = [None] * len(tasks)
    errors: list[tuple[int, BaseException]] = []

    def run(index: int, task: Callable[[], T]) -> None:
        if not go.wait(within):
            return
        try:
            results[index] = task()
        except BaseException as exc:  # handed to the test's own thread below
            errors.append((index, exc))

    threads = [
        threading.Thread(target=run, args=(i, task), name=f"{name}-{i}", daemon=True)
        for i, task in enumerate(tasks)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + within
    go.set()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [thread.name for thread in threads if thread.is_alive()]
    if stuck:
        dump_all_threads()
        pytest.fail(
            f"{len(stuck)} of {len(threads)} threads still running {within:g}s after the start "
            f"(stuck: {', '.join(stuck[:8])}{' ...' if len(stuck) > 8 else ''}).\n"
            f"Every thread's stack:\n{all_stacks()}",
            pytrace=False,
        )
    if errors:
        index, first = errors[0]
        raise AssertionError(
            f"{len(errors)} of {len(tasks)} tasks raised; the first ({name}-{index}): {first!r}"
        ) from first
    return results  # type: ignore[return-value]  # every slot was filled: no error, none stuck
