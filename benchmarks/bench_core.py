"""Cost of recyclecheck's own work on the login path, next to the floor cost of
parsing the number at all.

Run: python benchmarks/bench_core.py [--rounds N]

Every case is measured in the same process, interleaved round by round, and
the best round is kept (the least disturbed by the rest of the machine).  The
floor is what any login handler pays anyway: ``phonenumbers.parse`` plus E.164
formatting of the same number.  Targets: a cached check and an open-circuit
check each cost at most 2x the floor.
"""

from __future__ import annotations

import argparse
import datetime as dt
import timeit

import phonenumbers

from recyclecheck import Guard, ProviderUnavailable
from recyclecheck.providers import SandboxProvider

NUMBER = "+86 136 0013 6000"
BOUND = dt.date(2021, 9, 15)
# Same number, written differently each time: each is a first sighting for the input memo.
SPELLINGS = [
    "+86 136 0013 6000",
    "+86-136-0013-6000",
    "+8613600136000",
    "+86 136-0013-6000",
    "(+86) 136 0013 6000",
    "+86 (136) 0013 6000",
    "+86 13600136000",
    "+86.136.0013.6000",
]


def floor() -> None:
    phonenumbers.format_number(
        phonenumbers.parse(NUMBER, None), phonenumbers.PhoneNumberFormat.E164
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=5000, help="calls per round")
    args = parser.parse_args()

    cached = Guard(SandboxProvider.demo())
    cached.check(NUMBER, bound_at=BOUND)
    assert cached.check(NUMBER, bound_at=BOUND).cached

    down = Guard(
        SandboxProvider({NUMBER: ProviderUnavailable("down")}),
        breaker_threshold=1,
        breaker_recovery=3600,
    )
    down.check(NUMBER, bound_at=BOUND)
    assert down.breaker.state == "open"

    fresh_spelling = Guard(SandboxProvider.demo())
    fresh_spelling.check(NUMBER, bound_at=BOUND)
    spellings = iter(SPELLINGS * (args.number * args.rounds))
    floor_spellings = iter(SPELLINGS * (args.number * args.rounds))

    def floor_new_spelling() -> None:
        phonenumbers.format_number(
            phonenumbers.parse(next(floor_spellings), None), phonenumbers.PhoneNumberFormat.E164
        )

    def cached_new_spelling() -> None:
        # Memo defeated by clearing it: parse + validate + cache hit.
        fresh_spelling._memo._entries.clear()
        fresh_spelling.check(next(spellings), bound_at=BOUND)

    cases = {
        "floor: phonenumbers.parse + E.164": floor,
        "cached check (input seen before)": lambda: cached.check(NUMBER, bound_at=BOUND),
        "floor over 8 spellings": floor_new_spelling,
        "cached check (input never seen)": cached_new_spelling,
        "open-circuit check": lambda: down.check(NUMBER, bound_at=BOUND),
    }
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(args.rounds):
        for name, fn in cases.items():
            per_call = timeit.timeit(fn, number=args.number) / args.number
            best[name] = min(best[name], per_call)

    base = best["floor: phonenumbers.parse + E.164"]
    print(f"{'case':40} {'per call':>10} {'x floor':>8}")
    for name, value in best.items():
        print(f"{name:40} {value * 1e6:8.2f}us {value / base:8.2f}")
    spelled = best["floor over 8 spellings"]
    print(
        "cached check (input never seen) vs floor over the same spellings: "
        f"{best['cached check (input never seen)'] / spelled:.2f}x"
    )
    for name in ("cached check (input seen before)", "open-circuit check"):
        verdict = "ok" if best[name] <= 2 * base else "OVER TARGET"
        print(f"target <= 2x floor for {name}: {verdict}")


if __name__ == "__main__":
    main()
