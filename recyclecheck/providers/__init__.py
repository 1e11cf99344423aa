"""Providers: the answer values, the Provider protocol, the sandbox and the adapters.

A provider has a ``name`` and ``lookup(number, since) -> Answer``; anything
with those plugs into :class:`recyclecheck.Guard`.  The adapters speak the
real services' wire formats; each takes a base URL so it can point at a
sandbox such as :class:`recyclecheck.testing.FakeProviderServer`.
"""

from __future__ import annotations

from .._deadline import remaining_time
from .._registry import PROVIDERS, ProviderEntry, provider_from_env
from .._router import Route, Router
from ._answers import Answer, ChangedSince, LastChange, NoData, NotCovered, Provider
from ._sandbox import SandboxProvider
from .aliyun import AliyunProvider
from .camara import CamaraProvider
from .rnd import RndProvider
from .telesign import TelesignProvider
from .twilio import TwilioProvider

__all__ = [
    "PROVIDERS",
    "AliyunProvider",
    "Answer",
    "CamaraProvider",
    "ChangedSince",
    "LastChange",
    "NoData",
    "NotCovered",
    "Provider",
    "ProviderEntry",
    "RndProvider",
    "Route",
    "Router",
    "SandboxProvider",
    "TelesignProvider",
    "TwilioProvider",
    "provider_from_env",
    "remaining_time",
]
