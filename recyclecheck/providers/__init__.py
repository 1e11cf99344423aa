"""Providers: the answer values, the Provider protocol, the sandbox and the adapters.

A provider has a ``name`` and ``lookup(number, since) -> Answer``; anything
with those plugs into :class:`recyclecheck.Guard`.
"""

from __future__ import annotations

from .._deadline import remaining_time
from ._answers import Answer, ChangedSince, LastChange, NoData, NotCovered, Provider
from ._sandbox import SandboxProvider

__all__ = [
    "Answer",
    "ChangedSince",
    "LastChange",
    "NoData",
    "NotCovered",
    "Provider",
    "SandboxProvider",
    "remaining_time",
]
