"""The ``recyclecheck`` command line (``recyclecheck`` or ``python -m recyclecheck``).

Exit codes (the same table is in ``--help``, README.md and docs/api.md):

  0  a decision was made (with --exit-status: allow); feed ingest: every row
     was recorded; sweep: every row was checked and every account allowed
  1  configuration error: the command line is well formed, but what it names
     cannot be used (an unreadable or invalid --sandbox or --ca-bundle file,
     missing or invalid provider environment variables, an address that
     `sandbox serve` cannot bind, a feed file that cannot be opened, a Redis
     that cannot be reached or stops answering, a sweep INPUT that cannot be
     read, an --out that holds another sweep's results)
  2  bad usage: an unknown option, a missing argument, or a value of the wrong
     form or out of range (--timeout abc, --timeout 0, --port 70000, an invalid
     phone number or --bound-at, `feed ingest` without a shared cache,
     --concurrency 0)
  3  with --exit-status: step up; sweep: every row was checked and some
     accounts must step up
  4  with --exit-status: deny
  5  feed ingest: some rows could not be read or recorded (each is reported
     with its row number; every other row was recorded); sweep: likewise,
     some rows could not be read or checked
  6  sweep: stopped by Ctrl-C or SIGTERM before the end (the same command
     goes on after the last account written)

Errors go to stderr as ``recyclecheck: MESSAGE`` (usage errors after the usage
line).  With ``--json`` they go to stdout instead, as one JSON object
``{"error": KIND, "message": MESSAGE}`` with KIND one of ``usage``,
``invalid_phone_number``, ``invalid_input`` or ``configuration``, so stdout
holds exactly one JSON object either way and stderr holds nothing but
``-v`` logging.

A reader that goes away (``recyclecheck check ... | head -1``) ends the output
quietly, as the ``signal`` module's documentation recommends (the stream is
pointed at ``os.devnull``); the exit code stays the one the command decided,
so it does not depend on how fast the reader quit.

No output, error or log line shows a full phone number.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import re
import shlex
import signal
import sys
import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, BinaryIO, NoReturn, TextIO

from ._decision import Decision
from ._guard import MAX_TIMEOUT, Guard
from ._phone import check_region
from ._policy import Action, Policy
from ._redis_client import NotARedisUrl, fast_redis_client
from ._registry import PROVIDERS, provider_from_env
from ._router import Router
from ._secrets import secret_bytes
from ._sweep import (
    MAX_CONCURRENCY,
    ResultsFile,
    SweepRow,
    Tally,
    format_of,
    read_rows,
    skip_done,
)
from ._sweep import parse_bound_at as parse_binding
from ._version import __version__
from .exceptions import CacheUnavailable, ConfigurationError, InvalidInput, InvalidPhoneNumber
from .providers import Provider, SandboxProvider
from .providers._wire import CA_BUNDLE_ENV, check_ca_bundle

__all__ = [
    "EXIT_CONFIG",
    "EXIT_DENY",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_ROWS_SKIPPED",
    "EXIT_STEP_UP",
    "EXIT_USAGE",
    "main",
]

EXIT_OK = 0
EXIT_CONFIG = 1
EXIT_USAGE = 2
EXIT_STEP_UP = 3
EXIT_DENY = 4
EXIT_ROWS_SKIPPED = 5
EXIT_INTERRUPTED = 6

#: The exit-code rule, shown by ``--help`` (kept word for word with the module docstring).
EXIT_CODES_HELP = """\
exit codes:
  0  a decision was made (with --exit-status: allow); feed ingest: every row
     was recorded; sweep: every row was checked and every account allowed
  1  configuration error: the command line is well formed, but what it names
     cannot be used (an unreadable or invalid --sandbox or --ca-bundle file,
     missing or invalid provider environment variables, an address that
     `sandbox serve` cannot bind, a feed file that cannot be opened, a Redis
     that cannot be reached or stops answering, a sweep INPUT that cannot be
     read, an --out that holds another sweep's results)
  2  bad usage: an unknown option, a missing argument, or a value of the wrong
     form or out of range (--timeout abc, --timeout 0, --port 70000, an invalid
     phone number or --bound-at, `feed ingest` without a shared cache,
     --concurrency 0)
  3  with --exit-status: step up; sweep: every row was checked and some
     accounts must step up
  4  with --exit-status: deny
  5  feed ingest: some rows could not be read or recorded (each is reported
     with its row number; every other row was recorded); sweep: likewise,
     some rows could not be read or checked
  6  sweep: stopped by Ctrl-C or SIGTERM before the end (the same command
     goes on after the last account written)

With --json, errors are one JSON object on stdout:
{"error": KIND, "message": MESSAGE}, KIND one of usage, invalid_phone_number,
invalid_input, configuration.
"""

_ADVICE = {
    Action.ALLOW: "the SMS code may log this account in",
    Action.STEP_UP: "ask for a second factor (password, e-mail code, ID check) before logging in",
    Action.DENY: "refuse this login",
}

#: What --provider accepts: every registered adapter, and "router" (RECYCLECHECK_ROUTES).
PROVIDER_CHOICES = (*sorted(PROVIDERS), "router")

# The core's hint on an unparsable number; the CLI words its own, and only
# where a region can help.
_CORE_REGION_HINT = " (national formats need a region)"
_NATIONAL_SEPARATORS = frozenset(" -.()")
# What argparse echoes of the input: a quoted value, or a word of digits.
_ECHOED = re.compile(r"'[^']*'|\+?\d[\d.-]*\d")


def parse_bound_at(text: str) -> dt.datetime | dt.date:
    """Read ``YYYY-MM-DD`` as a date and an ISO 8601 timestamp (with offset or Z) as a datetime."""
    try:
        return parse_binding(text)
    except InvalidInput as exc:
        raise InvalidInput(f"--bound-at: {exc}") from None


# -- argument parsing -------------------------------------------------------------------


class _UsageError(Exception):
    """The command line itself is wrong (exit 2); ``prog`` names the (sub)command."""

    def __init__(self, message: str, *, prog: str, usage: str = "") -> None:
        super().__init__(message)
        self.prog = prog
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors reach :func:`main` instead of exiting.

    So ``main`` can report them as JSON with ``--json``, and withhold anything
    that looks like a phone number from argparse's echo of the input.
    """

    def error(self, message: str) -> NoReturn:
        raise _UsageError(_withhold_numbers(message), prog=self.prog, usage=self.format_usage())


def _withhold_numbers(text: str) -> str:
    """Replace each echoed value with six digits or more: it may be a phone number."""

    def replace(match: re.Match[str]) -> str:
        digits = sum(char.isdigit() for char in match.group())
        return "<number withheld>" if digits >= 6 else match.group()

    return _ECHOED.sub(replace, text)


def _timeout(text: str) -> float:
    """``--timeout``: seconds, more than 0 and at most the Guard's maximum."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= MAX_TIMEOUT:  # NaN fails too
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds greater than 0 and at most {MAX_TIMEOUT:g}"
        )
    return value


def _port(text: str) -> int:
    """``--port``: 0 to 65535 (0 picks a free port)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            "must be a whole number from 0 to 65535 (0: any free port)"
        )
    return value


