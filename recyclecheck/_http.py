"""The HTTP layer every adapter shares.

One pooled session, deadline-bound timeouts, a body-size cap, no redirects,
verified TLS, and exceptions free of numbers and URLs.

Adapters build requests and read JSON through :class:`HttpClient`; they never touch
``requests`` exceptions, which embed full URLs (and so phone numbers) in their text.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import math
import threading
import time
from collections.abc import Mapping
from contextvars import ContextVar
from http.cookiejar import DefaultCookiePolicy
from typing import Any

import attrs
import requests
import requests.adapters
import requests.utils

from ._deadline import NeedsWorker, deadline_scope, is_inline, remaining_time
from ._sockets import DeadlineAdapter, has_idle_bound_connection
from ._version import __version__
from .exceptions import (
    ConfigurationError,
    ProviderAuthError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderTimeout,
    ProviderUnavailable,
)

__all__ = ["DEFAULT_MAX_BODY", "HttpClient", "HttpResponse", "parse_retry_after", "rate_limited"]

#: Largest response body an adapter will read; a bigger one is a ProviderResponseError.
DEFAULT_MAX_BODY = 256 * 1024
#: Timeout used when an adapter is called outside a Guard (no deadline in force).
STANDALONE_TIMEOUT = 5.0
#: Connect timeout ceiling, so a dead host cannot eat the whole read budget.
MAX_CONNECT_TIMEOUT = 3.0
#: A slow reading of how fast a large body decodes: a body that could not be parsed
#: in the time left is a timeout rather than a parse that overruns the deadline.
JSON_BYTES_PER_SECOND = 20e6
_CHUNK = 16 * 1024

USER_AGENT = f"recyclecheck/{__version__} python-requests/{requests.__version__}"


@attrs.frozen
class HttpResponse:
    """A fully read, size-capped response."""

    status: int
    headers: Mapping[str, str] = attrs.field(repr=False)
    body: bytes = attrs.field(repr=False)

    @property
    def content_type(self) -> str:
        """The media type, lower-cased, without parameters."""
        return self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()


def rate_limited(
    provider: str, *, status: int, code: str | None, retry_after: str | None
) -> ProviderRateLimited:
    """The one shape of a rate-limit error: ``retry_after`` is the raw header value."""
    return ProviderRateLimited(
        "rate limited",
        provider=provider,
        status=status,
        code=code,
        retry_after=parse_retry_after(retry_after),
    )


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Read a ``Retry-After`` header (delay-seconds or HTTP-date) as seconds from now."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    now = now or dt.datetime.now(dt.timezone.utc)
    return max(0.0, (when - now).total_seconds())


#: Whether the running code is inside one of our requests.  A context variable, not a
#: thread-local: lookups on an event loop's thread (``_loop_io``) interleave on one
#: thread, and each must keep its own request lines withheld until it ends.
_IN_OUR_REQUEST: ContextVar[bool] = ContextVar("recyclecheck_in_our_request", default=False)


class _WithholdOwnUrls(logging.Filter):
    """Withholds request paths from urllib3's records for our own requests.

    urllib3 logs every request line (DEBUG) and the full URL of a response whose
    headers do not parse (WARNING), and some providers carry the number in the
    path or query.  Only records emitted by a thread inside one of our requests
    are touched; the app's own HTTP logging is left alone.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if _IN_OUR_REQUEST.get() and isinstance(record.args, tuple):
            record.args = tuple(
                "<withheld>"
                if isinstance(arg, str) and (arg.startswith("/") or "://" in arg)
                else arg
                for arg in record.args
            )
        return True


_filter_lock = threading.Lock()
_filter_installed = False
#: urllib3's loggers whose records quote a request's path or URL.
_URLLIB3_LOGGERS_WITH_URLS = ("urllib3.connectionpool", "urllib3.connection")


def _install_url_filter() -> None:
    global _filter_installed  # noqa: PLW0603 - one filter per process, installed on first use
    with _filter_lock:
        if not _filter_installed:
            for name in _URLLIB3_LOGGERS_WITH_URLS:
                logging.getLogger(name).addFilter(_WithholdOwnUrls())
            _filter_installed = True


class _NoCookies(DefaultCookiePolicy):
    """Provider cookies must never carry state from one user's lookup to another's."""

    def set_ok(self, cookie: Any, request: Any) -> bool:
        return False

    def return_ok(self, cookie: Any, request: Any) -> bool:
        return False


