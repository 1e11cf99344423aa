"""Faults a fake provider can inject: slow, silent, failing or malformed answers.

Each fault is a small frozen value.  The wire-level ones (rate limit, 5xx,
refused credentials) are rendered in the provider's own error format; the
transport-level ones (latency, hang, the three drips, reset) act on the socket.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from typing import Any

import attrs

from ..exceptions import (
    ConfigurationError,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderTimeout,
)

__all__ = [
    "DELIVERY_FAULTS",
    "FAULT_TYPES",
    "AuthRefused",
    "ChunkDrip",
    "Fault",
    "Hang",
    "HeaderDrip",
    "HtmlErrorPage",
    "HugeBody",
    "Latency",
    "MalformedJson",
    "RateLimit",
    "Redirect",
    "Reset",
    "ServerError",
    "SlowDrip",
    "fault_for_error",
]

#: Default size of a :class:`HugeBody`: far above any adapter's body cap.
HUGE_BODY_SIZE = 10 * 1024 * 1024


def _seconds(value: float | dt.timedelta) -> float:
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError("a duration must be seconds (int or float) or a timedelta")
    return float(value)


def _non_negative(_instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0 <= value < 86_400:
        raise ConfigurationError(f"{attribute.name} must be between 0 and one day")


def _status_between(low: int, high: int) -> Any:
    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigurationError(f"{attribute.name} must be an int from {low} to {high}")

    return check


@attrs.frozen
class Latency:
    """Answer normally, but only after ``seconds`` (a number or a ``timedelta``)."""

    seconds: float = attrs.field(converter=_seconds, validator=_non_negative)


@attrs.frozen
class Hang:
    """Read the request and never answer, until the client gives up or the server stops."""


@attrs.frozen
class SlowDrip:
    """Send the normal answer's headers, then its body one byte every ``byte_interval`` seconds."""

    byte_interval: float = attrs.field(default=0.05, converter=_seconds, validator=_non_negative)


@attrs.frozen
class HeaderDrip:
    """Send the normal answer's status line and headers one byte every ``byte_interval`` seconds.

    The body follows at once when the headers are done.  A client waiting for
    the headers gets a byte well inside any per-read timeout, for as long as
    the headers last (about 130 bytes or more: several seconds at the default).
    """

    byte_interval: float = attrs.field(default=0.05, converter=_seconds, validator=_non_negative)


@attrs.frozen
class ChunkDrip:
    """Send the normal answer ``Transfer-Encoding: chunked``, its framing one byte at a time.

    The headers go out at once.  The body travels as one chunk whose
    chunk-size line is written with ``size_digits`` hex digits (leading zeros,
    as HTTP allows), and that line, the CRLF after the data and the last
    chunk (as wide) go out one byte every ``byte_interval`` seconds; the data
    itself goes at once.  A client reading a chunk-size line gets a byte well
    inside any per-read timeout for ``size_digits * byte_interval`` seconds
    (3.2 s at the defaults), twice.
    """

    byte_interval: float = attrs.field(default=0.05, converter=_seconds, validator=_non_negative)
    size_digits: int = attrs.field(default=64, validator=_status_between(1, 4096))


def _retry_after(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ConfigurationError(f"{attribute.name} must be an aware datetime")
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"{attribute.name} must be whole seconds >= 0, a datetime or None")


@attrs.frozen
class RateLimit:
    """Answer ``429`` in the provider's rate-limit format.

    ``retry_after`` sets the ``Retry-After`` header: whole seconds (delay
    form), an aware ``datetime`` (HTTP-date form), or ``None`` for no header.
    """

    retry_after: int | dt.datetime | None = attrs.field(default=None, validator=_retry_after)

    def header(self) -> str | None:
        """The ``Retry-After`` header value, or ``None`` when there is none."""
        if self.retry_after is None:
            return None
        if isinstance(self.retry_after, dt.datetime):
            return email.utils.format_datetime(
                self.retry_after.astimezone(dt.timezone.utc), usegmt=True
            )
        return str(self.retry_after)


@attrs.frozen
class ServerError:
    """Answer a 5xx ``status`` with the provider's own server-error body."""

    status: int = attrs.field(default=503, validator=_status_between(500, 599))


@attrs.frozen
class Reset:
    """Read the request, then reset the connection (TCP RST) without answering."""


@attrs.frozen
class MalformedJson:
    """Answer ``200`` with ``application/json`` that does not parse."""


@attrs.frozen
class HtmlErrorPage:
    """Answer ``status`` with an HTML error page, as a gateway or proxy in front would."""

    status: int = attrs.field(default=502, validator=_status_between(200, 599))


@attrs.frozen
class HugeBody:
    """Answer ``200`` with a JSON body of ``size`` bytes.

    With ``declare_length`` the size is announced in ``Content-Length``;
    without it the body streams until the connection closes, so only a
    client that counts bytes as they arrive can refuse it.
    """

    size: int = attrs.field(default=HUGE_BODY_SIZE, validator=_status_between(16, 2**31))
    declare_length: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))


@attrs.frozen
class Redirect:
    """Answer a redirect (``status``, 3xx) to ``location``, typically another host."""

    location: str = attrs.field(
        default="https://elsewhere.invalid/", validator=attrs.validators.instance_of(str)
    )
    status: int = attrs.field(default=302, validator=_status_between(300, 399))


@attrs.frozen
class AuthRefused:
    """Refuse the request's credentials the way the provider does (e.g. Twilio 401/20003)."""


#: Every fault a fake provider can inject.
Fault = (
    Latency
    | Hang
    | SlowDrip
    | HeaderDrip
    | ChunkDrip
    | RateLimit
    | ServerError
    | Reset
    | MalformedJson
    | HtmlErrorPage
    | HugeBody
    | Redirect
    | AuthRefused
)

FAULT_TYPES = (
    Latency,
    Hang,
    SlowDrip,
    HeaderDrip,
    ChunkDrip,
    RateLimit,
    ServerError,
    Reset,
    MalformedJson,
    HtmlErrorPage,
    HugeBody,
    Redirect,
    AuthRefused,
)

#: Faults that deliver the normal answer, late or slowly, rather than one of their own.
DELIVERY_FAULTS = (Latency, SlowDrip, HeaderDrip, ChunkDrip)


def fault_for_error(error: ProviderError) -> Fault:
    """The fault that makes a real adapter raise (the equivalent of) ``error``.

    This is how a number scripted with a :class:`~recyclecheck.ProviderError`
    (as :class:`~recyclecheck.providers.SandboxProvider` accepts) fails on the
    wire: rate limits become 429s, timeouts hang, auth errors are refused
    credentials, response errors are malformed JSON, anything else a 503.
    """
    if isinstance(error, ProviderRateLimited):
        after = error.retry_after
        return RateLimit(None if after is None else max(0, round(after)))
    if isinstance(error, ProviderTimeout):
        return Hang()
    if isinstance(error, ProviderAuthError):
        return AuthRefused()
    if isinstance(error, ProviderResponseError):
        return MalformedJson()
    status = error.status if error.status is not None and 500 <= error.status <= 599 else 503
    return ServerError(status)
