"""Routing and async, side by side in one run against the fake provider server:

1. a routed check whose first provider answers ``NotCovered`` at once (Alibaba
   Cloud for a US number: no request) and whose second is Twilio, against a
   direct Twilio check — target: at most 1.1x;
2. ``await guard.acheck`` through Twilio against ``guard.check`` — target: at
   most 1.1x.  With ``greenlet`` (the ``recyclecheck[async]`` extra) a lookup on
   a warm connection runs on the loop's own thread without blocking it; the
   bench also times an ``acheck`` that hops to a worker thread (what every
   ``acheck`` does without the extra) and a ``check`` that hops likewise.

Run: python benchmarks/bench_routing.py [--calls N]

The fake provider server (``recyclecheck.testing.FakeProviderServer``) runs in
its own process, so it does not share the client's GIL.  Fact caches are off so
every check makes the full round trip.  Everything runs inside one coroutine on
one event loop (an app's loop is already running), call by call in turn, so a
noisy neighbour slows every case alike; the median of each case is compared.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing
import statistics
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from typing import Any

from recyclecheck import Guard, MemoryCache, Router, _loop_io
from recyclecheck.providers import AliyunProvider, TwilioProvider
from recyclecheck.testing import Credentials, FakeProviderServer

NUMBER = "+12015550124"
BOUND = dt.date(2024, 1, 15)


def _serve(conn: Connection) -> None:
    with FakeProviderServer({NUMBER: None}) as server:
        conn.send(server.url)
        conn.recv()  # until told to stop


def _guards(url: str) -> tuple[Guard, Guard, Guard]:
    credentials = Credentials()

    def twilio() -> TwilioProvider:
        return TwilioProvider(
            credentials.twilio_account_sid, credentials.twilio_auth_token, base_url=url
        )

    aliyun = AliyunProvider(
        credentials.aliyun_access_key_id,
        credentials.aliyun_access_key_secret,
        credentials.aliyun_auth_code,
        endpoint=url,
    )
    off = {"cache": MemoryCache(max_entries=0), "timeout": 2}
    direct = Guard(twilio(), **off)  # type: ignore[arg-type]
    routed = Guard(Router({"+1": [aliyun, twilio()]}), **off)  # type: ignore[arg-type]
    on_worker = Guard(_OnWorker(twilio()), **off)  # type: ignore[arg-type]
    return direct, routed, on_worker


class _OnWorker:
    """The Twilio adapter without the inline hint: every lookup hops to a worker thread,
    as every ``acheck`` does (nothing may block the event loop)."""

    def __init__(self, provider: TwilioProvider) -> None:
        self.provider = provider
        self.name = provider.name

    def lookup(self, number: str, since: dt.date) -> Any:
        return self.provider.lookup(number, since)

    def close(self) -> None:
        self.provider.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per case")
    args = parser.parse_args()

    ours, theirs = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve, args=(theirs,), daemon=True)
    server.start()
    url = ours.recv()
    direct, routed, on_worker = _guards(url)
    assert direct.check(NUMBER, bound_at=BOUND).allowed
    decision = routed.check(NUMBER, bound_at=BOUND)
    assert decision.allowed, decision
    assert decision.provider == "twilio", decision

    cases: dict[str, Callable[[], Awaitable[Any]]] = {
        "direct check (Twilio)": _sync(lambda: direct.check(NUMBER, bound_at=BOUND)),
        "routed check (Aliyun NotCovered -> Twilio)": _sync(
            lambda: routed.check(NUMBER, bound_at=BOUND)
        ),
        "await acheck (Twilio)": lambda: direct.acheck(NUMBER, bound_at=BOUND),
        "await acheck, lookup on a worker": lambda: on_worker.acheck(NUMBER, bound_at=BOUND),
        "check, lookup on a worker": _sync(lambda: on_worker.check(NUMBER, bound_at=BOUND)),
    }
    try:
        took = asyncio.run(_interleaved(cases, args.calls))
    finally:
        direct.close()
        routed.close()
        on_worker.close()
        ours.send("stop")
        server.join(5)

    median = {name: statistics.median(times) for name, times in took.items()}
    base = median["direct check (Twilio)"]
    print(f"{args.calls} calls per case; loop fast path: {_loop_io.available()}")
    print(f"{'case':44} {'median':>10} {'x direct':>9}")
    for name, value in median.items():
        print(f"{name:44} {value * 1e6:8.0f}us {value / base:9.2f}")
    routed_ratio = median["routed check (Aliyun NotCovered -> Twilio)"] / base
    async_ratio = median["await acheck (Twilio)"] / base
    print(f"target routed <= 1.1x direct: {'ok' if routed_ratio <= 1.1 else 'OVER TARGET'}")
    print(f"target acheck <= 1.1x check: {'ok' if async_ratio <= 1.1 else 'OVER TARGET'}")


def _sync(fn: Callable[[], Any]) -> Callable[[], Awaitable[Any]]:
    async def call() -> Any:
        return fn()  # blocks the loop: fine in a benchmark that waits for nothing else

    return call


async def _interleaved(
    cases: dict[str, Callable[[], Awaitable[Any]]], calls: int
) -> dict[str, list[float]]:
    """Each case's per-call times, the cases taking turns call by call."""
    took: dict[str, list[float]] = {name: [] for name in cases}
    for call in cases.values():  # warm each guard's connection pool
        await call()
    names = list(cases)
    for index in range(calls):
        shift = index % len(names)  # rotate, so no case always follows the same one
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            await cases[name]()
            took[name].append(time.perf_counter() - started)
    return took


if __name__ == "__main__":
    main()
