"""Soak: 100,000 checks over real sockets, 5% of them faulty, and nothing grows.

The Guard checks 100,000 distinct numbers (so every check is a real provider
call: no cache hit hides any work) through the real Twilio adapter against a
:class:`~recyclecheck.testing.FakeProviderServer` running in its own process,
so that this process's threads, sockets and memory are the SDK's alone and the
server runs on the other core.  One number in 20 has a fault injected on every
lookup: 15 fast kinds (5xx, HTML pages, resets, malformed JSON, 429s with and
without a usable ``Retry-After``, redirects, refused credentials, oversized
bodies) and 100 slow ones (hang, slow drip, latency beyond the deadline).
Sixteen driver threads run the checks in a seeded random order, in ten
batches of 10,000.

Asserted, all exactly or against the stated bound:

- every Decision: a faulty number steps up with ``provider_unavailable``; a
  healthy one gets exactly its scripted outcome (counted per kind of number);
  nothing is served from the cache; the circuit never opens;
- every check's ``elapsed`` and the caller's wall clock stay within
  ``TIMEOUT + SLACK``.  ``SLACK`` (0.25 s) is scheduling, not I/O: the
  waiting thread wakes at the deadline but may wait for the GIL behind ~33
  busy threads on a saturated 2-core machine (the worst seen is 0.04 s;
  healthy checks take at most ~0.13 s against the 0.5 s deadline);
- one WARNING per failed lookup, naming the error class each fault must map
  to, and no phone number in any of them;
- what the server received: each healthy number and each non-retryable or
  slow fault exactly once; retryable faults (5xx, reset, ``Retry-After: 0``)
  once or twice (the one retry), and retried at least once per kind;
- threads (OS thread ids started since the Guard was made): between
  batches exactly the drivers plus the pool's workers, which it starts
  lazily and never beyond ``max_workers``; under load at most
  ``DRIVERS + MAX_WORKERS``;
- sockets connected to the provider: between batches at most the adapter's
  pool size (32: every connection idle in the pool); under load at most pool
  size + ``MAX_WORKERS`` (each in-flight lookup may hold one more until it is
  released); after ``guard.close()``, none;
- memory, from the baseline taken after two warm-up batches (the fact cache
  is then full at its 10,000 entries, checked, and the number memo at its
  4,096) to every later sample: resident memory grows by at most
  ``RSS_GROWTH`` (16 MiB; here 4-6 MiB, the allocator settling: it levels
  off, a 300,000-check run grew 3.3 MiB from its 60,000th check to the end),
  and live Python memory blocks by at most ``BLOCK_GROWTH`` (2,000; here
  ~400).  76,000 healthy and 4,000 failed checks follow the baseline, so
  keeping even one object per failed check breaks the block bound, and
  keeping 210 bytes per check breaks the RSS bound.

``max_workers`` is 32, twice the drivers: a lookup abandoned at its deadline
(a hang) still holds its worker for the few milliseconds its own socket
timeout takes to fire, and the pool rightly counts it as busy; with as many
drivers as workers the next login on that driver could be refused as
saturated.  ``breaker_threshold`` is one more than the number of faulty
numbers, so no streak of failures can open the circuit whatever order they
come in.

Runtime is two to three minutes: 650-850 checks/s on a 2-core VM, where the
client's CPU is the limit (about 1 ms of ``requests`` per call).  Deselect
locally with ``-m "not soak"``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import gc
import logging
import multiprocessing
import os
import random
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import wait
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest

from recyclecheck import Action, Guard, Reason
from recyclecheck._http import DEFAULT_MAX_BODY
from recyclecheck.providers import TwilioProvider
from recyclecheck.testing import (
    AuthRefused,
    Credentials,
    FakeProviderServer,
    Fault,
    Hang,
    HtmlErrorPage,
    HugeBody,
    Latency,
    MalformedJson,
    RateLimit,
    Redirect,
    Reset,
    ServerError,
    SlowDrip,
)

from ..crowd import all_stacks, dump_all_threads
from ..privacy import leaks

N_CHECKS = 100_000
BATCH = 10_000
#: The longest a batch may take (12-15 s here) before a driver counts as stuck in a check
#: and the soak fails with every thread's stack; ten of them fit the test's 360 s timeout.
BATCH_LIMIT = 60.0
#: Batches run before the baseline: by then the fact cache is full (see the module docstring).
WARM_UP_BATCHES = 2
DRIVERS = 16
MAX_WORKERS = 32
TIMEOUT = 0.5
SLACK = 0.25
RSS_GROWTH = 16 * 2**20
BLOCK_GROWTH = 2_000
SEED = 20240302
UTC = dt.timezone.utc

#: Changes count from 2024-03-01 (the Guard's one-day margin before the binding).
BOUND_AT = dt.date(2024, 3, 2)
REISSUED_AFTER = dt.date(2024, 5, 1)
REISSUED_BEFORE = dt.date(2023, 6, 1)
#: Above the adapter's body cap, small enough to cost the server nothing.
OVERSIZED = DEFAULT_MAX_BODY + 64 * 1024

ALLOW = (Action.ALLOW, Reason.NOT_REISSUED)
REISSUED = (Action.STEP_UP, Reason.REISSUED_AFTER_BINDING)
NO_DATA = (Action.STEP_UP, Reason.NO_DATA)
UNAVAILABLE = (Action.STEP_UP, Reason.PROVIDER_UNAVAILABLE)


@dataclasses.dataclass(frozen=True)
class Kind:
    """One class of numbers: what the fake provider does and what the Guard must decide.

    ``script`` is the scripted reissue date (``None``: never reissued);
    ``listed`` False leaves the number out of the script (the provider has no
    data); ``fault`` is injected on every lookup of the number and ``error``
    is the ProviderError it must become; ``retried`` says the Guard's one retry
    may reach the server (5xx, transport errors, a 429 whose ``Retry-After``
    fits the deadline).
    """

    name: str
    expected: tuple[Action, Reason]
    script: dt.date | None = None
    listed: bool = True
    fault: Fault | None = None
    error: str | None = None
    retried: bool = False


def _faulty(name: str, fault: Fault, error: str, *, retried: bool = False) -> Kind:
    # Faulty numbers are scripted "never reissued": a fault that slipped past the
    # Guard (a late answer read after the deadline, say) would show up as an allow.
    return Kind(name, UNAVAILABLE, fault=fault, error=error, retried=retried)


NEVER = Kind("never reissued", ALLOW)
AFTER = Kind("reissued after binding", REISSUED, script=REISSUED_AFTER)
BEFORE = Kind("reissued before binding", ALLOW, script=REISSUED_BEFORE)
UNLISTED = Kind("unlisted", NO_DATA, listed=False)
FAST_FAULTS = (
    _faulty("503", ServerError(503), "ProviderUnavailable", retried=True),
    _faulty("500", ServerError(500), "ProviderUnavailable", retried=True),
    _faulty("HTML 502 page", HtmlErrorPage(502), "ProviderUnavailable", retried=True),
    _faulty("HTML page with 200", HtmlErrorPage(200), "ProviderResponseError"),
    _faulty("TCP reset", Reset(), "ProviderUnavailable", retried=True),
    _faulty("malformed JSON", MalformedJson(), "ProviderResponseError"),
    _faulty("429 without Retry-After", RateLimit(), "ProviderRateLimited"),
    _faulty("429 Retry-After: 0", RateLimit(0), "ProviderRateLimited", retried=True),
    _faulty("429 Retry-After: 3600", RateLimit(3600), "ProviderRateLimited"),
    _faulty(
        "429 Retry-After: a date in 2100",
        RateLimit(dt.datetime(2100, 1, 1, tzinfo=UTC)),
        "ProviderRateLimited",
    ),
    _faulty("302 redirect", Redirect(), "ProviderResponseError"),
    _faulty(
        "307 redirect to localhost", Redirect("http://127.0.0.1:9/", 307), "ProviderResponseError"
    ),
    _faulty("401 refused", AuthRefused(), "ProviderAuthError"),
    _faulty("oversized body, declared", HugeBody(OVERSIZED), "ProviderResponseError"),
    _faulty(
        "oversized body, undeclared",
        HugeBody(OVERSIZED, declare_length=False),
        "ProviderResponseError",
    ),
)
SLOW_FAULTS = (
    _faulty("hang", Hang(), "ProviderTimeout"),
    _faulty("slow drip", SlowDrip(0.05), "ProviderTimeout"),
    _faulty("latency 2 s", Latency(2.0), "ProviderTimeout"),
)


def number(i: int) -> str:
    """The ``i``-th soak number: a distinct, valid US number (Twilio covers only the US)."""
    return f"+1202{2_000_000 + i:07d}"


def kind_of(i: int) -> Kind:
    """What the ``i``-th number is; both processes derive the scenario from this alone.

    One number in 20 is faulty (5%) and one faulty number in 50 is slow (100 in
    100,000); of the rest, 10% are reissued after the binding, 5% before it,
    10% unlisted and 70% never reissued.
    """
    residue = i % 20
    if residue == 7:
        j = i // 20
        if j % 50 == 0:
            return SLOW_FAULTS[(j // 50) % len(SLOW_FAULTS)]
        return FAST_FAULTS[j % len(FAST_FAULTS)]
    if residue in (3, 13):
        return AFTER
    if residue in (5, 15):
        return UNLISTED
    if residue == 11:
        return BEFORE
    return NEVER


# -- the fake provider, in its own process ------------------------------------------------


def _serve(commands: Connection, replies: Connection) -> None:
    """Serve the scenario until asked for a report (or until the test process is gone).

    Sends its URL first.  The report counts, per kind of number, how many
    numbers were asked about 0, 1, 2... times.
    """
    kinds = [kind_of(i) for i in range(N_CHECKS)]
    server = FakeProviderServer(
        {number(i): kind.script for i, kind in enumerate(kinds) if kind.listed}
    )
    for i, kind in enumerate(kinds):
        if kind.fault is not None:
            server.inject(kind.fault, number=number(i))
    # The server keeps every request it receives (~10 objects each), and as that
    # heap grows, each automatic full collection stops all its threads for up to
    # 0.2 s: enough to push a healthy answer near the client's deadline.  Reference
    # counting frees its garbage; this is the fake's heap, not the SDK's.
    gc.disable()
    with server:
        replies.send(server.url)
        try:
            commands.recv()
        except EOFError:  # the test process went away
            return
        received = server.requests
    per_number = Counter(r.number for r in received if r.endpoint == "lookup")
    per_kind: dict[str, Counter[int]] = {}
    for i, kind in enumerate(kinds):
        per_kind.setdefault(kind.name, Counter())[per_number.pop(number(i), 0)] += 1
    replies.send(
        {
            "total": len(received),
            "not_lookups": sum(1 for r in received if r.endpoint != "lookup"),
            "unknown_numbers": sum(per_number.values()),
            "per_kind": per_kind,
        }
    )


@dataclasses.dataclass
class FakeProcess:
    """The running fake provider: its URL, and the pipes to ask it for its report."""

    url: str
    commands: Connection
    replies: Connection

    def report(self) -> dict[str, Any]:
        self.commands.send("report")
        if not self.replies.poll(60):
            pytest.fail("the fake provider process sent no report")
        report: dict[str, Any] = self.replies.recv()
        return report


@pytest.fixture
def fake_process() -> Iterator[FakeProcess]:
    """The fake provider in a spawned process, killed at teardown whatever happened."""
    context = multiprocessing.get_context("spawn")
    # One-way pipes rather than socketpairs: every socket in this process is the SDK's.
    command_reader, command_writer = context.Pipe(duplex=False)
    reply_reader, reply_writer = context.Pipe(duplex=False)
    process = context.Process(
        target=_serve, args=(command_reader, reply_writer), name="soak-provider", daemon=True
    )
    process.start()
    command_reader.close()
    reply_writer.close()
    try:
        if not reply_reader.poll(120):
            pytest.fail("the fake provider process did not start")
        yield FakeProcess(reply_reader.recv(), command_writer, reply_reader)
    finally:
        command_writer.close()
        reply_reader.close()
        process.kill()
        process.join(10)


class _SdkWarnings(logging.Filter):
    """Checks each SDK record for phone numbers as it comes, keeps only counts, and
    drops the record (a logger filter runs before any handler sees it)."""

    _ERROR = re.compile(r"provider failure: provider=twilio error=(\w+)$")

    def __init__(self) -> None:
        super().__init__()
        self.errors: Counter[str] = Counter()
        self.other: Counter[str] = Counter()
        self.leaked: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.count(record)
        return False

    def count(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        extras = " ".join(str(v) for k, v in vars(record).items() if k.startswith("recyclecheck"))
        if leaks(f"{message} {extras}") and len(self.leaked) < 5:
            self.leaked.append(message)
        match = self._ERROR.search(message)
        if match:
            self.errors[match.group(1)] += 1
        else:
            self.other[message] += 1


@pytest.fixture
def sdk_warnings() -> Iterator[_SdkWarnings]:
    """The SDK's WARNING records, privacy-checked here instead of kept by the root logger.

    The suite's privacy fixture sets the root logger to DEBUG and keeps every
    record, and so does pytest's log capture.  At 100,000 checks, urllib3's
    and the Guard's per-request DEBUG/INFO lines would dominate the runtime,
    and the 5,000 provider-failure warnings kept by both (~3 KiB each) would
    be the largest memory growth in the process: the memory bound would
    measure the harness, not the SDK.  So per-request records are off
    (``urllib3`` and ``recyclecheck`` at WARNING; the privacy tests cover
    them), and the SDK's warnings go to this filter, which applies the same
    ``leaks`` check to each one as it arrives and keeps only counts.
    """
    # A filter, not a handler on a non-propagating logger: pytest (9.2 and later)
    # attaches its capture handler to every non-propagating logger, and would
    # keep every record again.
    counter = _SdkWarnings()
    sdk, urllib3 = logging.getLogger("recyclecheck"), logging.getLogger("urllib3")
    saved = (sdk.level, urllib3.level)
    sdk.setLevel(logging.WARNING)
    urllib3.setLevel(logging.WARNING)
    sdk.addFilter(counter)
    try:
        yield counter
    finally:
        sdk.removeFilter(counter)
        sdk.setLevel(saved[0])
        urllib3.setLevel(saved[1])


# -- measurements -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Sample:
    """One moment of this process, as the kernel and the allocator see it.

    ``threads`` started since the probe was made (OS thread ids, so threads
    left over from earlier tests, or ending meanwhile, do not count);
    ``connections`` open sockets connected to the fake provider; ``rss``
    resident bytes; ``blocks`` live Python memory blocks.
    """

    threads: int
    connections: int
    rss: int
    blocks: int

    def __str__(self) -> str:
        return (
            f"threads={self.threads} connections={self.connections} "
            f"rss={self.rss / 2**20:.1f}MiB blocks={self.blocks}"
        )


class Probe:
    """Samples this process through /proc: cheap enough to run among the checks."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._threads_before = self._threads()

    @staticmethod
    def _threads() -> set[str]:
        return set(os.listdir("/proc/self/task"))

    def _connections(self) -> int:
        inodes = set()
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):  # closed while we looked
                link = os.readlink(f"/proc/self/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        count = 0
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(OSError):
                for line in Path(table).read_text().splitlines()[1:]:
                    fields = line.split()  # remote "address:port" in hex, then the inode
                    if fields[9] in inodes and int(fields[2].rsplit(":", 1)[1], 16) == self._port:
                        count += 1
        return count

    def sample(self, *, settle: bool = True) -> Sample:
        if settle:
            gc.collect()  # cyclic garbage not yet collected is not growth
        return Sample(
            threads=len(self._threads() - self._threads_before),
            connections=self._connections(),
            rss=int(Path("/proc/self/statm").read_text().split()[1]) * self._page,
            blocks=sys.getallocatedblocks(),
        )


@pytest.fixture
def frozen_heap() -> Iterator[None]:
    """Move every object alive before the test out of the garbage collector's sight.

    With the whole suite's objects alive, each automatic full collection
    walks them all and stops every thread for 0.15-0.25 s on this machine: a
    healthy check caught in two of them would miss a 0.5 s deadline.  That is
    the harness's heap, not the SDK's, so it is frozen (``gc.freeze``) for the
    soak and handed back afterwards.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@dataclasses.dataclass
class Tally:
    """What the drivers saw, kept small: counts and maxima, never the Decisions."""

    outcomes: Counter[tuple[str, Action, Reason]] = dataclasses.field(default_factory=Counter)
    errors: Counter[tuple[str, str]] = dataclasses.field(default_factory=Counter)
    cached: int = 0
    slowest: dict[str, float] = dataclasses.field(default_factory=dict)

    def add(self, other: Tally) -> None:
        self.outcomes.update(other.outcomes)
        self.errors.update(other.errors)
        self.cached += other.cached
        for name, seconds in other.slowest.items():
            self.slowest[name] = max(seconds, self.slowest.get(name, 0.0))


class Drivers:
    """``DRIVERS`` threads running batches of checks, as concurrent logins do.

    They live for the whole soak, so between batches the process holds
    exactly its earlier threads, the drivers and the Guard's workers.  They
    are daemons, and a batch not done within ``BATCH_LIMIT`` fails the soak
    with every thread's stack: a check stuck for ever (issue 8's deadlock)
    cannot hold CI, nor the interpreter at exit.
    """

    def __init__(self, guard: Guard, probe: Probe, numbers: list[str], kinds: list[Kind]) -> None:
        self._guard = guard
        self._probe = probe
        self._numbers = numbers
        self._kinds = kinds
        self._barrier = threading.Barrier(DRIVERS + 1)
        self._lock = threading.Lock()
        self._batch: Iterator[tuple[int, int]] | None = None
        self._live_at = -1
        self.live: list[Sample] = []
        self.tallies = [Tally() for _ in range(DRIVERS)]
        self._threads = [
            threading.Thread(
                target=self._drive, args=(tally,), name=f"soak-driver-{n}", daemon=True
            )
            for n, tally in enumerate(self.tallies)
        ]
        for thread in self._threads:
            thread.start()

    def run(self, indices: list[int]) -> None:
        """Check the numbers at ``indices`` across the drivers; return once all are done.

        Halfway through, one driver samples threads and sockets under load.
        """
        self._batch = enumerate(indices)
        self._live_at = len(indices) // 2
        self._meet("start a batch")  # go
        self._meet("finish a batch")  # every driver is done

    def _meet(self, what: str) -> None:
        """Wait for every driver at the barrier; fail with every thread's stack if one is stuck."""
        try:
            self._barrier.wait(timeout=BATCH_LIMIT)
        except threading.BrokenBarrierError:
            dump_all_threads()
            pytest.fail(
                f"the drivers did not {what} within {BATCH_LIMIT:g}s: a check is stuck.\n"
                f"Every thread's stack:\n{all_stacks()}",
                pytrace=False,
            )

    def close(self) -> None:
        """Stop the drivers; after a failure too (a broken barrier releases them)."""
        self._batch = None
        with contextlib.suppress(threading.BrokenBarrierError):
            self._barrier.wait(timeout=10)
        self._barrier.abort()
        until = time.monotonic() + 10  # for all of them: a stuck one is a daemon, left behind
        for thread in self._threads:
            thread.join(max(0.0, until - time.monotonic()))

    def _drive(self, tally: Tally) -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            while True:
                self._barrier.wait()
                batch = self._batch
                if batch is None:
                    return
                self._run(batch, tally)
                self._barrier.wait()

    def _run(self, batch: Iterator[tuple[int, int]], tally: Tally) -> None:
        guard, numbers, kinds, lock = self._guard, self._numbers, self._kinds, self._lock
        while True:
            with lock:
                step, i = next(batch, (-1, -1))
            if step < 0:
                return
            if step == self._live_at:
                self.live.append(self._probe.sample(settle=False))
            kind = kinds[i]
            started = time.monotonic()
            try:
                decision = guard.check(numbers[i], bound_at=BOUND_AT)
            except Exception as exc:  # counted, and failed on below
                tally.errors[kind.name, type(exc).__name__] += 1
                continue
            wall = time.monotonic() - started
            tally.outcomes[kind.name, decision.action, decision.reason] += 1
            tally.cached += decision.cached
            worst = max(wall, decision.elapsed)
            if worst > tally.slowest.get(kind.name, 0.0):
                tally.slowest[kind.name] = worst


