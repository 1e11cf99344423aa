"""Sweeps: checking every bound number ahead of its next login.

A sweep is many :meth:`Guard.check` calls with bounded concurrency and
constant memory (DESIGN §9): rows stream in, results stream out in input
order, and what is held at any moment is a window of ``2 * concurrency`` rows.

Rules this module keeps:

- **Streaming.**  Readers take one line at a time (a line longer than
  :data:`MAX_LINE` bytes is skipped without being held), the sweep keeps a
  sliding window, and the results file is read back line by line on resume.
- **A bad row is never fatal.**  It is reported with its row number (the line
  number in the file) and a reason, and skipped.  Reasons are fixed phrases:
  they never echo a field, so never the number.
- **The full number never leaves.**  Results hold the masked number;
  :class:`SweepRow`'s ``repr`` masks it; an ``account_id`` holding the number
  is refused, since results show account ids as they are.
- **The results file is the journal.**  Each result is appended as one line,
  with its row number, in input order, and written before the next; a sweep
  started again on the same files reads the lines back, drops a last line cut
  short, and goes on after the last row written (:class:`ResultsFile`).
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import io
import json
import logging
import math
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from queue import SimpleQueue
from typing import TYPE_CHECKING, Any, BinaryIO

import attrs

from . import _telemetry
from ._cache import seconds
from ._phone import MAX_PHONE_LENGTH, check_region, mask
from ._policy import Action, Reason
from ._prefetch import prefetched
from .exceptions import ConfigurationError, InvalidInput

if TYPE_CHECKING:
    from ._guard import Guard

__all__ = [
    "FORMATS",
    "MAX_CONCURRENCY",
    "ResultsFile",
    "SweepResult",
    "SweepRow",
    "Tally",
    "format_of",
    "parse_bound_at",
    "read_rows",
    "skip_done",
    "sweep",
]

logger = logging.getLogger("recyclecheck")

#: Most checks a sweep runs at once.
MAX_CONCURRENCY = 256
#: Longest input line, in bytes (newline included); a longer one is a bad row.
MAX_LINE = 64 * 1024
#: Longest account id, in characters.
MAX_ACCOUNT_ID = 256
#: The file formats, by name; :func:`format_of` maps file extensions to them.
FORMATS = ("csv", "jsonl")
_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
#: An account id holding this many of the number's last digits holds the number.
_ID_DIGITS = 10
_MIN_ID_DIGITS = 8

#: Called with the row number and the reason for each row a reader skips.
OnBadRow = Callable[[int, str], object]


def _masked(phone: str) -> str:
    """The number as people may see it; ``+***`` when it does not parse as E.164."""
    return mask(phone) if len(phone) <= MAX_PHONE_LENGTH else "+***"


def _digits(text: str) -> str:
    return "".join(char for char in text if char.isdecimal())


# -- values ---------------------------------------------------------------------------


def _check_account_id(_row: object, _attribute: object, value: Any) -> None:
    if not isinstance(value, str):
        raise InvalidInput(f"account_id must be a str, not {type(value).__name__}")
    if not value.strip():
        raise InvalidInput("account_id is empty")
    if len(value) > MAX_ACCOUNT_ID:
        raise InvalidInput(f"account_id is longer than {MAX_ACCOUNT_ID} characters")
    if not value.isprintable():
        raise InvalidInput("account_id holds control characters")


def _check_phone(_row: object, _attribute: object, value: Any) -> None:
    if not isinstance(value, str):
        raise InvalidInput(f"phone must be a str, not {type(value).__name__}")
    if not value.strip():
        raise InvalidInput("phone is empty")
    if len(value) > MAX_PHONE_LENGTH:
        raise InvalidInput(f"phone is longer than {MAX_PHONE_LENGTH} characters")


def _check_bound_at(_row: object, _attribute: object, value: Any) -> None:
    if not isinstance(value, dt.date):
        raise InvalidInput(f"bound_at must be a date or datetime, not {type(value).__name__}")


def _region(value: Any) -> Any:
    """A region code upper-cased; refused (InvalidInput) when phonenumbers does not know it."""
    return None if value is None else check_region(value)  # it refuses non-strings too


@attrs.frozen(repr=False)
class SweepRow:
    """One account to sweep: its id, the number it is bound to, and when it was bound.

    ``bound_at`` means what it means in :meth:`Guard.check` (a ``date`` or an
    aware ``datetime``); ``region`` lets a national-format number parse.
    ``account_id`` comes back in the result as it is, so it may not hold the
    number (its last ten digits).  Raises :class:`InvalidInput` for values of
    the wrong type or shape; whether the number is valid is the check's
    business.  The ``repr`` masks the number.
    """

    account_id: str = attrs.field(validator=_check_account_id)
    phone: str = attrs.field(validator=_check_phone)
    bound_at: dt.date = attrs.field(validator=_check_bound_at)
    region: str | None = attrs.field(default=None, converter=_region)

    def __attrs_post_init__(self) -> None:
        tail = _digits(self.phone)[-_ID_DIGITS:]
        if len(tail) >= _MIN_ID_DIGITS and tail in _digits(self.account_id):
            raise InvalidInput(
                "account_id holds the phone number (results show account ids as they are)"
            )

    def __repr__(self) -> str:
        return (
            f"SweepRow(account_id={self.account_id!r}, phone={_masked(self.phone)!r}, "
            f"bound_at={self.bound_at!r}, region={self.region!r})"
        )


@attrs.frozen
class SweepResult:
    """What a sweep found for one account.

    ``action``, ``reason``, ``since``, ``reissued_on`` and ``provider`` are
    the :class:`Decision`'s; ``masked_number`` the number as people may see
    it.  ``error`` is set, and the decision's fields are ``None``, when the
    row could not be checked (an invalid number, a ``bound_at`` in the
    future): its text never holds the number.
    """

    account_id: str
    masked_number: str
    action: Action | None
    reason: Reason | None
    since: dt.date | None
    reissued_on: dt.date | None
    provider: str | None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (dates as ISO strings, enums as their values, ``None`` kept)."""
        return {
            "account_id": self.account_id,
            "masked_number": self.masked_number,
            "action": None if self.action is None else self.action.value,
            "reason": None if self.reason is None else self.reason.value,
            "since": None if self.since is None else self.since.isoformat(),
            "reissued_on": None if self.reissued_on is None else self.reissued_on.isoformat(),
            "provider": self.provider,
            "error": self.error,
        }


