"""The HTTP path, side by side against one local server: ``guard.check`` through
the Twilio adapter vs a bare ``requests.Session`` GET vs the official ``twilio``
client doing the same lookup.

Run: pip install twilio && python benchmarks/bench_http.py [--rounds N]

The server runs in its own process (HTTP/1.1 keep-alive) so it does not share
the client's GIL.  The Guard's fact cache is disabled so every check makes the
full round trip.  Cases are interleaved round by round and the best round is
kept.  Targets: the SDK within 1.05x of bare requests, and faster than the
official client.  A warm connection lets the Guard run the lookup on the calling
thread (every socket operation bounded by the deadline); the line "inline" says
how many of the timed checks did.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from recyclecheck import Guard, MemoryCache
from recyclecheck.providers import TwilioProvider

SID = "AC" + "0" * 32
TOKEN = "bench-token-0000000000000000000"
NUMBER = "+14155552671"
BOUND = dt.date(2024, 1, 15)


class _Lookup(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in one write; no Nagle/delayed-ACK stalls.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        verified = self.path.split("LastVerifiedDate=")[-1][:8]
        body = json.dumps(
            {
                "calling_country_code": "1",
                "country_code": "US",
                "phone_number": NUMBER,
                "national_format": "(415) 555-2671",
                "valid": True,
                "validation_errors": [],
                "reassigned_number": {
                    "last_verified_date": f"{verified[:4]}-{verified[4:6]}-{verified[6:]}",
                    "is_number_reassigned": "no",
                    "error_code": None,
                },
                "url": f"https://lookups.twilio.com/v2/PhoneNumbers/{NUMBER}",
            }
        ).encode()
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.wfile.write(head.encode() + body)

    def log_message(self, *args: object) -> None:
        pass


def _serve(port: int) -> None:
    ThreadingHTTPServer(("127.0.0.1", port), _Lookup).serve_forever()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--number", type=int, default=300, help="requests per case per round")
    args = parser.parse_args()

    port = _free_port()
    server = multiprocessing.Process(target=_serve, args=(port,), daemon=True)
    server.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            requests.get(base + "/ping", timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.05)

    session = requests.Session()
    since = (BOUND - dt.timedelta(days=1)).strftime("%Y%m%d")

    def bare() -> None:
        response = session.get(
            f"{base}/v2/PhoneNumbers/{NUMBER}",
            params={"Fields": "reassigned_number", "LastVerifiedDate": since},
            auth=(SID, TOKEN),
            timeout=2,
        )
        response.raise_for_status()
        assert response.json()["reassigned_number"]["is_number_reassigned"] == "no"

    caller = threading.get_ident()
    inline = [0, 0]  # checks whose lookup ran on the calling thread, checks made

    class Counting(TwilioProvider):
        def lookup(self, number: str, since: dt.date) -> Any:
            inline[0] += threading.get_ident() == caller
            inline[1] += 1
            return super().lookup(number, since)

    guard = Guard(Counting(SID, TOKEN, base_url=base), cache=MemoryCache(max_entries=0), timeout=2)
    assert guard.check(NUMBER, bound_at=BOUND).allowed

    cases = {
        "bare requests.Session GET + json": bare,
        "recyclecheck guard.check (Twilio)": lambda: guard.check(NUMBER, bound_at=BOUND),
    }
    try:
        from twilio.http.http_client import TwilioHttpClient  # noqa: PLC0415 - optional
        from twilio.rest import Client  # noqa: PLC0415 - optional

        official = Client(SID, TOKEN, http_client=TwilioHttpClient(timeout=2))
        official.lookups.base_url = base

        def twilio_client() -> None:
            result = official.lookups.v2.phone_numbers(NUMBER).fetch(
                fields="reassigned_number", last_verified_date=since
            )
            assert result.reassigned_number["is_number_reassigned"] == "no"

        cases["official twilio client fetch()"] = twilio_client
    except ImportError:
        print("twilio not installed: pip install twilio to include the official client")

    best = dict.fromkeys(cases, float("inf"))
    for _ in range(args.rounds):
        for name, fn in cases.items():
            fn()  # warm the connection pool
            started = time.perf_counter()
            for _ in range(args.number):
                fn()
            best[name] = min(best[name], (time.perf_counter() - started) / args.number)
    server.terminate()

    bare_cost = best["bare requests.Session GET + json"]
    print(f"{'case':40} {'per call':>10} {'x bare':>8}")
    for name, value in best.items():
        print(f"{name:40} {value * 1e6:8.0f}us {value / bare_cost:8.2f}")
    sdk = best["recyclecheck guard.check (Twilio)"]
    print(f"inline: {inline[0]} of {inline[1]} checks ran on the calling thread")
    print(
        f"target SDK <= 1.05x bare requests: {'ok' if sdk <= 1.05 * bare_cost else 'OVER TARGET'}"
    )
    if "official twilio client fetch()" in best:
        faster = sdk < best["official twilio client fetch()"]
        print(f"target SDK faster than the official client: {'ok' if faster else 'MISSED'}")


if __name__ == "__main__":
    main()
