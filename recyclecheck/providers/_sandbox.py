"""An in-memory provider with scripted numbers, for development, demos and tests."""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
from collections.abc import Mapping
from importlib import resources
from types import MappingProxyType
from typing import Any

from .._phone import normalize
from ..exceptions import ConfigurationError, InvalidInput, ProviderError
from ._answers import ANSWER_TYPES, Answer, LastChange, NoData, NotCovered

__all__ = ["SandboxProvider"]

#: What a scripted number may map to: a reissue date, ``None`` (never reissued),
#: any Answer, or a ProviderError to raise (to script an outage).
Scripted = dt.date | None | Answer | ProviderError

_ENTRY_KEYS = frozenset({"reissued_on", "covered_since", "no_data", "not_covered", "note"})
MAX_SANDBOX_FILE = 8 * 1024 * 1024


def _file_date(value: object, field: str) -> dt.date | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"{field} must be a YYYY-MM-DD string or null")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ConfigurationError(f"{field} must be a YYYY-MM-DD date") from None


def _entry_answer(entry: object, where: str) -> Answer:
    if not isinstance(entry, dict):
        raise ConfigurationError(f"{where}: each number maps to an object")
    unknown = set(entry) - _ENTRY_KEYS
    if unknown:
        raise ConfigurationError(f"{where}: unknown keys {sorted(unknown)}")
    if entry.get("no_data") is True:
        return NoData()
    if entry.get("not_covered") is True:
        return NotCovered()
    if "reissued_on" not in entry:
        raise ConfigurationError(
            f"{where}: give reissued_on (a date or null), no_data or not_covered"
        )
    return LastChange(
        _file_date(entry["reissued_on"], f"{where}.reissued_on"),
        _file_date(entry.get("covered_since"), f"{where}.covered_since"),
    )


class SandboxProvider:
    """Answers from a fixed table of numbers; no network.

    ``numbers`` maps phone numbers (any format ``phonenumbers`` parses
    internationally) to a reissue date, ``None`` for "never reissued", any
    :data:`Answer`, or a :class:`~recyclecheck.ProviderError` instance to raise.
    Unlisted numbers give ``NoData()``.
    """

    def __init__(self, numbers: Mapping[str, Scripted], *, name: str = "sandbox") -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError("name must be a non-empty str")
        self.name = name
        self._numbers: dict[str, Answer | ProviderError] = {}
        for index, (phone, value) in enumerate(numbers.items()):
            try:
                e164 = normalize(phone).e164
            except InvalidInput:
                raise ConfigurationError(f"sandbox number #{index} is not a valid number") from None
            self._numbers[e164] = self._answer(value, index)

    @staticmethod
    def _answer(value: object, index: int) -> Answer | ProviderError:
        if value is None:
            return LastChange(None)
        if isinstance(value, dt.datetime):
            raise ConfigurationError(f"sandbox number #{index}: use a date, not a datetime")
        if isinstance(value, dt.date):
            return LastChange(value)
        if isinstance(value, (*ANSWER_TYPES, ProviderError)):
            return value
        raise ConfigurationError(
            f"sandbox number #{index}: expected a date, None, an Answer or a ProviderError"
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, name: str = "sandbox") -> SandboxProvider:
        """Build from the JSON structure ``{"numbers": {"+86...": {"reissued_on": ...}}}``."""
        numbers = data.get("numbers") if isinstance(data, Mapping) else None
        if not isinstance(numbers, dict):
            raise ConfigurationError('sandbox data needs a "numbers" object')
        scripted: dict[str, Scripted] = {}
        for index, (phone, entry) in enumerate(numbers.items()):
            scripted[phone] = _entry_answer(entry, f"numbers #{index}")
        return cls(scripted, name=name)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, name: str = "sandbox") -> SandboxProvider:
        """Load numbers from a JSON file (format in ``docs/concepts.md``)."""
        try:
            with open(path, "rb") as handle:
                raw = handle.read(MAX_SANDBOX_FILE + 1)
        except OSError as exc:
            raise ConfigurationError(f"cannot read sandbox file: {exc.strerror}") from None
        if len(raw) > MAX_SANDBOX_FILE:
            raise ConfigurationError("sandbox file is larger than 8 MiB")
        try:
            data = json.loads(raw)
        except ValueError:
            raise ConfigurationError("sandbox file is not valid JSON") from None
        return cls.from_dict(data, name=name)

    @classmethod
    def demo(cls) -> SandboxProvider:
        """The scripted numbers the demo, the CLI and the docs use (see ``docs/concepts.md``)."""
        text = resources.files("recyclecheck.providers").joinpath("_demo.json").read_text("utf-8")
        return cls.from_dict(json.loads(text), name="sandbox")

    @property
    def scripted(self) -> Mapping[str, Answer | ProviderError]:
        """The validated script: E.164 number to answer (or error), read-only."""
        return MappingProxyType(self._numbers)

    def lookup(self, number: str, since: dt.date) -> Answer:
        """Answer from the table; unlisted numbers give ``NoData()``."""
        answer = self._numbers.get(number)
        if answer is None:
            return NoData()
        if isinstance(answer, ProviderError):
            # A fresh copy per call: threads must not share one traceback.
            raise copy.copy(answer)
        return answer

    def __len__(self) -> int:
        return len(self._numbers)

    def __repr__(self) -> str:
        return f"<SandboxProvider name={self.name!r} numbers={len(self._numbers)}>"
