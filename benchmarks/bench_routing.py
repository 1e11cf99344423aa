"""Routing and async, side by side in one run against the fake provider server:

1. a routed check whose first provider answers ``NotCovered`` at once (Alibaba
   Cloud for a US number: no request) and whose second is Twilio, against a
   direct Twilio check — target: at most 1.1x;
2. ``await guard.acheck`` through Twilio against ``guard.check`` — target: at
   most 1.1x — and against a ``check`` that, like every ``acheck``, hands the
   lookup to a worker thread (``check`` runs it inline on a warm connection).

Run: python benchmarks/bench_routing.py [--rounds N] [--number N]

The fake provider server (``recyclecheck.testing.FakeProviderServer``) runs in
its own process, so it does not share the client's GIL.  Fact caches are off so
every check makes the full round trip.  Cases are interleaved round by round and
the best round of each is kept.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from recyclecheck import Guard, MemoryCache, Router
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


def _timed(fn: Callable[[], Any], number: int) -> float:
    fn()  # warm the connection pool
    started = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - started) / number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--number", type=int, default=300, help="calls per case per round")
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

    loop = asyncio.new_event_loop()

    def acheck() -> None:
        loop.run_until_complete(direct.acheck(NUMBER, bound_at=BOUND))

    cases: dict[str, Callable[[], Any]] = {
        "direct check (Twilio)": lambda: direct.check(NUMBER, bound_at=BOUND),
        "routed check (Aliyun NotCovered -> Twilio)": lambda: routed.check(NUMBER, bound_at=BOUND),
        "await acheck (Twilio)": acheck,
        "check on a worker thread (Twilio)": lambda: on_worker.check(NUMBER, bound_at=BOUND),
    }
    best = dict.fromkeys(cases, float("inf"))
    try:
        for _ in range(args.rounds):
            for name, fn in cases.items():
                best[name] = min(best[name], _timed(fn, args.number))
    finally:
        loop.close()
        direct.close()
        routed.close()
        on_worker.close()
        ours.send("stop")
        server.join(5)

    base = best["direct check (Twilio)"]
    print(f"{'case':44} {'per call':>10} {'x direct':>9}")
    for name, value in best.items():
        print(f"{name:44} {value * 1e6:8.0f}us {value / base:9.2f}")
    routed_ratio = best["routed check (Aliyun NotCovered -> Twilio)"] / base
    async_ratio = best["await acheck (Twilio)"] / base
    print(f"target routed <= 1.1x direct: {'ok' if routed_ratio <= 1.1 else 'OVER TARGET'}")
    print(f"target acheck <= 1.1x check: {'ok' if async_ratio <= 1.1 else 'OVER TARGET'}")
    hop = best["await acheck (Twilio)"] / best["check on a worker thread (Twilio)"]
    print(
        f"acheck vs a check that also hops to a worker: {hop:.2f}x "
        "(check runs inline on a warm connection; acheck may not block the loop)"
    )


if __name__ == "__main__":
    main()