class HttpClient:
    """A thread-safe, pooled HTTP client bound to one provider.

    ``ca_bundle`` points at a PEM file of the roots to trust (TLS is always
    verified); ``proxies`` maps scheme to proxy URL.  Without ``proxies`` the
    standard ``HTTPS_PROXY``/``NO_PROXY`` environment variables are honoured;
    ``.netrc`` is not, so it can never override an adapter's own credentials.
    The environment is read once per provider host, on its first request.
    ``ca_bundle`` replaces the default trusted roots (``requests`` semantics).
    """

    def __init__(
        self,
        *,
        provider: str,
        ca_bundle: str | None = None,
        proxies: Mapping[str, str] | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        pool_size: int = 32,
        session: requests.Session | None = None,
        base_url: str | None = None,
    ) -> None:
        if max_body <= 0:
            raise ConfigurationError("max_body must be positive")
        self.provider = provider
        self.max_body = max_body
        self._verify: str | bool = ca_bundle if ca_bundle else True
        self._proxies = dict(proxies) if proxies is not None else None
        # Environment proxies per scheme://host, read on first use: walking
        # os.environ on every request costs more than the rest of our overhead.
        self._environ_proxies: dict[str, dict[str, str]] = {}
        # A caller's session may do anything on the caller's thread; only our own
        # sockets are known to honour the deadline on every read.
        self._own_session = session is None
        # The pool of the adapter's own origin, learned from its first answer: an idle
        # connection there lets a lookup run inline (see ready_inline).
        self._pool_prefix = _origin(base_url) if base_url else "\x00"
        self._pool: object = None
        self._session = session or self._new_session(pool_size)
        self._decoder = json.JSONDecoder(
            parse_constant=_reject_constant, object_pairs_hook=_unique_keys
        )
        _install_url_filter()

    @staticmethod
    def _new_session(pool_size: int) -> requests.Session:
        session = requests.Session()
        # Environment proxies are merged per request below; trust_env would also
        # read .netrc, whose credentials could replace the adapter's own.
        session.trust_env = False
        session.cookies.set_policy(_NoCookies())
        adapter = DeadlineAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers["User-Agent"] = USER_AGENT
        session.headers["Accept"] = "application/json"
        # Bodies are read raw under the deadline and the size cap; compression would
        # hide their true size (and a gzip bomb), so ask for none.
        session.headers["Accept-Encoding"] = "identity"
        return session

    def close(self) -> None:
        """Close pooled connections."""
        # urllib3 2 only forgets its pools on clear() and leaves closing them to a
        # finalizer, which never runs while anything still refers to a pool (an
        # error's traceback holds the response that holds it): close each one here.
        for adapter in self._session.adapters.values():
            managers = [getattr(adapter, "poolmanager", None)]
            managers.extend(getattr(adapter, "proxy_manager", {}).values())
            for manager in managers:
                pools: Any = getattr(manager, "pools", None)
                if pools is None:
                    continue
                for key in pools.keys():  # noqa: SIM118 - urllib3 refuses iter(); keys() snapshots
                    pool = pools.get(key)
                    if pool is not None:
                        pool.close()
        self._session.close()

    # -- timeouts -----------------------------------------------------------------

    def _budget(self) -> tuple[float, float]:
        """Return (monotonic deadline, seconds left), failing fast when none is left."""
        left = remaining_time()
        if left is None:
            left = STANDALONE_TIMEOUT
        if left <= 0.001:
            raise ProviderTimeout("deadline already passed", provider=self.provider)
        return time.monotonic() + left, left

    # -- request ------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> HttpResponse:
        """Send one request and read the whole (capped) body before the deadline.

        Raises :class:`ProviderTimeout` or :class:`ProviderUnavailable` on transport
        failure and :class:`ProviderResponseError` on redirects or oversized bodies.
        Status codes are left to the adapter, which knows the provider's error bodies.
        """
        deadline, left = self._budget()
        proxies = self._proxies if self._proxies is not None else self._proxies_from_environ(url)
        if proxies and is_inline():
            raise NeedsWorker  # a proxy may mean a tunnel to set up: not on the caller's thread
        in_request = _IN_OUR_REQUEST.set(True)
        try:
            # Our sockets read the deadline from here on every send and receive.
            with deadline_scope(deadline):
                response = self._send(
                    method=method,
                    url=url,
                    params=params,
                    headers=headers,
                    body=body,
                    left=left,
                    proxies=proxies,
                )
                try:
                    if 300 <= response.status_code < 400:
                        raise ProviderResponseError(
                            "unexpected redirect (not followed)",
                            provider=self.provider,
                            status=response.status_code,
                        )
                    payload = self._read_body(response, deadline)
                    self._remember_pool(url, response)
                    return HttpResponse(
                        status=response.status_code, headers=response.headers, body=payload
                    )
                finally:
                    response.close()
        finally:
            _IN_OUR_REQUEST.reset(in_request)

    def _remember_pool(self, url: str, response: requests.Response) -> None:
        if self._own_session and url.startswith(self._pool_prefix):
            self._pool = getattr(response.raw, "_pool", None)

    def ready_inline(self) -> bool:
        """Whether a request to this client's origin may run on the caller's thread now.

        True only for our own session, with no proxy, when the pool holds an open
        connection whose socket honours the deadline on every operation.
        """
        return (
            self._own_session
            and not self._proxies
            and not self._environ_proxies.get(self._pool_prefix, True)
            and has_idle_bound_connection(self._pool)
        )

    def _proxies_from_environ(self, url: str) -> dict[str, str]:
        origin = _origin(url)
        found = self._environ_proxies.get(origin)
        if found is None:
            found = requests.utils.get_environ_proxies(origin, no_proxy=None)
            self._environ_proxies[origin] = found
        return found

    def _send(
        self,
        *,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        body: bytes | None,
        left: float,
        proxies: Mapping[str, str],
    ) -> requests.Response:
        failure: ProviderTimeout | ProviderUnavailable
        try:
            return self._session.request(
                method,
                url,
                params=params,
                headers=dict(headers) if headers else None,
                data=body,
                timeout=(min(left, MAX_CONNECT_TIMEOUT), left),
                allow_redirects=False,
                verify=self._verify,
                proxies=dict(proxies),
                stream=True,
            )
        # Never chain requests' exceptions: their text and attributes carry the URL, hence
        # the number.  Raised after the handler, so not even __context__ keeps one.
        except requests.exceptions.SSLError:
            failure = ProviderUnavailable(
                "TLS verification failed", provider=self.provider, retryable=False
            )
        except requests.exceptions.Timeout:
            failure = ProviderTimeout("no answer before the deadline", provider=self.provider)
        except requests.exceptions.RequestException as exc:
            failure = ProviderUnavailable(
                f"transport error ({type(exc).__name__})", provider=self.provider
            )
        raise failure from None

    def _read_body(self, response: requests.Response, deadline: float) -> bytes:
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise ProviderResponseError(
                "response body over the size cap",
                provider=self.provider,
                status=response.status_code,
            )
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise ProviderResponseError(
                "compressed body refused (identity was asked for)",
                provider=self.provider,
                status=response.status_code,
            )
        raw = response.raw
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                if time.monotonic() >= deadline:
                    raise ProviderTimeout(
                        "response body still arriving at the deadline", provider=self.provider
                    )
                # read1 returns after one socket read, and each read may wait only for
                # what is left of the deadline: a trickling body cannot outlive it.
                # (Our own sockets shrink their timeout themselves on every read.)
                if not self._own_session:
                    _shrink_socket_timeout(raw, deadline)
                chunk = raw.read1(_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.max_body:
                    raise ProviderResponseError(
                        "response body over the size cap",
                        provider=self.provider,
                        status=response.status_code,
                    )
                chunks.append(chunk)
        except (ProviderTimeout, ProviderResponseError):
            raise
        except Exception as exc:  # urllib3 read errors, resets, decode errors
            if "timed out" in str(exc).lower() or isinstance(exc, TimeoutError):
                raise ProviderTimeout(
                    "no answer before the deadline", provider=self.provider
                ) from None
            raise ProviderUnavailable(
                f"connection broken while reading ({type(exc).__name__})", provider=self.provider
            ) from None
        return b"".join(chunks)

    # -- answers ------------------------------------------------------------------

    def json_body(self, response: HttpResponse) -> Any:
        """Decode a JSON body, rejecting HTML error pages and anything not JSON."""
        text = response.body.lstrip()
        if not text:
            raise ProviderResponseError(
                "empty response body", provider=self.provider, status=response.status
            )
        if text[:1] == b"<" or "html" in response.content_type:
            raise ProviderResponseError(
                "HTML page instead of JSON", provider=self.provider, status=response.status
            )
        if len(text) > _CHUNK:
            left = remaining_time()
            if left is not None and len(text) / JSON_BYTES_PER_SECOND > left:
                raise ProviderTimeout("no time left to read a large answer", provider=self.provider)
        try:
            # What json.loads does with bytes, minus building a decoder on every call.
            return self._decoder.decode(text.decode(json.detect_encoding(text), "surrogatepass"))
        except (ValueError, RecursionError):
            pass
        # Raised outside the handler: a JSONDecodeError keeps the whole body in ``.doc``,
        # and the body may echo the number; not even a suppressed __context__ keeps it.
        raise ProviderResponseError(
            "malformed JSON", provider=self.provider, status=response.status
        )

    def raise_for_status(self, response: HttpResponse, *, code: str | None = None) -> None:
        """Map a non-2xx status to the matching ProviderError.

        Call it after reading any provider-specific error body.
        """
        status = response.status
        if 200 <= status < 300:
            return
        if status == 429:
            raise rate_limited(
                self.provider,
                status=status,
                code=code,
                retry_after=response.headers.get("Retry-After"),
            )
        if status in (401, 403):
            raise ProviderAuthError(
                "credentials refused", provider=self.provider, status=status, code=code
            )
        if status >= 500:
            raise ProviderUnavailable(
                "provider failed", provider=self.provider, status=status, code=code
            )
        raise ProviderResponseError(
            "unexpected status", provider=self.provider, status=status, code=code
        )


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def _shrink_socket_timeout(raw: Any, deadline: float) -> None:
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if sock is not None:
        sock.settimeout(max(0.001, deadline - time.monotonic()))


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # {"recycled": true, "recycled": false} must not quietly read as false.
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; a provider sending them is broken.
    raise ValueError(name)


def finite_number(value: object) -> bool:
    """True for a real int/float (not bool, not NaN or infinity)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value)
