"""Deactivation feeds: files of "this number changed on D", stored as facts.

A feed row is recorded with :meth:`Guard.record_change`, so it becomes the same
fact a provider's answer would (DESIGN §9): later checks bound before ``D``
step up without a lookup, and an earlier date never replaces a later one.

The rules, which the tests hold:

- **Streaming.** Lines are read one at a time, at most :data:`MAX_LINE_BYTES`
  each, from the file or from each member of a ZIP archive in turn; nothing
  grows with the file (the report keeps the first :data:`MAX_REPORTED_ERRORS`
  row errors and counts the rest).
- **A bad row never stops a feed.** It becomes a :class:`RowError` (its line
  number and a reason that never shows the number) and the next row is read.
  Only a file that cannot be opened raises; one that breaks off (a corrupt
  archive) ends with a row error saying where.
- **Idempotent.** Recording merges monotonically, so ingesting a file twice
  leaves the cache as once and gives the same report.

Formats (one row a line; blank lines and lines starting with ``#`` are passed
over; a first row without a digit is a header; a row's line number counts every
line, in archive order across the members of a ZIP archive):

``twilio``
    Twilio's Deactivations file (``GET /v1/Deactivations?Date=YYYY-MM-DD``
    redirects to a ``.txt`` of the US numbers deactivated that day).  Twilio
    documents the file only as that list, so the layout is an assumption: the
    number first (``+1XXXXXXXXXX``, ``1XXXXXXXXXX`` or ten NANP digits), then
    optionally the date, separated by a comma, tab, ``|``, ``;`` or spaces.
``telesign``
    Telesign's Deactivated Numbers files (``GET /download/{file_name}`` from
    ``deact-api.telesign.com``, one archive a carrier a day, e.g.
    ``att-deacts_20210719.zip``); the archive or a member taken out of it.  The
    member layout is not published, so it is assumed: digits with the country
    code and no ``+`` (Telesign's number form), then optionally the date.
``csv``
    One number and a date a row: ``phone,date[,region]``, as written in any
    format the Guard parses (national numbers need a region: the row's, the
    ``region`` given to :func:`ingest`, or the Guard's ``default_region``).

A date is ``YYYY-MM-DD``, ``YYYYMMDD`` or an ISO 8601 timestamp (with an
offset: its UTC date; without one: its calendar date).  Where a ``twilio`` or
``telesign`` row has no date, the file's day stands in: ``on`` (the CLI's
``--date``), else a date in the file's (or the member's) name.  A file's day is
the day it was published, never earlier than the deactivations it lists, so a
late date asks for extra verification rather than allowing a login.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import logging
import os
import re
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import IO, Any, Final, Protocol

import attrs

from ._dates import utc_date
from ._phone import check_region
from .exceptions import ConfigurationError, InvalidInput

__all__ = [
    "FORMATS",
    "MAX_LINE_BYTES",
    "MAX_REPORTED_ERRORS",
    "FeedRow",
    "IngestReport",
    "RowError",
    "ingest",
    "read_feed",
]

logger = logging.getLogger("recyclecheck")

#: The formats :func:`read_feed` and :func:`ingest` read.
FORMATS: Final = ("csv", "telesign", "twilio")
#: The longest line read; a longer one is a row error (and is skipped without being held).
MAX_LINE_BYTES: Final = 1024
#: How many row errors a report keeps (it counts them all).
MAX_REPORTED_ERRORS: Final = 100

_BOM: Final = b"\xef\xbb\xbf"
_ZIP_MAGIC: Final = (b"PK\x03\x04", b"PK\x05\x06")
#: The separators of a ``twilio`` or ``telesign`` row.
_SPLIT = re.compile(r"\s*[,;|\t]\s*|\s+")
_NUMBER = re.compile(r"\+?[0-9]{7,15}")
#: A date in a file name, standing alone (not inside a longer run of digits).
_NAME_DATE = re.compile(r"(?<![0-9])([0-9]{4})-?([0-9]{2})-?([0-9]{2})(?![0-9])")


def _masked_phone(phone: str) -> str:
    digits = [char for char in phone if char.isdigit()]
    return f"<{len(digits)} digits, ending {''.join(digits[-2:])}>" if digits else "<no digits>"


@attrs.frozen(repr=False)
class FeedRow:
    """One row of a feed: ``phone`` changed hands (or was deactivated) on ``on``.

    ``phone`` is as the file wrote it (checked when recorded); ``region`` reads
    a national number (``None``: the ingest's or the Guard's default); ``row``
    is the line it came from, for reports.  Its ``repr`` withholds the number.
    """

    phone: str = attrs.field(validator=attrs.validators.instance_of(str))
    on: dt.date = attrs.field(validator=attrs.validators.instance_of(dt.date))
    region: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(str))
    )
    row: int | None = attrs.field(default=None, kw_only=True)

    def __repr__(self) -> str:
        return (
            f"FeedRow(phone={_masked_phone(self.phone)}, on={self.on.isoformat()}, "
            f"region={self.region!r}, row={self.row!r})"
        )


@attrs.frozen
class RowError:
    """A row that could not be read or recorded: its line number and why (never the number)."""

    row: int
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.reason}"


@attrs.frozen
class IngestReport:
    """What :func:`ingest` did.

    ``read`` rows (blank, comment and header lines are not rows), of which
    ``recorded`` became facts and ``skipped`` did not (``read == recorded +
    skipped``); ``errors`` holds why, for the first skipped rows in file order
    (``ingest(max_errors=...)``, :data:`MAX_REPORTED_ERRORS` by default).
    """

    read: int
    recorded: int
    skipped: int
    errors: tuple[RowError, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every row read was recorded."""
        return self.skipped == 0

    @property
    def errors_truncated(self) -> bool:
        """True when more rows were skipped than ``errors`` lists."""
        return self.skipped > len(self.errors)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values."""
        return {
            "read": self.read,
            "recorded": self.recorded,
            "skipped": self.skipped,
            "errors": [{"row": error.row, "reason": error.reason} for error in self.errors],
            "errors_truncated": self.errors_truncated,
        }


class _Recorder(Protocol):
    """What :func:`ingest` needs of a Guard."""

    def record_change(
        self, phone: str, *, on: dt.date | dt.datetime, region: str | None = None
    ) -> None: ...


# -- dates ------------------------------------------------------------------------------


def parse_day(text: str) -> dt.date:
    """Read ``YYYY-MM-DD``, ``YYYYMMDD`` or an ISO 8601 timestamp as a calendar date.

    A timestamp with an offset gives its UTC date; one without, its own
    calendar date (providers speak in dates without a zone; the policy's
    one-day margin covers the difference).  Raises ``ValueError``.
    """
    value = text.strip()
    if len(value) == 8 and value.isascii() and value.isdigit():
        return dt.date(int(value[:4]), int(value[4:6]), int(value[6:]))
    if len(value) == 10:
        return dt.date.fromisoformat(value)
    if value[-1:] in ("Z", "z"):
        value = value[:-1] + "+00:00"
    moment = dt.datetime.fromisoformat(value)
    return moment.date() if moment.utcoffset() is None else utc_date(moment)


def date_in_name(name: str | None) -> dt.date | None:
    """The last valid ``YYYY-MM-DD`` or ``YYYYMMDD`` in a file name's last part, if any."""
    if not name:
        return None
    found = None
    for match in _NAME_DATE.finditer(os.path.basename(name)):
        with contextlib.suppress(ValueError):
            found = dt.date(*(int(part) for part in match.groups()))
    return found


