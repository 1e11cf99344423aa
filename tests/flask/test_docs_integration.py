"""docs/integration.md runs: its files pass as a project, its excerpts are still in the demo."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from examples.flask_demo.seed import SEED_ACCOUNTS

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "integration.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
FILE_NAME = re.compile(r"# (\w+\.py)")
EXCERPT = re.compile(r"# ([\w/]+\.py) \(excerpt\)")
IMAGE = re.compile(r"!\[[^\]]*\]\((img/[\w.-]+)\)")


def _python_blocks() -> list[str]:
    return [body for lang, body in FENCE.findall(DOC.read_text("utf-8")) if lang == "python"]


def _files() -> dict[str, str]:
    files = {}
    for body in _python_blocks():
        match = FILE_NAME.fullmatch(body.splitlines()[0])
        if match:
            assert match.group(1) not in files
            files[match.group(1)] = body
    return files


def test_every_python_block_is_a_file_or_an_excerpt() -> None:
    """Nothing on the page is an untested fragment."""
    for body in _python_blocks():
        first = body.splitlines()[0]
        assert FILE_NAME.fullmatch(first) or EXCERPT.fullmatch(first), first
    assert set(_files()) == {"shop.py", "test_shop.py"}


def test_the_excerpts_are_still_in_the_demo_word_for_word() -> None:
    """An excerpt that drifted from the code would teach the wrong thing."""
    excerpts = 0
    for body in _python_blocks():
        match = EXCERPT.fullmatch(body.splitlines()[0])
        if match is None:
            continue
        source = (ROOT / match.group(1)).read_text("utf-8")
        excerpt = textwrap.dedent("\n".join(body.splitlines()[1:]))
        assert textwrap.indent(excerpt, "    ") in source or excerpt in source
        excerpts += 1
    assert excerpts == 3


def test_the_pictures_exist_and_are_small() -> None:
    """Every screenshot the page shows is committed, and none is large."""
    images = IMAGE.findall(DOC.read_text("utf-8"))
    assert len(images) == 9
    for image in images:
        path = DOC.parent / image
        assert path.is_file(), image
        assert path.stat().st_size < 150_000, image


def test_the_files_pass_as_an_app_test_suite(pytester: pytest.Pytester) -> None:
    """shop.py and test_shop.py, written out as a project, pass with warnings as errors."""
    for name, body in _files().items():
        pytester.path.joinpath(name).write_text(body, encoding="utf-8")
    result = pytester.runpytest("-v", "-W", "error", "--strict-markers", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert result.ret == 0, result.stdout.str()
    assert outcomes == {"passed": 6}, outcomes


def _table(text: str, header: str) -> list[list[str]]:
    lines = text[text.index(header) :].splitlines()
    rows = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip(" `") for cell in line.strip("|").split("|")])
    return rows


@pytest.mark.parametrize(
    ("doc", "header"),
    [
        ("README.md", "| account | number | password | what happens |"),
        ("docs/integration.md", "| account | number | password | bound |"),
    ],
)
def test_the_seeded_accounts_tables_match_the_seed(doc: str, header: str) -> None:
    """The accounts a newcomer reads about are the ones the demo seeds."""
    rows = _table((ROOT / doc).read_text("utf-8"), header)
    assert len(rows) == len(SEED_ACCOUNTS)
    for row, seed in zip(rows, SEED_ACCOUNTS, strict=True):
        assert row[0].startswith(seed.name)
        assert row[1].replace(" ", "") == seed.phone
        assert row[2] == seed.password


def test_the_readme_starts_the_demo_with_one_command() -> None:
    """After the README's install command, one command starts the demo."""
    readme = (ROOT / "README.md").read_text("utf-8")
    demo = readme[readme.index("## Demo") :]
    assert ".venv/bin/flask --app examples.flask_demo run" in demo.split("```")[1]
