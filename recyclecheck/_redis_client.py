"""Redis clients fit for a login path: short timeouts, no retries.

One rule for every Redis the SDK talks to on a login (the fact cache, the
shared quota): a command may wait at most :data:`MAX_SOCKET_TIMEOUT` to connect
and as long again to answer, and is never retried with backoff.  Clients the app
builds are checked against it; :func:`fast_redis_client` builds a conforming one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from .exceptions import ConfigurationError

if TYPE_CHECKING:
    import redis

__all__ = [
    "FAST_SOCKET_TIMEOUT",
    "MAX_SOCKET_TIMEOUT",
    "NotARedisUrl",
    "check_fast_client",
    "fast_redis_client",
]

#: The socket and connect timeout (seconds) of the clients built from URLs.
FAST_SOCKET_TIMEOUT: Final = 0.05
#: The longest socket or connect timeout (seconds) a login-path Redis client may use.
MAX_SOCKET_TIMEOUT: Final = 0.5


def check_fast_client(client: object, *, user: str) -> float:
    """Refuse a client that could hold a login for long; return its worst case (seconds).

    The worst case is a connect plus a read timeout.  Only what the client
    exposes in ``connection_pool.connection_kwargs`` can be checked (plain
    ``redis.Redis``, Sentinel); other clients are trusted to be as fast as
    :data:`MAX_SOCKET_TIMEOUT` allows.  ``user`` names what asks, for the
    message (``"RedisCache"``, ``"RedisTokenBucket"``).
    """
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", None)
    if not isinstance(kwargs, Mapping):
        return 2 * MAX_SOCKET_TIMEOUT
    timeouts = {"socket_timeout": kwargs.get("socket_timeout")}
    if "path" not in kwargs:  # a unix socket connects or fails at once
        connect = kwargs.get("socket_connect_timeout")
        if connect is None and "socket_connect_timeout" in kwargs:
            connect = timeouts["socket_timeout"]  # redis-py connects within socket_timeout then
        timeouts["socket_connect_timeout"] = connect
    worst_case = 0.0
    for name, value in timeouts.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not 0 < value <= MAX_SOCKET_TIMEOUT
        ):
            raise ConfigurationError(
                f"build the Redis client with {name}= between 0 and {MAX_SOCKET_TIMEOUT:g} "
                f"seconds (e.g. {FAST_SOCKET_TIMEOUT:g}), or use {user}.from_url: "
                "it is asked on the login path"
            )
        worst_case += value
    retry = kwargs.get("retry")
    get_retries = getattr(retry, "get_retries", None)
    retries = get_retries() if callable(get_retries) else int(bool(kwargs.get("retry_on_timeout")))
    if retries:
        raise ConfigurationError(
            f"build the Redis client with retry=Retry(NoBackoff(), 0), or use {user}.from_url: "
            "a retry with backoff can hold every login for seconds"
        )
    return worst_case


class NotARedisUrl(ConfigurationError):
    """The URL given for Redis is not one (its text is never shown: it may hold a password)."""


def fast_redis_client(url: str, *, timeout: float = FAST_SOCKET_TIMEOUT) -> redis.Redis:
    """A ``redis.Redis`` for ``url`` that fails fast enough for a login path.

    ``timeout`` (default :data:`FAST_SOCKET_TIMEOUT`) socket and connect
    timeouts, no retries.
    Options in the URL's query string win (redis-py's rule), so a URL asking
    for slower timeouts is then refused by the bucket's or cache's check.
    Raises :class:`~recyclecheck.ConfigurationError` when redis-py is not
    installed, and :class:`NotARedisUrl` (which never shows the URL: it may
    hold a password) for a URL that is not a Redis URL.
    """
    if not isinstance(url, str):
        raise NotARedisUrl("url must be a str: redis://, rediss:// or unix://")
    try:
        import redis  # noqa: PLC0415 - the optional extra, loaded only when used
        from redis.backoff import NoBackoff  # noqa: PLC0415
        from redis.retry import Retry  # noqa: PLC0415
    except ImportError:
        raise ConfigurationError(
            "a Redis URL needs redis-py: pip install 'recyclecheck[redis]'"
        ) from None
    try:
        return redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
        )
    except (ValueError, TypeError):
        raise NotARedisUrl(
            "url is not a usable Redis URL (redis://, rediss:// or unix://, with valid "
            "query options)"
        ) from None
