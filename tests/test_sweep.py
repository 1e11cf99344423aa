"""Sweeps: the row and result values, the readers, the sliding window, the results journal."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import json
import logging
import random
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from recyclecheck import (
    Action,
    ConfigurationError,
    Guard,
    InvalidInput,
    MemoryCache,
    Reason,
    SweepResult,
    SweepRow,
)
from recyclecheck._sweep import (
    MAX_LINE,
    ResultsFile,
    Tally,
    format_of,
    parse_bound_at,
    read_rows,
    skip_done,
)
from recyclecheck.providers import Answer, LastChange, NoData, SandboxProvider

from .fakes import ScriptedProvider
from .privacy import leaks

BOUND = dt.date(2022, 5, 10)
UTC = dt.timezone.utc


def number(index: int) -> str:
    return f"+86138{index:08d}"


def rows(count: int, start: int = 0) -> Iterator[SweepRow]:
    for index in range(start, start + count):
        yield SweepRow(f"acct-{index}", number(index), BOUND)


def sweep_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("recyclecheck-sweep-")]


def wait_for_no_sweep_threads(timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while sweep_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sweep_threads() == []


@pytest.fixture(autouse=True)
def _no_sweep_thread_outlives_a_test() -> Iterator[None]:
    yield
    wait_for_no_sweep_threads()


def bad_rows_of(
    data: bytes, format: str
) -> tuple[list[tuple[int, SweepRow]], list[tuple[int, str]]]:
    bad: list[tuple[int, str]] = []
    good = list(
        read_rows(io.BytesIO(data), format=format, on_bad_row=lambda n, r: bad.append((n, r)))
    )
    return good, bad


# -- values -----------------------------------------------------------------------------


def test_sweep_row_repr_masks_the_number() -> None:
    """A SweepRow holds the number for the check but its repr shows it masked."""
    row = SweepRow("acct-1", "+8613800138000", BOUND, "CN")
    assert row.phone == "+8613800138000"
    assert "+86 138****8000" in repr(row)
    assert not leaks(repr(row), ["+8613800138000"])


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (("", "+8613800138000", BOUND), "account_id is empty"),
        (("a" * 257, "+8613800138000", BOUND), "longer than 256"),
        (("a\nb", "+8613800138000", BOUND), "control characters"),
        ((7, "+8613800138000", BOUND), "account_id must be a str"),
        (("a", "", BOUND), "phone is empty"),
        (("a", "1" * 65, BOUND), "phone is longer than 64"),
        (("a", 8613800138000, BOUND), "phone must be a str"),
        (("a", "+8613800138000", "2022-05-10"), "bound_at must be a date"),
        (("a", "+8613800138000", BOUND, "XX"), "region"),
        (("user-13800138000", "+8613800138000", BOUND), "holds the phone number"),
        (("138-0013-8000", "+86 138 0013 8000", BOUND), "holds the phone number"),
    ],
)
def test_sweep_row_refuses_bad_values(fields: tuple[object, ...], reason: str) -> None:
    """Wrong types, empty or oversized fields, and an account id holding the number raise."""
    with pytest.raises(InvalidInput, match=reason) as caught:
        SweepRow(*fields)  # type: ignore[arg-type]
    assert not leaks(str(caught.value), ["+8613800138000"])


def test_an_account_id_with_a_few_of_the_numbers_digits_is_fine() -> None:
    """Only the number's last ten digits make an id refused, not a short digit run."""
    assert SweepRow("8000-42", "+8613800138000", BOUND).account_id == "8000-42"


def test_sweep_result_to_dict() -> None:
    """A result serialises with ISO dates and enum values; an error result keeps Nones."""
    result = SweepResult(
        "a",
        "+86 138****8000",
        Action.STEP_UP,
        Reason.REISSUED_AFTER_BINDING,
        dt.date(2022, 5, 9),
        dt.date(2024, 3, 1),
        "sandbox",
    )
    assert result.to_dict() == {
        "account_id": "a",
        "masked_number": "+86 138****8000",
        "action": "step_up",
        "reason": "reissued_after_binding",
        "since": "2022-05-09",
        "reissued_on": "2024-03-01",
        "provider": "sandbox",
        "error": None,
    }
    failed = SweepResult("b", "+***", None, None, None, None, None, error="phone is empty")
    assert failed.to_dict()["action"] is None
    assert failed.to_dict()["error"] == "phone is empty"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2022-05-10", dt.date(2022, 5, 10)),
        (" 2022-05-10 ", dt.date(2022, 5, 10)),
        ("2022-05-10T08:30:00Z", dt.datetime(2022, 5, 10, 8, 30, tzinfo=UTC)),
        (
            "2022-05-10T08:30:00+08:00",
            dt.datetime(2022, 5, 10, 8, 30, tzinfo=dt.timezone(dt.timedelta(hours=8))),
        ),
    ],
)
def test_parse_bound_at(text: str, value: dt.date) -> None:
    """A date is a date; a timestamp with an offset (or Z) is an aware datetime."""
    assert parse_bound_at(text) == value


