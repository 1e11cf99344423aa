"""Sweeps on the app's own Celery: the input split into chunks, one task each.

Install ``recyclecheck[celery]``.  Importing this module does not import
Celery; only :func:`run_sweep` does (to wait for results).  Two calls::

    # in the module the workers load (celery -A proj worker)
    register_sweep_tasks(app, guard_factory=build_guard)

    # in the driver (a management command, a cron job, a beat task's caller)
    report = run_sweep(app, "/shared/accounts.csv", out_dir="/shared/sweep-0601",
                       out="/shared/sweep-0601.csv")

How it works, and the rules it keeps:

- **A chunk is a range of lines of the input file**, as byte offsets, never
  the rows themselves: :func:`run_sweep` reads the input once (line ends only,
  constant memory) and cuts it every ``chunk_size`` lines.  A task's arguments
  are the input's path, the chunk's line numbers and byte offsets, a keyed
  fingerprint of its bytes, and options: no phone number travels through the
  broker.  Each worker opens the input itself, so the input and ``out_dir``
  must be on a file system every worker and the driver see (the same path).
- **Each worker process builds its Guard once**, by calling ``guard_factory``
  on its first chunk (again after a fork), so a ``RedisCache`` and a
  ``RedisTokenBucket`` built there share facts and the provider's quota with
  every other worker and with the login servers.
- **One file per chunk, written atomically**: JSON Lines (a header naming the
  chunk, then one record per row) written to a temporary file in ``out_dir``
  that is renamed into place once complete.  A chunk whose file exists and
  names the same lines and bytes is finished: a re-run skips it without a
  task, and a worker given it again (a redelivery) returns at once.
- **The fingerprint** is an HMAC-SHA256 of the chunk's bytes under a random
  key kept in ``out_dir`` (:data:`KEY_FILE`, mode 0600); the worker checks the
  bytes it read against it, so an input edited between the plan and the
  read, or a worker that sees another file at the same path, fails the chunk
  instead of writing results for other rows.  It is keyed because a plain
  hash of a one-row chunk would be a hash of the number.
- **Constant memory per worker**: a chunk streams from the input through
  :meth:`Guard.sweep` into its file; nothing is held but the sweep's window.
- **The merge** (:func:`merge_results`, or ``run_sweep(..., out=...)``)
  streams the chunk files, in input order, into one results file in the
  format ``recyclecheck sweep --out`` writes (CSV or JSON Lines, by
  extension), also atomically.
- **Privacy**: task arguments and results, the worker's log lines and the
  files hold row numbers, account ids and masked numbers only; a row that
  cannot be read is recorded by its row number and a fixed phrase.  The
  files are created mode 0600.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import hmac
import io
import json
import logging
import math
import os
import secrets
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any, BinaryIO, Final

import attrs

from ._guard import MAX_TIMEOUT, Guard
from ._phone import check_region
from ._policy import Action, Reason
from ._sweep import (
    FORMATS,
    MAX_CONCURRENCY,
    MAX_LINE,
    ResultsFile,
    SweepResult,
    SweepRow,
    Tally,
    _csv_columns,
    _texts,
    format_of,
    read_rows,
)
from .exceptions import ConfigurationError, InvalidInput, RecycleCheckError

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_TIMEOUT",
    "KEY_FILE",
    "TASK_NAME",
    "SweepReport",
    "merge_results",
    "register_sweep_tasks",
    "run_sweep",
]

logger = logging.getLogger("recyclecheck")

#: The name :func:`register_sweep_tasks` gives the chunk task, and :func:`run_sweep` sends.
TASK_NAME: Final = "recyclecheck.sweep_chunk"
#: Input lines per chunk (and so per task) unless ``chunk_size`` says otherwise.
DEFAULT_CHUNK_SIZE: Final = 1000
#: The file in ``out_dir`` holding the key of the chunks' fingerprints.
KEY_FILE: Final = ".recyclecheck-sweep-key"
#: The default deadline of each check in a chunk: nobody waits on a sweep's checks.
DEFAULT_TIMEOUT: Final = 5.0

_MAGIC: Final = "recyclecheck-sweep-chunk"
_VERSION: Final = 1
_KEY_BYTES: Final = 32
_HEADER_MAX: Final = 4096
#: What stands in for the CSV header in a chunk of an input without one: a line that is
#: no header (so the chunk's own first line is read as data) and is never reported.
_NO_HEADER: Final = b",,\n"
_BOM: Final = b"\xef\xbb\xbf"


# -- the plan: chunks of lines, as byte ranges ----------------------------------------


@attrs.frozen
class _Chunk:
    """Lines ``first_line`` to ``last_line`` of the input: bytes ``start`` to ``end``."""

    first_line: int
    last_line: int
    start: int
    end: int
    fingerprint: str

    @property
    def file_name(self) -> str:
        return f"rows-{self.first_line:09d}-{self.last_line:09d}.jsonl"

    @property
    def label(self) -> str:
        return f"rows {self.first_line}-{self.last_line}"


@attrs.frozen
class _Plan:
    """The input, its format, where its CSV header is, and its chunks."""

    input: str
    format: str
    header: tuple[int, int] | None  # the header line's bytes, for a CSV that has one
    header_line: int  # 0 without one
    chunks: tuple[_Chunk, ...]


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be a positive int")
    return value


def _input_format(path: str, input_format: str | None) -> str:
    if input_format is None:
        found = format_of(path)
        if found is None:
            raise ConfigurationError(
                "the input's extension names no format (.csv, .jsonl, .ndjson): pass input_format"
            )
        return found
    if input_format not in FORMATS:
        raise ConfigurationError(f"input_format must be one of {', '.join(FORMATS)}")
    return input_format


def _ignore(_number: int, _reason: str) -> None:
    """Bad rows are the chunks' to report, not the plan's."""


def _csv_header_line(path: str) -> int:
    """The line number of the input's CSV header; 0 when its first row is data.

    Decided as :func:`read_rows` decides: the first line that is readable text
    and not blank is a header when it names a column.  Raises
    :class:`ConfigurationError` for a header that lacks a required column.
    """
    with open(path, "rb") as handle:
        for number, text in _texts(handle, _ignore):
            try:
                fields = next(csv.reader([text], strict=True))
            except csv.Error:
                return 0
            return number if _csv_columns(fields) is not None else 0
    return 0


def _line_ends(handle: BinaryIO, on_piece: Callable[[bytes], object]) -> Iterator[int]:
    """The offset after each line, the lines numbered as :func:`read_rows` numbers them.

    A line longer than :data:`MAX_LINE` is read in pieces, never held whole;
    ``on_piece`` sees every byte, in order.
    """
    position, pending = 0, False
    while piece := handle.readline(MAX_LINE + 1):
        on_piece(piece)
        position += len(piece)
        pending = not piece.endswith(b"\n") and len(piece) > MAX_LINE
        if not pending:
            yield position
    if pending:
        yield position


class _Cutter:
    """Cuts an input's lines into chunks of ``size`` lines, fingerprinting each chunk's bytes."""

    def __init__(self, key: bytes, size: int) -> None:
        self._key, self._size = key, size
        self._chunks: list[_Chunk] = []
        self._lines = self._start = self._end = 0
        self._first = 1
        self._digest = hmac.new(key, digestmod=hashlib.sha256)

    def piece(self, data: bytes) -> None:
        self._digest.update(data)

    def line(self, end: int) -> tuple[int, int]:
        """Count one line ending at ``end``; its number and where it starts."""
        self._lines += 1
        start, self._end = self._end, end
        if self._lines - self._first + 1 == self._size:
            self._cut()
        return self._lines, start

    def finish(self) -> tuple[_Chunk, ...]:
        if self._lines >= self._first:
            self._cut()
        return tuple(self._chunks)

    def _cut(self) -> None:
        fingerprint = self._digest.hexdigest()
        self._chunks.append(_Chunk(self._first, self._lines, self._start, self._end, fingerprint))
        self._first, self._start = self._lines + 1, self._end
        self._digest = hmac.new(self._key, digestmod=hashlib.sha256)


def _plan(path: str, *, chunk_size: int, input_format: str | None, key: bytes) -> _Plan:
    """Read the input once (line ends only) and cut it into chunks of ``chunk_size`` lines."""
    fmt = _input_format(path, input_format)
    cutter = _Cutter(key, chunk_size)
    header: tuple[int, int] | None = None
    try:
        header_line = _csv_header_line(path) if fmt == "csv" else 0
        with open(path, "rb") as handle:
            for end in _line_ends(handle, cutter.piece):
                number, start = cutter.line(end)
                if number == header_line:
                    header = (start, end)
    except OSError as exc:
        raise ConfigurationError(f"the input cannot be read ({exc.strerror})") from None
    return _Plan(path, fmt, header, header_line, cutter.finish())


# -- files: the key, the chunk files, atomic writes -------------------------------------


def _key(out_dir: str, *, create: bool) -> bytes:
    """The fingerprint key in ``out_dir``, made (atomically, mode 0600) when asked to."""
    path = os.path.join(out_dir, KEY_FILE)
    try:
        if create and not os.path.exists(path):
            with _replacing(path, link=True) as temp, open(temp, "wb") as handle:
                handle.write(secrets.token_bytes(_KEY_BYTES))
        with open(path, "rb") as handle:
            key = handle.read(_KEY_BYTES + 1)
    except OSError as exc:
        raise ConfigurationError(
            f"out_dir's {KEY_FILE} cannot be {'written' if create else 'read'} "
            f"({exc.strerror}): out_dir must be a directory the driver and every worker share"
        ) from None
    if len(key) != _KEY_BYTES:
        raise ConfigurationError(f"out_dir's {KEY_FILE} is not a sweep key: use another out_dir")
    return key


@contextlib.contextmanager
def _replacing(path: str, *, link: bool = False) -> Iterator[str]:
    """A temporary file beside ``path`` (mode 0600) that becomes ``path`` once complete.

    The temporary file is synced, then renamed over ``path``; with ``link``,
    linked to it instead, so that a ``path`` made meanwhile by someone else wins.
    On an error the temporary file is removed and ``path`` is left as it was.
    """
    directory, name = os.path.split(path)
    fd, temp = tempfile.mkstemp(dir=directory or ".", prefix=f".{name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield temp
        with open(temp, "rb") as written:
            os.fsync(written.fileno())
        if link:
            try:
                os.link(temp, path)
            except FileExistsError:
                pass
            except OSError:  # a file system without hard links: the last one made wins
                os.replace(temp, path)
                return
            os.unlink(temp)
        else:
            os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _chunk_header(chunk: _Chunk) -> dict[str, Any]:
    return {"recyclecheck": _MAGIC, "version": _VERSION, **attrs.asdict(chunk)}


def _finished(path: str, chunk: _Chunk) -> bool:
    """Whether ``path`` is the results file of this very chunk (its lines and bytes)."""
    try:
        with open(path, "rb") as handle:
            first = handle.readline(_HEADER_MAX)
        return bool(json.loads(first) == _chunk_header(chunk))
    except (OSError, ValueError):
        return False


# -- the task: one chunk, on a worker ----------------------------------------------------


@attrs.frozen
class _Job:
    """What one task is asked: the chunk, where its input and results live, the options.

    Only row numbers, offsets, paths and options: never a row.
    """

    input: str
    format: str
    header: tuple[int, int] | None
    header_line: int
    chunk: _Chunk
    out_dir: str
    region: str | None
    concurrency: int
    timeout: float
    rate: float | None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> _Job:
        try:
            header = data["header"]
            job = cls(
                input=str(data["input"]),
                format=str(data["format"]),
                header=None if header is None else (int(header[0]), int(header[1])),
                header_line=int(data["header_line"]),
                chunk=_Chunk(**data["chunk"]),
                out_dir=str(data["out_dir"]),
                region=data["region"],
                concurrency=int(data["concurrency"]),
                timeout=float(data["timeout"]),
                rate=None if data["rate"] is None else float(data["rate"]),
            )
        except (KeyError, IndexError, TypeError, ValueError):
            raise ConfigurationError("the task's job is not a recyclecheck sweep chunk") from None
        if job.format not in FORMATS:
            raise ConfigurationError("the task's job is not a recyclecheck sweep chunk")
        return job


class _Span(io.RawIOBase):
    """One line of ``prefix``, then bytes ``start`` to ``end`` of the input, fingerprinted."""

    def __init__(self, raw: io.FileIO, chunk: _Chunk, prefix: bytes, key: bytes) -> None:
        super().__init__()
        raw.seek(chunk.start)
        self._raw, self._left, self._prefix = raw, chunk.end - chunk.start, prefix
        self._digest = hmac.new(key, digestmod=hashlib.sha256)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._prefix:
            size = min(len(view), len(self._prefix))
            view[:size], self._prefix = self._prefix[:size], self._prefix[size:]
            return size
        size = min(len(view), self._left)
        if size <= 0:
            return 0
        got = self._raw.readinto(view[:size]) or 0  # 0: the file shrank; the check fails
        self._digest.update(view[:got])
        self._left -= got
        return got

    def read_as_planned(self, fingerprint: str) -> bool:
        """Read what is left of the range; whether the bytes were the ones planned."""
        while self._left > 0 and (data := self._raw.read(min(self._left, 1 << 16))):
            self._digest.update(data)
            self._left -= len(data)
        return self._left == 0 and hmac.compare_digest(self._digest.hexdigest(), fingerprint)


def _prefix(raw: io.FileIO, job: _Job) -> bytes:
    """The line a chunk that does not start the file is read after.

    The first chunk is read as :func:`read_rows` reads a whole file.  Any
    other is read after one line that puts the reader in the same state: the
    CSV header (so the columns are the file's), a line that is no header (a
    CSV without one: the chunk's first line is then data), or a blank line.
    """
    if job.chunk.start == 0:
        return b""
    if job.format == "jsonl":
        return b"\n"
    if job.header is None:
        return _NO_HEADER
    start, end = job.header
    raw.seek(start)
    line = (raw.read(end - start) or b"").removeprefix(_BOM)
    return line if line.endswith(b"\n") else line + b"\n"


class _ChunkSweep:
    """Sweeps one chunk's rows with the worker's Guard, writing each record to ``out``."""

    def __init__(self, job: _Job, out: IO[str]) -> None:
        self.job, self.out = job, out
        self.tally = Tally()
        self.bad_rows = 0
        # Line n of the stream is line n + shift of the file (a chunk after the first is
        # read after one prefix line, so its first line is the stream's second).
        self._shift = job.chunk.first_line - (2 if job.chunk.start else 1)
        self._numbers: deque[int] = deque()  # the row numbers of the sweep's window

    def run(self, guard: Guard, stream: BinaryIO) -> None:
        job = self.job
        swept = guard.sweep(
            self._rows(stream), concurrency=job.concurrency, timeout=job.timeout, rate=job.rate
        )
        try:
            for result in swept:
                number = self._numbers.popleft()
                record = {"row": number, **result.to_dict()}
                self._write(record)
                self.tally.add(number, record)
        finally:
            swept.close()  # type: ignore[attr-defined]  # the sweep is a generator

    def _rows(self, stream: BinaryIO) -> Iterator[SweepRow]:
        region = self.job.region
        for number, row in read_rows(stream, format=self.job.format, on_bad_row=self._bad_row):
            self._numbers.append(number + self._shift)
            yield row if region is None or row.region is not None else _with_region(row, region)

    def _bad_row(self, number: int, reason: str) -> None:
        number += self._shift
        if number < self.job.chunk.first_line or number == self.job.header_line:
            return  # the prefix line, or the header read again as data
        self.bad_rows += 1
        self._write({"row": number, "bad_row": reason})

    def _write(self, record: Mapping[str, Any]) -> None:
        self.out.write(json.dumps(record, ensure_ascii=False) + "\n")

    def summary(self) -> dict[str, Any]:
        """What the task returns: counts only."""
        return _summary(self.job.chunk, self.tally, self.bad_rows)


def _with_region(row: SweepRow, region: str) -> SweepRow:
    return attrs.evolve(row, region=region)


def _summary(chunk: _Chunk, tally: Tally | None, bad_rows: int = 0) -> dict[str, Any]:
    """What a task returns (``tally`` None: the chunk was done already): counts only."""
    skipped, tally = tally is None, tally if tally is not None else Tally()
    return {
        "first_line": chunk.first_line,
        "last_line": chunk.last_line,
        "skipped": skipped,
        "results": tally.results,
        "errors": tally.errors,
        "bad_rows": bad_rows,
        "actions": dict(sorted(tally.actions.items())),
        "reasons": dict(sorted(tally.reasons.items())),
    }


class _GuardPerProcess:
    """The worker process's Guard: built by ``factory`` on first use, again after a fork."""

    def __init__(self, factory: Callable[[], Guard]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._guard: Guard | None = None
        self._pid = 0

    def get(self) -> Guard:
        pid = os.getpid()
        with self._lock:
            if self._guard is None or self._pid != pid:
                self._guard, self._pid = _built(self._factory), pid
            return self._guard

    def close(self, **_signal: object) -> None:
        """Close this process's Guard (connected to Celery's ``worker_process_shutdown``)."""
        with self._lock:
            guard, self._guard = self._guard, None
        if guard is not None and self._pid == os.getpid():
            guard.close()


def _built(factory: Callable[[], Guard]) -> Guard:
    guard = factory()
    if not isinstance(guard, Guard):
        raise ConfigurationError(
            f"guard_factory must return a recyclecheck.Guard, not {type(guard).__name__}"
        )
    if not getattr(guard.cache, "shared", False):
        logger.warning(
            "recyclecheck celery sweep: the Guard's cache is not shared (a RedisCache is): "
            "each worker process keeps its own facts"
        )
    return guard


def _run_chunk(job: _Job, guards: _GuardPerProcess) -> dict[str, Any]:
    """Sweep one chunk into its results file; its counts (or, if already done, none)."""
    chunk = job.chunk
    target = os.path.join(job.out_dir, chunk.file_name)
    if _finished(target, chunk):
        logger.info("recyclecheck celery sweep: %s were done already", chunk.label)
        return _summary(chunk, None)
    guard = guards.get()
    key = _key(job.out_dir, create=False)
    try:
        raw = io.FileIO(job.input, "r")
    except OSError as exc:
        raise ConfigurationError(
            f"the input cannot be read on this worker ({exc.strerror}): it must be on a "
            "file system the driver and every worker share"
        ) from None
    with raw:
        sweep = _sweep_into(target, job, raw, guard, key)
    logger.info(
        "recyclecheck celery sweep: %s: %d results, %d could not be checked, %d bad rows",
        chunk.label,
        sweep.tally.results,
        sweep.tally.errors,
        sweep.bad_rows,
    )
    return sweep.summary()


def _sweep_into(target: str, job: _Job, raw: io.FileIO, guard: Guard, key: bytes) -> _ChunkSweep:
    """Sweep the chunk into a temporary file that becomes ``target`` once it is all there."""
    try:
        with _replacing(target) as temp, open(temp, "w", encoding="utf-8") as out:
            out.write(json.dumps(_chunk_header(job.chunk)) + "\n")
            span = _Span(raw, job.chunk, _prefix(raw, job), key)
            sweep = _ChunkSweep(job, out)
            with io.BufferedReader(span) as stream:
                sweep.run(guard, stream)
            if not span.read_as_planned(job.chunk.fingerprint):
                raise ConfigurationError(
                    f"the input's {job.chunk.label} on this worker are not the bytes planned: "
                    "the input changed since the sweep started, or this worker sees another "
                    "file at its path (run the sweep again)"
                )
    except OSError as exc:
        raise ConfigurationError(
            f"reading the input or writing out_dir failed on this worker ({exc.strerror})"
        ) from None
    return sweep


def register_sweep_tasks(
    app: Any,
    *,
    guard_factory: Callable[[], Guard],
    name: str = TASK_NAME,
    **task_options: Any,
) -> Any:
    """Register the chunk task on the Celery ``app``; returns the task.

    Call it where the workers load the app (``celery -A proj worker``).
    ``guard_factory`` takes no arguments and returns the :class:`Guard` a
    worker process sweeps with; each process calls it once, on its first
    chunk, so build the Guard there from the environment or the app's
    configuration, with a :class:`RedisCache` (``RedisCache.from_url``) and,
    for a provider's rate limit, a :class:`RedisTokenBucket`
    (``RedisTokenBucket.from_url``), so every worker shares the facts and the
    quota.  Its ``max_workers`` must be at least the sweep's ``concurrency``.
    The Guard is closed at the process's ``worker_process_shutdown``.

    ``name`` is the task's name (:data:`TASK_NAME`; give :func:`run_sweep`
    the same ``task_name``).  ``task_options`` go to ``app.task`` (``queue``,
    ``time_limit``...); ``acks_late`` is ``True`` unless given: a chunk whose
    worker was lost is delivered again, and a chunk is safe to run twice.
    The task takes one argument, ``job``, a dict of row numbers, byte
    offsets, paths and options, and returns counts: it never carries a row.
    """
    if not callable(guard_factory):
        raise ConfigurationError("guard_factory must be callable (it returns a Guard)")
    if not isinstance(name, str) or not name:
        raise ConfigurationError("name must be a non-empty str (the task's name)")
    guards = _GuardPerProcess(guard_factory)

    def sweep_chunk(job: dict[str, Any]) -> dict[str, Any]:
        """Sweep one chunk of an input file into its results file (see recyclecheck.celery)."""
        return _run_chunk(_Job.from_dict(job), guards)

    task = app.task(name=name, **{"acks_late": True, **task_options})(sweep_chunk)
    with contextlib.suppress(ImportError):  # an app that is not Celery's (a test double)
        from celery.signals import worker_process_shutdown  # noqa: PLC0415 - the optional extra

        worker_process_shutdown.connect(guards.close, weak=False)
    return task


# -- the driver: plan, send, wait, merge ----------------------------------------------


@attrs.frozen
class SweepReport:
    """What :func:`run_sweep` (or :func:`merge_results`) did.

    ``chunks`` the input was cut into; ``sent`` as tasks by this run;
    ``skipped``, finished by an earlier run (for :func:`merge_results`: all
    of them); ``failed``, one line per chunk that did not finish (its rows
    and why: a task's error, or not done within ``wait``), which the same
    call made again sends again.  When the results were merged, ``out`` is
    the results file and the rest counts what it holds: ``accounts``,
    ``actions`` and ``reasons`` (by value), ``errors`` (rows that could not
    be checked) and ``bad_rows`` (rows that could not be read, passed to
    ``on_bad_row``); otherwise ``out`` is ``None`` and the counts are 0.
    """

    chunks: int
    sent: int
    skipped: int
    failed: tuple[str, ...] = ()
    out: str | None = None
    accounts: int = 0
    actions: Mapping[str, int] = attrs.field(factory=dict)
    reasons: Mapping[str, int] = attrs.field(factory=dict)
    errors: int = 0
    bad_rows: int = 0

    @property
    def complete(self) -> bool:
        """Every chunk finished (and, with ``out``, the results were merged)."""
        return not self.failed


def _options(
    region: str | None, concurrency: int, timeout: float | dt.timedelta, rate: float | None
) -> dict[str, Any]:
    """The per-chunk sweep options, checked before anything is sent."""
    try:
        region = check_region(region)
    except InvalidInput:
        raise ConfigurationError("region is not a region phonenumbers knows, e.g. 'CN'") from None
    if (
        isinstance(concurrency, bool)
        or not isinstance(concurrency, int)
        or not 1 <= concurrency <= MAX_CONCURRENCY
    ):
        raise ConfigurationError(f"concurrency must be an int from 1 to {MAX_CONCURRENCY}")
    seconds = timeout.total_seconds() if isinstance(timeout, dt.timedelta) else timeout
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise ConfigurationError("timeout must be a number of seconds or a timedelta")
    if not 0 < seconds <= MAX_TIMEOUT:
        raise ConfigurationError(f"timeout must be between 0 and {MAX_TIMEOUT:g} seconds")
    if rate is not None and (
        isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < math.inf
    ):
        raise ConfigurationError("rate must be a positive number of checks a second")
    return {"region": region, "concurrency": concurrency, "timeout": float(seconds), "rate": rate}


def _wait_seconds(wait: float | dt.timedelta | None) -> float | None:
    if wait is None:
        return None
    value = wait.total_seconds() if isinstance(wait, dt.timedelta) else wait
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError("wait must be a positive number of seconds, a timedelta or None")
    return float(value)


def _paths(input_path: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> tuple[str, str]:
    """Absolute paths (the workers' working directory is not the driver's)."""
    return os.path.abspath(os.fspath(input_path)), os.path.abspath(os.fspath(out_dir))


def _out(out: str | os.PathLike[str] | None, input_path: str) -> tuple[str, str] | None:
    if out is None:
        return None
    path = os.path.abspath(os.fspath(out))
    fmt = format_of(path)
    if fmt is None:
        raise ConfigurationError("out's extension names no format: .csv, .jsonl or .ndjson")
    if path == input_path:
        raise ConfigurationError("out is the input: write the results elsewhere")
    return path, fmt


def _check_backend(app: Any) -> None:
    from celery.backends.base import DisabledBackend  # noqa: PLC0415 - the optional extra

    if isinstance(app.backend, DisabledBackend):
        raise ConfigurationError(
            "run_sweep waits for the chunks' results: give the Celery app a result backend "
            "(e.g. backend='redis://...')"
        )


def run_sweep(
    app: Any,
    input_path: str | os.PathLike[str],
    *,
    out_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    input_format: str | None = None,
    region: str | None = None,
    concurrency: int = 8,
    timeout: float | dt.timedelta = DEFAULT_TIMEOUT,
    rate: float | None = None,
    wait: float | dt.timedelta | None = None,
    queue: str | None = None,
    task_name: str = TASK_NAME,
    on_bad_row: Callable[[int, str], object] | None = None,
) -> SweepReport:
    """Sweep ``input_path`` on the Celery ``app``'s workers: one task per chunk; then merge.

    ``input_path`` is a CSV or JSON Lines file of ``account_id,phone,bound_at
    [,region]`` rows (as ``recyclecheck sweep`` reads; ``input_format`` when
    the extension does not say), on a file system every worker sees at the
    same path.  It is cut every ``chunk_size`` lines; each chunk whose results
    file is not yet in ``out_dir`` (made if missing; shared too) is sent as one
    task (to ``queue``, if given).  Then the call waits, at most ``wait``
    seconds if given, for every task, and when all are done and ``out`` is
    given, merges the chunks into ``out`` (see :func:`merge_results`).

    On a worker, each chunk is swept with that process's Guard (see
    :func:`register_sweep_tasks`): ``concurrency`` checks at once per worker
    process, each with a deadline of ``timeout`` seconds, at most ``rate``
    checks a second per chunk being swept (a fleet-wide limit is a
    ``RedisTokenBucket`` on the Guard); ``region`` applies to rows without one.

    Call it again with the same arguments to go on after a stop, a failed
    chunk or a ``wait`` that ran out: finished chunks are skipped.  Keep the
    input the same (appending rows is fine: only the last chunk is redone).
    Raises :class:`~recyclecheck.ConfigurationError` for bad options, an
    input that cannot be read or whose CSV header lacks a column, and an app
    without a result backend, before sending anything.
    """
    options = _options(region, concurrency, timeout, rate)
    deadline_in = _wait_seconds(wait)
    path, directory = _paths(input_path, out_dir)
    target = _out(out, path)
    size = _positive_int(chunk_size, "chunk_size")
    _check_backend(app)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"out_dir cannot be made ({exc.strerror})") from None
    plan = _plan(path, chunk_size=size, input_format=input_format, key=_key(directory, create=True))
    sent: list[tuple[_Chunk, Any]] = []
    for chunk in plan.chunks:
        if not _finished(os.path.join(directory, chunk.file_name), chunk):
            job = _Job(
                path, plan.format, plan.header, plan.header_line, chunk, directory, **options
            )
            sent.append(
                (chunk, app.send_task(task_name, kwargs={"job": job.to_dict()}, queue=queue))
            )
    logger.info(
        "recyclecheck celery sweep: %d chunks, %d sent, %d done already",
        len(plan.chunks),
        len(sent),
        len(plan.chunks) - len(sent),
    )
    failed = _wait(sent, deadline_in, directory)
    report = SweepReport(len(plan.chunks), len(sent), len(plan.chunks) - len(sent), failed)
    if target is None or failed:
        return report
    return attrs.evolve(report, **_merge(plan, directory, *target, on_bad_row))


def _wait(sent: list[tuple[_Chunk, Any]], wait: float | None, directory: str) -> tuple[str, ...]:
    """Wait for every task (until ``wait`` runs out); one line per chunk that did not finish."""
    from celery.exceptions import TimeoutError as NotYet  # noqa: PLC0415 - the optional extra

    deadline = None if wait is None else time.monotonic() + wait
    failed: list[str] = []
    for chunk, result in sent:
        # Celery reads a timeout of 0 as "no timeout": what is left is never less than 50 ms.
        left = None if deadline is None else max(0.05, deadline - time.monotonic())
        try:
            value = result.get(timeout=left, propagate=False)
        except NotYet:
            failed.append(f"{chunk.label}: not done within wait")
            continue
        if result.failed():
            failed.append(f"{chunk.label}: {_described(value)}")
        elif not _finished(os.path.join(directory, chunk.file_name), chunk):
            failed.append(
                f"{chunk.label}: the worker's results file is not in out_dir here (out_dir "
                "must be a file system the driver and every worker share)"
            )
        result.forget()
    for line in failed:
        logger.warning("recyclecheck celery sweep: %s", line)
    return tuple(failed)


def _described(error: object) -> str:
    """A task's error for the report: our messages (which never hold a number), else the type."""
    if isinstance(error, RecycleCheckError):
        return f"{type(error).__name__}: {error}"
    return type(error).__name__


# -- the merge --------------------------------------------------------------------------


def merge_results(
    input_path: str | os.PathLike[str],
    *,
    out_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    input_format: str | None = None,
    on_bad_row: Callable[[int, str], object] | None = None,
) -> SweepReport:
    """Merge the chunk files of a finished sweep into one results file, in input order.

    Takes what :func:`run_sweep` took (the same ``chunk_size``); ``out``'s
    extension picks the format (``.csv`` or ``.jsonl``), and the file is what
    ``recyclecheck sweep --out`` writes: one line per account, with its row
    number, in input order.  It is written to a temporary file renamed over
    ``out`` once complete (mode 0600), so merging again is safe.  Each row
    that could not be read is passed to ``on_bad_row(row, reason)`` (by
    default logged as a warning); the reason never holds the number.  Raises
    :class:`~recyclecheck.ConfigurationError` when a chunk has no results
    file (or one from another input or ``chunk_size``): run the sweep again.
    """
    path, directory = _paths(input_path, out_dir)
    target = _out(out, path)
    if target is None:
        raise ConfigurationError("out is required: the results file to write")
    size = _positive_int(chunk_size, "chunk_size")
    plan = _plan(
        path, chunk_size=size, input_format=input_format, key=_key(directory, create=False)
    )
    report = SweepReport(len(plan.chunks), 0, len(plan.chunks))
    return attrs.evolve(report, **_merge(plan, directory, *target, on_bad_row))


def _log_bad_row(number: int, reason: str) -> None:
    logger.warning("recyclecheck celery sweep: row %d: %s", number, reason)


def _merge(
    plan: _Plan,
    directory: str,
    out: str,
    out_format: str,
    on_bad_row: Callable[[int, str], object] | None,
) -> dict[str, Any]:
    """Stream every chunk's records into ``out`` (atomically); what the report says of them."""
    tally, bad_rows = Tally(), 0
    report_bad_row = on_bad_row if on_bad_row is not None else _log_bad_row
    try:
        with _replacing(out) as temp, ResultsFile(temp, format=out_format) as results:
            results.open()
            for chunk in plan.chunks:
                bad_rows += _copy_chunk(directory, chunk, results, tally, report_bad_row)
    except OSError as exc:
        raise ConfigurationError(f"the results could not be merged ({exc.strerror})") from None
    return {
        "out": out,
        "accounts": tally.results,
        "actions": dict(sorted(tally.actions.items())),
        "reasons": dict(sorted(tally.reasons.items())),
        "errors": tally.errors,
        "bad_rows": bad_rows,
    }


def _copy_chunk(
    directory: str,
    chunk: _Chunk,
    results: ResultsFile,
    tally: Tally,
    on_bad_row: Callable[[int, str], object],
) -> int:
    """Append one chunk's results to ``results``; the number of bad rows it recorded."""
    path = os.path.join(directory, chunk.file_name)
    if not _finished(path, chunk):
        raise ConfigurationError(
            f"{chunk.label} have no results file of this input in out_dir: run the sweep again"
        )
    bad_rows = 0
    with open(path, "rb") as handle:
        handle.readline()  # the header, checked by _finished
        for line_number, line in enumerate(handle, start=2):
            try:
                record = json.loads(line)
                number = record["row"]
                if not chunk.first_line <= number <= chunk.last_line:
                    raise ValueError("a row of another chunk")
                if "bad_row" in record:
                    on_bad_row(number, str(record["bad_row"]))
                    bad_rows += 1
                    continue
                if number <= tally.last_row:
                    raise ValueError("out of order")
                tally.add(number, results.write(number, _result(record)))
            except (KeyError, TypeError, ValueError):
                raise ConfigurationError(
                    f"{chunk.file_name}'s line {line_number} is not a sweep result in order"
                ) from None
    return bad_rows


def _day(value: object) -> dt.date | None:
    return None if value is None else dt.date.fromisoformat(str(value))


def _result(record: Mapping[str, Any]) -> SweepResult:
    """A chunk file's record (:meth:`SweepResult.to_dict` and its row) as a SweepResult."""
    action, reason = record["action"], record["reason"]
    if not isinstance(record["account_id"], str) or not isinstance(record["masked_number"], str):
        raise TypeError("not a result")
    return SweepResult(
        account_id=record["account_id"],
        masked_number=record["masked_number"],
        action=None if action is None else Action(action),
        reason=None if reason is None else Reason(reason),
        since=_day(record["since"]),
        reissued_on=_day(record["reissued_on"]),
        provider=record["provider"],
        error=record["error"],
    )