def _add_provider_options(command: argparse.ArgumentParser) -> None:
    """--sandbox, --provider, --routes and --ca-bundle: who answers (``check``, ``sweep``)."""
    source = command.add_mutually_exclusive_group()
    source.add_argument(
        "--sandbox",
        metavar="FILE",
        help="answer from this sandbox JSON file (default: the embedded demo sandbox)",
    )
    source.add_argument(
        "--provider",
        choices=PROVIDER_CHOICES,
        metavar="NAME",
        help="ask this real provider, configured from environment variables: "
        "%(choices)s; 'router' routes by country as RECYCLECHECK_ROUTES says, e.g. "
        "'+86=aliyun; +1=rnd,twilio; *=camara' (default: none, the demo sandbox answers)",
    )
    source.add_argument(
        "--routes",
        metavar="FILE",
        help='route by country as this JSON file says: {"routes": {"+86": ["aliyun"], '
        '"+1": ["rnd", "twilio"]}, "default": ["camara"]}; each provider is configured '
        "from its environment variables, 'sandbox' is the demo sandbox",
    )
    command.add_argument(
        "--ca-bundle",
        metavar="PATH",
        help=f"with --provider: PEM file of the CA roots to trust instead of the default ones, "
        f"e.g. the one `sandbox serve --tls` prints (default: ${CA_BUNDLE_ENV} if set, "
        "else the default roots)",
    )


