"""docs/testing.md runs: its Python blocks as an app's test suite, its shell block as a CI job."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Imported out here, not first inside an in-process pytester run: pytester drops the modules an
# inner run imported, and cryptography's Rust core keeps the x509 classes of their first import,
# so a second run's trustme would fail its own isinstance checks.
import trustme  # noqa: F401

pytest_plugins = ["pytester"]

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
FILE_NAME = re.compile(r"# (\w+\.py)")
DOC_PORT_URL = "http://127.0.0.1:8765"

#: The cases the complete example promises to cover (docs/testing.md, "What the tests pin down").
CONTRACT = [
    "test_reissued_after_binding_steps_up",
    "test_never_reissued_logs_in_without_moving_bound_at",
    "test_no_data_steps_up",
    "test_binding_older_than_the_coverage_steps_up",
    "test_provider_down_steps_up_within_the_deadline",
    "test_provider_errors_step_up*",
    "test_a_passed_step_up_rebinds_and_the_next_sms_login_is_enough",
    "test_a_wrong_code_never_reaches_the_provider",
]


def blocks(language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(DOC.read_text("utf-8")) if lang == language]


def python_files() -> dict[str, str]:
    files: dict[str, str] = {}
    for body in blocks("python"):
        first = body.splitlines()[0]
        match = FILE_NAME.fullmatch(first)
        assert match, f"every Python block in testing.md starts with '# name.py', not {first!r}"
        assert match.group(1) not in files, f"two blocks named {match.group(1)}"
        files[match.group(1)] = body
    return files


def test_every_python_block_is_a_named_file() -> None:
    """The page's Python blocks are whole files: the app, its contract test and the variants."""
    assert {"login.py", "test_login.py", "test_login_http.py", "test_login_responses.py"} <= set(
        python_files()
    )


def test_the_examples_pass_as_an_app_test_suite(pytester: pytest.Pytester) -> None:
    """Every Python block, written out as a project, passes under pytest with warnings as errors."""
    for name, body in python_files().items():
        pytester.path.joinpath(name).write_text(body, encoding="utf-8")
    result = pytester.runpytest("-v", "-W", "error", "--strict-markers", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert result.ret == 0, result.stdout.str()
    assert set(outcomes) == {"passed"}, outcomes  # nothing failed, errored or skipped
    assert outcomes["passed"] == 19
    result.stdout.fnmatch_lines_random([f"test_login.py::{name} PASSED*" for name in CONTRACT])


def _recyclecheck_on_path(tmp_path: Path) -> dict[str, str]:
    """An environment whose ``recyclecheck`` runs this interpreter's package."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "recyclecheck"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m recyclecheck.cli "$@"\n')
    shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECYCLECHECK_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.mark.skipif(shutil.which("bash") is None or os.name != "posix", reason="needs bash")
def test_the_shell_block_runs_as_a_ci_job(tmp_path: Path) -> None:
    """The CI recipe starts the sandbox, sources its exports, and both checks give the documented result."""
    (script,) = blocks("sh")
    job = subprocess.Popen(
        ["bash", "-eu", "-c", script],
        cwd=tmp_path,
        env=_recyclecheck_on_path(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = job.communicate(timeout=60)
    finally:
        if job.poll() is None:  # only on a hung job: end it and its sandbox server
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    assert job.returncode == 0, err
    verdicts = [line.split()[2:4] for line in out.splitlines() if line.startswith("+")]
    assert verdicts == [["STEP", "UP"], ["ALLOW", "(not_reissued)"]]


def test_the_printed_exports_match_the_command(tmp_path: Path) -> None:
    """The sample output of `recyclecheck sandbox serve` in the docs is what it prints."""
    (sample,) = [body for body in blocks("text") if "sandbox serving on" in body]
    server = subprocess.Popen(
        [sys.executable, "-m", "recyclecheck.cli", "sandbox", "serve", "--port", "0"],
        env=_recyclecheck_on_path(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = server.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("export RECYCLECHECK_RND_BASE_URL="):
                break
    finally:
        server.terminate()
        server.communicate(timeout=10)
    printed = "".join(lines)
    url = re.search(r"serving on (http://\S+)", printed)
    assert url, printed
    assert printed.replace(url.group(1), DOC_PORT_URL) == sample
