"""SandboxProvider: dict, file and demo data; strict loading; no network."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from recyclecheck import ConfigurationError, ProviderUnavailable
from recyclecheck.providers import (
    ChangedSince,
    LastChange,
    NoData,
    NotCovered,
    Provider,
    SandboxProvider,
)

SINCE = dt.date(2022, 5, 9)


def test_mapping_values() -> None:
    """Dates, None, answers and errors script the number's answer."""
    provider = SandboxProvider(
        {
            "+86 138 0013 8000": dt.date(2024, 3, 1),
            "+8613900139000": None,
            "+8613700137000": NoData(),
            "+8613600136000": ChangedSince(SINCE, True),
            "+8613500135000": ProviderUnavailable("scripted outage"),
        }
    )
    assert isinstance(provider, Provider)
    assert provider.lookup("+8613800138000", SINCE) == LastChange(dt.date(2024, 3, 1))
    assert provider.lookup("+8613900139000", SINCE) == LastChange(None)
    assert provider.lookup("+8613700137000", SINCE) == NoData()
    assert provider.lookup("+8613600136000", SINCE) == ChangedSince(SINCE, True)
    assert provider.lookup("+8613300133000", SINCE) == NoData()
    with pytest.raises(ProviderUnavailable):
        provider.lookup("+8613500135000", SINCE)


@pytest.mark.parametrize(
    "numbers",
    [
        {"not a number": None},
        {"+8613800138000": "2024-01-01"},
        {"+8613800138000": dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)},
        {"+8613800138000": 5},
    ],
)
def test_bad_mappings_are_configuration_errors(numbers: dict[str, object]) -> None:
    """Scripts that cannot mean anything are refused at construction."""
    with pytest.raises(ConfigurationError):
        SandboxProvider(numbers)  # type: ignore[arg-type]


def test_from_file(tmp_path: Path) -> None:
    """The documented JSON format loads, covered_since included."""
    path = tmp_path / "numbers.json"
    path.write_text(
        json.dumps(
            {
                "numbers": {
                    "+8613800138000": {"reissued_on": "2024-03-01"},
                    "+8613900139000": {"reissued_on": None},
                    "+8613700137000": {"no_data": True},
                    "+8615800158000": {"reissued_on": None, "covered_since": "2025-01-01"},
                    "+8613600136000": {"not_covered": True, "note": "free text"},
                }
            }
        )
    )
    provider = SandboxProvider.from_file(path)
    assert len(provider) == 5
    assert provider.lookup("+8613800138000", SINCE) == LastChange(dt.date(2024, 3, 1))
    assert provider.lookup("+8615800158000", SINCE) == LastChange(None, dt.date(2025, 1, 1))
    assert provider.lookup("+8613600136000", SINCE) == NotCovered()


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"numbers": []}',
        '{"numbers": {"+8613800138000": {"reissued_on": "March"}}}',
        '{"numbers": {"+8613800138000": {"reissued_on": 20240301}}}',
        '{"numbers": {"+8613800138000": {"reissued": "2024-03-01"}}}',
        '{"numbers": {"+8613800138000": {}}}',
        '{"numbers": {"+8613800138000": "2024-03-01"}}',
        '{"numbers": {"13800138000": {"reissued_on": null}}}',
    ],
)
def test_bad_files_are_configuration_errors(tmp_path: Path, content: str) -> None:
    """Malformed files fail loudly with a message that names no number."""
    path = tmp_path / "numbers.json"
    path.write_text(content)
    with pytest.raises(ConfigurationError) as info:
        SandboxProvider.from_file(path)
    assert "13800138000" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    """A missing file is a configuration error, not an OSError."""
    with pytest.raises(ConfigurationError):
        SandboxProvider.from_file(tmp_path / "absent.json")


def test_demo_data_has_the_promised_cases() -> None:
    """The demo covers reissued-after-binding, never reissued, no data, and late coverage."""
    demo = SandboxProvider.demo()
    answers = [demo.lookup(n, SINCE) for n in demo.scripted]
    assert any(isinstance(a, LastChange) and a.on and a.on > dt.date(2022, 5, 10) for a in answers)
    assert LastChange(None) in answers
    assert NoData() in answers
    assert any(
        isinstance(a, LastChange) and a.covered_since and a.covered_since > SINCE for a in answers
    )


def test_repr_hides_numbers() -> None:
    """The sandbox repr counts numbers and shows none."""
    assert "138" not in repr(SandboxProvider.demo())
