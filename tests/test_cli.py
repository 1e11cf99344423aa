"""The recyclecheck command line: output, JSON, exit codes, no full numbers."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import recyclecheck.cli
from recyclecheck.cli import (
    EXIT_CODES_HELP,
    EXIT_CONFIG,
    EXIT_DENY,
    EXIT_OK,
    EXIT_STEP_UP,
    EXIT_USAGE,
    PROVIDER_CHOICES,
    main,
)
from recyclecheck.providers import SandboxProvider
from recyclecheck.testing import FakeProviderServer

from .privacy import leaks

REPO = Path(__file__).resolve().parent.parent


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_reissued_number_on_the_demo(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's main job: a reissued number steps up, shown masked."""
    code, out, _ = run(capsys, "check", "+86 138 0013 8000", "--bound-at", "2022-05-10")
    assert code == EXIT_OK
    assert "STEP UP" in out
    assert "reissued_after_binding" in out
    assert "+86 138****8000" in out
    assert "13800138000" not in out.replace(" ", "")


def test_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints the Decision as JSON."""
    code, out, _ = run(capsys, "check", "+8613900139000", "--bound-at", "2022-05-10", "--json")
    data = json.loads(out)
    assert code == EXIT_OK
    assert data["action"] == "allow"
    assert data["reason"] == "not_reissued"
    assert data["since"] == "2022-05-09"
    assert "13900139000" not in out


@pytest.mark.parametrize(
    ("phone", "extra", "code"),
    [
        ("+8613900139000", [], EXIT_OK),
        ("+8613800138000", [], EXIT_STEP_UP),
        ("+8613700137000", ["--fail-open"], EXIT_OK),
    ],
)
def test_exit_status(
    capsys: pytest.CaptureFixture[str], phone: str, extra: list[str], code: int
) -> None:
    """--exit-status maps the action to the exit code."""
    assert (
        run(capsys, "check", phone, "--bound-at", "2022-05-10", "--exit-status", *extra)[0] == code
    )


def test_deny_exit_status_value() -> None:
    """The documented deny code is 4."""
    assert EXIT_DENY == 4


def test_timestamps_and_regions(capsys: pytest.CaptureFixture[str]) -> None:
    """ISO timestamps with an offset or Z, and national formats with --region."""
    assert (
        run(
            capsys,
            "check",
            "13800138000",
            "--region",
            "CN",
            "--bound-at",
            "2025-01-01T08:00:00+08:00",
        )[0]
        == 0
    )
    assert run(capsys, "check", "+8613800138000", "--bound-at", "2025-01-01T00:00:00Z")[0] == 0


@pytest.mark.parametrize(
    "args",
    [
        ["check", "12345", "--bound-at", "2022-05-10"],
        ["check", "+8613800138000", "--bound-at", "yesterday"],
        ["check", "+8613800138000", "--bound-at", "2022-05-10T10:00:00"],
        ["check", "+8613800138000", "--bound-at", "2999-01-01"],
    ],
)
def test_bad_input_exits_2_without_echoing(
    capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    """Invalid numbers and dates exit 2 with a message on stderr."""
    code, out, err = run(capsys, *args)
    assert code == EXIT_USAGE
    assert out == ""
    assert err.startswith("recyclecheck:")


def test_sandbox_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """--sandbox answers from the given file; a bad file exits 1."""
    path = tmp_path / "n.json"
    path.write_text('{"numbers": {"+8613800138000": {"reissued_on": null}}}')
    code, out, _ = run(
        capsys, "check", "+8613800138000", "--bound-at", "2022-05-10", "--sandbox", str(path)
    )
    assert code == 0
    assert "ALLOW" in out
    path.write_text("{")
    assert (
        run(capsys, "check", "+8613800138000", "--bound-at", "2022-05-10", "--sandbox", str(path))[
            0
        ]
        == EXIT_CONFIG
    )


def test_console_script_runs_as_a_process() -> None:
    """`python -m recyclecheck.cli` works as a real process."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "recyclecheck.cli",
            "check",
            "+86 137 0013 7000",
            "--bound-at",
            "2022-05-10",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0
    assert "no_data" in result.stdout