def _day_option(on: object) -> dt.date | None:
    if on is None:
        return None
    if isinstance(on, dt.datetime):
        if on.utcoffset() is None:
            raise InvalidInput("on must be a date or an aware datetime")
        return utc_date(on)
    if isinstance(on, dt.date):
        return on
    raise InvalidInput(f"on must be a date or an aware datetime, not {type(on).__name__}")


# -- one row of each format -------------------------------------------------------------

_Parse = Callable[[str, int, "dt.date | None"], "FeedRow | RowError"]

_NO_DATE = "no date: the row has none, and neither on= (--date) nor the file name gives one"
_BAD_DATE = "the date is not YYYY-MM-DD, YYYYMMDD or an ISO 8601 timestamp"


def _row_day(fields: list[str], row: int, day: dt.date | None) -> dt.date | RowError:
    if len(fields) < 2:
        return day if day is not None else RowError(row, _NO_DATE)
    try:
        return parse_day(fields[1])
    except ValueError:
        return RowError(row, _BAD_DATE)


def _number_and_day(text: str, row: int, day: dt.date | None) -> tuple[str, dt.date] | RowError:
    """The number field and the day of a ``twilio`` or ``telesign`` row."""
    fields = _SPLIT.split(text)
    if len(fields) > 2:
        return RowError(row, f"expected a number and at most a date, found {len(fields)} fields")
    if not _NUMBER.fullmatch(fields[0]):
        return RowError(row, "the first field is not a number of 7 to 15 digits")
    when = _row_day(fields, row, day)
    return when if isinstance(when, RowError) else (fields[0], when)


