"""The answer values and the Provider protocol, re-exported for the adapters.

They live in the core (``recyclecheck._answers``), so ``import recyclecheck``
never loads an adapter, ``requests`` or ``cryptography``.
"""

from __future__ import annotations

from .._answers import ANSWER_TYPES, Answer, ChangedSince, LastChange, NoData, NotCovered, Provider

__all__ = [
    "ANSWER_TYPES",
    "Answer",
    "ChangedSince",
    "LastChange",
    "NoData",
    "NotCovered",
    "Provider",
]