def test_provider_from_environment_names_the_missing_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--provider builds the adapter from the environment; a missing variable exits 1."""
    monkeypatch.delenv("TWILIO_ACCOUNT_SID", raising=False)
    code, _, err = run(
        capsys, "check", "+14155552671", "--bound-at", "2024-01-01", "--provider", "twilio"
    )
    assert code == EXIT_CONFIG
    assert "TWILIO_ACCOUNT_SID" in err


def test_every_adapter_is_available_from_the_cli() -> None:
    """All five adapters (and a router) can be chosen with --provider."""
    assert PROVIDER_CHOICES == ("aliyun", "camara", "rnd", "telesign", "twilio", "router")


def test_sandbox_serve_runs_until_terminated_and_answers_every_provider(tmp_path: Path) -> None:
    """`recyclecheck sandbox serve` prints eval-able exports; `check --provider` uses them."""
    data = tmp_path / "n.json"
    data.write_text('{"numbers": {"+14155552671": {"reissued_on": "2025-01-01"}}}')
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "recyclecheck.cli",
            "sandbox",
            "serve",
            "--port",
            "0",
            "--data",
            str(data),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        lines = []
        while not lines or not lines[-1].startswith("export RECYCLECHECK_RND_BASE_URL"):
            line = server.stdout.readline()
            assert line, "server exited early"
            lines.append(line.strip())
        env = dict(os.environ)
        for line in lines:
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").partition("=")
                env[name] = value
        for provider in ("twilio", "telesign", "rnd"):
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "recyclecheck.cli",
                    "check",
                    "+14155552671",
                    "--bound-at",
                    "2024-06-01",
                    "--provider",
                    provider,
                    "--json",
                ],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            assert json.loads(result.stdout)["reason"] == "reissued_after_binding", provider
        server.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert server.wait(timeout=10) == 0
        assert time.monotonic() - started < 5
    finally:
        server.kill()
        server.wait()
        if server.stdout is not None:
            server.stdout.close()


# -- issue 8 §6: what a newcomer tripped on ---------------------------------------------

REISSUED = ["check", "+8613800138000", "--bound-at", "2022-05-10"]


def run_closed_pipe(*args: str, stderr_too: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the CLI with stdout (and maybe stderr) a pipe whose reader is already gone."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write now fails with EPIPE, as after `| head -1` quit
    try:
        return subprocess.run(
            [sys.executable, "-m", "recyclecheck.cli", *args],
            stdout=write_end,
            stderr=write_end if stderr_too else subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ([*REISSUED, "--exit-status"], EXIT_STEP_UP),
        ([*REISSUED, "--json"], EXIT_OK),
        (["check", "--help"], EXIT_OK),
        (["check", "abc", "--bound-at", "2022-05-10", "--json"], EXIT_USAGE),
    ],
)
def test_a_reader_that_goes_away_ends_the_output_quietly(args: list[str], code: int) -> None:
    """`recyclecheck check ... | head -1`: no BrokenPipeError traceback, same exit code."""
    result = run_closed_pipe(*args)
    assert result.stderr == ""
    assert result.returncode == code


def test_a_closed_stderr_keeps_the_exit_code() -> None:
    """An error written to a closed pipe (`2>&1 | head -1`) still exits 2, not 1 by traceback."""
    result = run_closed_pipe("check", "abc", "--bound-at", "2022-05-10", stderr_too=True)
    assert result.returncode == EXIT_USAGE


class _ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_broken_pipe_in_process_returns_the_decided_code(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """main() itself swallows BrokenPipeError and returns the exit code it decided."""
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert main([*REISSUED, "--exit-status"]) == EXIT_STEP_UP


@pytest.mark.parametrize("value", ["0", "-1", "60.5", "abc", "nan", "inf", ""])
def test_a_bad_timeout_is_bad_usage_and_says_what_is_allowed(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    """--timeout 0 and --timeout abc follow one rule: exit 2, naming the allowed range."""
    code, out, err = run(capsys, *REISSUED, "--timeout", value)
    assert code == EXIT_USAGE
    assert out == ""
    assert "--timeout: must be a number of seconds greater than 0 and at most 60" in err


@pytest.mark.parametrize("value", ["60", "0.5"])
def test_timeouts_in_range_are_accepted(capsys: pytest.CaptureFixture[str], value: str) -> None:
    """The bounds in the message are the real ones: 60 itself is allowed."""
    assert run(capsys, *REISSUED, "--timeout", value)[0] == EXIT_OK


def test_bad_port_is_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    """`sandbox serve --port 70000` is refused as usage (exit 2) before binding anything."""
    code, _, err = run(capsys, "sandbox", "serve", "--port", "70000")
    assert code == EXIT_USAGE
    assert "--port: must be a whole number from 0 to 65535" in err


def _table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"\s*\|? ?`?[0-4]`? ", line)]


def test_the_exit_code_rule_is_stated_in_help_docstring_readme_and_docs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """One rule everywhere: a bad option value (--timeout) is exit 2, never exit 1."""
    code, out, _ = run(capsys, "check", "--help")
    assert code == EXIT_OK
    assert EXIT_CODES_HELP.strip() in out
    assert recyclecheck.cli.__doc__ is not None
    table = EXIT_CODES_HELP.split("\n\n", 1)[0].split("\n", 1)[1]
    assert table in recyclecheck.cli.__doc__
    for doc in ("README.md", "docs/api.md"):
        rows = {
            row.split("|")[1].strip(" `"): row
            for row in _table_rows((REPO / doc).read_text("utf-8"))
            if row.startswith("|")
        }
        assert "--timeout 0" in rows["2"], doc
        assert "--timeout abc" in rows["2"], doc
        assert "--timeout" not in rows["1"], doc


@pytest.mark.parametrize(
    ("args", "shown", "hidden"),
    [
        (["sandbox"], "COMMAND", "sandbox_command"),
        ([], "COMMAND", "command\n"),
        (["check", "--bound-at", "2022-05-10"], "PHONE", "phone\n"),
    ],
)
def test_usage_errors_name_what_users_type(
    capsys: pytest.CaptureFixture[str], args: list[str], shown: str, hidden: str
) -> None:
    """Missing arguments are named as the usage line shows them, not by internal dest names."""
    code, _, err = run(capsys, *args)
    assert code == EXIT_USAGE
    assert f"the following arguments are required: {shown}" in err
    assert hidden not in err


@pytest.mark.parametrize(
    ("args", "defaults"),
    [
        (["check", "--help"], ["(default: 0.8)", "(default: the embedded demo sandbox)"]),
        (["sandbox", "serve", "--help"], ["(default: 8765)", "(default: 127.0.0.1)"]),
    ],
)
def test_help_shows_defaults(
    capsys: pytest.CaptureFixture[str], args: list[str], defaults: list[str]
) -> None:
    """--help states each option's default."""
    code, out, _ = run(capsys, *args)
    assert code == EXIT_OK
    flat = " ".join(out.split())
    for default in defaults:
        assert default in flat