def _twilio_row(text: str, row: int, day: dt.date | None) -> FeedRow | RowError:
    parsed = _number_and_day(text, row, day)
    if isinstance(parsed, RowError):
        return parsed
    number, when = parsed
    if number.startswith("+"):
        return FeedRow(number, when, row=row)
    if len(number) == 11 and number.startswith("1"):
        return FeedRow("+" + number, when, row=row)
    return FeedRow(number, when, "US", row=row)  # Twilio's file lists US numbers


def _telesign_row(text: str, row: int, day: dt.date | None) -> FeedRow | RowError:
    parsed = _number_and_day(text, row, day)
    if isinstance(parsed, RowError):
        return parsed
    number, when = parsed
    return FeedRow(number if number.startswith("+") else "+" + number, when, row=row)


def _csv_row(text: str, row: int, _day: dt.date | None) -> FeedRow | RowError:
    try:
        cells = [cell.strip() for cell in next(csv.reader((text,)))]
    except (csv.Error, StopIteration):
        return RowError(row, "not a CSV row")
    if len(cells) not in (2, 3):
        return RowError(row, f"expected phone,date[,region], found {len(cells)} fields")
    if not cells[0]:
        return RowError(row, "no phone number")
    try:
        when = parse_day(cells[1])
    except ValueError:
        return RowError(row, _BAD_DATE if cells[1] else "no date")
    try:
        region = check_region(cells[2] or None) if len(cells) == 3 else None
    except InvalidInput:
        return RowError(row, "the region is not a two-letter region code phonenumbers supports")
    return FeedRow(cells[0], when, region, row=row)


_PARSERS: Final[dict[str, _Parse]] = {
    "csv": _csv_row,
    "telesign": _telesign_row,
    "twilio": _twilio_row,
}


# -- reading lines ----------------------------------------------------------------------


def _read_line(stream: IO[Any]) -> bytes | str:
    return stream.readline(MAX_LINE_BYTES + 1)  # type: ignore[no-any-return]


def _ends_line(chunk: bytes | str) -> bool:
    return chunk.endswith(b"\n") if isinstance(chunk, bytes) else chunk.endswith("\n")


def _decoded(chunk: bytes | str, row: int) -> str | RowError:
    if isinstance(chunk, str):
        return chunk.lstrip("\ufeff") if row == 1 else chunk
    try:
        return (chunk.removeprefix(_BOM) if row == 1 else chunk).decode("utf-8")
    except UnicodeDecodeError:
        return RowError(row, "not UTF-8 text")


def _lines(stream: IO[Any], after: int) -> Generator[tuple[int, str] | RowError, None, int]:
    """Number (from ``after + 1``) and decode each line, holding one bounded line at a time.

    Returns the number of the last line.
    """
    row = after
    try:
        while chunk := _read_line(stream):
            row += 1
            if len(chunk) > MAX_LINE_BYTES and not _ends_line(chunk):
                while chunk and not _ends_line(chunk):  # drop the rest of the line unread
                    chunk = _read_line(stream)
                yield RowError(row, f"the line is longer than {MAX_LINE_BYTES} bytes")
                continue
            text = _decoded(chunk, row - after)
            yield text if isinstance(text, RowError) else (row, text)
    except Exception as exc:  # any failure to read (I/O, zlib, a bad archive) ends the file here
        row += 1
        yield RowError(row, f"the file could not be read from here on ({type(exc).__name__})")
    return row


