"""What every fake wire format shares: the request and reply values and the verdict rule.

Each ``_wire_<provider>`` module implements :class:`ProviderWire` for one
provider.  The server and the ``responses`` mocks both drive a request through
the same ``Wire``, so each wire format has one source of truth; and each
``ProviderWire`` also builds its adapter against a fake (:meth:`ProviderWire.adapter`,
through :func:`build_adapter`), so the server's factories hold no table of their own.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

import attrs
from requests.structures import CaseInsensitiveDict

from ..providers._answers import Answer, ChangedSince, LastChange, NoData, NotCovered, Provider
from ._backend import Backend, Credentials
from ._faults import (
    AuthRefused,
    Fault,
    HtmlErrorPage,
    HugeBody,
    MalformedJson,
    RateLimit,
    Redirect,
    ServerError,
)

__all__ = [
    "Incoming",
    "Parsed",
    "ProviderWire",
    "Reply",
    "Verdict",
    "Wire",
    "build_adapter",
    "fault_reply",
    "html_page",
    "huge_json",
    "verdict",
]


def _headers(value: Mapping[str, str]) -> CaseInsensitiveDict[str]:
    return CaseInsensitiveDict(value)


@attrs.frozen
class Incoming:
    """One request as a provider receives it.

    ``path`` is the full path sent (what signatures cover), ``route`` the part
    after the provider's base path (what selects the endpoint); ``query`` is
    the raw query string and ``base_url`` the ``scheme://host[:port]`` the
    client addressed.
    """

    method: str
    path: str
    query: str
    headers: CaseInsensitiveDict[str] = attrs.field(converter=_headers, repr=False)
    body: bytes = attrs.field(repr=False)
    base_url: str
    route: str = ""

    def params(self) -> dict[str, str]:
        """The query parameters, percent-decoded (``+`` stays ``+``); the last one wins."""
        result: dict[str, str] = {}
        for pair in self.query.split("&"):
            if not pair:
                continue
            name, _, value = pair.partition("=")
            result[urllib.parse.unquote(name)] = urllib.parse.unquote(value)
        return result

    def json(self) -> Any:
        """The body decoded as JSON, or ``None`` when it is not JSON."""
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):
            return None


@attrs.frozen
class Reply:
    """One complete answer: status, headers and body bytes."""

    status: int
    headers: Mapping[str, str]
    body: bytes = attrs.field(repr=False)

    @classmethod
    def json(cls, status: int, payload: object, headers: Mapping[str, str] | None = None) -> Reply:
        """A JSON reply (``application/json``)."""
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        return cls(status, {"Content-Type": "application/json", **(headers or {})}, body)


@attrs.frozen
class Parsed:
    """What a request is about, read leniently before any auth check.

    ``endpoint`` is ``"lookup"`` or ``"token"``; ``number`` the E.164 number
    a lookup asks about (``None`` when absent or unrecognisable); ``since``
    the first day a change would count as "since" for that request.
    """

    endpoint: str
    number: str | None = None
    since: dt.date | None = None


class Wire(Protocol):
    """One provider's wire format: routing, parsing, auth, answers and error bodies."""

    name: str

    def environment(self, url: str, credentials: Credentials) -> dict[str, str]:
        """The variables the adapter's ``from_env()`` reads, pointing it at ``url``."""
        ...

    def route(self, method: str, route: str) -> str | None:
        """The endpoint (``"lookup"``, ``"token"``) this method and path hit, else ``None``."""
        ...

    def parse(self, request: Incoming, endpoint: str, backend: Backend) -> Parsed:
        """Read what the request is about, leniently (auth is checked in :meth:`respond`)."""
        ...

    def respond(self, request: Incoming, parsed: Parsed, backend: Backend) -> Reply:
        """Check auth and the request's shape, then answer from the backend's script."""
        ...

    def refused(self, request: Incoming, parsed: Parsed) -> Reply:
        """The provider's answer to credentials it does not accept."""
        ...

    def rate_limited(self, request: Incoming, parsed: Parsed, retry_after: str | None) -> Reply:
        """The provider's 429 answer, with ``Retry-After`` when given."""
        ...

    def server_error(self, request: Incoming, parsed: Parsed, status: int) -> Reply:
        """The provider's own 5xx answer."""
        ...