# -- reading rows -----------------------------------------------------------------------


def parse_bound_at(text: str) -> dt.date:
    """``YYYY-MM-DD`` as a date, an ISO 8601 timestamp with an offset (or ``Z``) as a datetime."""
    value = text.strip()
    if not value:
        raise InvalidInput("bound_at is empty")
    if len(value) == 10:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            "bound_at is not YYYY-MM-DD or an ISO 8601 timestamp with an offset"
        ) from None
    if moment.utcoffset() is None:
        raise InvalidInput("bound_at has no UTC offset (add Z or one such as +08:00)")
    return moment


def format_of(path: str | os.PathLike[str]) -> str | None:
    """``"csv"`` or ``"jsonl"`` from a file name's extension (``.ndjson`` too); else ``None``."""
    return _EXTENSIONS.get(os.path.splitext(os.fspath(path))[1].lower())


def _lines(handle: BinaryIO) -> Iterator[tuple[int, bytes | None]]:
    """Each line and its number; ``None`` for a line over :data:`MAX_LINE`, never held whole."""
    number = 0
    while line := handle.readline(MAX_LINE + 1):
        number += 1
        if len(line) > MAX_LINE:
            while line and not line.endswith(b"\n"):
                line = handle.readline(MAX_LINE)
            yield number, None
        else:
            yield number, line