@pytest.mark.parametrize(
    ("text", "reason"),
    [("", "empty"), ("2022-05-10T08:30:00", "no UTC offset"), ("yesterday", "not YYYY-MM-DD")],
)
def test_parse_bound_at_refuses(text: str, reason: str) -> None:
    """An empty value, a naive timestamp and anything else raise InvalidInput."""
    with pytest.raises(InvalidInput, match=reason):
        parse_bound_at(text)


def test_format_of() -> None:
    """Formats come from the extension, case-insensitively; others are unknown."""
    assert [format_of(p) for p in ("a.csv", "A.CSV", "b.jsonl", "c.ndjson", "d.txt", "e")] == [
        "csv",
        "csv",
        "jsonl",
        "jsonl",
        None,
        None,
    ]


# -- readers ----------------------------------------------------------------------------


def test_csv_with_a_header_in_any_order_and_extra_columns() -> None:
    """A header names the columns; others are ignored; region may be left off a row."""
    data = (
        "\ufeffbound_at,email,phone,account_id,region\r\n"
        "2022-05-10,a@example.com,+8613800138000,a1,CN\r\n"
        "\r\n"
        "2022-05-10T08:00:00Z,b@example.com,13900139000,a2,CN\n"
        "2022-05-10,c@example.com,+8613700137000,a3\n"
    ).encode()
    good, bad = bad_rows_of(data, "csv")
    assert bad == []
    assert [(n, r.account_id, r.phone, r.region) for n, r in good] == [
        (2, "a1", "+8613800138000", "CN"),
        (4, "a2", "13900139000", "CN"),
        (5, "a3", "+8613700137000", None),
    ]
    assert good[1][1].bound_at == dt.datetime(2022, 5, 10, 8, tzinfo=UTC)


def test_csv_without_a_header_is_positional() -> None:
    """Without a header the columns are account_id,phone,bound_at[,region]."""
    good, bad = bad_rows_of(b"a1,+8613800138000,2022-05-10\na2,13900139000,2022-05-10,cn\n", "csv")
    assert bad == []
    assert [(r.account_id, r.region) for _, r in good] == [("a1", None), ("a2", "CN")]


def test_a_csv_header_without_a_required_column_is_a_configuration_error() -> None:
    """Every row would be bad: the file is refused as a whole, before any row."""
    with pytest.raises(ConfigurationError, match="no bound_at column"):
        bad_rows_of(b"account_id,phone\na1,+8613800138000\n", "csv")


def test_bad_csv_rows_are_reported_with_their_line_number_and_skipped() -> None:
    """Each bad row gives its line number and a reason that never shows the number."""
    lines = [
        b"account_id,phone,bound_at,region",
        b"ok1,+8613800138000,2022-05-10,",
        b"short,+8613900139000",
        b"naive,+8613900139000,2022-05-10T08:00:00",
        b"garbage,+8613900139000,last tuesday",
        b'quote,"+8613900139000,2022-05-10',
        b"latin1,+8613900139000,2022-05-10,\xe9",
        b"user-13900139000,+8613900139000,2022-05-10",
        b"region,+8613900139000,2022-05-10,ZZ",
        b",+8613900139000,2022-05-10",
        b"ok2,+8613700137000,2022-05-10",
    ]
    good, bad = bad_rows_of(b"\n".join(lines) + b"\n", "csv")
    assert [(n, r.account_id) for n, r in good] == [(2, "ok1"), (11, "ok2")]
    assert [n for n, _ in bad] == [3, 4, 5, 6, 7, 8, 9, 10]
    reasons = dict(bad)
    assert "at least 3 columns" in reasons[3]
    assert "no UTC offset" in reasons[4]
    assert "not YYYY-MM-DD" in reasons[5]
    assert "not valid CSV" in reasons[6]
    assert "not UTF-8" in reasons[7]
    assert "holds the phone number" in reasons[8]
    assert "region" in reasons[9]
    assert "account_id is empty" in reasons[10]
    for _, reason in bad:
        assert not leaks(reason, ["+8613900139000"]), reason


