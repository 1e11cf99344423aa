"""Sweeps on Celery (recyclecheck.celery): chunks read exactly as one sweep reads the whole
file, atomic per-chunk files, re-runs that skip finished chunks, and a real run: a real
redis-server as broker, result backend, shared cache and shared quota, a real `celery worker`
(prefork, two worker processes) and the fake provider server, over 10,000 rows.

This module is also the Celery app the worker subprocess loads (``-A
tests.test_celery_sweep:app``): with the variables :func:`worker_environment` sets, it
builds ``app`` at import and its Guard from the environment, as an app's own worker would.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from recyclecheck import Guard, RedisCache, RedisTokenBucket
from recyclecheck._sweep import read_rows
from recyclecheck.celery import (
    KEY_FILE,
    TASK_NAME,
    SweepReport,
    merge_results,
    register_sweep_tasks,
    run_sweep,
)
from recyclecheck.exceptions import ConfigurationError
from recyclecheck.providers import SandboxProvider, provider_from_env
from recyclecheck.testing import FakeProviderServer

from .privacy import leaks

try:
    import celery
except ImportError:  # pragma: no cover - the tests extra installs celery
    celery = None

REPO = Path(__file__).resolve().parent.parent
#: Set RECYCLECHECK_REQUIRE_CELERY=1 to turn "no celery here" from a skip into a failure.
REQUIRE = os.environ.get("RECYCLECHECK_REQUIRE_CELERY") == "1"
HEADER = "row,account_id,masked_number,action,reason,since,reissued_on,provider,error"

# The variables the worker subprocess reads (see the module docstring).
BROKER = "RECYCLECHECK_TEST_CELERY_URL"
QUEUE = "RECYCLECHECK_TEST_CELERY_QUEUE"
SECRET = "RECYCLECHECK_TEST_CELERY_SECRET"
PREFIX = "RECYCLECHECK_TEST_CELERY_PREFIX"
#: The shared quota: roomy enough never to refuse the test's 10,000 lookups.
QUOTA_RATE, QUOTA_BURST = 10.0, 20_000


def need_celery() -> None:
    """Skip without celery, unless RECYCLECHECK_REQUIRE_CELERY=1 makes that a failure."""
    if celery is None:
        if REQUIRE:
            pytest.fail("celery is not installed and RECYCLECHECK_REQUIRE_CELERY=1")
        pytest.skip("celery is not installed (pip install 'recyclecheck[celery]')")


# -- the worker's side: the app's own Celery module --------------------------------------


def guard_from_env() -> Guard:
    """The Guard each worker process builds once: Twilio from its variables, Redis shared.

    Nobody waits on a sweep's checks, so its Redis client may take the longest socket
    timeouts RedisCache allows (0.5 s, in the URL) rather than a login's 50 ms: on a busy
    machine a 50 ms timeout opens the cache's breaker, and facts go unshared for a while.
    """
    secret, prefix = os.environ[SECRET], os.environ[PREFIX]
    url = os.environ[BROKER] + "?socket_timeout=0.5&socket_connect_timeout=0.5"
    return Guard(
        provider_from_env("twilio"),
        cache=RedisCache.from_url(url, secret=secret, prefix=f"{prefix}cache:"),
        secret=secret,
        quota=RedisTokenBucket.from_url(
            url, name="twilio", rate=QUOTA_RATE, burst=QUOTA_BURST, prefix=f"{prefix}quota:"
        ),
        timeout=5.0,
    )


def make_app(url: str, queue: str) -> Any:
    """A Celery app on Redis (broker and result backend) with the sweep task registered."""
    assert celery is not None
    app = celery.Celery("recyclecheck-tests", broker=url, backend=url, set_as_current=False)
    app.conf.update(
        task_default_queue=queue,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        result_expires=600,
        worker_hijack_root_logger=True,
    )
    register_sweep_tasks(app, guard_factory=guard_from_env)
    return app


app = make_app(os.environ[BROKER], os.environ[QUEUE]) if BROKER in os.environ and celery else None


# -- a broker-less double, for the chunk logic ------------------------------------------


class _Done:
    """A task's result, run when sent."""

    def __init__(self, function: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        try:
            self.value, self.error = function(**kwargs), False
        except Exception as exc:
            self.value, self.error = exc, True

    def get(self, *, timeout: float | None, propagate: bool) -> Any:
        return self.value

    def failed(self) -> bool:
        return self.error

    def forget(self) -> None:
        pass


class SyncApp:
    """Enough of a Celery app to run each task at once, in this process, and see its job."""

    def __init__(self, guard_factory: Callable[[], Guard]) -> None:
        self.backend = object()
        self.tasks: dict[str, Callable[..., Any]] = {}
        self.sent: list[dict[str, Any]] = []
        self.options: dict[str, Any] = {}
        register_sweep_tasks(self, guard_factory=guard_factory)

    def task(self, *, name: str, **options: Any) -> Callable[[Callable[..., Any]], Any]:
        def register(function: Callable[..., Any]) -> Callable[..., Any]:
            self.tasks[name], self.options = function, options
            return function

        return register

    def send_task(self, name: str, *, kwargs: dict[str, Any], queue: str | None) -> _Done:
        self.sent.append(kwargs)
        return _Done(self.tasks[name], kwargs)


REISSUED, NEVER, NO_DATA = "+8613800138000", "+8613900139000", "+8613700137000"
SANDBOX = {REISSUED: dt.date(2024, 3, 1), NEVER: None}


def sandbox_guard() -> Guard:
    return Guard(SandboxProvider(SANDBOX), timeout=5.0)


def results_of(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".csv":
        return list(csv.DictReader(io.StringIO(path.read_text("utf-8"))))
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def whole_file_sweep(path: Path, fmt: str) -> tuple[list[tuple[str, ...]], list[tuple[int, str]]]:
    """What one sweep of the whole file gives: (row, account, reason, error) and bad rows."""
    bad: list[tuple[int, str]] = []
    with path.open("rb") as handle:
        rows = list(read_rows(handle, format=fmt, on_bad_row=lambda n, r: bad.append((n, r))))
    results = sandbox_guard().sweep(row for _, row in rows)
    got = [
        (str(n), r.account_id, r.reason.value if r.reason else "", r.error or "")
        for (n, _), r in zip(rows, results, strict=True)
    ]
    return got, sorted(bad)


def merged(path: Path) -> list[tuple[str, ...]]:
    return [
        (str(r["row"]), r["account_id"], r["reason"] or "", r["error"] or "")
        for r in results_of(path)
    ]


def awkward_lines(fmt: str, header: bool) -> list[bytes]:
    """Rows, blank lines and bad lines of every kind, to fall on chunk edges."""
    if fmt == "jsonl":

        def row(account: str, phone: str, bound: str = "2022-05-10") -> bytes:
            return json.dumps({"account_id": account, "phone": phone, "bound_at": bound}).encode()

    else:

        def row(account: str, phone: str, bound: str = "2022-05-10") -> bytes:
            return f"{account},{phone},{bound}".encode()

    lines = [b"account_id,phone,bound_at"] if header and fmt == "csv" else []
    lines += [
        row("u1", REISSUED),
        b"",
        row("u2", NEVER),
        b"\xff\xfe not utf-8",
        row("u3", NO_DATA),
        row("u4", REISSUED, "2022-05-10T10:00:00"),  # no offset: a bad row
        b"x" * 70_000,  # longer than a line may be
        row("u5", "+86 138"),  # reads, but cannot be checked
        b"a,b" if fmt == "csv" else b"[1]",
        row("u6", NEVER, "2023-01-04T09:30:00+08:00"),
        row("u7", REISSUED),
    ]
    return lines


# -- chunks read as the whole file reads ----------------------------------------------


@pytest.mark.celery
@pytest.mark.parametrize("chunk_size", [1, 2, 3, 1000])
@pytest.mark.parametrize(
    ("fmt", "header", "bom", "crlf"),
    [
        ("csv", True, False, False),
        ("csv", True, True, True),
        ("csv", False, False, False),
        ("csv", False, True, False),
        ("jsonl", False, False, False),
        ("jsonl", False, True, True),
    ],
)
def test_chunks_give_what_one_sweep_of_the_whole_file_gives(
    tmp_path: Path, chunk_size: int, fmt: str, header: bool, bom: bool, crlf: bool
) -> None:
    """Whatever the cut (a chunk a line, a chunk starting on a bad line or a blank one), the
    merged results and the bad rows are exactly those of one sweep reading the whole file:
    the same header, BOM, line numbers, rows, errors and bad-row reasons."""
    need_celery()
    ending = b"\r\n" if crlf else b"\n"
    source = tmp_path / f"accounts.{fmt}"
    source.write_bytes((b"\xef\xbb\xbf" if bom else b"") + ending.join(awkward_lines(fmt, header)))
    expected, expected_bad = whole_file_sweep(source, fmt)
    bad: list[tuple[int, str]] = []
    out = tmp_path / "results.csv"
    report = run_sweep(
        SyncApp(sandbox_guard),
        source,
        out_dir=tmp_path / "chunks",
        out=out,
        chunk_size=chunk_size,
        on_bad_row=lambda n, r: bad.append((n, r)),
    )
    assert report.complete, report.failed
    assert merged(out) == expected
    assert sorted(bad) == expected_bad
    assert report.accounts == len(expected)
    assert report.bad_rows == len(expected_bad)
    assert len(expected) == 6
    assert len(expected_bad) == 4


@pytest.mark.celery
def test_a_csv_header_in_any_order_and_a_region_for_rows_without_one(tmp_path: Path) -> None:
    """Later chunks read with the file's own header (columns in another order); ``region``
    applies to national numbers in rows without one, as ``recyclecheck sweep --region``."""
    need_celery()
    source = tmp_path / "accounts.csv"
    lines = ["bound_at,extra,phone,account_id"]
    lines += [f"2022-05-10,x,13800138000,n{index}" for index in range(5)]
    source.write_text("\n".join(lines) + "\n", "utf-8")
    out = tmp_path / "results.jsonl"
    report = run_sweep(
        SyncApp(sandbox_guard), source, out_dir=tmp_path / "c", out=out, chunk_size=2, region="CN"
    )
    assert report.complete
    assert report.chunks == 3
    results = results_of(out)
    assert [r["account_id"] for r in results] == [f"n{index}" for index in range(5)]
    assert {r["reason"] for r in results} == {"reissued_after_binding"}
    assert [r["row"] for r in results] == [2, 3, 4, 5, 6]


# -- files, re-runs and failures ---------------------------------------------------------


def us_accounts(path: Path, count: int, *, start: int = 0) -> list[str]:
    """``count`` rows of NANP numbers (the sandbox has no data on them)."""
    phones = [f"+1201234{index:04d}" for index in range(start, start + count)]
    with path.open("a", encoding="utf-8") as handle:
        if start == 0:
            handle.write("account_id,phone,bound_at\n")
        for index, phone in enumerate(phones, start=start):
            handle.write(f"acct-{index},{phone},2022-05-10\n")
    return phones


@pytest.mark.celery
def test_a_re_run_skips_finished_chunks_and_appended_rows_redo_only_the_last(
    tmp_path: Path,
) -> None:
    """The process builds its Guard once; a re-run sends no task for a chunk whose file
    exists; rows appended to the input
    redo only the chunk they extend; files appear whole (no temporary file is left) and are
    private (0600); jobs hold row numbers, offsets and paths, never a number."""
    need_celery()
    source, chunks, out = tmp_path / "accounts.csv", tmp_path / "chunks", tmp_path / "out.csv"
    phones = us_accounts(source, 25)
    built: list[Guard] = []
    first = SyncApp(lambda: built.append(sandbox_guard()) or built[-1])
    report = run_sweep(first, source, out_dir=chunks, out=out, chunk_size=10)
    assert (report.chunks, report.sent, report.skipped, report.accounts) == (3, 3, 0, 25)
    names = sorted(p.name for p in chunks.iterdir())
    assert names == [
        KEY_FILE,
        "rows-000000001-000000010.jsonl",
        "rows-000000011-000000020.jsonl",
        "rows-000000021-000000026.jsonl",
    ]
    assert {oct(p.stat().st_mode & 0o777) for p in [*chunks.iterdir(), out]} == {"0o600"}
    assert not leaks(json.dumps(first.sent), phones)
    assert first.options["acks_late"] is True
    assert len(built) == 1  # one Guard per process, for all its chunks

    again = SyncApp(sandbox_guard)
    report = run_sweep(again, source, out_dir=chunks, out=out, chunk_size=10)
    assert (report.sent, report.skipped, report.accounts) == (0, 3, 25)
    assert again.sent == []

    us_accounts(source, 10, start=25)
    grown = SyncApp(sandbox_guard)
    report = run_sweep(grown, source, out_dir=chunks, out=out, chunk_size=10)
    assert (report.chunks, report.sent, report.skipped, report.accounts) == (4, 2, 2, 35)
    assert [job["job"]["chunk"]["first_line"] for job in grown.sent] == [21, 31]
    assert [r["account_id"] for r in results_of(out)] == [f"acct-{i}" for i in range(35)]
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.celery
def test_a_failed_chunk_is_reported_nothing_is_merged_and_the_same_call_finishes(
    tmp_path: Path,
) -> None:
    """A Guard that cannot be built fails its chunks (reported by row range); ``out`` is not
    written; the same call made again, with a working Guard, sends only those chunks."""
    need_celery()
    source, chunks, out = tmp_path / "accounts.csv", tmp_path / "chunks", tmp_path / "out.csv"
    us_accounts(source, 15)

    def broken() -> Guard:
        raise ConfigurationError("no provider configured")

    report = run_sweep(SyncApp(broken), source, out_dir=chunks, out=out, chunk_size=10)
    assert not report.complete
    assert report.out is None
    assert not out.exists()
    assert report.failed == (
        "rows 1-10: ConfigurationError: no provider configured",
        "rows 11-16: ConfigurationError: no provider configured",
    )
    with pytest.raises(ConfigurationError, match="rows 1-10 have no results file"):
        merge_results(source, out_dir=chunks, out=out, chunk_size=10)
    report = run_sweep(SyncApp(sandbox_guard), source, out_dir=chunks, out=out, chunk_size=10)
    assert report.complete
    assert report.sent == 2
    assert report.accounts == 15
    merged_again = merge_results(source, out_dir=chunks, out=tmp_path / "again.csv", chunk_size=10)
    assert merged_again == SweepReport(
        chunks=2,
        sent=0,
        skipped=2,
        out=str(tmp_path / "again.csv"),
        accounts=15,
        actions={"step_up": 15},
        reasons={"no_data": 15},
    )
    assert (tmp_path / "again.csv").read_bytes() == out.read_bytes()


@pytest.mark.celery
def test_a_worker_that_reads_other_bytes_than_planned_writes_nothing(tmp_path: Path) -> None:
    """The input changed after the plan (or the worker sees another file at its path): the
    chunk fails with a reason, no results file and no temporary file are left behind."""
    need_celery()
    source, chunks = tmp_path / "accounts.csv", tmp_path / "chunks"
    us_accounts(source, 5)
    sync = SyncApp(sandbox_guard)
    run_sweep(sync, source, out_dir=chunks, chunk_size=100)
    job = sync.sent[0]["job"]
    (chunks / "rows-000000001-000000006.jsonl").unlink()
    source.write_text(source.read_text("utf-8").replace("acct-3", "acct-9"), "utf-8")
    with pytest.raises(ConfigurationError, match="not the bytes planned"):
        sync.tasks[TASK_NAME](job=job)
    assert sorted(p.name for p in chunks.iterdir()) == [KEY_FILE]


@pytest.mark.celery
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"chunk_size": 0}, "chunk_size"),
        ({"concurrency": 0}, "concurrency"),
        ({"timeout": 0}, "timeout"),
        ({"rate": -1}, "rate"),
        ({"region": "XX"}, "region"),
        ({"wait": 0}, "wait"),
        ({"input_format": "xml"}, "input_format"),
        ({"out": "results.txt"}, "extension"),
    ],
)
def test_bad_options_raise_before_anything_is_sent(
    tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    """Options are checked in the driver, before a task is sent."""
    need_celery()
    source = tmp_path / "accounts.csv"
    us_accounts(source, 3)
    sync = SyncApp(sandbox_guard)
    with pytest.raises(ConfigurationError, match=message):
        run_sweep(sync, source, **{"out_dir": tmp_path / "chunks", **options})
    assert sync.sent == []


@pytest.mark.celery
def test_an_app_without_a_result_backend_is_refused(tmp_path: Path) -> None:
    """run_sweep waits for results: a Celery app without a backend is a configuration error."""
    need_celery()
    assert celery is not None
    source = tmp_path / "accounts.csv"
    us_accounts(source, 3)
    bare = celery.Celery("no-backend", broker="memory://", set_as_current=False)
    with pytest.raises(ConfigurationError, match="result backend"):
        run_sweep(bare, source, out_dir=tmp_path / "chunks")


def test_importing_recyclecheck_or_its_celery_module_does_not_import_celery() -> None:
    """Celery is the optional extra: `import recyclecheck` never loads it, and nor does
    `import recyclecheck.celery` (only run_sweep does, to wait for results)."""
    code = (
        "import sys, recyclecheck\n"
        "print('celery' in sys.modules)\n"
        "import recyclecheck.celery\n"
        "print('celery' in sys.modules, sorted(recyclecheck.celery.__all__))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.splitlines() == [
        "False",
        "False ['DEFAULT_CHUNK_SIZE', 'DEFAULT_TIMEOUT', 'KEY_FILE', 'SweepReport', 'TASK_NAME', "
        "'merge_results', 'register_sweep_tasks', 'run_sweep']",
    ]


# -- the real thing: redis-server, celery worker (prefork, 2 processes), fake provider ----

ROWS = 10_000
PHONES = [f"+1201234{index:04d}" for index in range(ROWS)]


def expected_reason(index: int) -> str:
    return ("reissued_after_binding", "not_reissued", "no_data")[index % 3]


def scripted_numbers() -> dict[str, dt.date | None]:
    """A third reissued after the binding, a third never, a third unknown to the provider."""
    return {
        phone: dt.date(2024, 3, 1) if index % 3 == 0 else None
        for index, phone in enumerate(PHONES)
        if index % 3 != 2
    }


def write_big_input(path: Path) -> list[str]:
    """10,000 accounts, plus a row that cannot be read and one that cannot be checked."""
    lines = ["account_id,phone,bound_at"]
    lines += [f"acct-{index},{phone},2022-05-10" for index, phone in enumerate(PHONES)]
    lines.insert(4321, BAD_ROW)
    lines.insert(7777, "acct-invalid,+1201234,2022-05-10")  # not a valid number
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return lines


BAD_ROW = "acct-bad,+12012340001,2022-05-10T10:00:00"  # no UTC offset


@contextlib.contextmanager
def celery_worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real `celery worker` (prefork, two processes) in its own process group; on exit it
    is asked to stop warm, killed (group and all) if it has not within 20 s, and reaped."""
    command = [
        *(sys.executable, "-m", "celery", "-A", "tests.test_celery_sweep:app", "worker"),
        *("--pool=prefork", "--concurrency=2", "--loglevel=INFO", "-Q", env[QUEUE]),
        *("--without-gossip", "--without-mingle", "--without-heartbeat"),
        *("-n", f"sweep-{uuid.uuid4().hex[:8]}@%h"),
    ]
    with log.open("wb") as output:
        worker = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        wait_until_ready(worker, log)
        yield worker
    finally:
        stop_worker(worker)


def wait_until_ready(worker: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 45
    while b" ready." not in log.read_bytes():
        if worker.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the celery worker did not start:\n{log.read_text('utf-8', 'replace')}")
        time.sleep(0.05)


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    group = worker.pid  # start_new_session: the worker leads its own process group
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)  # a warm shutdown: its two processes end too
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            worker.wait(timeout=10)
    deadline = time.monotonic() + 10
    while True:  # the group is empty once every pool process has gone: none is orphaned
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        if time.monotonic() > deadline:
            os.killpg(group, signal.SIGKILL)
            pytest.fail("a worker pool process outlived the worker")
        time.sleep(0.05)


def asked(fake: FakeProviderServer) -> tuple[list[str | None], list[str | None], int]:
    """The numbers asked one by one, those asked in batches, and the requests made."""
    requests = [r for r in fake.requests if r.endpoint in ("lookup", "batch")]
    singles = [r.number for r in requests if r.endpoint == "lookup"]
    batched = [number for r in requests if r.endpoint == "batch" for number in r.numbers]
    return singles, batched, len(requests)


@pytest.mark.celery
@pytest.mark.redis
def test_a_sweep_on_a_real_celery_worker_checks_every_row_once(
    tmp_path: Path, redis_server: Any
) -> None:
    """10,000 rows through a real `celery worker` with two prefork processes, Redis as
    broker, result backend, shared cache and shared quota, and the Twilio adapter against
    the fake provider server: every account comes back exactly once, in input order, with
    the right decision; every number was asked once; a re-run sends nothing and asks
    nothing; a lost chunk file is redone alone; no number in a job, a log line, a file
    or a Redis key."""
    need_celery()
    url = f"redis://127.0.0.1:{redis_server.port}/3"
    prefix = f"rc-test-{uuid.uuid4().hex[:8]}:"
    source, chunks, out = tmp_path / "accounts.csv", tmp_path / "chunks", tmp_path / "results.csv"
    lines = write_big_input(source)
    with FakeProviderServer(scripted_numbers()) as fake:
        env = {
            **os.environ,
            **fake.environment(),
            BROKER: url,
            QUEUE: f"{prefix}sweeps",
            SECRET: uuid.uuid4().hex,
            PREFIX: prefix,
        }
        driver = make_app(url, env[QUEUE])
        jobs: list[Any] = []
        send_task = driver.send_task
        driver.send_task = lambda *a, **kw: jobs.append(kw["kwargs"]) or send_task(*a, **kw)
        bad: list[tuple[int, str]] = []
        log = tmp_path / "worker.log"
        with contextlib.closing(driver), celery_worker(env, log):
            stats = driver.control.inspect(timeout=5).stats() or {}
            assert [len(node["pool"]["processes"]) for node in stats.values()] == [2]
            started = time.monotonic()
            report = run_sweep(
                driver, source, out_dir=chunks, out=out, wait=60, on_bad_row=lambda *b: bad.append(b)
            )  # fmt: skip
            took = time.monotonic() - started
            assert report.complete, report.failed
            assert (report.chunks, report.sent, report.skipped) == (11, 11, 0)

            results = results_of(out)
            assert out.read_text("utf-8").startswith(HEADER + "\n")
            bad_line = lines.index(BAD_ROW) + 1
            expected = [
                (number, line.split(",")[0])
                for number, line in enumerate(lines, start=1)
                if number > 1 and number != bad_line
            ]
            assert [(int(r["row"]), r["account_id"]) for r in results] == expected
            assert bad == [(bad_line, "bound_at has no UTC offset (add Z or one such as +08:00)")]
            invalid = results.pop([r["account_id"] for r in results].index("acct-invalid"))
            assert invalid["error"] == "phone is not a valid number"
            assert invalid["action"] == ""
            assert [r["reason"] for r in results] == [expected_reason(i) for i in range(ROWS)]
            for index in (0, 1, 2, 9999):
                r = results[index]
                assert r["provider"] == "twilio"
                assert r["since"] == "2022-05-09"
                assert r["action"] == ("allow" if index % 3 == 1 else "step_up")
                assert r["reissued_on"] == ""  # Twilio says whether, not when
            assert report.accounts == ROWS + 1
            assert report.errors == 1
            assert report.bad_rows == 1
            assert report.actions == {"allow": 3333, "step_up": 6667}
            # Every number was asked, none twice the same way: the sweep asks Twilio's batch
            # endpoint first, then one by one about what a batch left unknown.
            singles, batched, calls = asked(fake)
            assert set(singles) | set(batched) == set(PHONES)
            assert max(Counter(singles).values(), default=1) == 1
            assert max(Counter(batched).values(), default=1) == 1

            # One quota for both worker processes: the Redis bucket lost a token per call
            # (less what it earned back meanwhile).
            tokens = redis_server.client(db=3).hget(f"{prefix}quota:twilio", "tokens")
            assert tokens is not None
            taken = QUOTA_BURST - float(tokens)
            assert calls - QUOTA_RATE * (took + 5) <= taken <= calls

            again = run_sweep(driver, source, out_dir=chunks, out=out, wait=30)
            assert (again.sent, again.skipped, again.accounts) == (0, 11, ROWS + 1)
            assert asked(fake)[2] == calls  # nothing asked again

            before = out.read_bytes()
            (chunks / "rows-000005001-000006000.jsonl").unlink()
            third = run_sweep(driver, source, out_dir=chunks, out=out, wait=60)
            assert (third.sent, third.skipped) == (1, 10)
            assert out.read_bytes() == before
            singles_now, batched_now, _ = asked(fake)
            asked_again = set(singles_now[len(singles) :] + batched_now[len(batched) :])
            redone = {line.split(",")[1] for line in lines[5000:6000]}  # lines 5001-6000
            scripted = scripted_numbers()
            unknown = {phone for phone in redone if phone not in scripted}
            assert unknown <= asked_again <= redone  # no data is never a fact: asked again
            # The facts the first run stored in Redis answered the chunk's known numbers:
            # only those the provider had no data on (never cached) were asked again.
            assert len(asked_again) < len(redone) / 2

        assert not leaks(json.dumps(jobs), PHONES[:200])
        worker_log = log.read_text("utf-8", "replace")
        assert "succeeded" in worker_log
        assert not leaks(worker_log, PHONES[:200] + PHONES[4900:5100])
        assert len(list(chunks.glob("rows-*.jsonl"))) == 11
        for path in chunks.glob("rows-*.jsonl"):
            assert not leaks(path.read_text("utf-8"), PHONES[:200] + PHONES[4900:5100])
        keys = [k.decode() for k in redis_server.client(db=3).keys("*")]
        assert not leaks(" ".join(keys))
    print(f"celery sweep of {ROWS} rows: {took:.1f} s")  # shown with pytest -s