def _member_rows(
    stream: IO[Any], parse: _Parse, day: dt.date | None, after: int = 0
) -> Generator[FeedRow | RowError, None, int]:
    """Parse one file or archive member (a header is its first row without a digit).

    Returns the number of its last line.
    """
    lines = _lines(stream, after)
    header_possible = True
    while True:
        try:
            item = next(lines)
        except StopIteration as end:
            return int(end.value)
        if isinstance(item, RowError):
            header_possible = False
            yield item
            continue
        row, text = item
        text = text.strip()
        if not text or text.startswith("#"):
            continue
        if header_possible:
            header_possible = False
            if not any(char.isdigit() for char in text):
                continue
        yield parse(text, row, day)


def _is_zip(stream: IO[Any]) -> bool:
    peek = getattr(stream, "peek", None)
    if callable(peek):
        head = peek(4)[:4]
    elif stream.seekable():
        position = stream.tell()
        head = stream.read(4)
        stream.seek(position)
    else:
        return False
    return isinstance(head, bytes) and head in _ZIP_MAGIC


def _archive_rows(
    stream: IO[bytes], name: str | None, parse: _Parse, on: dt.date | None
) -> Iterator[FeedRow | RowError]:
    import zipfile  # noqa: PLC0415 - only archives need it

    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, OSError, EOFError):
        raise ConfigurationError("the feed file is not a readable ZIP archive") from None
    last = 0
    with archive:
        for info in archive.infolist():
            if info.is_dir() or info.filename.startswith("__MACOSX/"):
                continue
            day = on if on is not None else (date_in_name(info.filename) or date_in_name(name))
            try:
                member = archive.open(info)
            except Exception as exc:
                last += 1
                yield RowError(last, f"an archive member could not be read ({type(exc).__name__})")
                continue
            with member:
                last = yield from _member_rows(member, parse, day, last)


def _file_rows(
    stream: IO[Any], name: str | None, parse: _Parse, on: dt.date | None
) -> Iterator[FeedRow | RowError]:
    if _is_zip(stream):
        yield from _archive_rows(stream, name, parse, on)
    else:
        yield from _member_rows(stream, parse, on if on is not None else date_in_name(name))


def _path_rows(
    path: str | os.PathLike[str], parse: _Parse, on: dt.date | None
) -> Iterator[FeedRow | RowError]:
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed by the with below, in this generator
    except OSError as exc:
        raise ConfigurationError(
            f"the feed file could not be opened ({exc.strerror or type(exc).__name__})"
        ) from None
    with stream:
        yield from _file_rows(stream, os.fspath(path), parse, on)


def _parser(format: str | None) -> _Parse:
    parse = _PARSERS.get(format) if isinstance(format, str) else None
    if parse is None:
        raise InvalidInput(f"format must be one of {', '.join(FORMATS)}")
    return parse


def read_feed(
    source: str | os.PathLike[str] | IO[bytes] | IO[str],
    *,
    format: str,
    on: dt.date | dt.datetime | None = None,
) -> Iterator[FeedRow | RowError]:
    """Stream the rows of a deactivation feed: a :class:`FeedRow` or a :class:`RowError` each.

    ``source`` is a path or an open file (binary or text); a ZIP archive is
    read member by member.  ``format`` is ``"twilio"``, ``"telesign"`` or
    ``"csv"`` (see the module docs for the layouts); ``on`` is the day of the
    rows that carry none (default: a date in the file name).  Numbers are not
    validated here but when recorded.

    Raises :class:`~recyclecheck.InvalidInput` for a bad ``format`` or ``on``
    (at once) and :class:`~recyclecheck.ConfigurationError` for a file that
    cannot be opened (on the first row).  The file is closed when the iterator
    is exhausted or closed.
    """
    parse = _parser(format)
    day = _day_option(on)
    if isinstance(source, (str, os.PathLike)):
        return _path_rows(source, parse, day)
    if callable(getattr(source, "readline", None)):
        name = getattr(source, "name", None)
        return _file_rows(source, name if isinstance(name, str) else None, parse, day)
    raise InvalidInput(f"source must be a path or an open file, not {type(source).__name__}")


