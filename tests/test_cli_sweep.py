"""`recyclecheck sweep`: formats, summary, exit codes, progress, privacy, and resuming after a kill."""

from __future__ import annotations

import csv
import datetime as dt
import errno
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import recyclecheck.cli
from recyclecheck import SweepResult
from recyclecheck._sweep import ResultsFile
from recyclecheck.cli import (
    EXIT_CODES_HELP,
    EXIT_CONFIG,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_ROWS_SKIPPED,
    EXIT_STEP_UP,
    EXIT_USAGE,
    main,
)
from recyclecheck.testing import FakeProviderServer, Latency

from .privacy import leaks

REPO = Path(__file__).resolve().parent.parent
REISSUED = "+8613800138000"  # the demo sandbox: reissued on 2024-03-01
NEVER = "+8613900139000"  # the demo sandbox: never reissued
NO_DATA = "+8613700137000"
DEMO_NUMBERS = [REISSUED, NEVER, NO_DATA]
HEADER = "row,account_id,masked_number,action,reason,since,reissued_on,provider,error"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def write_csv(path: Path, rows: list[tuple[str, ...]], header: bool = True) -> Path:
    lines = ["account_id,phone,bound_at"] if header else []
    lines += [",".join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def data_lines(path: Path) -> list[dict[str, str]]:
    if path.suffix == ".csv":
        return list(csv.DictReader(io.StringIO(path.read_text("utf-8"))))
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def assert_private(*texts: str) -> None:
    for text in texts:
        assert not leaks(text, DEMO_NUMBERS), text


@pytest.fixture
def accounts(tmp_path: Path) -> Path:
    return write_csv(
        tmp_path / "accounts.csv",
        [
            ("a1", "+86 138 0013 8000", "2022-05-10"),
            ("a2", NEVER, "2022-05-10T08:00:00+08:00"),
            ("a3", NO_DATA, "2022-05-10"),
        ],
    )


# -- output, summary, exit codes -------------------------------------------------------------


def test_sweep_writes_one_masked_result_per_account_in_input_order(
    capsys: pytest.CaptureFixture[str], accounts: Path, tmp_path: Path
) -> None:
    """Each account gets one CSV line: row number, id, masked number, the decision's fields."""
    out = tmp_path / "results.csv"
    code, stdout, stderr = run(capsys, "sweep", str(accounts), "--out", str(out))
    assert code == EXIT_STEP_UP
    text = out.read_text("utf-8")
    assert text.splitlines() == [
        HEADER,
        "2,a1,+86 138****8000,step_up,reissued_after_binding,2022-05-09,2024-03-01,sandbox,",
        "3,a2,+86 139****9000,allow,not_reissued,2022-05-09,,sandbox,",
        "4,a3,+86 137****7000,step_up,no_data,2022-05-09,,sandbox,",
    ]
    assert "sweep: 3 accounts in" in stdout
    assert "actions: allow 1, step_up 2" in stdout
    assert "reasons: no_data 1, not_reissued 1, reissued_after_binding 1" in stdout
    assert stderr == ""
    assert_private(text, stdout, stderr)


def test_jsonl_in_and_out_and_a_json_summary(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """JSON Lines input and output; --json prints the summary as one object."""
    source = tmp_path / "accounts.jsonl"
    source.write_text(
        "\n".join(
            json.dumps({"account_id": n, "phone": NEVER, "bound_at": "2022-05-10"})
            for n in (101, 102)
        )
        + "\n"
    )
    out = tmp_path / "results.jsonl"
    code, stdout, _ = run(capsys, "sweep", str(source), "--out", str(out), "--json")
    assert code == EXIT_OK
    summary = json.loads(stdout)
    assert summary["accounts"] == 2
    assert summary["actions"] == {"allow": 2}
    assert (summary["bad_rows"], summary["errors"], summary["exit_code"]) == (0, 0, EXIT_OK)
    results = data_lines(out)
    assert [(r["row"], r["account_id"], r["action"]) for r in results] == [
        (1, "101", "allow"),
        (2, "102", "allow"),
    ]
    assert results[0]["reissued_on"] is None
    assert results[0]["masked_number"] == "+86 139****9000"


def test_bad_rows_are_reported_by_row_number_skipped_and_exit_5(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Unreadable rows go to stderr with their row number; an invalid number is written with
    its error; every other row is checked; no message shows a number."""
    source = write_csv(
        tmp_path / "accounts.csv",
        [
            ("a1", NEVER, "2022-05-10"),
            ("a2", REISSUED, "2022-05-10T08:00:00"),  # no offset
            ("a3", "+86 138 0013 80", "2022-05-10"),  # not a valid number
            ("user-13800138000", REISSUED, "2022-05-10"),  # the id holds the number
            ("a5", NEVER, "2022-05-10"),
        ],
    )
    out = tmp_path / "results.csv"
    code, stdout, stderr = run(capsys, "sweep", str(source), "--out", str(out))
    assert code == EXIT_ROWS_SKIPPED
    assert stderr.splitlines() == [
        "recyclecheck: row 3: bound_at has no UTC offset (add Z or one such as +08:00)",
        "recyclecheck: row 5: account_id holds the phone number (results show account ids as they are)",
        "recyclecheck: row 4: phone is not a valid number",
    ]
    results = data_lines(out)
    assert [(r["row"], r["account_id"], r["action"], r["error"]) for r in results] == [
        ("2", "a1", "allow", ""),
        ("4", "a3", "", "phone is not a valid number"),
        ("6", "a5", "allow", ""),
    ]
    assert "could not be checked: 1" in stdout
    assert "rows that could not be read: 2" in stdout
    assert_private(stdout, stderr, out.read_text("utf-8"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["accounts.txt", "--out", "r.csv"], "INPUT must end in .csv, .jsonl or .ndjson"),
        (["accounts.csv", "--out", "r.txt"], "--out must end in .csv, .jsonl or .ndjson"),
        (["accounts.csv", "--out", "accounts.csv"], "--out must not be INPUT"),
        (["accounts.csv", "--out", "r.csv", "--concurrency", "0"], "--concurrency: must be"),
        (["accounts.csv", "--out", "r.csv", "--concurrency", "many"], "--concurrency: must be"),
        (["accounts.csv", "--out", "r.csv", "--timeout", "0"], "--timeout: must be"),
        (["accounts.csv", "--out", "r.csv", "--rate", "0"], "--rate: must be"),
        (["accounts.csv", "--out", "r.csv", "--region", "XX"], "--region: must be"),
        (["accounts.csv", "--out", "r.csv", "--ca-bundle", "ca.pem"], "--ca-bundle applies only"),
        (["accounts.csv"], "--out"),
    ],
)
def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    """A command line that is wrong in itself is exit 2, before any file is opened."""
    code, _, stderr = run(capsys, "sweep", *args)
    assert code == EXIT_USAGE
    assert message in stderr


def test_configuration_errors_exit_1(
    capsys: pytest.CaptureFixture[str], accounts: Path, tmp_path: Path
) -> None:
    """A missing INPUT, a foreign --out, a header without a needed column: exit 1, nothing written."""
    code, _, stderr = run(capsys, "sweep", str(tmp_path / "missing.csv"), "--out", "r.csv")
    assert (code, "INPUT cannot be read" in stderr) == (EXIT_CONFIG, True)
    code, _, stderr = run(capsys, "sweep", str(accounts), "--out", str(tmp_path / "no" / "r.csv"))
    assert (code, "--out cannot be written" in stderr) == (EXIT_CONFIG, True)
    foreign = tmp_path / "notes.csv"
    foreign.write_text("my,own\nnotes,here\n")
    code, _, stderr = run(capsys, "sweep", str(accounts), "--out", str(foreign))
    assert (code, "another --out" in stderr) == (EXIT_CONFIG, True)
    assert foreign.read_text() == "my,own\nnotes,here\n"
    headless = tmp_path / "headless.csv"
    headless.write_text("account_id,phone\na1,+8613900139000\n")
    code, stdout, _ = run(
        capsys, "sweep", str(headless), "--out", str(tmp_path / "r.jsonl"), "--json"
    )
    assert code == EXIT_CONFIG
    assert json.loads(stdout) == {
        "error": "configuration",
        "message": "configuration error: the CSV header names no bound_at column",
    }


def test_the_exit_codes_are_stated_in_help_docstring_and_the_sweep_guide(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`sweep --help` shows the CLI's one exit-code table, the docstring holds it, and
    docs/sweeps.md gives each code a sweep can end with."""
    code, out, _ = run(capsys, "sweep", "--help")
    assert code == EXIT_OK
    assert EXIT_CODES_HELP.strip() in out
    table = EXIT_CODES_HELP.split("\n\n", 1)[0].split("\n", 1)[1]
    assert recyclecheck.cli.__doc__ is not None
    assert table in recyclecheck.cli.__doc__
    assert "  6  sweep: stopped by Ctrl-C or SIGTERM" in EXIT_CODES_HELP
    guide = (REPO / "docs" / "sweeps.md").read_text("utf-8")
    rows = re.findall(r"^\| `(\d)` \|", guide, flags=re.MULTILINE)
    assert rows == ["0", "1", "2", "3", "5", "6"]


# -- progress ---------------------------------------------------------------------------------


def test_a_progress_bar_on_a_terminal_shows_counts_only(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    accounts: Path,
    tmp_path: Path,
) -> None:
    """With stderr a terminal, tqdm draws a bar of rows; it never shows a number."""
    pytest.importorskip("tqdm")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, stdout, stderr = run(capsys, "sweep", str(accounts), "--out", str(tmp_path / "r.csv"))
    assert code == EXIT_STEP_UP
    assert re.search(r"sweep: 100%.*4/4 \[", stderr), stderr
    assert_private(stdout, stderr)


def test_no_progress_bar_off_a_terminal_or_without_tqdm(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    accounts: Path,
    tmp_path: Path,
) -> None:
    """Not a terminal, --no-progress, or tqdm missing: the sweep runs quietly."""
    code, _, stderr = run(capsys, "sweep", str(accounts), "--out", str(tmp_path / "a.csv"))
    assert (code, stderr) == (EXIT_STEP_UP, "")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, _, stderr = run(
        capsys, "sweep", str(accounts), "--out", str(tmp_path / "b.csv"), "--no-progress"
    )
    assert (code, stderr) == (EXIT_STEP_UP, "")
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm raises ImportError
    code, _, stderr = run(capsys, "sweep", str(accounts), "--out", str(tmp_path / "c.csv"))
    assert (code, stderr) == (EXIT_STEP_UP, "")
    assert len(data_lines(tmp_path / "c.csv")) == 3


# -- resuming ---------------------------------------------------------------------------------


def test_a_finished_sweep_run_again_checks_nothing_more(
    capsys: pytest.CaptureFixture[str], accounts: Path, tmp_path: Path
) -> None:
    """The results file is the journal: a second run finds every account done."""
    out = tmp_path / "results.csv"
    run(capsys, "sweep", str(accounts), "--out", str(out))
    before = out.read_bytes()
    code, stdout, _ = run(capsys, "sweep", str(accounts), "--out", str(out), "--json")
    assert code == EXIT_STEP_UP
    summary = json.loads(stdout)
    assert (summary["accounts"], summary["earlier"]) == (3, 3)
    assert out.read_bytes() == before


def test_resume_after_a_cut_short_line_and_refuse_another_input(
    capsys: pytest.CaptureFixture[str], accounts: Path, tmp_path: Path
) -> None:
    """A last line cut short is written again; an input whose rows moved is refused."""
    out = tmp_path / "results.csv"
    out.write_text(
        HEADER + "\n2,a1,+86 138****8000,step_up,reissued_after_binding,2022-05-09,2024-03-01,"
        "sandbox,\n3,a2,+86 139****9000,al"
    )
    code, stdout, _ = run(capsys, "sweep", str(accounts), "--out", str(out))
    assert code == EXIT_STEP_UP
    assert "(1 by an earlier run)" in stdout
    assert [r["account_id"] for r in data_lines(out)] == ["a1", "a2", "a3"]
    moved = write_csv(tmp_path / "moved.csv", [("zz", NEVER, "2022-05-10")] * 3)
    code, _, stderr = run(capsys, "sweep", str(moved), "--out", str(out))
    assert code == EXIT_CONFIG
    assert "another sweep's output" in stderr


US = [f"+1201234{index:04d}" for index in range(300)]


@pytest.fixture
def slow_server() -> Iterator[FakeProviderServer]:
    """20 ms a lookup: a third reissued, a third never, a third without data."""
    numbers: dict[str, dt.date | None] = {}
    for index, phone in enumerate(US):
        if index % 3 == 0:
            numbers[phone] = dt.date(2024, 3, 1)
        elif index % 3 == 1:
            numbers[phone] = None
    with FakeProviderServer(numbers) as server:
        server.inject(Latency(0.02))
        yield server


def sweep_process(
    server: FakeProviderServer, source: Path, out: Path, *options: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "recyclecheck",
            "sweep",
            str(source),
            "--out",
            str(out),
            "--provider",
            # A provider without a batch endpoint: each row is its own request, so these
            # journal tests can count requests per row (batch warm-ups: tests/test_prefetch.py).
            "telesign",
            "--concurrency",
            "4",
            *options,
        ],
        env={**os.environ, **server.environment()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_lines(out: Path, count: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if out.exists() and out.read_bytes().count(b"\n") >= count:
            return
        assert process.poll() is None, process.communicate(timeout=10)
        time.sleep(0.01)
    raise AssertionError(f"{out} did not reach {count} lines")


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
        process.wait(timeout=10)
    return process.returncode, stdout, stderr


def us_accounts(tmp_path: Path) -> Path:
    return write_csv(
        tmp_path / "accounts.csv",
        [(f"acct-{index}", phone, "2022-05-10") for index, phone in enumerate(US)],
    )


def assert_every_account_once_in_order(out: Path) -> list[dict[str, str]]:
    results = data_lines(out)
    assert [r["account_id"] for r in results] == [f"acct-{i}" for i in range(len(US))]
    assert [int(r["row"]) for r in results] == list(range(2, len(US) + 2))
    if out.suffix == ".csv":
        assert out.read_text("utf-8").count(HEADER) == 1
    return results


def test_killed_mid_run_and_resumed_every_account_appears_once(
    tmp_path: Path, slow_server: FakeProviderServer
) -> None:
    """SIGKILL a real `recyclecheck sweep` mid-run, run it again: every account is in the
    results exactly once, in order; none written before the kill is asked about again; only
    the few in flight at the kill are asked twice."""
    source, out = us_accounts(tmp_path), tmp_path / "results.csv"
    first = sweep_process(slow_server, source, out)
    try:
        wait_for_lines(out, 60, first)
        first.send_signal(signal.SIGKILL)
        assert first.wait(timeout=10) == -signal.SIGKILL
    finally:
        finish(first)
    kept = out.read_bytes()
    written = kept.split(b"\n")[1:-1]  # the header, and whatever follows the last newline, out
    done = {line.split(b",")[1].decode() for line in written}
    assert 59 <= len(done) < len(US)
    code, stdout, stderr = finish(sweep_process(slow_server, source, out))
    assert code == EXIT_STEP_UP, stderr
    results = assert_every_account_once_in_order(out)
    assert {r["reason"] for r in results} == {"reissued_after_binding", "not_reissued", "no_data"}
    asked = [r.number for r in slow_server.requests if r.endpoint == "lookup"]
    for index, phone in enumerate(US):
        if f"acct-{index}" in done:
            assert asked.count(phone) == 1, phone
        else:
            assert 1 <= asked.count(phone) <= 2, phone
    assert len(asked) - len(US) <= 2 * 4  # at most the window in flight at the kill
    assert f"({len(done)} by an earlier run)" in stdout
    assert_private(stdout, stderr, out.read_text("utf-8"))
    assert not leaks(stdout + stderr + out.read_text("utf-8"), US[:5])


def test_sigterm_stops_taking_rows_writes_what_is_in_flight_and_exits_6(
    tmp_path: Path, slow_server: FakeProviderServer
) -> None:
    """SIGTERM (a scheduler's stop): the checks in flight are written, the file ends with a
    whole line, the exit code is 6, and the same command finishes the job."""
    source, out = us_accounts(tmp_path), tmp_path / "results.jsonl"
    first = sweep_process(slow_server, source, out)
    try:
        wait_for_lines(out, 40, first)
        first.send_signal(signal.SIGTERM)
        code, stdout, stderr = finish(first)
    finally:
        first.kill()
    assert code == EXIT_INTERRUPTED, stderr
    assert "interrupted: run the same command again to go on" in stdout
    kept = out.read_bytes()
    assert kept.endswith(b"\n")
    asked_before = len([r for r in slow_server.requests if r.endpoint == "lookup"])
    assert asked_before == kept.count(b"\n")  # nothing in flight was dropped
    code, _, stderr = finish(sweep_process(slow_server, source, out))
    assert code == EXIT_STEP_UP, stderr
    assert_every_account_once_in_order(out)
    asked = [r.number for r in slow_server.requests if r.endpoint == "lookup"]
    assert sorted(asked) == sorted(US)


def test_a_write_that_fails_mid_sweep_is_exit_1_and_keeps_what_was_written(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    accounts: Path,
    tmp_path: Path,
) -> None:
    """A full disk mid-sweep: exit 1 with the reason; the lines written stay and resume works."""
    out = tmp_path / "results.csv"
    real = ResultsFile.write
    written = 0

    def write_once(self: ResultsFile, row: int, result: SweepResult) -> dict[str, object]:
        nonlocal written
        if written == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        written += 1
        return real(self, row, result)

    monkeypatch.setattr(ResultsFile, "write", write_once)
    code, _, stderr = run(capsys, "sweep", str(accounts), "--out", str(out))
    assert code == EXIT_CONFIG
    assert "writing --out failed (No space left on device)" in stderr
    monkeypatch.setattr(ResultsFile, "write", real)
    code, stdout, _ = run(capsys, "sweep", str(accounts), "--out", str(out))
    assert code == EXIT_STEP_UP
    assert "(1 by an earlier run)" in stdout
    assert [r["account_id"] for r in data_lines(out)] == ["a1", "a2", "a3"]