def test_jsonl_rows_and_bad_rows() -> None:
    """JSON Lines: one object a line; numeric ids are read as text; bad lines are skipped."""
    lines = [
        json.dumps({"account_id": 42, "phone": "+8613800138000", "bound_at": "2022-05-10"}),
        "",
        "{not json",
        json.dumps(["a", "+8613900139000", "2022-05-10"]),
        json.dumps({"account_id": "b", "phone": "+8613900139000"}),
        json.dumps({"account_id": "c", "phone": 8613900139000, "bound_at": "2022-05-10"}),
        json.dumps({"account_id": True, "phone": "+8613900139000", "bound_at": "2022-05-10"}),
        json.dumps(
            {
                "account_id": "d",
                "phone": "13700137000",
                "bound_at": "2022-05-10",
                "region": "CN",
                "x": 1,
            }
        ),
    ]
    good, bad = bad_rows_of("\n".join(lines).encode(), "jsonl")
    assert [(n, r.account_id, r.region) for n, r in good] == [(1, "42", None), (8, "d", "CN")]
    assert [n for n, _ in bad] == [3, 4, 5, 6, 7]
    assert "not valid JSON" in bad[0][1]
    assert "not a JSON object" in bad[1][1]
    assert "bound_at must be a string" in bad[2][1]
    assert "phone must be a str" in bad[3][1]
    for _, reason in bad:
        assert not leaks(reason, ["+8613900139000"]), reason


def test_unknown_reader_format() -> None:
    """Only csv and jsonl are read."""
    with pytest.raises(ConfigurationError):
        read_rows(io.BytesIO(b""), format="xml", on_bad_row=print)