def _settle(guard: Guard) -> None:
    """Wait until lookups whose callers gave up at the deadline have ended too."""
    # The Guard's in-flight futures: nothing public hands them out.
    flights = []
    for lane in guard.lanes.values():
        with lane._flights_lock:
            flights.extend(flight.future for flight in lane._flights.values())
    _, pending = wait(flights, timeout=10)
    assert not pending, "provider lookups still running 10 s after their deadline"


# -- the soak -----------------------------------------------------------------------------


@pytest.mark.soak
@pytest.mark.timeout(360)
@pytest.mark.skipif(
    not Path("/proc/self/task").is_dir(), reason="counts threads, sockets and memory in /proc"
)
@pytest.mark.usefixtures("frozen_heap")
def test_soak_100k_checks_with_5_percent_faults(
    fake_process: FakeProcess, sdk_warnings: _SdkWarnings
) -> None:
    """100,000 real checks: exact decisions, deadlines kept, threads/sockets/memory bounded."""
    numbers = [number(i) for i in range(N_CHECKS)]
    kinds = [kind_of(i) for i in range(N_CHECKS)]
    order = list(range(N_CHECKS))
    random.Random(SEED).shuffle(order)  # faults arrive at random moments, clusters included
    faulty = [kind for kind in kinds if kind.fault is not None]

    # The scenario is the requirement: distinct numbers, 5% faulty, known outcomes.
    assert len(set(numbers)) == N_CHECKS
    assert len(faulty) * 20 == N_CHECKS
    assert Counter(kind.expected for kind in kinds) == {
        ALLOW: N_CHECKS * 15 // 20,
        REISSUED: N_CHECKS * 2 // 20,
        NO_DATA: N_CHECKS * 2 // 20,
        UNAVAILABLE: N_CHECKS // 20,
    }

    probe = Probe(int(fake_process.url.rsplit(":", 1)[1]))
    before = probe.sample()
    credentials = Credentials()
    provider = TwilioProvider(
        credentials.twilio_account_sid, credentials.twilio_auth_token, base_url=fake_process.url
    )
    adapter = provider._http._session.get_adapter(fake_process.url)
    pool_size = adapter.poolmanager.connection_pool_kw["maxsize"]
    assert pool_size >= MAX_WORKERS  # each in-flight lookup can have a pooled connection
    guard = Guard(
        provider,
        timeout=TIMEOUT,
        max_workers=MAX_WORKERS,
        breaker_threshold=len(faulty) + 1,
    )
    drivers = Drivers(guard, probe, numbers, kinds)
    samples: list[tuple[Sample, int]] = []  # between batches, with the pool's thread count
    started = time.monotonic()
    try:
        for start in range(0, N_CHECKS, BATCH):
            drivers.run(order[start : start + BATCH])
            samples.append((probe.sample(), guard.pool.threads))
            if len(samples) == WARM_UP_BATCHES:
                assert len(guard.cache) == 10_000  # MemoryCache's default bound, reached
    finally:
        drivers.close()
    elapsed = time.monotonic() - started
    cache_entries = len(guard.cache)
    _settle(guard)
    guard.close()
    closed = probe.sample()
    report = fake_process.report()
    tally = Tally()
    for one in drivers.tallies:
        tally.add(one)

    baseline = samples[WARM_UP_BATCHES - 1][0]
    end = samples[-1][0]
    summary = (
        f"{N_CHECKS} checks in {elapsed:.1f}s ({N_CHECKS / elapsed:.0f}/s)\n"
        f"before:   {before}\nbaseline: {baseline}\nend:      {end}\n"
        f"closed:   {closed}\nlive:     {' | '.join(map(str, drivers.live))}\n"
        f"pool threads {[threads for _, threads in samples]} (max {MAX_WORKERS}), "
        f"pool size {pool_size}; the server received {report['total']} requests\n"
        f"slowest: {sorted(tally.slowest.items(), key=lambda kv: -kv[1])[:5]}"
    )
    print(summary)  # shown by pytest on failure (or with -rP)

    # Decisions: exactly the scripted outcome per kind of number (so per action and
    # reason too: the scenario's totals are checked above), never from the cache.
    assert not tally.errors, f"check() raised: {tally.errors}"
    expected = Counter((kind.name, *kind.expected) for kind in kinds)
    assert tally.outcomes == expected, (
        f"unexpected: {tally.outcomes - expected}, missing: {expected - tally.outcomes}"
    )
    assert tally.cached == 0
    assert guard.breaker.state == "closed"

    # Deadlines: every check, faulty or not, answered within the timeout plus scheduling slack.
    late = {name: s for name, s in tally.slowest.items() if s > TIMEOUT + SLACK}
    assert not late, f"checks over {TIMEOUT}s + {SLACK}s: {late}"

    # Logs: one warning per failed lookup, of the class each fault maps to, no number in any.
    assert not sdk_warnings.leaked, f"phone number in a warning: {sdk_warnings.leaked}"
    assert sdk_warnings.errors == Counter(kind.error for kind in faulty)
    assert not sdk_warnings.other, f"unexpected warnings: {sdk_warnings.other}"

    # The wire: what the other process received.
    assert report["not_lookups"] == 0
    assert report["unknown_numbers"] == 0
    by_name = {kind.name: kind for kind in kinds}
    for name, asked in report["per_kind"].items():
        if by_name[name].retried:
            assert set(asked) <= {1, 2}, f"{name}: asked {dict(asked)}"
            assert asked[2] > 0, f"{name}: the one retry never reached the server"
        else:
            assert set(asked) == {1}, f"{name}: asked {dict(asked)} (times: numbers)"

    # Threads: every new thread is a driver or a pool worker, and workers stay within
    # max_workers (the pool starts them lazily and none ever ends).
    for sample, pool_threads in samples:
        assert pool_threads <= MAX_WORKERS
        assert sample.threads == DRIVERS + pool_threads, summary
    for sample in drivers.live:
        assert sample.threads <= DRIVERS + MAX_WORKERS, summary

    # Connections: idle ones fit the pool, busy ones one more per lookup, none after close.
    assert before.connections == 0
    for sample, _ in samples:
        assert sample.connections <= pool_size, summary
    for sample in drivers.live:
        assert sample.connections <= pool_size + MAX_WORKERS, summary
    assert closed.connections == 0, summary

    # Memory: bounded caches at their bounds, and no growth after the warm-up beyond the bounds.
    assert cache_entries == 10_000
    for sample, _ in samples[WARM_UP_BATCHES:]:
        assert sample.rss - baseline.rss <= RSS_GROWTH, summary
        assert sample.blocks - baseline.blocks <= BLOCK_GROWTH, summary
