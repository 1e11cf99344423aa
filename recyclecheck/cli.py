"""The ``recyclecheck`` command line.

Exit codes: 0 a decision was made (with ``--exit-status``: 0 allow, 3 step up,
4 deny); 1 configuration error (bad sandbox file, missing credentials);
2 bad usage or input (invalid phone number, bad date).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TextIO

from ._decision import Decision
from ._guard import Guard
from ._policy import Action, Policy
from ._version import __version__
from .exceptions import ConfigurationError, InvalidInput
from .providers import (
    AliyunProvider,
    CamaraProvider,
    Provider,
    RndProvider,
    SandboxProvider,
    TelesignProvider,
    TwilioProvider,
)

__all__ = ["EXIT_CONFIG", "EXIT_DENY", "EXIT_OK", "EXIT_STEP_UP", "EXIT_USAGE", "main"]

EXIT_OK = 0
EXIT_CONFIG = 1
EXIT_USAGE = 2
EXIT_STEP_UP = 3
EXIT_DENY = 4

_ADVICE = {
    Action.ALLOW: "the SMS code may log this account in",
    Action.STEP_UP: "ask for a second factor (password, e-mail code, ID check) before logging in",
    Action.DENY: "refuse this login",
}


#: Adapters the CLI can build from environment variables (see docs/providers.md).
PROVIDERS_FROM_ENV: dict[str, Callable[[], Provider]] = {
    "aliyun": AliyunProvider.from_env,
    "camara": CamaraProvider.from_env,
    "rnd": RndProvider.from_env,
    "telesign": TelesignProvider.from_env,
    "twilio": TwilioProvider.from_env,
}


def parse_bound_at(text: str) -> dt.datetime | dt.date:
    """Read ``YYYY-MM-DD`` as a date and an ISO 8601 timestamp (with offset or Z) as a datetime."""
    value = text.strip()
    if len(value) == 10:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            "bound-at must be YYYY-MM-DD or an ISO 8601 timestamp with an offset"
        ) from None


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recyclecheck",
        description="Check whether a phone number changed hands since an account bound it.",
    )
    parser.add_argument("--version", action="version", version=f"recyclecheck {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser(
        "check",
        help="decide whether an SMS-code login on PHONE may proceed",
        description=(
            "Decide whether an SMS-code login may proceed. Uses the embedded demo "
            "sandbox unless --sandbox or --provider is given."
        ),
    )
    check.add_argument("phone", help="the number, e.g. '+86 138 0013 8000'")
    check.add_argument(
        "--bound-at",
        required=True,
        help="when the account last proved it holds the number: YYYY-MM-DD or ISO 8601 with offset",
    )
    check.add_argument("--region", help="region for national formats, e.g. CN")
    source = check.add_mutually_exclusive_group()
    source.add_argument("--sandbox", metavar="FILE", help="answer from this sandbox JSON file")
    source.add_argument(
        "--provider",
        choices=sorted(PROVIDERS_FROM_ENV),
        help="ask this real provider, configured from environment variables",
    )
    check.add_argument("--timeout", type=float, default=0.8, help="deadline in seconds")
    check.add_argument("--fail-open", action="store_true", help="allow when the answer is unknown")
    check.add_argument("--json", action="store_true", help="print the decision as JSON")
    check.add_argument(
        "--exit-status",
        action="store_true",
        help="exit 0 for allow, 3 for step up, 4 for deny",
    )
    check.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG to stderr")

    sandbox = commands.add_parser("sandbox", help="local fake providers for development and CI")
    sandbox_commands = sandbox.add_subparsers(dest="sandbox_command", required=True)
    serve = sandbox_commands.add_parser(
        "serve",
        help="serve every provider wire format from scripted numbers",
        description=(
            "Run FakeProviderServer until interrupted. Prints the URL and the environment "
            "variables that point each adapter's from_env() at it."
        ),
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="port (0 picks a free one)")
    serve.add_argument("--data", metavar="FILE", help="sandbox JSON file (default: the demo data)")
    serve.add_argument("--tls", action="store_true", help="HTTPS with a throwaway CA")
    serve.add_argument("-v", "--verbose", action="store_true", help="log requests (masked)")
    return parser


def _run_serve(args: argparse.Namespace, out: TextIO, stop: threading.Event) -> int:
    from .testing import FakeProviderServer  # noqa: PLC0415 - test tooling stays out of `check`

    options = {"host": args.host, "port": args.port, "tls": args.tls}
    if args.data:
        server = FakeProviderServer.from_file(args.data, **options)
    else:
        server = FakeProviderServer(SandboxProvider.demo().scripted, **options)
    with server:
        out.write(f"# recyclecheck sandbox serving on {server.url}\n")
        if server.ca_bundle:
            out.write(f"# CA bundle (pass as ca_bundle=): {server.ca_bundle}\n")
        else:
            out.write("# to point each adapter's from_env() here, run:\n")
            for name, value in server.environment().items():
                out.write(f"export {name}={shlex.quote(value)}\n")
        out.flush()
        stop.wait()
    return EXIT_OK


def _render(decision: Decision, out: TextIO) -> None:
    verdict = decision.action.value.replace("_", " ").upper()
    out.write(f"{decision.masked_number}  {verdict}  ({decision.reason.value})\n")
    detail = f"  asked {decision.provider} about changes since {decision.since.isoformat()}"
    if decision.reissued_on is not None:
        detail += f"; it changed hands on {decision.reissued_on.isoformat()}"
    if decision.cached:
        detail += " (cached)"
    out.write(detail + "\n")
    out.write(f"  -> {_ADVICE[decision.action]}\n")


def _run_check(args: argparse.Namespace, out: TextIO) -> int:
    provider: Provider
    if args.provider:
        provider = PROVIDERS_FROM_ENV[args.provider]()
    elif args.sandbox:
        provider = SandboxProvider.from_file(args.sandbox)
    else:
        provider = SandboxProvider.demo()
    policy = Policy.fail_open() if args.fail_open else Policy()
    bound_at = parse_bound_at(args.bound_at)
    with Guard(provider, policy=policy, timeout=args.timeout) as guard:
        decision = guard.check(args.phone, bound_at=bound_at, region=args.region)
    if args.json:
        out.write(json.dumps(decision.to_dict(), indent=2) + "\n")
    else:
        _render(decision, out)
    if not args.exit_status:
        return EXIT_OK
    return {Action.ALLOW: EXIT_OK, Action.STEP_UP: EXIT_STEP_UP, Action.DENY: EXIT_DENY}[
        decision.action
    ]


def _serve_until_interrupted(args: argparse.Namespace) -> int:
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        return _run_serve(args, sys.stdout, stop)
    except KeyboardInterrupt:
        return EXIT_OK
    except OSError as exc:
        sys.stderr.write(f"recyclecheck: cannot serve: {exc.strerror}\n")
        return EXIT_CONFIG


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "verbose", False):
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "sandbox":
            return _serve_until_interrupted(args)
        return _run_check(args, sys.stdout)
    except InvalidInput as exc:
        sys.stderr.write(f"recyclecheck: {exc}\n")
        return EXIT_USAGE
    except ConfigurationError as exc:
        sys.stderr.write(f"recyclecheck: configuration error: {exc}\n")
        return EXIT_CONFIG


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