@pytest.mark.parametrize(
    ("args", "kind", "code"),
    [
        ([*REISSUED, "--timeout", "0"], "usage", EXIT_USAGE),
        (["check", "--bound-at", "2022-05-10"], "usage", EXIT_USAGE),
        ([*REISSUED, "--bogus"], "usage", EXIT_USAGE),
        (["check", "abc", "--bound-at", "2022-05-10"], "invalid_phone_number", EXIT_USAGE),
        (["check", "+8613800138000", "--bound-at", "yesterday"], "invalid_input", EXIT_USAGE),
        ([*REISSUED, "--sandbox", "/nonexistent/numbers.json"], "configuration", EXIT_CONFIG),
        ([*REISSUED, "--provider", "rnd"], "configuration", EXIT_CONFIG),
    ],
)
def test_json_applies_to_errors(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    kind: str,
    code: int,
) -> None:
    """With --json an error is one JSON object on stdout (kind and message); stderr is empty."""
    monkeypatch.delenv("RECYCLECHECK_RND_REFRESH_TOKEN", raising=False)
    got, out, err = run(capsys, *args, "--json")
    assert got == code
    assert err == ""
    data = json.loads(out)
    assert set(data) == {"error", "message"}
    assert data["error"] == kind
    assert isinstance(data["message"], str)
    assert data["message"]


