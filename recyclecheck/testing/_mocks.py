"""``responses`` mocks of each provider's wire format, for apps mocking the ``requests`` layer.

Each ``mock_<provider>`` registers callbacks on a caller's
:class:`responses.RequestsMock` that answer from scripted numbers with the same
renderers as :class:`~recyclecheck.testing.FakeProviderServer`.  Requests are
parsed and their shape checked; credentials are checked only when
``credentials`` is given.  A number scripted with a ``ProviderError`` fails the
way the provider would (a 429, a 503, a refusal, malformed JSON, or a read
timeout for :class:`~recyclecheck.ProviderTimeout`).

``responses`` is a test-only extra (``recyclecheck[testing]``), imported only
when a mock is set up.
"""

from __future__ import annotations

import contextlib
import re
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .._registry import PROVIDERS
from ..exceptions import ConfigurationError
from ..providers._sandbox import Scripted
from . import _wire_aliyun, _wire_camara, _wire_rnd, _wire_telesign, _wire_twilio
from ._backend import Backend, Credentials
from ._faults import Hang, Reset
from ._wire_base import Incoming, Parsed, Wire, fault_reply
from ._wire_batch import scripted_fault

if TYPE_CHECKING:
    import requests
    import responses

__all__ = [
    "mock_aliyun",
    "mock_camara",
    "mock_provider",
    "mock_rnd",
    "mock_telesign",
    "mock_twilio",
]

_Result = tuple[int, dict[str, str], bytes] | Exception
_QUERY = r"(?:\?.*)?$"


def _base(url: str, what: str) -> tuple[str, str]:
    """Return (``url`` without a trailing slash, its path)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(f"{what} must be an http(s) URL")
    return url.rstrip("/"), parts.path.rstrip("/")


def _callback(
    wire: Wire, backend: Backend, base_path: str, *, route: str | None = None
) -> Callable[[requests.PreparedRequest], _Result]:
    """A ``responses`` callback driving one request through ``wire``."""

    def callback(request: requests.PreparedRequest) -> _Result:
        parts = urllib.parse.urlsplit(request.url or "")
        path = parts.path
        local = route if route is not None else path[len(base_path) :]
        body = request.body or b""
        incoming = Incoming(
            request.method or "GET",
            path,
            parts.query,
            dict(request.headers),
            body.encode("utf-8") if isinstance(body, str) else bytes(body),
            f"{parts.scheme}://{parts.netloc}",
            local,
        )
        endpoint = wire.route(incoming.method, local)
        if endpoint is None:
            return 404, {"Content-Type": "application/json"}, b'{"error": "not found"}'
        parsed: Parsed = wire.parse(incoming, endpoint, backend)
        fault = scripted_fault(parsed, backend) if parsed.endpoint in ("lookup", "batch") else None
        if fault is None:
            reply = wire.respond(incoming, parsed, backend)
        else:
            import requests  # noqa: PLC0415 - only for the exception types

            if isinstance(fault, Hang):
                return requests.exceptions.ReadTimeout("scripted timeout")
            if isinstance(fault, Reset):  # pragma: no cover - no ProviderError maps to it
                return requests.exceptions.ConnectionError("scripted reset")
            scripted = fault_reply(wire, incoming, parsed, fault)
            assert scripted is not None  # noqa: S101 - only transport faults have no reply
            reply = scripted
        return reply.status, dict(reply.headers), reply.body

    return callback


def _register(
    rsps: responses.RequestsMock,
    method: str,
    pattern: str,
    callback: Callable[[requests.PreparedRequest], _Result],
) -> None:
    rsps.add_callback(
        method, re.compile(pattern + _QUERY), callback=callback, content_type="application/json"
    )


def mock_twilio(
    rsps: responses.RequestsMock,
    numbers: Mapping[str, Scripted],
    *,
    base_url: str = _wire_twilio.DEFAULT_BASE_URL,
    credentials: Credentials | None = None,
) -> None:
    """Answer Twilio Lookup v2 from ``numbers``.

    Both ``GET {base_url}/v2/PhoneNumbers/{number}`` and the batch endpoint
    ``POST {base_url}/v2/batch/query`` are mocked.
    """
    base, path = _base(base_url, "base_url")
    backend = Backend(numbers, credentials=credentials)
    callback = _callback(_wire_twilio.WIRE, backend, path)
    _register(rsps, "GET", re.escape(base) + r"/v2/PhoneNumbers/[^/?#]+", callback)
    _register(rsps, "POST", re.escape(base + _wire_twilio.BATCH_PATH), callback)


def mock_telesign(
    rsps: responses.RequestsMock,
    numbers: Mapping[str, Scripted],
    *,
    base_url: str = _wire_telesign.DEFAULT_BASE_URL,
    credentials: Credentials | None = None,
) -> None:
    """Answer Telesign Phone ID ``POST {base_url}/v1/phoneid/{digits}`` from ``numbers``."""
    base, path = _base(base_url, "base_url")
    backend = Backend(numbers, credentials=credentials)
    callback = _callback(_wire_telesign.WIRE, backend, path)
    _register(rsps, "POST", re.escape(base) + r"/v1/phoneid/[^/?#]+", callback)


def mock_camara(
    rsps: responses.RequestsMock,
    numbers: Mapping[str, Scripted],
    *,
    api_root: str,
    token_url: str | None = None,
    credentials: Credentials | None = None,
) -> None:
    """Answer CAMARA ``POST {api_root}/number-recycling/{version}/check`` from ``numbers``.

    With ``token_url``, its client-credentials token endpoint is mocked too.
    """
    base, path = _base(api_root, "api_root")
    backend = Backend(numbers, credentials=credentials)
    wire = _wire_camara.WIRE
    _register(
        rsps,
        "POST",
        re.escape(base) + r"/number-recycling/[^/?#]+/check",
        _callback(wire, backend, path),
    )
    if token_url is not None:
        token_base, _ = _base(token_url, "token_url")
        callback = _callback(wire, backend, "", route=_wire_camara.TOKEN_PATH)
        _register(rsps, "POST", re.escape(token_base), callback)


def mock_aliyun(
    rsps: responses.RequestsMock,
    numbers: Mapping[str, Scripted],
    *,
    endpoint: str = _wire_aliyun.DEFAULT_ENDPOINT,
    credentials: Credentials | None = None,
) -> None:
    """Answer Alibaba's ``DescribePhoneTwiceTelVerify`` (``POST {endpoint}/?...``) from a script."""
    base, path = _base(endpoint, "endpoint")
    backend = Backend(numbers, credentials=credentials)
    callback = _callback(_wire_aliyun.WIRE, backend, path)
    _register(rsps, "POST", re.escape(base) + "/", callback)