def _texts(handle: BinaryIO, on_bad_row: OnBadRow) -> Iterator[tuple[int, str]]:
    """Each non-blank line as text without its line ending; bad ones reported."""
    for number, line in _lines(handle):
        if line is None:
            on_bad_row(number, f"the line is longer than {MAX_LINE} bytes")
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            on_bad_row(number, "the line is not UTF-8")
            continue
        if number == 1:
            text = text.removeprefix("\ufeff")
        text = text.rstrip("\r\n")
        if text.strip():
            yield number, text


def _make_row(account_id: object, phone: object, bound_at: object, region: object) -> SweepRow:
    if isinstance(account_id, int) and not isinstance(account_id, bool):
        account_id = str(account_id)  # JSON ids are often numbers
    if not isinstance(bound_at, str):
        raise InvalidInput("bound_at must be a string: YYYY-MM-DD or ISO 8601 with an offset")
    if isinstance(region, str) and not region.strip():
        region = None  # an empty CSV cell
    return SweepRow(account_id, phone, parse_bound_at(bound_at), region)  # type: ignore[arg-type]


_COLUMNS = ("account_id", "phone", "bound_at", "region")


def _csv_columns(fields: list[str]) -> dict[str, int] | None:
    """The column of each name when ``fields`` is a header; ``None`` when it is data."""
    names = [field.strip().lower() for field in fields]
    if not set(names) & set(_COLUMNS):
        return None
    missing = [name for name in _COLUMNS[:3] if name not in names]
    if missing:
        raise ConfigurationError(f"the CSV header names no {', '.join(missing)} column")
    return {name: names.index(name) for name in _COLUMNS if name in names}


def _read_csv(handle: BinaryIO, on_bad_row: OnBadRow) -> Iterator[tuple[int, SweepRow]]:
    columns: dict[str, int] | None = None
    first = True
    for number, text in _texts(handle, on_bad_row):
        try:
            fields = next(csv.reader([text], strict=True))
        except csv.Error:
            on_bad_row(number, "the line is not valid CSV (one row per line)")
            continue
        if first:
            first = False
            columns = _csv_columns(fields)
            if columns is not None:
                continue
        try:
            yield number, _csv_row(fields, columns)
        except InvalidInput as exc:
            on_bad_row(number, str(exc))


def _csv_row(fields: list[str], columns: dict[str, int] | None) -> SweepRow:
    if columns is None:
        if len(fields) not in (3, 4):
            raise InvalidInput(
                f"expected 3 or 4 columns (account_id,phone,bound_at[,region]), found {len(fields)}"
            )
        return _make_row(fields[0], fields[1], fields[2], fields[3] if len(fields) == 4 else None)
    needed = max(columns[name] for name in _COLUMNS[:3]) + 1
    if len(fields) < needed:
        raise InvalidInput(f"expected at least {needed} columns, found {len(fields)}")
    account_id, phone, bound_at = (fields[columns[name]] for name in _COLUMNS[:3])
    region = fields[columns["region"]] if columns.get("region", len(fields)) < len(fields) else None
    return _make_row(account_id, phone, bound_at, region)


def _read_jsonl(handle: BinaryIO, on_bad_row: OnBadRow) -> Iterator[tuple[int, SweepRow]]:
    for number, text in _texts(handle, on_bad_row):
        try:
            data = json.loads(text)
        except ValueError:
            on_bad_row(number, "the line is not valid JSON")
            continue
        if not isinstance(data, dict):
            on_bad_row(number, "the line is not a JSON object")
            continue
        try:
            yield (
                number,
                _make_row(
                    data.get("account_id"),
                    data.get("phone"),
                    data.get("bound_at"),
                    data.get("region"),
                ),
            )
        except InvalidInput as exc:
            on_bad_row(number, str(exc))


