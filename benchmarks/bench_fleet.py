"""Fleet-scale figures, side by side in one run:

1. peak memory (max RSS) of a 1,000,000-row sweep against a 10,000-row sweep,
   each in a fresh process over the embedded sandbox — target: under 1.5x;
2. two processes sharing one ``RedisCache`` (a real ``redis-server`` started
   here): the first checks N numbers, the second then checks the same numbers —
   target: the second makes no provider call.

Run: python benchmarks/bench_fleet.py [--rows N] [--shared N]   (needs redis-server)
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import resource
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from recyclecheck import Guard, MemoryCache, RedisCache, SweepRow
from recyclecheck.providers import ChangedSince

BOUND = dt.date(2022, 5, 10)
SECRET = b"bench-fleet-secret-0123456789abcdef"


class _Quiet:
    """Answers "no change since" for every number, counting its calls."""

    name = "quiet"

    def __init__(self) -> None:
        self.calls = 0

    def lookup(self, number: str, since: dt.date) -> Any:
        self.calls += 1
        return ChangedSince(since, False)


def _rows(count: int) -> Iterator[SweepRow]:
    for index in range(count):
        yield SweepRow(f"acct-{index}", f"+8613{index % 1_000_000_000:09d}", BOUND)


def _sweep_peak(count: int, out: Any) -> None:
    """Sweep ``count`` rows in this (fresh) process; send back the peak RSS in KiB."""
    guard = Guard(_Quiet(), cache=MemoryCache(max_entries=10_000), timeout=5)
    done = sum(1 for result in guard.sweep(_rows(count), concurrency=8) if result.error is None)
    out.send((done, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))


def _in_fresh_process(target: Any, *args: Any) -> Any:
    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(target=target, args=(*args, theirs))
    process.start()
    result = ours.recv()
    process.join(60)
    return result


def _shared_checks(url: str, count: int, out: Any) -> None:
    """Check ``count`` numbers through a RedisCache on ``url``; send back the provider calls."""
    provider = _Quiet()
    guard = Guard(provider, cache=RedisCache.from_url(url, secret=SECRET), secret=SECRET)
    for row in _rows(count):
        guard.check(row.phone, bound_at=row.bound_at)
    time.sleep(0.5)  # write-backs to Redis happen after each answer
    out.send(provider.calls)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the large sweep")
    parser.add_argument("--shared", type=int, default=2_000, help="numbers checked per process")
    args = parser.parse_args()

    small_done, small = _in_fresh_process(_sweep_peak, 10_000)
    large_done, large = _in_fresh_process(_sweep_peak, args.rows)
    print(f"{'sweep rows':>12} {'max RSS':>10}")
    print(f"{small_done:12,d} {small / 1024:8.1f}MiB")
    print(f"{large_done:12,d} {large / 1024:8.1f}MiB")
    print(
        f"target peak {args.rows:,} rows < 1.5x peak 10,000 rows: {large / small:.2f}x "
        f"{'ok' if large < 1.5 * small else 'OVER TARGET'}"
    )

    binary = shutil.which("redis-server")
    if binary is None:
        print("redis-server not found: skipping the two-process RedisCache figure")
        return
    port = _free_port()
    with tempfile.TemporaryDirectory() as workdir:
        server = subprocess.Popen(
            [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", workdir],
            stdout=subprocess.DEVNULL,
        )
        try:
            time.sleep(0.5)
            url = f"redis://127.0.0.1:{port}/0"
            first = _in_fresh_process(_shared_checks, url, args.shared)
            second = _in_fresh_process(_shared_checks, url, args.shared)
        finally:
            server.terminate()
            server.wait(10)
    print(f"process 1: {first} provider calls for {args.shared} numbers")
    print(f"process 2: {second} provider calls for the same numbers")
    print(f"target process 2 makes no provider call: {'ok' if second == 0 else 'MISSED'}")


if __name__ == "__main__":
    main()