def mock_rnd(
    rsps: responses.RequestsMock,
    numbers: Mapping[str, Scripted],
    *,
    base_url: str = _wire_rnd.DEFAULT_BASE_URL,
    credentials: Credentials | None = None,
) -> None:
    """Answer the RND's id-token endpoint and ``POST {base_url}/api/tn`` from ``numbers``.

    A ``tnList`` of any length (up to 100, a batch) is answered item by item.
    """
    base, path = _base(base_url, "base_url")
    backend = Backend(numbers, credentials=credentials)
    callback = _callback(_wire_rnd.WIRE, backend, path)
    _register(rsps, "POST", re.escape(base + _wire_rnd.ID_TOKEN_PATH), callback)
    _register(rsps, "POST", re.escape(base) + "/api/tn", callback)


#: One ``mock_<name>`` per provider in the registry (a missing one fails at import).
_MOCKS: dict[str, Callable[..., None]] = {name: globals()[f"mock_{name}"] for name in PROVIDERS}


@contextlib.contextmanager
def mock_provider(
    provider: str, numbers: Mapping[str, Scripted] | None = None, **options: Any
) -> Iterator[responses.RequestsMock]:
    """Mock one provider for the ``with`` block and yield the active ``RequestsMock``.

    ``provider`` is ``"twilio"``, ``"telesign"``, ``"camara"``, ``"aliyun"`` or
    ``"rnd"``; ``options`` go to the matching ``mock_<provider>``::

        with mock_provider("twilio", {"+12015550123": date(2024, 3, 1)}) as rsps:
            assert TwilioProvider("AC...", "token").lookup(...) == ...
    """
    register = _MOCKS.get(provider)
    if register is None:
        raise ConfigurationError(f"provider must be one of {', '.join(sorted(_MOCKS))}")
    import responses  # noqa: PLC0415 - a test-only extra

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        register(rsps, numbers or {}, **options)
        yield rsps