class ProviderWire(Wire, Protocol):
    """A wire some adapter speaks: it also builds that adapter against a fake."""

    def adapter(
        self, url: str, credentials: Credentials, transport: Mapping[str, Any], **options: Any
    ) -> Provider:
        """The adapter pointed at a fake at ``url``, with ``credentials`` it accepts.

        ``transport`` holds the TLS arguments (``ca_bundle``) the fake needs;
        ``options`` are the wire's own choices (an auth scheme, a mask) or
        overrides that replace any constructor argument.
        """
        ...


_A = TypeVar("_A")


def build_adapter(
    cls: Callable[..., _A],
    accepted: Mapping[str, Any],
    transport: Mapping[str, Any],
    overrides: Mapping[str, Any],
) -> _A:
    """``cls`` built from keyword arguments: ``accepted``, then ``transport``, then ``overrides``.

    A later mapping wins, so an override replaces any argument (a wrong
    secret, ``ca_bundle=None``) and the transport any default.
    """
    return cls(**{**accepted, **transport, **overrides})


class Verdict(enum.Enum):
    """A scripted answer reduced to what a boolean-shaped provider can say."""

    CHANGED = "changed"
    UNCHANGED = "unchanged"
    NO_DATA = "no_data"
    #: The number is outside what the provider serves at all.
    NOT_COVERED = "not_covered"
    #: The provider tracks the number only from a date after the one asked about.
    TOO_EARLY = "too_early"


def verdict(answer: Answer, since: dt.date) -> Verdict:
    """What a provider asked "changed on or after ``since``?" says, given the script.

    A reissue date on or after ``since`` is a change; a coverage start after
    ``since`` (with no change seen) is :attr:`Verdict.TOO_EARLY`; a
    :class:`ChangedSince` answers its ``changed`` flag whatever date is asked.
    """
    if isinstance(answer, LastChange):
        if answer.on is not None and answer.on >= since:
            return Verdict.CHANGED
        if answer.covered_since is not None and answer.covered_since > since:
            return Verdict.TOO_EARLY
        return Verdict.UNCHANGED
    if isinstance(answer, ChangedSince):
        return Verdict.CHANGED if answer.changed else Verdict.UNCHANGED
    if isinstance(answer, NotCovered):
        return Verdict.NOT_COVERED
    assert isinstance(answer, NoData)  # noqa: S101 - Answer is a closed union
    return Verdict.NO_DATA


def html_page(status: int) -> bytes:
    """A gateway's HTML error page."""
    return (
        f"<!DOCTYPE html>\n<html><head><title>{status} Error</title></head>\n"
        f"<body><h1>{status} Error</h1><p>The upstream server did not answer.</p></body></html>\n"
    ).encode("ascii")


def fault_reply(  # noqa: PLR0911 - one return per kind of fault
    wire: Wire, request: Incoming, parsed: Parsed, fault: Fault
) -> Reply | None:
    """The complete reply a fault stands for, or ``None`` for transport-level faults.

    Latency, hangs, resets and the drips (body, header, chunk framing) act on
    the connection and have no reply of their own; everything else is rendered
    here, in the provider's own format where the provider has one.
    """
    if isinstance(fault, RateLimit):
        return wire.rate_limited(request, parsed, fault.header())
    if isinstance(fault, ServerError):
        return wire.server_error(request, parsed, fault.status)
    if isinstance(fault, AuthRefused):
        return wire.refused(request, parsed)
    if isinstance(fault, MalformedJson):
        return Reply(200, {"Content-Type": "application/json"}, b'{"truncated": [1, 2,')
    if isinstance(fault, HtmlErrorPage):
        return Reply(fault.status, {"Content-Type": "text/html"}, html_page(fault.status))
    if isinstance(fault, Redirect):
        return Reply(fault.status, {"Location": fault.location}, b"")
    if isinstance(fault, HugeBody):
        return Reply(200, {"Content-Type": "application/json"}, huge_json(fault.size))
    return None


def huge_json(size: int) -> bytes:
    """A valid JSON document of exactly ``size`` bytes (at least 16)."""
    head, tail = b'{"padding": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail
