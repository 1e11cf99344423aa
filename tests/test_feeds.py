"""Deactivation feeds: each format parsed from fixture files, bad rows reported and skipped,
constant memory, idempotence, and the facts seen by a Guard sharing the cache (in process,
and through `recyclecheck feed ingest` into a real redis-server)."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import pytest

from recyclecheck import (
    ConfigurationError,
    FeedRow,
    Guard,
    IngestReport,
    InvalidInput,
    MemoryCache,
    Reason,
    RowError,
    ingest,
    read_feed,
)
from recyclecheck._feeds import MAX_LINE_BYTES, MAX_REPORTED_ERRORS
from recyclecheck.cli import (
    EXIT_CODES_HELP,
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_ROWS_SKIPPED,
    EXIT_USAGE,
    main,
)
from recyclecheck.cli import __doc__ as CLI_DOC
from recyclecheck.providers import ChangedSince

from .privacy import leaks
from .redisserver import RedisServer

DATA = Path(__file__).parent / "data" / "feeds"
REPO = Path(__file__).resolve().parent.parent
SECRET = "feed-secret-0123456789abcdef"
D = dt.date

#: Every number in the fixtures, for the privacy checks.
NUMBERS = (
    "+12025550123",
    "+12025550199",
    "+14155550100",
    "+13125550111",
    "+16175550142",
    "+12125550187",
    "+17185550164",
    "+8613900139000",
    "+8613800138000",
    "+8613700137000",
)


class Counting:
    """A provider that says "no change" and counts its lookups."""

    name = "counting"

    def __init__(self) -> None:
        self.calls = 0

    def lookup(self, number: str, since: dt.date) -> Any:
        self.calls += 1
        return ChangedSince(since, False)


class Recorder:
    """Stands in for a Guard: keeps nothing, counts calls (to measure the feed alone)."""

    def __init__(self) -> None:
        self.calls = 0

    def record_change(
        self, phone: str, *, on: dt.date | dt.datetime, region: str | None = None
    ) -> None:
        self.calls += 1


def rows(path: Any, fmt: str, **options: Any) -> list[tuple[Any, ...]]:
    """A feed's rows as plain tuples: (row, phone, on, region) or (row, reason)."""
    out: list[tuple[Any, ...]] = []
    for item in read_feed(path, format=fmt, **options):
        if isinstance(item, FeedRow):
            out.append((item.row, item.phone, item.on, item.region))
        else:
            out.append((item.row, item.reason))
    return out


def assert_private(text: str) -> None:
    assert not leaks(text, NUMBERS), text


# -- each format from its fixture ------------------------------------------------------


def test_twilio_file_every_number_form_and_the_day_from_the_file_name() -> None:
    """+1, 1 and ten-digit forms; a row's own date wins, the others take the file's day."""
    assert rows(DATA / "twilio" / "deactivations_2024-01-15.txt", "twilio") == [
        (1, "+12025550123", D(2024, 1, 15), None),
        (2, "+12025550199", D(2024, 1, 15), None),
        (3, "4155550100", D(2024, 1, 15), "US"),
        (4, "+13125550111", D(2024, 1, 14), None),
    ]


def test_on_is_the_day_of_undated_rows_before_the_file_name() -> None:
    """`on` (the CLI's --date) stands in for rows without a date; a row's own date still wins."""
    got = rows(DATA / "twilio" / "deactivations_2024-01-15.txt", "twilio", on=D(2024, 1, 10))
    assert [row[2] for row in got] == [D(2024, 1, 10)] * 3 + [D(2024, 1, 14)]


def test_an_undated_row_with_no_day_anywhere_is_a_row_error() -> None:
    """No date in the row, no `on`, none in the name: that row (only) cannot be read."""
    source = io.StringIO("12025550123\n12025550199 2024-01-14\n")
    assert rows(source, "twilio") == [
        (1, "no date: the row has none, and neither on= (--date) nor the file name gives one"),
        (2, "+12025550199", D(2024, 1, 14), None),
    ]


def test_telesign_archive_is_read_member_by_member() -> None:
    """The ZIP as the API serves it: members in order, rows numbered on across them."""
    assert rows(DATA / "telesign" / "att-deacts_20210719.zip", "telesign") == [
        (1, "+12025550123", D(2021, 7, 19), None),
        (2, "+14155550100", D(2021, 7, 18), None),
        (4, "+17185550164", D(2021, 7, 19), None),
    ]


def test_telesign_member_header_and_date_forms() -> None:
    """A header is passed over; YYYYMMDD and RFC 3339 dates; digits get their +."""
    assert rows(DATA / "telesign" / "verizon-deacts_20210720.txt", "telesign") == [
        (2, "+13125550111", D(2021, 7, 20), None),
        (3, "+16175550142", D(2021, 7, 19), None),
        (4, "+8613900139000", D(2021, 7, 20), None),
    ]


def test_csv_rows_with_header_regions_and_offsets() -> None:
    """phone,date[,region]: an offset timestamp gives its UTC date, an empty region is none."""
    assert rows(DATA / "csv" / "changes.csv", "csv") == [
        (2, "+8613900139000", D(2025, 6, 1), None),
        (3, "13800138000", D(2025, 5, 20), "CN"),
        (4, "+1 (202) 555-0123", D(2025, 6, 1), None),
        (5, "+12025550199", D(2025, 6, 3), None),
    ]


# -- bad rows -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt", "recorded", "errors"),
    [
        (
            "twilio/deactivations_bad_2024-01-16.txt",
            "twilio",
            2,
            [
                (2, "the first field is not a number of 7 to 15 digits"),
                (3, "the date is not YYYY-MM-DD, YYYYMMDD or an ISO 8601 timestamp"),
                (4, "expected a number and at most a date, found 3 fields"),
                (5, "phone is not a valid number"),
            ],
        ),
        (
            "telesign/tmobile-deacts_20210721.txt",
            "telesign",
            2,
            [
                (3, "phone is not a valid number"),
                (4, "the date is not YYYY-MM-DD, YYYYMMDD or an ISO 8601 timestamp"),
            ],
        ),
        (
            "csv/changes_bad.csv",
            "csv",
            1,
            [
                (3, "phone could not be parsed (national formats need a region)"),
                (4, "no date"),
                (5, "the date is not YYYY-MM-DD, YYYYMMDD or an ISO 8601 timestamp"),
                (6, "the region is not a two-letter region code phonenumbers supports"),
                (7, "no phone number"),
                (8, "expected phone,date[,region], found 4 fields"),
            ],
        ),
    ],
)
def test_bad_rows_are_reported_with_their_row_and_skipped(
    name: str, fmt: str, recorded: int, errors: list[tuple[int, str]]
) -> None:
    """Each bad row is one error (row number, reason without the number); the rest are recorded."""
    report = ingest(Guard(Counting(), timeout=1), DATA / name, format=fmt)
    assert [(error.row, error.reason) for error in report.errors] == errors
    assert (report.recorded, report.skipped) == (recorded, len(errors))
    assert report.read == report.recorded + report.skipped
    assert not report.ok
    assert_private(json.dumps(report.to_dict()) + repr(report))


def test_a_region_given_to_ingest_reads_national_rows() -> None:
    """ingest(region=) is the region of rows that carry none."""
    guard = Guard(Counting(), timeout=1)
    report = ingest(guard, DATA / "csv" / "changes_bad.csv", format="csv", region="CN")
    assert 3 not in [error.row for error in report.errors]
    assert report.recorded == 2


def test_undecodable_and_overlong_lines_are_row_errors_and_reading_goes_on() -> None:
    """Not UTF-8, or longer than MAX_LINE_BYTES: that row is an error, the next one is read."""
    source = io.BytesIO(
        b"12025550123\n\xff\xfe\n" + b"9" * (3 * MAX_LINE_BYTES) + b"\n12025550199\n"
    )
    assert rows(source, "twilio", on=D(2024, 1, 1)) == [
        (1, "+12025550123", D(2024, 1, 1), None),
        (2, "not UTF-8 text"),
        (3, f"the line is longer than {MAX_LINE_BYTES} bytes"),
        (4, "+12025550199", D(2024, 1, 1), None),
    ]


def test_a_corrupt_archive_member_ends_with_a_row_error_not_an_exception(tmp_path: Path) -> None:
    """A member whose data is damaged: the report says from which row, the next member is read."""
    path = tmp_path / "att-deacts_20210719.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("a.txt", "12025550123\n12025550199\n")
        archive.writestr("b.txt", "14155550100\n")
    data = bytearray(path.read_bytes())
    at = data.index(b"12025550199")
    data[at] = ord("7")  # the CRC no longer matches: zipfile raises at the member's end
    path.write_bytes(bytes(data))
    got = rows(path, "telesign")
    assert got[-1] == (got[-2][0] + 1, "+14155550100", D(2021, 7, 19), None)
    assert any(len(row) == 2 and "could not be read from here on" in row[1] for row in got)


def test_a_file_that_cannot_be_opened_raises_configuration_error(tmp_path: Path) -> None:
    """Opening is the one failure that raises (and it names no path)."""
    with pytest.raises(ConfigurationError, match="could not be opened") as info:
        ingest(Guard(Counting(), timeout=1), tmp_path / "missing.txt", format="twilio")
    assert "missing" not in str(info.value)
    not_zip = tmp_path / "x.zip"
    not_zip.write_bytes(b"PK\x03\x04 but no archive")
    with pytest.raises(ConfigurationError, match="ZIP"):
        list(read_feed(not_zip, format="telesign"))


@pytest.mark.parametrize(
    ("source", "options", "match"),
    [
        ("x.txt", {}, "format= is needed"),
        ("x.txt", {"format": "vonage"}, "format must be one of csv, telesign, twilio"),
        (["+12025550123,2024-01-01"], {"format": "csv"}, "rows must be FeedRow"),
        (b"+12025550123", {}, "source must be"),
        ([], {"region": "XX"}, "region"),
        ([], {"max_errors": -1}, "max_errors"),
        ("x.txt", {"format": "twilio", "on": dt.datetime(2024, 1, 1)}, "aware"),
    ],
)
def test_bad_arguments_raise_invalid_input(
    source: Any, options: dict[str, Any], match: str
) -> None:
    """Misuse is an exception at once, before any row is recorded."""
    with pytest.raises(InvalidInput, match=match):
        ingest(Guard(Counting(), timeout=1), source, **options)


# -- memory -------------------------------------------------------------------------------


def test_two_hundred_thousand_rows_stream_in_constant_memory(tmp_path: Path) -> None:
    """200,000 rows (every 1000th bad) read and handed on with a peak of a few kilobytes.

    Holding the rows would take megabytes; the report keeps only the first
    MAX_REPORTED_ERRORS errors and counts the rest.  (The recorder keeps
    nothing, so this measures the feed, not a cache.)
    """
    path = tmp_path / "deactivations_2024-01-15.txt"
    with path.open("w", encoding="ascii") as out:
        for i in range(200_000):
            out.write("bad-row\n" if i % 1000 == 999 else f"1202{i:07d}\n")
    recorder = Recorder()
    tracemalloc.start()
    try:
        report = ingest(recorder, path, format="twilio")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (report.read, report.recorded, report.skipped) == (200_000, 199_800, 200)
    assert recorder.calls == 199_800
    assert len(report.errors) == MAX_REPORTED_ERRORS
    assert report.errors_truncated
    assert peak < 256 * 1024, peak


def test_a_huge_line_is_skipped_without_being_held() -> None:
    """A 5 MB line costs no 5 MB: it is dropped a bounded chunk at a time."""
    source = io.BytesIO(b"12025550123\n" + b"9" * 5_000_000 + b"\n12025550199\n")
    tracemalloc.start()
    try:
        report = ingest(Recorder(), source, format="twilio", on=D(2024, 1, 1))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (report.recorded, report.skipped) == (2, 1)
    assert peak < 256 * 1024, peak


