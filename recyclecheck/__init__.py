"""recyclecheck: stop recycled phone numbers from logging in to someone else's account.

During an SMS-code login, :meth:`Guard.check` asks a data provider whether the
number changed hands since the account bound it, and returns a
:class:`Decision`: allow, or step up to extra verification.
"""

from __future__ import annotations

import logging
import typing

from ._cache import FactCache, MemoryCache
from ._decision import Decision
from ._facts import Fact
from ._feeds import FeedRow, IngestReport, RowError, ingest, read_feed
from ._guard import Guard
from ._phone import mask
from ._policy import Action, Policy, Reason
from ._quota import Quota, RedisTokenBucket, TokenBucket
from ._router import Fallback, Route, Router
from ._sweep import SweepResult, SweepRow
from ._version import __version__
from .exceptions import (
    CacheUnavailable,
    ConfigurationError,
    InvalidInput,
    InvalidPhoneNumber,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderTimeout,
    ProviderUnavailable,
    RecycleCheckError,
)

if typing.TYPE_CHECKING:
    from ._redis_cache import RedisCache


def __getattr__(name: str) -> object:
    # RedisCache needs ``cryptography``; apps without a shared cache never load it.
    if name == "RedisCache":
        from ._redis_cache import RedisCache  # noqa: PLC0415 - deferred on purpose

        return RedisCache
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# A library never decides where log records go; the app's configuration does.
logging.getLogger("recyclecheck").addHandler(logging.NullHandler())

__all__ = [
    "Action",
    "CacheUnavailable",
    "ConfigurationError",
    "Decision",
    "Fact",
    "FactCache",
    "Fallback",
    "FeedRow",
    "Guard",
    "IngestReport",
    "InvalidInput",
    "InvalidPhoneNumber",
    "MemoryCache",
    "Policy",
    "ProviderAuthError",
    "ProviderError",
    "ProviderRateLimited",
    "ProviderResponseError",
    "ProviderTimeout",
    "ProviderUnavailable",
    "Quota",
    "Reason",
    "RecycleCheckError",
    "RedisCache",
    "RedisTokenBucket",
    "Route",
    "Router",
    "RowError",
    "SweepResult",
    "SweepRow",
    "TokenBucket",
    "__version__",
    "ingest",
    "mask",
    "read_feed",
]
