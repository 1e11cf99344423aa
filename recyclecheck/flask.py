"""Flask integration: one :class:`~recyclecheck.Guard` per app, built from ``app.config``.

Install it with ``pip install "recyclecheck[flask]"``::

    from flask import Flask
    from recyclecheck.flask import RecycleCheck

    recyclecheck_ext = RecycleCheck()


    def create_app() -> Flask:
        app = Flask(__name__)
        app.config["RECYCLECHECK_DEFAULT_REGION"] = "CN"
        recyclecheck_ext.init_app(app)
        return app

    # in a view, after the SMS code was verified:
    decision = recyclecheck_ext.check(user.phone, bound_at=user.phone_bound_at)

The extension is thin on purpose: it builds the Guard from configuration, owns
its lifetime and sends every decision to the app's logger (masked) and to an
optional hook for metrics.  Every decision is the Guard's.

Configuration keys (all optional; errors raise
:class:`~recyclecheck.ConfigurationError` from :meth:`RecycleCheck.init_app`,
naming the key, never echoing a secret):

``RECYCLECHECK_PROVIDER``
    ``"sandbox"`` (default), ``"camara"``, ``"twilio"``, ``"telesign"``,
    ``"aliyun"`` or ``"rnd"`` (built by the adapter's ``from_env()`` from
    environment variables), ``"router"`` (a :class:`~recyclecheck.Router` built
    by ``Router.from_env()`` from the ``RECYCLECHECK_ROUTES`` environment
    variable, e.g. ``+86=aliyun; +1=rnd,twilio; *=camara``), or a provider object.
``RECYCLECHECK_SANDBOX_FILE``
    a sandbox JSON file for ``"sandbox"`` (default: the built-in demo numbers).
``RECYCLECHECK_TIMEOUT``
    the deadline of each check: seconds (number or numeric string) or a
    ``timedelta``; default 0.8.
``RECYCLECHECK_DEFAULT_REGION``
    region code for numbers in national format, e.g. ``"CN"``.
``RECYCLECHECK_POLICY``
    ``"secure"`` (default), ``"fail_open"``, or a :class:`~recyclecheck.Policy`
    (e.g. ``Policy(trust_recent_binding=30)``).
``RECYCLECHECK_REDIS_URL``
    share facts between processes through :class:`~recyclecheck.RedisCache`
    (needs ``recyclecheck[redis]`` and ``RECYCLECHECK_SECRET``).
``RECYCLECHECK_SECRET``
    at least 16 bytes, the same in every process: keys the cache.
``RECYCLECHECK_ON_DECISION``
    a callable given every :class:`~recyclecheck.Decision` (for metrics).

Importing ``recyclecheck`` never imports this module, nor Flask.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import weakref
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

import phonenumbers
from flask import Flask, current_app

from . import ConfigurationError, Decision, FactCache, Guard, Policy, RedisCache, Router
from ._registry import PROVIDERS
from .providers import Provider, SandboxProvider

__all__ = [
    "CONFIG_DEFAULTS",
    "EXTENSION_KEY",
    "RecycleCheck",
    "State",
    "build_policy",
    "build_provider",
]

#: Where :meth:`RecycleCheck.init_app` puts the app's :class:`State`.
EXTENSION_KEY: Final = "recyclecheck"

#: Every configuration key the extension reads, with its default.
CONFIG_DEFAULTS: Final[Mapping[str, object]] = MappingProxyType(
    {
        "RECYCLECHECK_PROVIDER": "sandbox",
        "RECYCLECHECK_SANDBOX_FILE": None,
        "RECYCLECHECK_TIMEOUT": 0.8,
        "RECYCLECHECK_DEFAULT_REGION": None,
        "RECYCLECHECK_POLICY": "secure",
        "RECYCLECHECK_REDIS_URL": None,
        "RECYCLECHECK_SECRET": None,
        "RECYCLECHECK_ON_DECISION": None,
    }
)

#: RECYCLECHECK_PROVIDER's names: the sandbox, every adapter of the SDK's one registry
#: (built by its ``from_env()``), and a router over them (``RECYCLECHECK_ROUTES``).
_ROUTER: Final = "router"
_PROVIDER_NAMES: Final = ", ".join(repr(name) for name in ("sandbox", *sorted(PROVIDERS), _ROUTER))
_POLICIES: Final[Mapping[str, Callable[[], Policy]]] = {
    "secure": Policy,
    "fail_open": Policy.fail_open,
}
_MAX_TIMEOUT: Final = 60.0
_MIN_SECRET_BYTES: Final = 16
#: Socket timeouts (seconds) for the Redis client behind RECYCLECHECK_REDIS_URL; a
#: ``?socket_timeout=`` in the URL overrides them.  A cache read sits on the login path.
REDIS_SOCKET_TIMEOUT: Final = 0.05


# -- reading the configuration ---------------------------------------------------------


def _is_provider(value: object) -> bool:
    name = getattr(value, "name", None)
    return isinstance(name, str) and bool(name) and callable(getattr(value, "lookup", None))


def build_provider(config: Mapping[str, Any]) -> Provider:
    """The provider that ``RECYCLECHECK_PROVIDER`` and ``RECYCLECHECK_SANDBOX_FILE`` describe.

    :meth:`RecycleCheck.init_app` uses it; call it yourself to compose the
    configured provider (wrap or route it) and put the result back in
    ``RECYCLECHECK_PROVIDER``.  Adapters are built by their ``from_env()``, and
    ``"router"`` by :meth:`Router.from_env() <recyclecheck.Router.from_env>`, so
    credentials and routes come from environment variables.  Raises
    :class:`~recyclecheck.ConfigurationError` naming the key at fault.
    """
    value = config.get("RECYCLECHECK_PROVIDER", "sandbox")
    sandbox_file = config.get("RECYCLECHECK_SANDBOX_FILE")
    if not isinstance(value, str):
        if not _is_provider(value):
            raise ConfigurationError(
                f"RECYCLECHECK_PROVIDER must be one of {_PROVIDER_NAMES} or a provider "
                "object (with a name and a lookup() method)"
            )
        if sandbox_file is not None:
            raise ConfigurationError(
                "RECYCLECHECK_SANDBOX_FILE is only read with RECYCLECHECK_PROVIDER='sandbox'"
            )
        provider: Provider = value
        return provider
    name = value.strip().lower()
    if name == "sandbox":
        return _sandbox(sandbox_file)
    if sandbox_file is not None:
        raise ConfigurationError(
            "RECYCLECHECK_SANDBOX_FILE is only read with RECYCLECHECK_PROVIDER='sandbox'"
        )
    if name != _ROUTER and name not in PROVIDERS:
        raise ConfigurationError(f"RECYCLECHECK_PROVIDER must be one of {_PROVIDER_NAMES}")
    try:
        return Router.from_env() if name == _ROUTER else PROVIDERS[name].from_env()
    except ConfigurationError as exc:  # names the missing variable, never a value
        raise ConfigurationError(f"RECYCLECHECK_PROVIDER={name!r}: {exc}") from None


def _sandbox(path: object) -> Provider:
    if path is None:
        return SandboxProvider.demo()
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigurationError("RECYCLECHECK_SANDBOX_FILE must be a path")
    try:
        return SandboxProvider.from_file(path)
    except ConfigurationError as exc:
        raise ConfigurationError(f"RECYCLECHECK_SANDBOX_FILE: {exc}") from None


def _timeout(value: object) -> float:
    seconds: float | None = None
    if isinstance(value, dt.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = float(value)
        except ValueError:
            seconds = None
    if seconds is None or not 0 < seconds <= _MAX_TIMEOUT:
        raise ConfigurationError(
            f"RECYCLECHECK_TIMEOUT must be seconds between 0 and {_MAX_TIMEOUT:g} "
            "(a number, a numeric string or a timedelta), e.g. 0.8"
        )
    return seconds


def _region(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigurationError(
            "RECYCLECHECK_DEFAULT_REGION must be a region code phonenumbers knows, e.g. 'CN'"
        )
    return value.upper()


def build_policy(config: Mapping[str, Any]) -> Policy:
    """The :class:`~recyclecheck.Policy` that ``RECYCLECHECK_POLICY`` describes.

    :meth:`RecycleCheck.init_app` uses it; call it yourself to adjust the
    configured policy (e.g. ``attrs.evolve(policy, trust_recent_binding=30)``)
    and put the result back in ``RECYCLECHECK_POLICY``.  Raises
    :class:`~recyclecheck.ConfigurationError` naming the key.
    """
    value = config.get("RECYCLECHECK_POLICY", "secure")
    if isinstance(value, Policy):
        return value
    make = _POLICIES.get(value) if isinstance(value, str) else None
    if make is None:
        raise ConfigurationError(
            "RECYCLECHECK_POLICY must be 'secure', 'fail_open' or a recyclecheck.Policy"
        )
    return make()


def _secret(value: object) -> bytes | None:
    if value is None:
        return None
    key = value.encode("utf-8") if isinstance(value, str) else value
    if not isinstance(key, bytes) or len(key) < _MIN_SECRET_BYTES:
        raise ConfigurationError(
            f"RECYCLECHECK_SECRET must be at least {_MIN_SECRET_BYTES} bytes (a str or bytes)"
        )
    return key


def _hook(value: object) -> Callable[[Decision], object] | None:
    if value is not None and not callable(value):
        raise ConfigurationError("RECYCLECHECK_ON_DECISION must be callable (or None)")
    return value


def _cache(url: object, secret: bytes | None) -> FactCache | None:
    if url is None:
        return None
    if not isinstance(url, str) or not url:
        raise ConfigurationError("RECYCLECHECK_REDIS_URL must be a redis:// URL")
    if secret is None:
        raise ConfigurationError(
            "RECYCLECHECK_REDIS_URL needs RECYCLECHECK_SECRET (at least 16 bytes, the same "
            "in every process sharing the cache)"
        )
    try:
        import redis  # noqa: PLC0415 - the optional extra recyclecheck[redis]
        from redis.backoff import NoBackoff  # noqa: PLC0415
        from redis.retry import Retry  # noqa: PLC0415
    except ImportError:
        raise ConfigurationError(
            "RECYCLECHECK_REDIS_URL needs redis-py: pip install 'recyclecheck[redis]'"
        ) from None
    try:
        client = redis.Redis.from_url(
            url,
            socket_timeout=REDIS_SOCKET_TIMEOUT,
            socket_connect_timeout=REDIS_SOCKET_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
        )
    except (ValueError, TypeError):  # the URL may hold a password: never echo it
        raise ConfigurationError("RECYCLECHECK_REDIS_URL is not a valid Redis URL") from None
    try:
        return RedisCache(client, secret=secret)
    except ConfigurationError as exc:
        raise ConfigurationError(f"RECYCLECHECK_REDIS_URL: {exc}") from None


# -- the extension ---------------------------------------------------------------------


class _DecisionReporter:
    """The Guard's ``on_decision``: one log line on the app's logger, then the app's hook.

    It holds the app's logger, not the app, so the app can be garbage collected.
    """

    def __init__(self, logger: logging.Logger, hook: Callable[[Decision], object] | None) -> None:
        self.logger = logger
        self.hook = hook

    def __call__(self, decision: Decision) -> None:
        self.logger.info(
            "recyclecheck decision: number=%s action=%s reason=%s provider=%s cached=%s "
            "elapsed_ms=%.1f",
            decision.masked_number,
            decision.action.value,
            decision.reason.value,
            decision.provider,
            decision.cached,
            decision.elapsed * 1000,
            extra={"recyclecheck_decision": decision.to_dict()},
        )
        if self.hook is None:
            return
        try:
            self.hook(decision)
        except Exception as exc:  # metrics never fail a login; the type only (no locals)
            self.logger.warning("recyclecheck on_decision hook raised %s", type(exc).__name__)


def _close_guard(guard: Guard) -> None:
    guard.close()


class State:
    """What :meth:`RecycleCheck.init_app` keeps in ``app.extensions["recyclecheck"]``.

    ``guard`` is the app's :class:`~recyclecheck.Guard`.  It is closed by
    :meth:`close`, when the app is garbage collected, or when the process exits,
    whichever comes first (once).
    """

    __slots__ = ("__weakref__", "_finalizer", "guard")

    def __init__(self, app: Flask, guard: Guard) -> None:
        self.guard = guard
        self._finalizer = weakref.finalize(app, _close_guard, guard)

    @property
    def closed(self) -> bool:
        """True once the Guard was closed."""
        return not self._finalizer.alive

    def close(self) -> None:
        """Close the Guard (release the provider's pooled connections) now; idempotent."""
        self._finalizer()

    def __repr__(self) -> str:
        return f"<recyclecheck.flask.State guard={self.guard!r} closed={self.closed}>"


def _build_guard(app: Flask) -> Guard:
    """Validate every key first, then build the provider (it may open a pool) and the Guard."""
    config = app.config
    secret = _secret(config["RECYCLECHECK_SECRET"])
    options: dict[str, Any] = {
        "policy": build_policy(config),
        "timeout": _timeout(config["RECYCLECHECK_TIMEOUT"]),
        "default_region": _region(config["RECYCLECHECK_DEFAULT_REGION"]),
        "on_decision": _DecisionReporter(app.logger, _hook(config["RECYCLECHECK_ON_DECISION"])),
        "cache": _cache(config["RECYCLECHECK_REDIS_URL"], secret),
        "secret": secret,
    }
    provider = build_provider(config)
    try:
        return Guard(provider, **options)
    except ConfigurationError:
        close = getattr(provider, "close", None)
        if callable(close):
            close()
        raise


class RecycleCheck:
    """The Flask extension: ``RecycleCheck(app)``, or ``RecycleCheck()`` then ``init_app(app)``.

    The extension object holds no per-app state, so one instance serves any
    number of apps (the app-factory pattern); each app gets its own thread-safe
    :class:`~recyclecheck.Guard` in ``app.extensions["recyclecheck"]``.
    """

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Build the app's Guard from ``app.config`` (keys in the module docstring).

        Missing keys get their defaults (:data:`CONFIG_DEFAULTS`).  A bad value
        raises :class:`~recyclecheck.ConfigurationError` naming the key, here and
        not at the first login.  Calling it twice for one app raises
        ``RuntimeError``.
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError("RecycleCheck.init_app() was already called for this app")
        for key, value in CONFIG_DEFAULTS.items():
            app.config.setdefault(key, value)
        app.extensions[EXTENSION_KEY] = State(app, _build_guard(app))

    @staticmethod
    def state(app: Flask | None = None) -> State:
        """The :class:`State` of ``app`` (default: the current app).

        Raises ``RuntimeError`` if :meth:`init_app` was not called for it.
        """
        target = current_app if app is None else app
        state = target.extensions.get(EXTENSION_KEY)
        if not isinstance(state, State):
            raise RuntimeError("RecycleCheck.init_app(app) was not called for this app")
        return state

    @property
    def guard(self) -> Guard:
        """The current app's :class:`~recyclecheck.Guard` (needs an app context)."""
        return self.state().guard

    def check(
        self,
        phone: str,
        *,
        bound_at: dt.datetime | dt.date,
        region: str | None = None,
    ) -> Decision:
        """``Guard.check`` on the current app's Guard; see :meth:`recyclecheck.Guard.check`.

        Call it after the SMS code was verified and before the code logs anyone
        in.  Never move ``bound_at`` on a plain SMS-code login.
        """
        return self.guard.check(phone, bound_at=bound_at, region=region)