@pytest.mark.parametrize(
    ("phone", "region", "hint"),
    [
        ("abc", None, False),
        ("+12", None, False),
        ("+86 abc", None, False),
        ("00 12", None, False),
        ("13800138000", None, True),
        ("138 0013 8000", None, True),
        ("12345", None, True),
        ("12345", "CN", False),
    ],
)
def test_a_region_is_suggested_only_where_it_can_help(
    capsys: pytest.CaptureFixture[str], phone: str, region: str | None, hint: bool
) -> None:
    """`check abc` does not suggest a region; digits without + do."""
    extra = ["--region", region] if region else []
    code, _, err = run(capsys, "check", phone, "--bound-at", "2022-05-10", *extra)
    assert code == EXIT_USAGE
    assert ("--region" in err) is hint
    assert "need a region" not in err


@pytest.mark.parametrize(
    "args",
    [
        ["check", "+86", "138", "0013", "8000", "--bound-at", "2022-05-10"],
        ["13800138000"],
        ["check", "+8613800138000", "--bound-at", "2022-05-10", "--bogus=+8613800138000"],
        ["check", "+8613800138000", "--bound-at", "2022-05-10", "--provider", "13800138000"],
    ],
)
@pytest.mark.parametrize("as_json", [False, True])
def test_usage_errors_never_echo_a_number(
    capsys: pytest.CaptureFixture[str], args: list[str], as_json: bool
) -> None:
    """argparse echoes what it refuses; the CLI withholds anything number-like."""
    code, out, err = run(capsys, *args, *(["--json"] if as_json else []))
    assert code == EXIT_USAGE
    assert not leaks(out + err, ["+8613800138000"])


def test_python_dash_m_recyclecheck_runs() -> None:
    """`python -m recyclecheck` is the command line."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "recyclecheck",
            "check",
            "+86 137 0013 7000",
            "--bound-at",
            "2022-05-10",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == EXIT_OK, result.stderr
    assert "no_data" in result.stdout


@contextlib.contextmanager
def serving(*options: str) -> Iterator[dict[str, str]]:
    """Run `recyclecheck sandbox serve` and yield the variables it exports; stop it after."""
    server = subprocess.Popen(
        [sys.executable, "-m", "recyclecheck", "sandbox", "serve", "--port", "0", *options],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        exports: dict[str, str] = {}
        while "RECYCLECHECK_RND_BASE_URL" not in exports:
            line = server.stdout.readline()
            assert line, "server exited early"
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").strip().partition("=")
                exports[name] = shlex.split(value)[0]
        yield exports
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) == EXIT_OK
    finally:
        server.kill()
        server.wait(timeout=10)
        if server.stdout is not None:
            server.stdout.close()


def check_process(env: dict[str, str], *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "recyclecheck",
            "check",
            "+14155552671",
            "--bound-at",
            "2024-06-01",
            "--provider",
            "twilio",
            "--json",
            *options,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_check_talks_to_sandbox_serve_over_tls() -> None:
    """`sandbox serve --tls` exports RECYCLECHECK_CA_BUNDLE; --ca-bundle or the export trusts it."""
    with serving("--tls") as exports:
        assert exports["RECYCLECHECK_TWILIO_BASE_URL"].startswith("https://")
        ca_bundle = exports.pop("RECYCLECHECK_CA_BUNDLE")
        env = {**os.environ, **exports}
        env.pop("RECYCLECHECK_CA_BUNDLE", None)
        results = {
            "--ca-bundle": check_process(env, "--ca-bundle", ca_bundle),
            "variable": check_process({**env, "RECYCLECHECK_CA_BUNDLE": ca_bundle}),
            "no CA": check_process(env),
            "REQUESTS_CA_BUNDLE": check_process({**env, "REQUESTS_CA_BUNDLE": ca_bundle}),
        }
    reasons = {how: json.loads(result.stdout)["reason"] for how, result in results.items()}
    assert reasons == {
        "--ca-bundle": "reissued_after_binding",
        "variable": "reissued_after_binding",
        "no CA": "provider_unavailable",  # TLS is verified: the throwaway CA is not trusted
        "REQUESTS_CA_BUNDLE": "provider_unavailable",  # deliberately not read
    }


@pytest.mark.parametrize(
    ("provider", "phone"),
    [
        ("aliyun", "+8613800138000"),
        ("camara", "+8613800138000"),
        ("rnd", "+14155552671"),
        ("telesign", "+14155552671"),
        ("twilio", "+14155552671"),
    ],
)
def test_every_provider_takes_ca_bundle_from_the_cli(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    provider: str,
    phone: str,
) -> None:
    """--ca-bundle reaches every adapter's from_env(): each gets an answer over HTTPS."""
    numbers = SandboxProvider.demo().scripted
    with FakeProviderServer(numbers, tls=True) as server:
        assert server.ca_bundle is not None
        for name, value in server.environment().items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("RECYCLECHECK_CA_BUNDLE", raising=False)
        args = ["check", phone, "--bound-at", "2022-05-10", "--provider", provider, "--json"]
        code, out, _ = run(capsys, *args, "--ca-bundle", server.ca_bundle)
        asked = [r for r in server.requests if r.provider == provider and r.endpoint == "lookup"]
    assert code == EXIT_OK
    assert json.loads(out)["reason"] != "provider_unavailable"
    assert asked


