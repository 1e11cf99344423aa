"""The recyclecheck command line: output, JSON, exit codes, no full numbers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recyclecheck.cli import (
    EXIT_CONFIG,
    EXIT_DENY,
    EXIT_OK,
    EXIT_STEP_UP,
    EXIT_USAGE,
    PROVIDERS_FROM_ENV,
    main,
)


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
    """All five adapters can be chosen with --provider."""
    assert sorted(PROVIDERS_FROM_ENV) == ["aliyun", "camara", "rnd", "telesign", "twilio"]


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