# -- ingest -----------------------------------------------------------------------------


class _Tally:
    """Counts rows in constant memory: the first ``keep`` errors, a number for the rest."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.read = self.recorded = self.skipped = 0
        self.errors: list[RowError] = []

    def skip(self, error: RowError) -> None:
        self.skipped += 1
        if len(self.errors) < self.keep:
            self.errors.append(error)

    def report(self) -> IngestReport:
        return IngestReport(self.read, self.recorded, self.skipped, tuple(self.errors))


def _rows(
    source: object,
    format: str | None,
    on: dt.date | dt.datetime | None,
) -> Iterable[object]:
    """The rows of ``source``: a file read as ``format``, or the caller's own rows."""
    if isinstance(source, (str, os.PathLike)) or callable(getattr(source, "readline", None)):
        if format is None:
            raise InvalidInput(f"format= is needed to read a file: one of {', '.join(FORMATS)}")
        return read_feed(source, format=format, on=on)  # type: ignore[arg-type]
    if format is not None:
        _parser(format)
    _day_option(on)
    if isinstance(source, (bytes, bytearray)) or not isinstance(source, Iterable):
        raise InvalidInput("source must be a path, an open file or an iterable of FeedRow")
    return source


def ingest(
    guard: _Recorder,
    source: str | os.PathLike[str] | IO[bytes] | IO[str] | Iterable[FeedRow | RowError],
    *,
    format: str | None = None,
    on: dt.date | dt.datetime | None = None,
    region: str | None = None,
    max_errors: int = MAX_REPORTED_ERRORS,
) -> IngestReport:
    """Record every row of a deactivation feed with ``guard.record_change``; report what was done.

    ``source`` is a path or an open file read as ``format`` (``"twilio"``,
    ``"telesign"``, ``"csv"``) by :func:`read_feed`, or rows you built
    (:class:`FeedRow`; a :class:`RowError` among them counts as skipped).
    ``on`` is the day of the rows of a file that carry none; ``region`` reads
    national numbers in rows without their own (default: the Guard's
    ``default_region``); ``max_errors`` bounds the errors the report keeps.

    Streams in constant memory.  A row that cannot be read or recorded (a bad
    date, an invalid number...) is skipped and reported, never fatal; ingesting
    the same feed again gives the same facts and the same report.  Raises
    :class:`~recyclecheck.InvalidInput` for bad arguments,
    :class:`~recyclecheck.ConfigurationError` for a file that cannot be opened
    and :class:`~recyclecheck.CacheUnavailable` (from ``record_change``) when the
    cache stops answering: the rows before it are recorded, and ingesting the
    feed again is safe.
    """
    if isinstance(max_errors, bool) or not isinstance(max_errors, int) or max_errors < 0:
        raise InvalidInput("max_errors must be a non-negative int")
    default_region = check_region(region)
    tally = _Tally(max_errors)
    for position, item in enumerate(_rows(source, format, on), 1):
        tally.read += 1
        _record(guard, item, position, default_region, tally)
    report = tally.report()
    logger.info(
        "recyclecheck feed ingest: read=%d recorded=%d skipped=%d",
        report.read,
        report.recorded,
        report.skipped,
    )
    return report


def _record(
    guard: _Recorder,
    item: object,
    position: int,
    region: str | None,
    tally: _Tally,
) -> None:
    if isinstance(item, RowError):
        tally.skip(item)
        return
    if not isinstance(item, FeedRow):
        raise InvalidInput(
            f"rows must be FeedRow values, not {type(item).__name__} "
            "(pass text as an open file with format=)"
        )
    row = item.row if item.row is not None else position
    try:
        guard.record_change(
            item.phone, on=item.on, region=item.region if item.region is not None else region
        )
    except InvalidInput as exc:  # InvalidPhoneNumber too; their messages never hold the number
        tally.skip(RowError(row, str(exc)))
        return
    tally.recorded += 1