def _add_check(commands: argparse._SubParsersAction[_Parser]) -> None:
    check = commands.add_parser(
        "check",
        help="decide whether an SMS-code login on PHONE may proceed",
        description=(
            "Decide whether an SMS-code login may proceed. Uses the embedded demo "
            "sandbox unless --sandbox or --provider is given."
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("phone", metavar="PHONE", help="the number, e.g. '+86 138 0013 8000'")
    check.add_argument(
        "--bound-at",
        required=True,
        metavar="WHEN",
        help="required: when the account last proved it holds the number: "
        "YYYY-MM-DD or ISO 8601 with an offset",
    )
    check.add_argument(
        "--region",
        metavar="CC",
        help="region for national formats, e.g. CN (default: none; PHONE starts with +)",
    )
    _add_provider_options(check)
    check.add_argument(
        "--timeout",
        type=_timeout,
        default=0.8,
        metavar="SECONDS",
        help=f"deadline of the check, more than 0 and at most {MAX_TIMEOUT:g} "
        "(default: %(default)s)",
    )
    check.add_argument(
        "--fail-open", action="store_true", help="allow when the answer is unknown (default: off)"
    )
    check.add_argument(
        "--json", action="store_true", help="print the decision, or the error, as JSON"
    )
    check.add_argument(
        "--exit-status",
        action="store_true",
        help="exit 0 for allow, 3 for step up, 4 for deny (default: 0 whenever a decision is made)",
    )
    check.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG to stderr")


def _add_sandbox(commands: argparse._SubParsersAction[_Parser]) -> None:
    sandbox = commands.add_parser(
        "sandbox",
        help="local fake providers for development and CI",
        description="Local fake providers for development and CI.",
    )
    sandbox_commands = sandbox.add_subparsers(
        dest="sandbox_command", metavar="COMMAND", title="commands", required=True
    )
    serve = sandbox_commands.add_parser(
        "serve",
        help="serve every provider wire format from scripted numbers",
        description=(
            "Run FakeProviderServer until interrupted. Prints the URL and the environment "
            "variables that point each adapter's from_env() at it (with --tls, "
            f"{CA_BUNDLE_ENV} too)."
        ),
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    serve.add_argument(
        "--port",
        type=_port,
        default=8765,
        help="port, 0 picks a free one (default: %(default)s)",
    )
    serve.add_argument(
        "--data", metavar="FILE", help="sandbox JSON file (default: the demo numbers)"
    )
    serve.add_argument(
        "--tls", action="store_true", help="HTTPS with a throwaway CA (default: plain HTTP)"
    )
    serve.add_argument("-v", "--verbose", action="store_true", help="log requests (masked)")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="recyclecheck",
        description="Check whether a phone number changed hands since an account bound it.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"recyclecheck {__version__}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", title="commands", required=True
    )
    _add_check(commands)
    _add_sandbox(commands)
    _add_feed(commands)
    _add_sweep(commands)
    return parser


def _unrecognized(extras: Sequence[str]) -> str:
    """Name unknown options, but only count other stray words: they are often a number's parts."""
    options = [
        word.split("=", 1)[0] for word in extras if word.startswith("-") and word[1:2].isalpha()
    ]
    options += [word.split("=", 1)[0] for word in extras if word.startswith("--")]
    others = len(extras) - len(options)
    parts = []
    if options:
        parts.append(f"unrecognized option{'s' if len(options) > 1 else ''}: {', '.join(options)}")
    if others:
        parts.append(
            f"{others} unexpected argument{'s' if others > 1 else ''} (not shown; "
            "quote a phone number that contains spaces)"
        )
    return _withhold_numbers("; ".join(parts))


def _parse(parser: argparse.ArgumentParser, arguments: list[str]) -> argparse.Namespace:
    args, extras = parser.parse_known_args(arguments)
    prog = f"{parser.prog} {args.command}"
    if extras:
        raise _UsageError(_unrecognized(extras), prog=prog)
    if (
        args.command in ("check", "sweep")
        and args.ca_bundle is not None
        and not (args.provider or args.routes)
    ):
        raise _UsageError(
            "--ca-bundle applies only with --provider or --routes "
            "(the sandboxes make no network calls)",
            prog=prog,
        )
    if args.command == "sweep":
        _check_sweep_args(args, prog)
    return args


def _wants_json(arguments: Sequence[str]) -> bool:
    """Whether ``--json`` was asked for, read before parsing so usage errors honour it."""
    options = arguments[: arguments.index("--")] if "--" in arguments else arguments
    return "--json" in options


# -- output -----------------------------------------------------------------------------


def _silence(stream: TextIO) -> None:
    """Point ``stream``'s descriptor at devnull after its reader went away.

    The recipe of the ``signal`` module's documentation: the interpreter's
    flush at exit then has nowhere to fail, and no traceback is printed.
    """
    try:
        descriptor = stream.fileno()
    except (OSError, ValueError):  # no real descriptor (io.UnsupportedOperation is both)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, descriptor)
    finally:
        os.close(devnull)


def _write(stream: TextIO, text: str) -> None:
    """Write and flush; a closed pipe ends the output quietly instead of raising."""
    try:
        stream.write(text)
        stream.flush()
    except BrokenPipeError:
        _silence(stream)


class _Console:
    """Where the command writes: results to stdout, errors to stderr (stdout with ``--json``)."""

    def __init__(self, *, json_errors: bool) -> None:
        self.json_errors = json_errors

    def out(self, text: str) -> None:
        _write(sys.stdout, text)

    def error(self, kind: str, message: str, code: int) -> int:
        if self.json_errors:
            _write(sys.stdout, json.dumps({"error": kind, "message": message}) + "\n")
        else:
            _write(sys.stderr, f"recyclecheck: {message}\n")
        return code

    def usage_error(self, exc: _UsageError) -> int:
        message = str(exc)
        if self.json_errors:
            return self.error("usage", message, EXIT_USAGE)
        _write(sys.stderr, f"{exc.usage}{exc.prog}: error: {message}\n")
        return EXIT_USAGE


def _render(decision: Decision) -> str:
    verdict = decision.action.value.replace("_", " ").upper()
    lines = [f"{decision.masked_number}  {verdict}  ({decision.reason.value})"]
    detail = f"  asked {decision.provider} about changes since {decision.since.isoformat()}"
    if decision.reissued_on is not None:
        detail += f"; it changed hands on {decision.reissued_on.isoformat()}"
    if decision.cached:
        detail += " (cached)"
    lines.append(detail)
    lines.append(f"  -> {_ADVICE[decision.action]}")
    return "\n".join(lines) + "\n"


# -- commands ---------------------------------------------------------------------------


def _provider(args: argparse.Namespace) -> Provider:
    if args.provider or args.routes:
        environ: Mapping[str, str] = os.environ
        if args.ca_bundle is not None:
            path = check_ca_bundle(args.ca_bundle, "--ca-bundle")
            environ = {**os.environ, CA_BUNDLE_ENV: path}
        if args.routes:
            return Router.from_config(_read_routes(args.routes), environ)
        if args.provider == "router":
            return Router.from_env(environ)
        return provider_from_env(args.provider, environ)
    if args.sandbox:
        return SandboxProvider.from_file(args.sandbox)
    return SandboxProvider.demo()


def _read_routes(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except OSError:
        raise ConfigurationError("--routes file could not be read") from None
    except ValueError:
        raise ConfigurationError("--routes file is not valid JSON") from None


def _run_check(args: argparse.Namespace, console: _Console) -> int:
    bound_at = parse_bound_at(args.bound_at)
    provider = _provider(args)
    policy = Policy.fail_open() if args.fail_open else Policy()
    with Guard(provider, policy=policy, timeout=args.timeout) as guard:
        decision = guard.check(args.phone, bound_at=bound_at, region=args.region)
    if args.json:
        console.out(json.dumps(decision.to_dict(), indent=2) + "\n")
    else:
        console.out(_render(decision))
    if not args.exit_status:
        return EXIT_OK
    return {Action.ALLOW: EXIT_OK, Action.STEP_UP: EXIT_STEP_UP, Action.DENY: EXIT_DENY}[
        decision.action
    ]


def _looks_national(phone: str) -> bool:
    """Digits (and separators) only, no ``+`` nor ``00``: a region could make it parse."""
    text = phone.strip()
    return (
        any(char.isdecimal() for char in text)
        and all(char.isdecimal() or char in _NATIONAL_SEPARATORS for char in text)
        and not text.startswith("00")
    )


def _phone_message(exc: InvalidPhoneNumber, args: argparse.Namespace) -> str:
    message = str(exc).removesuffix(_CORE_REGION_HINT)
    if args.region is None and isinstance(args.phone, str) and _looks_national(args.phone):
        message += "; a national number needs --region, e.g. --region CN"
    return message


def _run_serve(args: argparse.Namespace, console: _Console, stop: threading.Event) -> int:
    from .testing import FakeProviderServer  # noqa: PLC0415 - test tooling stays out of `check`

    options = {"host": args.host, "port": args.port, "tls": args.tls}
    if args.data:
        server = FakeProviderServer.from_file(args.data, **options)
    else:
        server = FakeProviderServer(SandboxProvider.demo().scripted, **options)
    with server:
        lines = [
            f"# recyclecheck sandbox serving on {server.url}",
            "# to point each adapter's from_env() here, run:",
        ]
        environment = server.environment()
        if server.ca_bundle:
            # First, so the last line stays the one scripts wait for.
            environment = {CA_BUNDLE_ENV: server.ca_bundle, **environment}
        lines += [f"export {name}={shlex.quote(value)}" for name, value in environment.items()]
        console.out("\n".join(lines) + "\n")
        stop.wait()
    return EXIT_OK


def _serve_until_interrupted(args: argparse.Namespace, console: _Console) -> int:
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        return _run_serve(args, console, stop)
    except KeyboardInterrupt:
        return EXIT_OK
    except OSError as exc:
        return console.error(
            "configuration", f"cannot serve: {exc.strerror or type(exc).__name__}", EXIT_CONFIG
        )


# -- feed ingest ------------------------------------------------------------------------

#: Socket timeouts of the Redis client `feed ingest` builds: the most RedisCache accepts
#: (a batch job is not on the login path, but the cache still refuses slower clients).
_FEED_REDIS_TIMEOUT = 0.5
_FEED_ENV_URL = "RECYCLECHECK_REDIS_URL"
_FEED_ENV_SECRET = "RECYCLECHECK_SECRET"  # noqa: S105 - a variable's name, not a secret
_FEED_ENV_CACHE_SECRET = "RECYCLECHECK_CACHE_SECRET"  # noqa: S105 - a variable's name


def _feed_date(text: str) -> dt.date:
    """``--date``: the day of rows that carry none."""
    from ._feeds import parse_day  # noqa: PLC0415 - feed code loads only for `feed`

    try:
        return parse_day(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a date, YYYY-MM-DD") from None


def _feed_region(text: str) -> str:
    """``--region``: a region code phonenumbers knows."""
    try:
        region = check_region(text)
    except InvalidInput:
        region = None
    if region is None:
        raise argparse.ArgumentTypeError("must be a two-letter region code, e.g. CN or US")
    return region


def _add_feed(commands: argparse._SubParsersAction[_Parser]) -> None:
    feed = commands.add_parser(
        "feed",
        help="store deactivation feeds as facts in the shared cache",
        description="Store deactivation feeds as facts in the shared (Redis) cache.",
    )
    feed_commands = feed.add_subparsers(
        dest="feed_command", metavar="COMMAND", title="commands", required=True
    )
    ingest = feed_commands.add_parser(
        "ingest",
        help="record every number of a deactivation file as changed on its date",
        description=(
            "Record every number of a deactivation file as changed on its date, in the "
            "Redis cache the app's Guard reads, so later checks of accounts bound before "
            "that date step up without a lookup. Rows that cannot be read are reported "
            "with their row number and skipped. Ingesting a file again is safe."
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ingest.add_argument("file", metavar="FILE", help="the feed file (a ZIP archive is read too)")
    ingest.add_argument(
        "--format",
        required=True,
        choices=("twilio", "telesign", "csv"),
        help="required: twilio (Twilio's Deactivations .txt), telesign (Telesign's daily "
        "per-carrier deactivation files) or csv (phone,date[,region] a row)",
    )
    ingest.add_argument(
        "--date",
        type=_feed_date,
        metavar="YYYY-MM-DD",
        help="the day of rows that carry no date (default: a date in the file name)",
    )
    ingest.add_argument(
        "--region",
        type=_feed_region,
        metavar="CC",
        help="region for numbers in national format in rows without one (default: none)",
    )
    ingest.add_argument(
        "--redis-url",
        metavar="URL",
        help=f"the Redis the app's RedisCache uses, redis://... (default: ${_FEED_ENV_URL})",
    )
    ingest.add_argument(
        "--secret",
        metavar="SECRET",
        help=f"the app's Guard(secret=...), at least 16 bytes (default: ${_FEED_ENV_SECRET}; "
        "prefer the variable, a command line is visible to other users)",
    )
    ingest.add_argument(
        "--cache-secret",
        metavar="SECRET",
        help=f"the app's RedisCache(secret=...) where it differs from --secret "
        f"(default: ${_FEED_ENV_CACHE_SECRET}, else the --secret)",
    )
    ingest.add_argument(
        "--redis-prefix",
        default="recyclecheck:",
        metavar="PREFIX",
        help="the app's RedisCache(prefix=...) (default: %(default)s)",
    )
    ingest.add_argument("--json", action="store_true", help="print the report as JSON")
    ingest.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG to stderr")
    ingest.set_defaults(feed_usage=ingest.format_usage())


class _FeedRecorder:
    """``Guard.record_change`` that stops the ingest at the first fact Redis did not take.

    ``record_change`` raises ``CacheUnavailable`` when Redis failed its read
    (having written nothing, so no later date is lost) or its write; the
    ingest stops there with a configuration error saying how far it got.
    """

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self.recorded = 0

    def record_change(
        self, phone: str, *, on: dt.date | dt.datetime, region: str | None = None
    ) -> None:
        try:
            self.guard.record_change(phone, on=on, region=region)
        except CacheUnavailable as exc:
            done = (
                f"{self.recorded} row was" if self.recorded == 1 else f"{self.recorded} rows were"
            )
            raise ConfigurationError(
                f"Redis stopped answering ({exc.cause}) after {done} recorded; "
                "the rest were not (ingesting the file again is safe)"
            ) from exc
        self.recorded += 1


def _feed_setting(args: argparse.Namespace, option: str, variable: str) -> tuple[str | None, str]:
    """An option's value, else its environment variable's; and the name of where it came from."""
    value = getattr(args, option.lstrip("-").replace("-", "_"))
    if value is not None:
        return value, option
    return os.environ.get(variable) or None, variable


def _feed_usage(args: argparse.Namespace, message: str) -> _UsageError:
    return _UsageError(message, prog="recyclecheck feed ingest", usage=args.feed_usage)


def _feed_problem(args: argparse.Namespace, where: str, message: str) -> Exception:
    """A bad option is bad usage (exit 2); a bad variable, like a provider's, configuration (1)."""
    return _feed_usage(args, message) if where.startswith("--") else ConfigurationError(message)


def _feed_secret(args: argparse.Namespace, value: str, where: str) -> bytes:
    try:
        return secret_bytes(value, owner=where)
    except ConfigurationError as exc:
        raise _feed_problem(args, where, str(exc)) from None


def _feed_redis(args: argparse.Namespace, url: str, where: str) -> Any:
    try:
        return fast_redis_client(url, timeout=_FEED_REDIS_TIMEOUT)
    except NotARedisUrl:  # the URL may hold a password: never echo it
        message = f"{where} is not a Redis URL (redis://, rediss:// or unix://)"
        raise _feed_problem(args, where, message) from None


def _feed_guard(args: argparse.Namespace) -> tuple[_FeedRecorder, Any]:
    """The recorder and the Redis client, built as the app builds its RedisCache and Guard."""
    url, url_from = _feed_setting(args, "--redis-url", _FEED_ENV_URL)
    if url is None:
        raise _feed_usage(
            args,
            f"feed ingest needs the app's shared cache: --redis-url URL (or {_FEED_ENV_URL}) "
            f"with --secret (or {_FEED_ENV_SECRET}). Facts kept in this process's memory "
            "would vanish when it exits, and the app would never see them",
        )
    secret_text, secret_from = _feed_setting(args, "--secret", _FEED_ENV_SECRET)
    if secret_text is None:
        raise _feed_usage(
            args,
            f"feed ingest needs the app's secret: --secret (or {_FEED_ENV_SECRET}); "
            "without the same secret the app would never find the facts",
        )
    cache_text, cache_from = _feed_setting(args, "--cache-secret", _FEED_ENV_CACHE_SECRET)
    if cache_text is None:
        cache_text, cache_from = secret_text, secret_from
    secret = _feed_secret(args, secret_text, secret_from)
    cache_secret = _feed_secret(args, cache_text, cache_from)
    client = _feed_redis(args, url, url_from)
    from ._redis_cache import RedisCache  # noqa: PLC0415 - loads cryptography

    try:
        cache = RedisCache(client, secret=cache_secret, prefix=args.redis_prefix)
        client.ping()
    except ConfigurationError:
        client.close()
        raise
    except Exception as exc:
        client.close()
        raise ConfigurationError(f"cannot reach Redis ({type(exc).__name__})") from None
    guard = Guard(SandboxProvider({}, name="feed-ingest"), cache=cache, secret=secret)
    return _FeedRecorder(guard), client


def _render_feed_report(report: Any) -> str:
    lines = [
        f"feed ingest: {report.read} rows read, {report.recorded} recorded, "
        f"{report.skipped} skipped"
    ]
    lines += [f"  {error}" for error in report.errors]
    if report.errors_truncated:
        lines.append(f"  (and {report.skipped - len(report.errors)} more skipped rows)")
    return "\n".join(lines) + "\n"


def _run_feed(args: argparse.Namespace, console: _Console) -> int:
    from ._feeds import ingest  # noqa: PLC0415 - feed code loads only for `feed`

    try:
        recorder, client = _feed_guard(args)
    except _UsageError as exc:
        return console.usage_error(exc)
    try:
        report = ingest(recorder, args.file, format=args.format, on=args.date, region=args.region)
    finally:
        client.close()
    if args.json:
        console.out(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        console.out(_render_feed_report(report))
    return EXIT_OK if report.ok else EXIT_ROWS_SKIPPED


# -- sweep ------------------------------------------------------------------------------

#: How often, in rows, the progress bar's counts are brought up to date.
_SWEEP_POSTFIX_EVERY = 500


def _concurrency(text: str) -> int:
    """``--concurrency``: checks at once, 1 to the sweep's maximum."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_CONCURRENCY:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_CONCURRENCY}")
    return value


def _rate(text: str) -> float:
    """``--rate``: checks started a second, more than 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:  # NaN fails too
        raise argparse.ArgumentTypeError("must be a number of checks a second greater than 0")
    return value


def _add_sweep(commands: argparse._SubParsersAction[_Parser]) -> None:
    sweep = commands.add_parser(
        "sweep",
        help="check every account of a file ahead of its next login",
        description=(
            "Check every account of INPUT (CSV or JSON Lines: account_id,phone,bound_at"
            "[,region], one row a line) and write one result per account to --out, in "
            "input order. Run it again with the same --out after it was stopped or killed: "
            "it goes on after the last account written. Rows that cannot be read are "
            "reported on stderr with their row number and skipped. Uses the embedded demo "
            "sandbox unless --sandbox, --provider or --routes is given."
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sweep.add_argument(
        "input", metavar="INPUT", help="accounts file: .csv, or .jsonl/.ndjson (JSON Lines)"
    )
    sweep.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="required: results file, .csv or .jsonl; if it exists, the sweep goes on "
        "after the last account it holds",
    )
    sweep.add_argument(
        "--input-format",
        choices=("csv", "jsonl"),
        help="the format of INPUT (default: from its extension)",
    )
    sweep.add_argument(
        "--region",
        type=_feed_region,
        metavar="CC",
        help="region for national-format numbers in rows without one, e.g. CN (default: none)",
    )
    _add_provider_options(sweep)
    sweep.add_argument(
        "--concurrency",
        type=_concurrency,
        default=8,
        metavar="N",
        help="checks at once, 1 to 256 (default: %(default)s)",
    )
    sweep.add_argument(
        "--timeout",
        type=_timeout,
        default=5.0,
        metavar="SECONDS",
        help=f"deadline of each check, more than 0 and at most {MAX_TIMEOUT:g} "
        "(default: %(default)s; nobody waits on a sweep's checks)",
    )
    sweep.add_argument(
        "--rate",
        type=_rate,
        metavar="PER_SECOND",
        help="start at most this many checks a second, to leave a provider's quota to "
        "logins (default: no limit)",
    )
    sweep.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (default: one on stderr when it is a terminal and tqdm is "
        "installed: pip install '.[cli]')",
    )
    sweep.add_argument(
        "--json", action="store_true", help="print the summary, or the error, as JSON"
    )
    sweep.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG to stderr")


def _check_sweep_args(args: argparse.Namespace, prog: str) -> None:
    """What argparse cannot check of a sweep's command line (exit 2)."""
    if args.input_format is None:
        args.input_format = format_of(args.input)
        if args.input_format is None:
            raise _UsageError(
                "INPUT must end in .csv, .jsonl or .ndjson, or say --input-format", prog=prog
            )
    args.out_format = format_of(args.out)
    if args.out_format is None:
        raise _UsageError("--out must end in .csv, .jsonl or .ndjson", prog=prog)
    if os.path.abspath(args.input) == os.path.abspath(args.out):
        raise _UsageError("--out must not be INPUT", prog=prog)


class _SweepScreen:
    """Where a sweep tells people how it goes: a progress bar and bad rows on stderr.

    The bar (tqdm's) shows counts only, never a number; it is drawn only when
    stderr is a terminal, tqdm is installed and ``--no-progress`` is not given.
    """

    def __init__(self, args: argparse.Namespace, start: int) -> None:
        self.bar: Any = None
        if args.no_progress or not sys.stderr.isatty():
            return
        try:
            from tqdm import tqdm  # noqa: PLC0415 - the optional extra recyclecheck[cli]
        except ImportError:
            return
        self.bar = tqdm(
            total=_count_lines(args.input),
            initial=start,
            unit=" rows",
            desc="sweep",
            file=sys.stderr,
            dynamic_ncols=True,
        )

    def say(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            _write(sys.stderr, text + "\n")

    def advance(self, row: int, tally: Tally, bad_rows: int) -> None:
        if self.bar is None:
            return
        self.bar.update(max(0, row - self.bar.n))
        if tally.results % _SWEEP_POSTFIX_EVERY == 0:
            not_allowed = tally.results - tally.actions["allow"] - tally.errors
            self.bar.set_postfix_str(
                f"not allowed {not_allowed}, bad {bad_rows + tally.errors}", refresh=False
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _count_lines(path: str) -> int | None:
    """Lines in ``path`` (for the bar's total), read in blocks: constant memory."""
    lines, last = 0, b"\n"
    try:
        with open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                lines += block.count(b"\n")
                last = block[-1:]
    except OSError:
        return None
    return lines + (last != b"\n")


class _StopOnSignal:
    """SIGINT or SIGTERM asks the sweep to stop taking rows; a second one acts as usual."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> threading.Event:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._stop)
        return self.event

    def _stop(self, _signum: int, _frame: object) -> None:
        self.event.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


class _SweepRun:
    """One `recyclecheck sweep`: rows in, results appended to --out, a summary out."""

    def __init__(self, args: argparse.Namespace, guard: Guard) -> None:
        self.args = args
        self.guard = guard
        self.bad_rows = 0
        self.stopped = False
        self.finished = False
        self.numbers: deque[int] = deque()  # row numbers of the rows in the sweep's window

    def run(self, console: _Console) -> int:
        try:
            source = open(self.args.input, "rb")  # noqa: SIM115 - closed by the with below
        except OSError as exc:
            raise ConfigurationError(f"INPUT cannot be read ({exc.strerror})") from None
        with source, ResultsFile(self.args.out, format=self.args.out_format) as results:
            try:
                tally = results.open()
            except OSError as exc:
                raise ConfigurationError(f"--out cannot be written ({exc.strerror})") from None
            earlier = tally.results
            screen = _SweepScreen(self.args, tally.last_row)
            try:
                self._sweep(source, results, tally, screen)
            except OSError as exc:  # a disk that fills up, a file system that goes away
                raise ConfigurationError(
                    f"reading INPUT or writing --out failed ({exc.strerror}); what was "
                    "written is kept: run the same command again to go on"
                ) from None
            finally:
                screen.close()
        return self._summary(console, tally, earlier)

    def _rows(
        self, source: BinaryIO, tally: Tally, screen: _SweepScreen, stop: threading.Event
    ) -> Iterator[SweepRow]:
        def bad_row(number: int, reason: str) -> None:
            self.bad_rows += 1
            screen.say(f"recyclecheck: row {number}: {reason}")

        rows = read_rows(source, format=self.args.input_format, on_bad_row=bad_row)
        for number, row in skip_done(rows, tally):
            if stop.is_set():
                self.stopped = True
                return
            self.numbers.append(number)
            yield row
        self.finished = True

    def _sweep(
        self, source: BinaryIO, results: ResultsFile, tally: Tally, screen: _SweepScreen
    ) -> None:
        args = self.args
        with _StopOnSignal() as stop:
            swept = self.guard.sweep(
                self._rows(source, tally, screen, stop),
                concurrency=args.concurrency,
                rate=args.rate,
            )
            try:
                for result in swept:
                    number = self.numbers.popleft()
                    tally.add(number, results.write(number, result))
                    if result.error is not None:
                        screen.say(f"recyclecheck: row {number}: {result.error}")
                    screen.advance(number, tally, self.bad_rows)
            except KeyboardInterrupt:  # a second Ctrl-C: stop now, the file is the journal
                self.stopped = True
            finally:
                swept.close()  # type: ignore[attr-defined]  # the sweep is a generator

    def _exit_code(self, tally: Tally) -> int:
        if self.stopped and not self.finished:
            return EXIT_INTERRUPTED
        if self.bad_rows or tally.errors:
            return EXIT_ROWS_SKIPPED
        if tally.results > tally.actions["allow"]:
            return EXIT_STEP_UP
        return EXIT_OK

    def _summary(self, console: _Console, tally: Tally, earlier: int) -> int:
        code = self._exit_code(tally)
        summary = {
            "out": self.args.out,
            "accounts": tally.results,
            "earlier": earlier,
            "actions": dict(sorted(tally.actions.items())),
            "reasons": dict(sorted(tally.reasons.items())),
            "errors": tally.errors,
            "bad_rows": self.bad_rows,
            "interrupted": code == EXIT_INTERRUPTED,
            "exit_code": code,
        }
        if self.args.json:
            console.out(json.dumps(summary, indent=2) + "\n")
        else:
            console.out(_render_sweep(summary))
        return code


def _render_sweep(summary: Mapping[str, Any]) -> str:
    earlier = f" ({summary['earlier']} by an earlier run)" if summary["earlier"] else ""
    lines = [f"sweep: {summary['accounts']} accounts in {summary['out']}{earlier}"]
    for title in ("actions", "reasons"):
        counts = ", ".join(f"{name} {count}" for name, count in summary[title].items())
        lines.append(f"  {title}: {counts or 'none'}")
    lines.append(f"  could not be checked: {summary['errors']}")
    lines.append(f"  rows that could not be read: {summary['bad_rows']}")
    if summary["interrupted"]:
        lines.append("  interrupted: run the same command again to go on")
    return "\n".join(lines) + "\n"


def _run_sweep(args: argparse.Namespace, console: _Console) -> int:
    provider = _provider(args)
    guard = Guard(
        provider,
        timeout=args.timeout,
        default_region=args.region,
        max_workers=max(16, args.concurrency),
    )
    with guard:
        return _SweepRun(args, guard).run(console)


def _run(args: argparse.Namespace, console: _Console) -> int:
    commands = {"sandbox": _serve_until_interrupted, "feed": _run_feed, "sweep": _run_sweep}
    try:
        return commands.get(args.command, _run_check)(args, console)
    except InvalidPhoneNumber as exc:
        return console.error("invalid_phone_number", _phone_message(exc, args), EXIT_USAGE)
    except InvalidInput as exc:
        return console.error("invalid_input", str(exc), EXIT_USAGE)
    except ConfigurationError as exc:
        return console.error("configuration", f"configuration error: {exc}", EXIT_CONFIG)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    console = _Console(json_errors=_wants_json(arguments))
    try:
        args = _parse(_build_parser(), arguments)
    except _UsageError as exc:
        return console.usage_error(exc)
    except SystemExit as exc:  # --help or --version, already printed by argparse
        _write(sys.stdout, "")
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except BrokenPipeError:  # --help into a closed pipe
        _silence(sys.stdout)
        return EXIT_OK
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
    return _run(args, console)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