def test_ca_bundle_problems_follow_the_exit_code_rule(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An unusable --ca-bundle file is configuration (1); --ca-bundle without --provider is usage (2)."""
    not_pem = tmp_path / "roots.pem"
    not_pem.write_text("not a certificate\n")
    twilio = ["--provider", "twilio"]
    code, _, err = run(capsys, *REISSUED, *twilio, "--ca-bundle", str(tmp_path / "missing.pem"))
    assert (code, "--ca-bundle cannot be read" in err) == (EXIT_CONFIG, True)
    code, _, err = run(capsys, *REISSUED, *twilio, "--ca-bundle", str(not_pem))
    assert (code, "--ca-bundle holds no PEM certificate" in err) == (EXIT_CONFIG, True)
    code, _, err = run(capsys, *REISSUED, "--ca-bundle", str(not_pem))
    assert (code, "--ca-bundle applies only with --provider" in err) == (EXIT_USAGE, True)


def test_the_example_sandbox_file_is_the_documented_shape() -> None:
    """examples/numbers.json loads with SandboxProvider.from_file."""
    provider = SandboxProvider.from_file(REPO / "examples" / "numbers.json")
    assert len(provider) >= 4


def _readme_cli_examples() -> list[tuple[list[str], str]]:
    text = (REPO / "README.md").read_text("utf-8")
    section = text.split("## The command line", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    examples = []
    for line in section.strip().splitlines():
        command, _, comment = line.partition("#")
        examples.append((shlex.split(command), comment.strip()))
    return examples


@pytest.mark.parametrize(("command", "comment"), _readme_cli_examples())
def test_readme_cli_examples_do_what_they_say(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
    comment: str,
) -> None:
    """Each README command, run from the repository root, gives the verdict its comment names."""
    monkeypatch.chdir(REPO)
    assert command[0] == "recyclecheck"
    code, out, err = run(capsys, *command[1:])
    assert code == EXIT_OK, err
    verdict = re.match(r"(ALLOW|STEP UP) \((\w+)\)", comment)
    assert verdict is not None, comment
    if "--json" in command:
        data = json.loads(out)
        assert data["action"].replace("_", " ").upper() == verdict.group(1)
        assert data["reason"] == verdict.group(2)
    else:
        assert f"{verdict.group(1)}  ({verdict.group(2)})" in out


def test_readme_names_the_shipped_sandbox_file() -> None:
    """The README's --sandbox example points at a file that exists in the repository."""
    sandbox_files = [
        command[command.index("--sandbox") + 1]
        for command, _ in _readme_cli_examples()
        if "--sandbox" in command
    ]
    assert sandbox_files == ["examples/numbers.json"]
    assert (REPO / sandbox_files[0]).is_file()


_PIP_INSTALL_FROM_PYPI = re.compile(r"pip install\s+(?:-\S+\s+)*['\"]?recyclecheck\b")


def test_docs_install_from_a_checkout_not_from_pypi() -> None:
    """recyclecheck is not published: no doc says `pip install recyclecheck[...]`."""
    docs = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    offenders = [
        f"{doc.relative_to(REPO)}: {match.group()}"
        for doc in docs
        for match in _PIP_INSTALL_FROM_PYPI.finditer(doc.read_text("utf-8"))
    ]
    assert offenders == []
    assert "pip install ." in (REPO / "README.md").read_text("utf-8")