def read_rows(
    handle: BinaryIO, *, format: str, on_bad_row: OnBadRow
) -> Iterator[tuple[int, SweepRow]]:
    """Stream ``(row number, SweepRow)`` from a binary file of ``format`` (``csv``/``jsonl``).

    CSV: ``account_id,phone,bound_at[,region]``, one row per line, with an
    optional header naming the columns (any order; other columns ignored).
    JSON Lines: one object a line with those keys.  ``bound_at`` is
    ``YYYY-MM-DD`` or ISO 8601 with an offset.  The row number is the line
    number.  Blank lines are skipped; every other line that does not make a
    :class:`SweepRow` is passed to ``on_bad_row(number, reason)`` and skipped.
    A CSV header that lacks a required column raises :class:`ConfigurationError`.
    """
    if format == "csv":
        return _read_csv(handle, on_bad_row)
    if format == "jsonl":
        return _read_jsonl(handle, on_bad_row)
    raise ConfigurationError(f"format must be one of {', '.join(FORMATS)}")


# -- sweeping -------------------------------------------------------------------------


def _concurrency(value: object, guard: Guard) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY:
        raise ConfigurationError(f"concurrency must be an int from 1 to {MAX_CONCURRENCY}")
    slots = guard.pool.max_workers
    if value > slots:
        raise ConfigurationError(
            f"concurrency {value} is more than the Guard's max_workers ({slots}): "
            "the extra checks would find every provider slot taken"
        )
    return value


def _timed(guard: Guard, timeout: float | dt.timedelta | None) -> Guard:
    """``guard``, or a view of it whose checks have the sweep's own deadline.

    The view is a shallow copy: the same lanes (breakers, worker slots), cache,
    memo and hook, with only ``timeout`` changed, so logins and the sweep
    still share what they learn and the provider's limits.
    """
    if timeout is None:
        return guard
    from ._guard import MAX_TIMEOUT  # noqa: PLC0415 - _guard imports this module lazily

    value = seconds(timeout, name="timeout")
    if not 0 < value <= MAX_TIMEOUT:
        raise ConfigurationError(f"timeout must be between 0 and {MAX_TIMEOUT:g} seconds")
    if value == guard.timeout:
        return guard
    view = copy.copy(guard)
    view.timeout = value
    return view


def _pace(rate: object) -> Callable[[], None]:
    """A function that returns once the next check may start, ``rate`` a second at most."""
    if rate is None:
        return lambda: None
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < math.inf:
        raise ConfigurationError("rate must be a positive number of checks a second")
    interval = 1.0 / rate
    next_start = time.monotonic()

    def wait() -> None:
        nonlocal next_start
        now = time.monotonic()
        if next_start > now:
            time.sleep(next_start - now)
        # An idle spell (a slow reader) earns no burst: the pace restarts from now.
        next_start = max(next_start, now) + interval

    return wait


def sweep(
    guard: Guard,
    rows: Iterable[SweepRow],
    *,
    concurrency: int = 8,
    timeout: float | dt.timedelta | None = None,
    rate: float | None = None,
) -> Iterator[SweepResult]:
    """The engine of :meth:`Guard.sweep` (options checked now, rows read as results are taken)."""
    checker = _timed(guard, timeout)
    window = _concurrency(concurrency, guard)
    # Batch endpoints first warm the cache a chunk at a time (see _prefetch).
    return _window(checker, prefetched(checker, iter(rows)), window, _pace(rate))


class _Slot:
    """One row on its way through the window; ``done`` is released once ``result`` is set."""

    __slots__ = ("done", "result", "row")

    def __init__(self, row: SweepRow) -> None:
        self.row = row
        self.result: SweepResult | None = None
        self.done = threading.Lock()
        self.done.acquire()


