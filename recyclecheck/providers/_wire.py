"""Strict readers shared by the HTTP adapters: configuration, base URLs and JSON answers.

Nothing here echoes the value it refuses: configuration values can be secrets
and provider answers can embed the number.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
import re
import stat
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from ..exceptions import (
    ConfigurationError,
    InvalidInput,
    InvalidPhoneNumber,
    ProviderResponseError,
)

__all__ = [
    "CA_BUNDLE_ENV",
    "Strict",
    "basic_authorization",
    "check_base_url",
    "check_ca_bundle",
    "check_credential",
    "check_e164",
    "check_since",
    "env_ca_bundle",
    "env_value",
    "error_code",
]

#: The one variable every adapter's ``from_env()`` reads for the roots to trust.
#: ``REQUESTS_CA_BUNDLE`` and ``CURL_CA_BUNDLE`` are deliberately not read: they
#: are set for other tools, and the roots a login check trusts change only when
#: asked for by name.
CA_BUNDLE_ENV = "RECYCLECHECK_CA_BUNDLE"

# ASCII digits only: ``\d`` would also accept Arabic-Indic or full-width digits.
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_PRINTABLE = re.compile(r"[\x21-\x7e]+")
_CODE = re.compile(r"-?[0-9]{1,9}")
_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)
_PEM_CERTIFICATE = re.compile(rb"-----BEGIN (?:TRUSTED )?CERTIFICATE-----")
# How much of a CA bundle is searched for its first certificate (certifi's is ~300 KiB).
_CA_BUNDLE_HEAD = 1 << 20


class _WrongType(InvalidInput, TypeError):
    """Caller input of the wrong type: an InvalidInput that is also a TypeError."""


class _WrongNumberType(InvalidPhoneNumber, TypeError):
    """A phone number that is not even a string: also a TypeError."""


def check_e164(number: object) -> str:
    """Return ``number`` if it is an E.164 string.

    Raises :class:`InvalidPhoneNumber` otherwise (also a ``TypeError`` when it
    is not a string at all).
    """
    if not isinstance(number, str):
        raise _WrongNumberType("number must be a str")
    if not _E164.fullmatch(number):
        raise InvalidPhoneNumber("number must be an E.164 string: + and 7 to 15 digits")
    return number


def check_since(since: object) -> dt.date:
    """Return ``since`` if it is a plain ``date`` (a ``datetime`` is refused).

    Raises :class:`InvalidInput`, which here is also a ``TypeError``.
    """
    if type(since) is not dt.date:
        raise _WrongType("since must be a datetime.date")
    return since


def check_credential(value: object, what: str, *, colon: bool = True) -> str:
    """Return a credential of printable ASCII without spaces.

    Unless ``colon``, ``:`` is refused too: it would split a Basic ``user:password`` pair.
    """
    if (
        not isinstance(value, str)
        or not _PRINTABLE.fullmatch(value)
        or (not colon and ":" in value)
    ):
        extra = "" if colon else " or ':'"
        raise ConfigurationError(f"{what} must be non-empty printable ASCII without spaces{extra}")
    return value


def check_base_url(value: object, what: str = "base_url") -> str:
    """Validate a provider base URL and return it without a trailing slash.

    It must be ``https://`` (plain ``http://`` only for loopback sandboxes:
    ``localhost``, ``127.0.0.0/8`` or ``::1``), with a host and no credentials,
    query, fragment or backslash (which some URL parsers read as ``/``).
    """
    problem = f"{what} must be an https:// URL with a host and no credentials, query or fragment"
    if not isinstance(value, str) or not value.isascii() or not _PRINTABLE.fullmatch(value):
        raise ConfigurationError(problem)
    try:
        parts = urllib.parse.urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 -- reading it validates the port
    except ValueError:
        raise ConfigurationError(problem) from None
    if (
        parts.scheme.lower() not in ("https", "http")
        or not host
        or "@" in parts.netloc
        or "?" in value
        or "#" in value
        or "\\" in value
    ):
        raise ConfigurationError(problem)
    if parts.scheme.lower() == "http" and not _is_loopback(host):
        raise ConfigurationError(f"{what} may use plain http:// only for a loopback host")
    return value.rstrip("/")


def _is_loopback(host: str) -> bool:
    """``localhost`` or a loopback IP literal; a name such as ``127.0.0.1.example`` is not."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def basic_authorization(user: str, password: str) -> str:
    """Build an ``Authorization`` value for HTTP Basic auth (RFC 7617, UTF-8)."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def check_ca_bundle(path: str, what: str) -> str:
    """Return ``path`` if it names a readable file holding a PEM certificate.

    Otherwise raise :class:`ConfigurationError` naming ``what`` (the option or
    variable), so a wrong path fails at configuration rather than as a TLS
    error on every lookup.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block the open
            raise ConfigurationError(f"{what} is not a regular file")
        with open(path, "rb") as handle:
            head = handle.read(_CA_BUNDLE_HEAD)
    except OSError as exc:
        raise ConfigurationError(
            f"{what} cannot be read: {exc.strerror or type(exc).__name__}"
        ) from None
    if not _PEM_CERTIFICATE.search(head):
        raise ConfigurationError(f"{what} holds no PEM certificate")
    return path


