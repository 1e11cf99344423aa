"""Test your app's recycled-number handling without real providers.

Three tools, one script format (the values :class:`~recyclecheck.providers.SandboxProvider`
takes: a reissue date, ``None`` for never, any ``Answer``, or a ``ProviderError``):

- :class:`ScriptedSandbox`: an in-memory provider a test re-scripts between
  checks (``.reissued(number, on=...)``, ``.down()``, ``.hang()``...), with a
  ready ``Guard`` from ``.guard()`` and :class:`DecisionLog` to collect decisions.

- :class:`FakeProviderServer`: a real local HTTP(S) server that speaks every
  supported provider's wire format (Twilio, Telesign, CAMARA with its token
  endpoint, Alibaba, the US RND), checks credentials and signatures like the
  real services, records requests and injects faults (:class:`Latency`,
  :class:`Hang`, :class:`SlowDrip`, :class:`HeaderDrip`, :class:`ChunkDrip`,
  :class:`RateLimit`, :class:`ServerError`, :class:`Reset`,
  :class:`MalformedJson`, :class:`HtmlErrorPage`, :class:`HugeBody`,
  :class:`Redirect`, :class:`AuthRefused`)::

      with FakeProviderServer({"+8613800138000": date(2024, 3, 1)}) as server:
          server.inject(ServerError(503), times=1)
          guard = recyclecheck.Guard(server.aliyun())
          ...

- ``responses`` mocks (:func:`mock_twilio`, :func:`mock_telesign`,
  :func:`mock_camara`, :func:`mock_aliyun`, :func:`mock_rnd`,
  :func:`mock_provider`) for apps that mock at the ``requests`` layer.

The ``recyclecheck`` pytest plugin (:mod:`recyclecheck.testing.pytest_plugin`)
wraps these in fixtures: ``recyclecheck_sandbox``, ``recyclecheck_guard``,
``recyclecheck_decisions``, ``recyclecheck_fake_server``,
``recyclecheck_fake_server_env`` and ``recyclecheck_responses``.

Needs the ``testing`` extra (``pip install 'recyclecheck[testing]'``) for
``responses`` and ``trustme``; both are imported only when used.  Importing
:mod:`recyclecheck` never imports this package.
"""

from __future__ import annotations

from ._backend import Credentials
from ._decisions import DecisionLog
from ._faults import (
    AuthRefused,
    ChunkDrip,
    Fault,
    Hang,
    HeaderDrip,
    HtmlErrorPage,
    HugeBody,
    Latency,
    MalformedJson,
    RateLimit,
    Redirect,
    Reset,
    ServerError,
    SlowDrip,
)
from ._mocks import (
    mock_aliyun,
    mock_camara,
    mock_provider,
    mock_rnd,
    mock_telesign,
    mock_twilio,
)
from ._script import RecordedLookup, ScriptedSandbox
from ._server import FakeProviderServer, RecordedRequest

__all__ = [
    "AuthRefused",
    "ChunkDrip",
    "Credentials",
    "DecisionLog",
    "FakeProviderServer",
    "Fault",
    "Hang",
    "HeaderDrip",
    "HtmlErrorPage",
    "HugeBody",
    "Latency",
    "MalformedJson",
    "RateLimit",
    "RecordedLookup",
    "RecordedRequest",
    "Redirect",
    "Reset",
    "ScriptedSandbox",
    "ServerError",
    "SlowDrip",
    "mock_aliyun",
    "mock_camara",
    "mock_provider",
    "mock_rnd",
    "mock_telesign",
    "mock_twilio",
]