# -- facts a Guard sees ---------------------------------------------------------------------


def snapshot(cache: MemoryCache) -> dict[str, Any]:
    return {key: cache.get(key) for key in cache.keys()}  # noqa: SIM118 - a method, not a dict


def test_ingesting_twice_gives_the_same_facts_and_the_same_report() -> None:
    """Idempotent: the second run changes no fact and reports the same counts."""
    cache = MemoryCache()
    guard = Guard(Counting(), timeout=1, cache=cache, secret=SECRET)
    first = ingest(guard, DATA / "twilio" / "deactivations_bad_2024-01-16.txt", format="twilio")
    state = snapshot(cache)
    second = ingest(guard, DATA / "twilio" / "deactivations_bad_2024-01-16.txt", format="twilio")
    assert first == second
    assert snapshot(cache) == state
    assert len(state) == first.recorded


def test_files_in_either_order_leave_the_later_date() -> None:
    """An earlier deactivation never replaces a later one, whatever order the files come in."""
    early = io.StringIO("12025550123\n")
    early.name = "deactivations_2024-01-10.txt"
    late = io.StringIO("12025550123\n")
    late.name = "deactivations_2024-03-01.txt"
    states = []
    for files in ((early, late), (late, early)):
        cache = MemoryCache()
        guard = Guard(Counting(), timeout=1, cache=cache, secret=SECRET)
        for source in files:
            source.seek(0)
            ingest(guard, source, format="twilio")
        states.append(snapshot(cache))
        decision = guard.check("+12025550123", bound_at=D(2023, 5, 1))
        assert decision.reissued_on == D(2024, 3, 1)
    assert states[0] == states[1]


@pytest.mark.parametrize(
    ("name", "fmt", "number", "day"),
    [
        ("twilio/deactivations_2024-01-15.txt", "twilio", "+1 415 555 0100", D(2024, 1, 15)),
        ("telesign/att-deacts_20210719.zip", "telesign", "+14155550100", D(2021, 7, 18)),
        ("csv/changes.csv", "csv", "+86 138 0013 8000", D(2025, 5, 20)),
    ],
)
def test_a_guard_sharing_the_cache_steps_up_from_the_feed_without_a_lookup(
    name: str, fmt: str, number: str, day: dt.date
) -> None:
    """The app's Guard (same cache, same secret) answers from the fact: provider 'feed'."""
    cache = MemoryCache()
    report = ingest(Guard(Counting(), cache=cache, secret=SECRET), DATA / name, format=fmt)
    assert report.ok
    provider = Counting()
    app = Guard(provider, timeout=1, cache=cache, secret=SECRET)
    decision = app.check(number, bound_at=D(2020, 1, 1))
    assert (decision.reason, decision.provider, decision.reissued_on) == (
        Reason.REISSUED_AFTER_BINDING,
        "feed",
        day,
    )
    assert provider.calls == 0
    later = app.check(number, bound_at=day + dt.timedelta(days=5))
    assert later.provider == "counting"  # bound after the change: the feed does not decide


def test_rows_built_by_the_app_are_ingested_too() -> None:
    """FeedRow values in, RowError values counted as skipped, positions as row numbers."""
    cache = MemoryCache()
    guard = Guard(Counting(), timeout=1, cache=cache, secret=SECRET)
    report = ingest(
        guard,
        [
            FeedRow("+8613900139000", D(2025, 6, 1)),
            RowError(7, "from the app's own reader"),
            FeedRow("13800138000", D(2025, 6, 1), "CN", row=9),
            FeedRow("12345", D(2025, 6, 1)),
        ],
    )
    assert report == IngestReport(
        read=4,
        recorded=2,
        skipped=2,
        errors=(
            RowError(7, "from the app's own reader"),
            RowError(4, "phone could not be parsed (national formats need a region)"),
        ),
    )