def env_ca_bundle(environ: Mapping[str, str]) -> str | None:
    """Read the optional :data:`CA_BUNDLE_ENV` (blank counts as unset) and check its file."""
    path = env_value(environ, CA_BUNDLE_ENV, required=False)
    if path is None:
        return None
    return check_ca_bundle(path, f"environment variable {CA_BUNDLE_ENV}")


def env_value(environ: Mapping[str, str], name: str, *, required: bool) -> str | None:
    """Read one variable, stripped; blank counts as unset.

    A missing required variable raises :class:`ConfigurationError` naming it,
    never showing any value.
    """
    value = environ.get(name)
    if value is None or not value.strip():
        if required:
            raise ConfigurationError(f"environment variable {name} is not set")
        return None
    return value.strip()


def error_code(value: object) -> str | None:
    """Return a provider error code (int or numeric string) as a string, else ``None``.

    Free text is never passed on: it could carry the number.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and -(10**9) < value < 10**9:
        return str(value)
    if isinstance(value, str) and _CODE.fullmatch(value):
        return str(int(value))
    return None


class Strict:
    """Typed access to a decoded JSON answer.

    Every surprise is a :class:`ProviderResponseError` whose message names the
    field, never its value.
    """

    def __init__(self, provider: str, status: int = 200) -> None:
        self.provider = provider
        self.status = status

    def error(self, message: str, *, code: str | None = None) -> ProviderResponseError:
        """Build (not raise) the error for an unusable answer."""
        return ProviderResponseError(message, provider=self.provider, status=self.status, code=code)

    def obj(self, value: object, what: str) -> dict[str, Any]:
        """Return ``value`` as a JSON object."""
        if not isinstance(value, dict):
            raise self.error(f"{what} is not a JSON object")
        return value

    def field(self, obj: Mapping[str, Any], key: str, what: str) -> Any:
        """Return the value under ``key``, which must be present (it may be null)."""
        if key not in obj:
            raise self.error(f"{what} is missing")
        return obj[key]

    def grouped(
        self,
        payload: object,
        key: str,
        count: int,
        position: Callable[[dict[str, Any]], int],
        *,
        body: str = "body",
        item: str = "item",
    ) -> list[list[dict[str, Any]]]:
        """A batch answer's items under ``key``, grouped by the question each answers.

        ``payload`` must be an object (``body`` names it) holding a list under
        ``key`` whose entries are objects (``item`` names one); ``position``
        gives the index, below ``count``, of the question an item answers, or
        raises this answer's error.  Any surprise is an error for the whole batch.
        """
        items = self.field(self.obj(payload, body), key, key)
        if not isinstance(items, list):
            raise self.error(f"{key} is not a list")
        found: list[list[dict[str, Any]]] = [[] for _ in range(count)]
        for raw in items:
            entry = self.obj(raw, item)
            found[position(entry)].append(entry)
        return found

    def string(self, value: object, what: str) -> str:
        """Return ``value`` as a string."""
        if not isinstance(value, str):
            raise self.error(f"{what} is not a string")
        return value

    def integer(self, value: object, what: str) -> int:
        """Return ``value`` as an integer (a JSON ``true`` or ``2800.0`` is not one)."""
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(f"{what} is not an integer")
        return value

    def boolean(self, value: object, what: str) -> bool:
        """Return ``value`` as a JSON boolean (not ``"true"``, not ``1``)."""
        if not isinstance(value, bool):
            raise self.error(f"{what} is not a boolean")
        return value

    def iso_date(self, value: object, what: str) -> dt.date:
        """Read a ``YYYY-MM-DD`` calendar date."""
        match = _ISO_DATE.fullmatch(self.string(value, what))
        if match is None:
            raise self.error(f"{what} is not a YYYY-MM-DD date")
        try:
            return dt.date(*(int(part) for part in match.groups()))
        except ValueError:
            raise self.error(f"{what} is not a valid date") from None

    def timestamp(self, value: object, what: str) -> dt.datetime:
        """Read an RFC 3339 date-time with an offset as an aware ``datetime``.

        Fractions beyond microseconds round up, so an instant just after
        midnight never reads as midnight.
        """
        match = _RFC3339.fullmatch(self.string(value, what))
        if match is None:
            raise self.error(f"{what} is not an RFC 3339 timestamp with an offset")
        year, month, day, hour, minute, second, frac, zulu, sign, off_h, off_m = match.groups()
        micro = 0
        if frac:
            scale = 10 ** abs(len(frac) - 6)
            exact = int(frac)
            micro = exact * scale if len(frac) <= 6 else min(-(-exact // scale), 999_999)
        try:
            offset = dt.timedelta(0)
            if not zulu:
                if int(off_m) > 59:
                    raise ValueError(off_m)
                offset = dt.timedelta(hours=int(off_h), minutes=int(off_m))
                offset = -offset if sign == "-" else offset
            return dt.datetime(
                int(year),
                int(month),
                int(day),
                int(hour),
                int(minute),
                int(second),
                micro,
                tzinfo=dt.timezone(offset),
            )
        except ValueError:
            raise self.error(f"{what} is not a valid timestamp") from None