def _window(
    guard: Guard, rows: Iterator[SweepRow], concurrency: int, pace: Callable[[], None]
) -> Iterator[SweepResult]:
    """Results in input order, ``concurrency`` checks at a time, ``2 * concurrency`` rows held.

    The workers are daemon threads started on the first result asked for and
    told to stop when the iterator ends or is closed; a check they are running
    then finishes on its own (within the Guard's deadline) and is dropped.
    """
    todo: SimpleQueue[_Slot | None] = SimpleQueue()
    for index in range(concurrency):
        threading.Thread(
            target=_work, args=(guard, todo), name=f"recyclecheck-sweep-{index + 1}", daemon=True
        ).start()
    window: deque[_Slot] = deque()
    depth = 2 * concurrency  # a slow row holds back the output, not the other workers
    try:
        for row in rows:
            if not isinstance(row, SweepRow):
                raise TypeError(f"sweep() takes SweepRow items, not {type(row).__name__}")
            slot = _Slot(row)
            window.append(slot)
            pace()
            todo.put(slot)
            if len(window) >= depth:
                yield _taken(window.popleft())
        while window:
            yield _taken(window.popleft())
    finally:
        for _ in range(concurrency):
            todo.put(None)


def _taken(slot: _Slot) -> SweepResult:
    slot.done.acquire()
    assert slot.result is not None  # noqa: S101 - set before done is released
    return slot.result


def _work(guard: Guard, todo: SimpleQueue[_Slot | None]) -> None:
    while (slot := todo.get()) is not None:
        slot.result = _check(guard, slot.row)
        _telemetry.swept(slot.result)
        slot.done.release()
        # Nothing of the row outlives it here: an idle worker would otherwise keep
        # its last number until the next one arrives.
        del slot


def _check(guard: Guard, row: SweepRow) -> SweepResult:
    try:
        decision = guard.check(row.phone, bound_at=row.bound_at, region=row.region)
    except InvalidInput as exc:  # the row's own fault; the message never holds the number
        return _failed(row, str(exc))
    except BaseException as exc:  # a sweep outlives any one row
        logger.error("recyclecheck sweep: a check raised %s", type(exc).__name__)
        return _failed(row, f"the check raised {type(exc).__name__}")
    return SweepResult(
        account_id=row.account_id,
        masked_number=decision.masked_number,
        action=decision.action,
        reason=decision.reason,
        since=decision.since,
        reissued_on=decision.reissued_on,
        provider=decision.provider,
    )


def _failed(row: SweepRow, error: str) -> SweepResult:
    return SweepResult(
        account_id=row.account_id,
        masked_number=_masked(row.phone),
        action=None,
        reason=None,
        since=None,
        reissued_on=None,
        provider=None,
        error=error,
    )


# -- the results file, which is the journal ---------------------------------------------

_ACTIONS = frozenset(action.value for action in Action)
_REASONS = frozenset(reason.value for reason in Reason)
#: The columns of a results file, in order.
RESULT_FIELDS = (
    "row",
    "account_id",
    "masked_number",
    "action",
    "reason",
    "since",
    "reissued_on",
    "provider",
    "error",
)


@attrs.define
class Tally:
    """What the results so far add up to: counts per action and reason, errors, the last row."""

    results: int = 0
    actions: Counter[str] = attrs.Factory(Counter)
    reasons: Counter[str] = attrs.Factory(Counter)
    errors: int = 0
    last_row: int = 0
    last_account: str | None = None

    def add(self, row: int, record: dict[str, Any]) -> None:
        """Count one result (a :meth:`SweepResult.to_dict` with its row number)."""
        self.results += 1
        self.last_row, self.last_account = row, record["account_id"]
        if record.get("error"):
            self.errors += 1
        else:
            self.actions[record["action"]] += 1
            self.reasons[record["reason"]] += 1


def skip_done(rows: Iterable[tuple[int, SweepRow]], tally: Tally) -> Iterator[tuple[int, SweepRow]]:
    """The rows after ``tally.last_row``, once that row is found holding its account.

    Raises :class:`ConfigurationError` when the input does not hold, at that
    row, the account the results file says it does: the results belong to
    another input, and going on would skip or repeat accounts.
    """
    found = tally.last_row == 0
    for number, row in rows:
        if number < tally.last_row:
            continue
        if number == tally.last_row:
            found = row.account_id == tally.last_account
            if not found:
                break
            continue
        if not found:
            break
        yield number, row
    if not found:
        raise ConfigurationError(
            f"the results file ends at row {tally.last_row}, which this input does not "
            "hold for the same account: it is another sweep's output (use another --out)"
        )


class ResultsFile:
    """A sweep's output, which is also its journal: one line per result, in input order.

    :meth:`open` reads an existing file back (counting what it holds into a
    :class:`Tally`), cuts off a last line a kill left incomplete, and leaves
    the file ready to append; :meth:`write` appends one result and hands it
    to the operating system before returning, so a killed sweep loses at most
    the results not yet written.  CSV files start with a header of
    :data:`RESULT_FIELDS`; JSON Lines files hold one object a line with those keys.
    """

    def __init__(self, path: str | os.PathLike[str], *, format: str) -> None:
        if format not in FORMATS:
            raise ConfigurationError(f"format must be one of {', '.join(FORMATS)}")
        self.path = os.fspath(path)
        self.format = format
        self._file: io.FileIO | None = None

    def open(self) -> Tally:
        """Open (or create) the file and return the tally of the results it already holds."""
        self._file = io.FileIO(self.path, "a+")
        try:
            tally, end = self._read_back()
            self._file.truncate(end)
            if end == 0 and self.format == "csv":
                self._append(self._csv_line(RESULT_FIELDS))
        except BaseException:
            self.close()
            raise
        return tally

    def write(self, row: int, result: SweepResult) -> dict[str, Any]:
        """Append one result; returns the record written (row number included)."""
        record = {"row": row, **result.to_dict()}
        if self.format == "csv":
            line = self._csv_line(["" if record[k] is None else record[k] for k in RESULT_FIELDS])
        else:
            line = json.dumps(record, ensure_ascii=False) + "\n"
        self._append(line)
        return record

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> ResultsFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- inside -----------------------------------------------------------------------

    def _append(self, text: str) -> None:
        assert self._file is not None  # noqa: S101 - open() first
        data = memoryview(text.encode("utf-8"))
        while data:
            data = data[self._file.write(data) or 0 :]

    @staticmethod
    def _csv_line(fields: Iterable[object]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(fields)
        return buffer.getvalue()

    def _read_back(self) -> tuple[Tally, int]:
        """The tally of the complete lines, and where they end."""
        tally, end = Tally(), 0
        with open(self.path, "rb") as reader:
            for number, line in enumerate(reader, start=1):
                if not line.endswith(b"\n"):
                    break  # cut short by a kill: written again
                record = self._record(number, line)
                if record is not None:
                    if record["row"] <= tally.last_row:
                        raise self._foreign(number)
                    tally.add(record["row"], record)
                end += len(line)
        return tally, end

    def _record(self, number: int, line: bytes) -> dict[str, Any] | None:
        """One line of the file read back (``None`` for the CSV header)."""
        try:
            text = line.decode("utf-8").rstrip("\n")
            if self.format == "csv":
                fields = next(csv.reader([text], strict=True))
                if number == 1:
                    if tuple(fields) != RESULT_FIELDS:
                        raise ValueError("not our header")
                    return None
                record: Any = dict(zip(RESULT_FIELDS, fields, strict=True))
                record["row"] = int(record["row"])
            else:
                record = json.loads(text)
        except (ValueError, csv.Error, StopIteration):
            raise self._foreign(number) from None
        if not (
            isinstance(record, dict)
            and isinstance(record.get("row"), int)
            and isinstance(record.get("account_id"), str)
            and (
                record.get("error")
                or (record.get("action") in _ACTIONS and record.get("reason") in _REASONS)
            )
        ):
            raise self._foreign(number)
        return record

    @staticmethod
    def _foreign(number: int) -> ConfigurationError:
        return ConfigurationError(
            f"the results file's line {number} is not a sweep result in order: "
            "it is not this command's output (use another --out)"
        )