def test_reprs_and_messages_withhold_the_number() -> None:
    """A FeedRow's repr shows a digit count and the last two digits, never the number."""
    row = FeedRow("+8613900139000", D(2025, 6, 1), row=3)
    assert repr(row) == "FeedRow(phone=<13 digits, ending 00>, on=2025-06-01, region=None, row=3)"
    assert str(RowError(3, "no date")) == "row 3: no date"


# -- the command line, against a real redis-server ------------------------------------------


@pytest.fixture
def redis_url(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty database on the session's redis-server; no RECYCLECHECK_* from the outside."""
    for name in ("RECYCLECHECK_REDIS_URL", "RECYCLECHECK_SECRET", "RECYCLECHECK_CACHE_SECRET"):
        monkeypatch.delenv(name, raising=False)
    client = redis_server.client()
    client.flushdb()
    client.close()
    return f"redis://127.0.0.1:{redis_server.port}/0"


def app_guard(redis_server: RedisServer, *, cache_secret: str = SECRET) -> tuple[Guard, Counting]:
    """The app: its own client and RedisCache, a Guard with the same secret as the CLI's."""
    from recyclecheck import RedisCache  # noqa: PLC0415 - loads cryptography

    provider = Counting()
    cache = RedisCache(redis_server.client(), secret=cache_secret)
    return Guard(provider, timeout=1, cache=cache, secret=SECRET), provider


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert_private(out + err)
    return code, out, err


@pytest.mark.redis
def test_cli_ingests_into_redis_and_the_app_sees_the_facts(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    redis_server: RedisServer,
    redis_url: str,
) -> None:
    """feed ingest writes facts the app's Guard (another client, same secret) answers from."""
    monkeypatch.setenv("RECYCLECHECK_SECRET", SECRET)
    feed = str(DATA / "telesign" / "att-deacts_20210719.zip")
    code, out, _ = run(
        capsys, "feed", "ingest", feed, "--format", "telesign", "--redis-url", redis_url
    )
    assert code == EXIT_OK
    assert out == "feed ingest: 3 rows read, 3 recorded, 0 skipped\n"
    guard, provider = app_guard(redis_server)
    for number, day in (("+12025550123", D(2021, 7, 19)), ("+14155550100", D(2021, 7, 18))):
        decision = guard.check(number, bound_at=D(2020, 1, 1))
        assert (decision.provider, decision.reissued_on) == ("feed", day)
        assert decision.step_up_required
    assert provider.calls == 0
    stranger, asked = app_guard(redis_server, cache_secret="another-secret-0123456789")
    assert stranger.check("+12025550123", bound_at=D(2020, 1, 1)).provider == "counting"
    assert asked.calls == 1  # another secret: the facts are not found


def redis_state(redis_server: RedisServer) -> dict[bytes, Any]:
    """Every key with its decrypted fact (values are sealed with a fresh nonce each write)."""
    from recyclecheck import RedisCache  # noqa: PLC0415

    client = redis_server.client()
    cache = RedisCache(client, secret=SECRET)
    try:
        return {
            key: cache._open(key.decode(), client.get(key))  # decrypted to compare
            for key in client.keys("*")
        }
    finally:
        client.close()


@pytest.mark.redis
def test_cli_twice_leaves_redis_as_once_and_reports_skipped_rows_with_exit_5(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    redis_server: RedisServer,
    redis_url: str,
) -> None:
    """Idempotent through the CLI; rows it could not read are listed by row, exit 5."""
    monkeypatch.setenv("RECYCLECHECK_REDIS_URL", redis_url)
    monkeypatch.setenv("RECYCLECHECK_SECRET", SECRET)
    feed = str(DATA / "csv" / "changes_bad.csv")
    first = run(capsys, "feed", "ingest", feed, "--format", "csv", "--region", "CN")
    state = redis_state(redis_server)
    second = run(capsys, "feed", "ingest", feed, "--format", "csv", "--region", "CN")
    assert first == second
    assert redis_state(redis_server) == state
    assert len(state) == 2
    code, out, _ = first
    assert code == EXIT_ROWS_SKIPPED
    assert out.splitlines() == [
        "feed ingest: 7 rows read, 2 recorded, 5 skipped",
        "  row 4: no date",
        "  row 5: the date is not YYYY-MM-DD, YYYYMMDD or an ISO 8601 timestamp",
        "  row 6: the region is not a two-letter region code phonenumbers supports",
        "  row 7: no phone number",
        "  row 8: expected phone,date[,region], found 4 fields",
    ]


@pytest.mark.redis
def test_cli_json_report_and_a_separate_cache_secret(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    redis_server: RedisServer,
    redis_url: str,
) -> None:
    """--json prints the report; --cache-secret matches an app whose cache has its own secret."""
    cache_secret = "cache-secret-0123456789abcdef"
    monkeypatch.setenv("RECYCLECHECK_CACHE_SECRET", cache_secret)
    feed = str(DATA / "twilio" / "deactivations_bad_2024-01-16.txt")
    code, out, _ = run(
        capsys,
        "feed",
        "ingest",
        feed,
        "--format",
        "twilio",
        "--redis-url",
        redis_url,
        "--secret",
        SECRET,
        "--json",
    )
    assert code == EXIT_ROWS_SKIPPED
    report = json.loads(out)
    assert (report["read"], report["recorded"], report["skipped"]) == (6, 2, 4)
    assert [error["row"] for error in report["errors"]] == [2, 3, 4, 5]
    guard, provider = app_guard(redis_server, cache_secret=cache_secret)
    assert guard.check("+16175550142", bound_at=D(2020, 1, 1)).provider == "feed"
    assert provider.calls == 0


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        ([], {}, ["shared cache", "--redis-url", "vanish"]),
        (["--redis-url", "redis://127.0.0.1:1/0"], {}, ["--secret", "never find"]),
        (["--redis-url", "http://x", "--secret", SECRET], {}, ["not a Redis URL"]),
        (["--redis-url", "redis://127.0.0.1:1/0", "--secret", "short"], {}, ["16 bytes"]),
        ([], {"RECYCLECHECK_SECRET": SECRET}, ["shared cache"]),
    ],
)
def test_cli_refuses_without_a_usable_shared_cache_as_bad_usage(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    words: list[str],
) -> None:
    """Without a shared cache the facts would die with the process: exit 2, saying why."""
    for name in ("RECYCLECHECK_REDIS_URL", "RECYCLECHECK_SECRET", "RECYCLECHECK_CACHE_SECRET"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    feed = str(DATA / "twilio" / "deactivations_2024-01-15.txt")
    code, out, err = run(capsys, "feed", "ingest", feed, "--format", "twilio", *args)
    assert code == EXIT_USAGE
    assert out == ""
    assert err.startswith("usage: recyclecheck feed ingest")
    for word in words:
        assert word in err
    assert SECRET not in err


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RECYCLECHECK_REDIS_URL": "http://x", "RECYCLECHECK_SECRET": SECRET}, "not a Redis URL"),
        ({"RECYCLECHECK_REDIS_URL": "redis://127.0.0.1:1/0", "RECYCLECHECK_SECRET": "x"}, "16"),
    ],
)
def test_cli_bad_environment_is_a_configuration_error(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    message: str,
) -> None:
    """As with provider variables, a bad environment is exit 1, not bad usage."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    feed = str(DATA / "twilio" / "deactivations_2024-01-15.txt")
    code, _, err = run(capsys, "feed", "ingest", feed, "--format", "twilio")
    assert code == EXIT_CONFIG
    assert message in err


@pytest.mark.redis
def test_cli_unreachable_redis_and_unreadable_file_are_configuration_errors(
    capsys: pytest.CaptureFixture[str], redis_url: str, tmp_path: Path
) -> None:
    """Exit 1: nothing answers at the URL; the file cannot be opened."""
    from .rawserver import free_port  # noqa: PLC0415

    feed = str(DATA / "twilio" / "deactivations_2024-01-15.txt")
    closed = f"redis://127.0.0.1:{free_port()}/0"
    code, _, err = run(
        capsys,
        "feed",
        "ingest",
        feed,
        "--format",
        "twilio",
        "--redis-url",
        closed,
        "--secret",
        SECRET,
    )
    assert (code, err) == (
        EXIT_CONFIG,
        "recyclecheck: configuration error: cannot reach Redis (ConnectionError)\n",
    )
    code, _, err = run(
        capsys,
        "feed",
        "ingest",
        str(tmp_path / "none.txt"),
        "--format",
        "twilio",
        "--redis-url",
        redis_url,
        "--secret",
        SECRET,
    )
    assert code == EXIT_CONFIG
    assert "could not be opened" in err


@pytest.mark.redis
def test_cli_stops_at_the_first_redis_failure_and_keeps_a_later_date(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    redis_server: RedisServer,
    redis_url: str,
    tmp_path: Path,
) -> None:
    """A failed read would let an earlier date overwrite a later one: the CLI stops instead."""
    import redis  # noqa: PLC0415

    monkeypatch.setenv("RECYCLECHECK_REDIS_URL", redis_url)
    monkeypatch.setenv("RECYCLECHECK_SECRET", SECRET)
    late = tmp_path / "deactivations_2024-03-01.txt"
    late.write_text("12025550123\n")
    assert run(capsys, "feed", "ingest", str(late), "--format", "twilio")[0] == EXIT_OK
    early = tmp_path / "deactivations_2024-01-10.txt"
    early.write_text("12025550199\n12025550123\n14155550100\n")
    real_get = redis.Redis.get
    calls = []

    def get_failing_on_the_second_row(self: redis.Redis, name: Any) -> Any:
        calls.append(name)
        if len(calls) == 2:
            raise redis.TimeoutError("injected")
        return real_get(self, name)

    with monkeypatch.context() as patch:
        patch.setattr(redis.Redis, "get", get_failing_on_the_second_row)
        code, out, err = run(capsys, "feed", "ingest", str(early), "--format", "twilio")
    assert code == EXIT_CONFIG
    assert out == ""
    assert (
        "Redis stopped answering (TimeoutError) after 1 row was recorded; the rest were not" in err
    )
    guard, _ = app_guard(redis_server)
    assert guard.check("+12025550123", bound_at=D(2023, 5, 1)).reissued_on == D(2024, 3, 1)
    assert guard.check("+12025550199", bound_at=D(2023, 5, 1)).provider == "feed"
    assert guard.check("+14155550100", bound_at=D(2023, 5, 1)).provider == "counting"


@pytest.mark.redis
def test_cli_runs_as_a_process(redis_server: RedisServer, redis_url: str) -> None:
    """`python -m recyclecheck feed ingest` end to end, secret from the environment."""
    env = {**os.environ, "RECYCLECHECK_REDIS_URL": redis_url, "RECYCLECHECK_SECRET": SECRET}
    feed = str(DATA / "twilio" / "deactivations_2024-01-15.txt")
    result = subprocess.run(
        [sys.executable, "-m", "recyclecheck", "feed", "ingest", feed, "--format", "twilio"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        EXIT_OK,
        "feed ingest: 4 rows read, 4 recorded, 0 skipped\n",
        "",
    )
    guard, provider = app_guard(redis_server)
    assert guard.check("4155550100", region="US", bound_at=D(2020, 1, 1)).provider == "feed"
    assert provider.calls == 0


def test_exit_code_5_is_in_the_rule_and_the_docs() -> None:
    """The one exit-code table (help, docstring) and README and docs/feeds.md name exit 5."""
    assert "5  feed ingest: some rows could not be read or recorded" in EXIT_CODES_HELP
    assert CLI_DOC is not None
    assert EXIT_CODES_HELP.split("\n\n", 1)[0].split("\n", 1)[1] in CLI_DOC
    for doc in ("README.md", "docs/feeds.md"):
        assert "| `5` |" in (REPO / doc).read_text("utf-8"), doc
