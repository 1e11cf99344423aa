"""Sweep throughput against the fake provider server, side by side in one run:

1. ``guard.sweep(rows, concurrency=32)`` through Twilio, each lookup answered
   after a fixed 50 ms (a ``Latency`` fault) — target: at least 85% of the
   ideal, ``concurrency / latency`` rows a second (640 at 32 and 50 ms);
2. the baseline: 32 plain threads taking rows from one shared iterator and
   calling ``guard.check`` (no window, no ordering, results dropped);
3. the floor: 32 plain threads calling the adapter's ``lookup`` directly (no
   Guard at all);
4. ``guard.sweep`` with a fact cache, so Twilio's batch endpoint
   (``POST /v2/batch/query``, 100 numbers a request, the same 50 ms) warms it a
   chunk at a time — its speed-up over case 1 is printed.

Run: python benchmarks/bench_sweep.py [--rows N] [--rounds N] [--concurrency N] [--latency S]

The fake provider server (``recyclecheck.testing.FakeProviderServer``) runs in
its own process, so it does not share the client's GIL.  Fact caches are off so
every row makes the full round trip; numbers are distinct within a round so no
two rows share a flight.  Cases are interleaved round by round and the best
round of each is kept.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection

from recyclecheck import Guard, MemoryCache, SweepRow
from recyclecheck.providers import TwilioProvider
from recyclecheck.testing import Credentials, FakeProviderServer, Latency

BOUND = dt.date(2024, 1, 15)


def _serve(conn: Connection, latency: float) -> None:
    # Every number the bench asks about is scripted as never reissued: a definite
    # answer, so a batch warm-up has facts to leave in the cache.
    with FakeProviderServer(dict.fromkeys(_numbers(10000, 0))) as server:
        server.inject(Latency(latency))
        conn.send(server.url)
        conn.recv()  # until told to stop


def _numbers(count: int, offset: int) -> list[str]:
    return [f"+1201234{(offset + index) % 10_000:04d}" for index in range(count)]


def _rows(numbers: list[str]) -> Iterator[SweepRow]:
    for index, number in enumerate(numbers):
        yield SweepRow(f"acct-{index}", number, BOUND)


def _twilio(url: str) -> TwilioProvider:
    credentials = Credentials()
    return TwilioProvider(
        credentials.twilio_account_sid, credentials.twilio_auth_token, base_url=url
    )


def _guard(url: str, concurrency: int) -> Guard:
    return Guard(
        _twilio(url),
        cache=MemoryCache(max_entries=0),
        timeout=5,
        max_workers=concurrency,
        breaker_threshold=1_000,
    )


def _on_plain_threads(work: Callable[[str], object], numbers: list[str], threads: int) -> None:
    """``threads`` plain threads calling ``work`` on each number, from one shared iterator."""
    shared = iter(numbers)
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                number = next(shared, None)
            if number is None:
                return
            work(number)

    started = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join(120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_600, help="rows per case per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per lookup")
    args = parser.parse_args()
    ideal = args.concurrency / args.latency

    ours, theirs = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve, args=(theirs, args.latency), daemon=True)
    server.start()
    url = ours.recv()
    swept, threaded = _guard(url, args.concurrency), _guard(url, args.concurrency)
    batched = Guard(
        _twilio(url),
        cache=MemoryCache(),  # numbers are new every round: the cache only holds a warm-up
        timeout=5,
        max_workers=args.concurrency,
        breaker_threshold=1_000,
    )
    raw = _twilio(url)

    def sweep(numbers: list[str]) -> None:
        results = swept.sweep(_rows(numbers), concurrency=args.concurrency)
        for result in results:
            assert result.error is None, result

    def sweep_batched(numbers: list[str]) -> None:
        batched.cache.clear()  # type: ignore[attr-defined]  # only this round's warm-up counts
        results = batched.sweep(_rows(numbers), concurrency=args.concurrency)
        for result in results:
            assert result.error is None, result

    def check(numbers: list[str]) -> None:
        _on_plain_threads(
            lambda number: threaded.check(number, bound_at=BOUND), numbers, args.concurrency
        )

    def lookup(numbers: list[str]) -> None:
        _on_plain_threads(lambda number: raw.lookup(number, BOUND), numbers, args.concurrency)

    cases: dict[str, Callable[[list[str]], None]] = {
        f"guard.sweep(concurrency={args.concurrency})": sweep,
        f"{args.concurrency} plain threads, guard.check": check,
        f"{args.concurrency} plain threads, provider.lookup": lookup,
        "guard.sweep, batch endpoint warming the cache": sweep_batched,
    }
    best = dict.fromkeys(cases, 0.0)
    offsets = itertools.count(step=args.rows)
    try:
        for fn in cases.values():  # warm every connection pool
            fn(_numbers(2 * args.concurrency, next(offsets)))
        for _ in range(args.rounds):
            for name, fn in cases.items():
                numbers = _numbers(args.rows, next(offsets))
                started = time.perf_counter()
                fn(numbers)
                best[name] = max(best[name], args.rows / (time.perf_counter() - started))
    finally:
        swept.close()
        batched.close()
        threaded.close()
        raw.close()
        ours.send("stop")
        server.join(5)

    print(f"ideal: {args.concurrency} in flight / {args.latency * 1000:g} ms = {ideal:.0f} rows/s")
    print(f"{'case':44} {'rows/s':>8} {'of ideal':>9}")
    for name, rate in best.items():
        print(f"{name:44} {rate:8.0f} {rate / ideal:9.1%}")
    sweep_ratio = best[next(iter(cases))] / ideal
    print(f"target sweep >= 85% of ideal: {'ok' if sweep_ratio >= 0.85 else 'UNDER TARGET'}")
    speedup = best["guard.sweep, batch endpoint warming the cache"] / best[next(iter(cases))]
    print(f"batch endpoint vs one lookup per number: {speedup:.1f}x the rows a second")


if __name__ == "__main__":
    main()