class EndlessRows(io.RawIOBase):
    """A file that never ends, counting the bytes handed out."""

    def __init__(self, line: bytes) -> None:
        self.line = line
        self.handed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        size = len(buffer)
        data = (self.line * (size // len(self.line) + 1))[:size]
        buffer[:size] = data
        self.handed += size
        return size


def test_readers_stream() -> None:
    """Taking ten rows of an endless file reads a few kilobytes, not the file."""
    raw = EndlessRows(b"a1,+8613800138000,2022-05-10\n")
    handle = io.BufferedReader(raw, buffer_size=4096)
    first = list(itertools.islice(read_rows(handle, format="csv", on_bad_row=print), 10))
    assert len(first) == 10
    assert raw.handed <= 16 * 1024


def test_a_huge_line_is_skipped_without_being_held() -> None:
    """A 20 MB line without a newline is one bad row; reading it holds about one line's cap."""
    huge = b"a" * (20 * 1024 * 1024)
    data = huge + b"\na2,+8613800138000,2022-05-10\n"
    handle = io.BufferedReader(io.BytesIO(data))
    del huge
    bad: list[tuple[int, str]] = []
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        good = list(read_rows(handle, format="csv", on_bad_row=lambda n, r: bad.append((n, r))))
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert [(n, r.account_id) for n, r in good] == [(2, "a2")]
    assert bad == [(1, f"the line is longer than {MAX_LINE} bytes")]
    assert peak < 8 * MAX_LINE


# -- the sweep --------------------------------------------------------------------------


class Jittery:
    """An in-process provider: a random short delay, counting concurrent lookups."""

    name = "jittery"

    def __init__(self, *, delay: float = 0.01, seed: int = 7) -> None:
        self.delay = delay
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.active = 0
        self.most = 0
        self.asked: list[str] = []

    def lookup(self, number: str, since: dt.date) -> Answer:
        with self.lock:
            self.active += 1
            self.most = max(self.most, self.active)
            self.asked.append(number)
            pause = self.random.uniform(0, self.delay)
        time.sleep(pause)
        with self.lock:
            self.active -= 1
        return LastChange(None) if number.endswith(("0", "2", "4", "6", "8")) else NoData()


def test_results_come_in_input_order_one_check_per_row_at_most_concurrency_at_once() -> None:
    """Lookups finishing out of order still give results in input order; one lookup a row;
    never more than `concurrency` at once, and the sweep does reach that many."""
    provider = Jittery(delay=0.02)
    guard = Guard(provider, cache=MemoryCache(max_entries=0), timeout=5)
    results = list(guard.sweep(rows(200), concurrency=6))
    assert [r.account_id for r in results] == [f"acct-{i}" for i in range(200)]
    assert sorted(provider.asked) == sorted(number(i) for i in range(200))
    assert provider.most == 6
    first = results[0]
    assert (first.action, first.reason, first.provider) == (
        Action.ALLOW,
        Reason.NOT_REISSUED,
        "jittery",
    )
    assert first.masked_number == "+86 138****0000"
    assert first.since == dt.date(2022, 5, 9)
    assert results[1].reason is Reason.NO_DATA
    assert all(r.error is None for r in results)


def test_the_sweep_reads_rows_only_as_results_are_taken() -> None:
    """Rows are pulled at most a window (2 x concurrency) ahead of the results taken."""
    pulled = 0

    def counted() -> Iterator[SweepRow]:
        nonlocal pulled
        for row in rows(10_000):
            pulled += 1
            yield row

    guard = Guard(SandboxProvider({}), timeout=5)
    swept = guard.sweep(counted(), concurrency=4)
    taken = list(itertools.islice(swept, 25))
    assert len(taken) == 25
    assert pulled <= 25 + 2 * 4
    swept.close()  # type: ignore[attr-defined]


def test_nothing_starts_until_results_are_asked_for() -> None:
    """Calling sweep() reads no row and starts no thread; the first next() does."""
    pulled = []

    def counted() -> Iterator[SweepRow]:
        for row in rows(3):
            pulled.append(row)
            yield row

    swept = Guard(SandboxProvider({})).sweep(counted())
    assert pulled == []
    assert sweep_threads() == []
    assert len(list(swept)) == 3


def test_a_row_that_cannot_be_checked_is_a_result_with_an_error() -> None:
    """An invalid number or a future bound_at is an error result; the sweep goes on."""
    later = dt.datetime.now(UTC) + dt.timedelta(days=3)
    items = [
        SweepRow("a", "+8613800138000", BOUND),
        SweepRow("b", "+86 999", BOUND),
        SweepRow("c", "+8613800138000", later),
        SweepRow("d", "13800138000", BOUND),
        SweepRow("e", "13800138000", BOUND, "CN"),
    ]
    results = list(Guard(SandboxProvider({"+8613800138000": None})).sweep(items))
    assert [(r.account_id, r.action) for r in results] == [
        ("a", Action.ALLOW),
        ("b", None),
        ("c", None),
        ("d", None),
        ("e", Action.ALLOW),
    ]
    assert "not a valid number" in (results[1].error or "")
    assert "future" in (results[2].error or "")
    assert results[2].masked_number == "+86 138****8000"
    assert (results[1].reason, results[1].since, results[1].provider) == (None, None, None)
    for result in results:
        assert not leaks(repr(result), ["+8613800138000"])


def test_a_failing_provider_gives_provider_unavailable_not_an_error() -> None:
    """Provider trouble is a decision (step up, provider_unavailable), as in check()."""

    def fail(number: str, since: dt.date) -> Answer:
        raise RuntimeError("boom " + number)

    results = list(Guard(ScriptedProvider(fail), breaker_threshold=100).sweep(rows(5)))
    assert {(r.action, r.reason, r.error) for r in results} == {
        (Action.STEP_UP, Reason.PROVIDER_UNAVAILABLE, None)
    }


def test_a_hook_that_raises_a_base_exception_never_stops_the_sweep() -> None:
    """Whatever a check raises becomes that row's error; the other rows are checked."""

    def hook(decision: object) -> None:
        if "0001" in getattr(decision, "masked_number", ""):
            raise SystemExit(3)

    results = list(Guard(SandboxProvider({}), on_decision=hook).sweep(rows(3)))
    assert [r.error for r in results] == [None, "the check raised SystemExit", None]


def test_concurrency_is_checked_when_sweep_is_called() -> None:
    """Bad options raise at the call, before any row is read."""
    guard = Guard(SandboxProvider({}), max_workers=4)
    for value in (0, -1, 1.5, True, 257):
        with pytest.raises(ConfigurationError, match="concurrency"):
            guard.sweep(rows(1), concurrency=value)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_workers"):
        guard.sweep(rows(1), concurrency=5)
    for timeout in (0, 61, "1"):
        with pytest.raises(ConfigurationError, match="timeout"):
            guard.sweep(rows(1), concurrency=4, timeout=timeout)  # type: ignore[arg-type]
    for rate in (0, -1, float("nan"), float("inf"), "5"):
        with pytest.raises(ConfigurationError, match="rate"):
            guard.sweep(rows(1), concurrency=4, rate=rate)  # type: ignore[arg-type]


def test_items_must_be_sweep_rows() -> None:
    """A tuple instead of a SweepRow is a programming error, raised as TypeError."""
    with pytest.raises(TypeError, match="SweepRow"):
        list(Guard(SandboxProvider({})).sweep([("a", "+8613800138000", BOUND)]))  # type: ignore[list-item]


def test_a_sweep_timeout_is_its_own_and_shares_the_guards_cache() -> None:
    """sweep(timeout=...) gives each of its checks that deadline; logins keep theirs;
    what the sweep learns lands in the Guard's cache."""
    provider = ScriptedProvider(delay=0.3)
    guard = Guard(provider, timeout=0.1)
    (hurried,) = guard.sweep(rows(1))
    assert hurried.reason is Reason.PROVIDER_UNAVAILABLE
    (patient,) = guard.sweep(rows(1, start=1), timeout=2)
    assert patient.reason is Reason.NOT_REISSUED
    assert guard.timeout == 0.1
    decision = guard.check(number(1), bound_at=BOUND)
    assert decision.cached
    assert decision.reason is Reason.NOT_REISSUED


def test_rate_paces_the_checks() -> None:
    """rate=N starts at most N checks a second."""
    guard = Guard(SandboxProvider({}))
    started = time.monotonic()
    assert len(list(guard.sweep(rows(11), rate=50))) == 11
    assert time.monotonic() - started >= 0.19


def test_the_workers_are_daemons_and_stop_with_the_sweep() -> None:
    """Worker threads are daemons; closing a sweep early stops them."""
    swept = Guard(SandboxProvider({})).sweep(rows(1000), concurrency=3)
    next(swept)
    workers = sweep_threads()
    assert len(workers) == 3
    assert all(t.daemon for t in workers)
    swept.close()  # type: ignore[attr-defined]
    wait_for_no_sweep_threads()


def _peak_of_a_sweep(guard: Guard, count: int) -> int:
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    seen = 0
    for row_number, result in enumerate(guard.sweep(rows_cycling(count), concurrency=8)):
        seen += 1
        assert result.account_id == f"acct-{row_number}"
    assert seen == count
    return tracemalloc.get_traced_memory()[1] - before


def rows_cycling(count: int) -> Iterator[SweepRow]:
    """Generated rows over 500 numbers, so the Guard's own bounded caches stay warm."""
    for index in range(count):
        yield SweepRow(f"acct-{index}", number(index % 500), BOUND)


def test_a_sweep_runs_in_constant_memory() -> None:
    """50,000 rows peak no higher than 5,000 (plus noise): nothing grows with the input."""
    guard = Guard(SandboxProvider(dict.fromkeys(map(number, range(500)))), timeout=5)
    # Log records are kept by the suite's log checks: keep them out of the measurement.
    logger = logging.getLogger("recyclecheck")
    level = logger.level
    logger.setLevel(logging.WARNING)
    tracemalloc.start()
    try:
        _peak_of_a_sweep(guard, 1_000)  # warm the Guard's memo and fact cache
        small = _peak_of_a_sweep(guard, 5_000)
        large = _peak_of_a_sweep(guard, 50_000)
    finally:
        tracemalloc.stop()
        logger.setLevel(level)
    # Holding one pointer per row would add 400 kB; holding results, megabytes.
    assert large < small * 1.5 + 100_000, (small, large)


# -- the results file and resuming --------------------------------------------------------


def result(account: str, action: Action = Action.ALLOW) -> SweepResult:
    reason = Reason.NOT_REISSUED if action is Action.ALLOW else Reason.NO_DATA
    return SweepResult(account, "+86 138****8000", action, reason, BOUND, None, "sandbox")


@pytest.mark.parametrize("format", ["csv", "jsonl"])
def test_results_file_round_trip(tmp_path: Path, format: str) -> None:
    """Results are appended one line each; reopening counts them into a tally."""
    path = tmp_path / f"out.{format}"
    with ResultsFile(path, format=format) as out:
        assert out.open() == Tally()
        out.write(2, result("a"))
        out.write(3, result("b", Action.STEP_UP))
        out.write(5, SweepResult("c", "+***", None, None, None, None, None, error="bad"))
    lines = path.read_text("utf-8").splitlines()
    assert len(lines) == (4 if format == "csv" else 3)
    if format == "csv":
        assert (
            lines[0]
            == "row,account_id,masked_number,action,reason,since,reissued_on,provider,error"
        )
        assert lines[1] == "2,a,+86 138****8000,allow,not_reissued,2022-05-10,,sandbox,"
    else:
        assert json.loads(lines[0])["row"] == 2
    with ResultsFile(path, format=format) as out:
        tally = out.open()
    assert (tally.results, tally.errors, tally.last_row, tally.last_account) == (3, 1, 5, "c")
    assert tally.actions == {"allow": 1, "step_up": 1}
    assert tally.reasons == {"not_reissued": 1, "no_data": 1}


@pytest.mark.parametrize("format", ["csv", "jsonl"])
def test_a_last_line_cut_short_is_dropped_and_written_again(tmp_path: Path, format: str) -> None:
    """A kill mid-line leaves a line without its newline: it is cut off, and appending goes on."""
    path = tmp_path / f"out.{format}"
    with ResultsFile(path, format=format) as out:
        out.open()
        out.write(1, result("a"))
    whole = path.read_bytes()
    with ResultsFile(path, format=format) as out:
        out.open()
        out.write(2, result("b"))
    path.write_bytes(path.read_bytes()[:-7])  # the kill
    with ResultsFile(path, format=format) as out:
        tally = out.open()
        assert path.read_bytes() == whole
        assert (tally.results, tally.last_row) == (1, 1)
        out.write(2, result("b"))
    with ResultsFile(path, format=format) as out:
        assert out.open().results == 2


@pytest.mark.parametrize(
    ("format", "content"),
    [
        ("csv", "name,email\nx,y\n"),
        (
            "csv",
            "row,account_id,masked_number,action,reason,since,reissued_on,provider,error\nnot,a,row\n",
        ),
        (
            "csv",
            "row,account_id,masked_number,action,reason,since,reissued_on,provider,error\n"
            "2,a,+***,allow,not_reissued,,,x,\n1,b,+***,allow,not_reissued,,,x,\n",
        ),
        (
            "csv",
            "row,account_id,masked_number,action,reason,since,reissued_on,provider,error\n"
            "2,a,+***,maybe,whatever,,,x,\n",
        ),
        ("jsonl", '{"hello": "world"}\n'),
        ("jsonl", "[1, 2]\n"),
    ],
)
def test_a_file_that_is_not_a_sweeps_output_is_refused(
    tmp_path: Path, format: str, content: str
) -> None:
    """Another file at --out is never appended to nor cut: the sweep refuses it."""
    path = tmp_path / f"out.{format}"
    path.write_text(content)
    with (
        ResultsFile(path, format=format) as out,
        pytest.raises(ConfigurationError, match="another --out"),
    ):
        out.open()
    assert path.read_text() == content


def test_skip_done_goes_on_after_the_last_row_written() -> None:
    """Rows up to the last one written are skipped; that row must hold the same account."""
    numbered = [
        (2, SweepRow("a", "+8613800138000", BOUND)),
        (4, SweepRow("b", "+8613800138000", BOUND)),
        (5, SweepRow("c", "+8613800138000", BOUND)),
    ]
    assert [n for n, _ in skip_done(numbered, Tally())] == [2, 4, 5]
    assert [n for n, _ in skip_done(numbered, Tally(last_row=4, last_account="b"))] == [5]
    assert list(skip_done(numbered, Tally(last_row=5, last_account="c"))) == []
    for tally in (
        Tally(last_row=4, last_account="x"),
        Tally(last_row=3, last_account="a"),
        Tally(last_row=9, last_account="a"),
    ):
        with pytest.raises(ConfigurationError, match="another sweep's output"):
            list(skip_done(numbered, tally))
