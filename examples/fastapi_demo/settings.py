"""The demo's settings, read from environment variables by :meth:`Settings.from_env`.

========================================  ==========================================
``RECYCLECHECK_PROVIDER``                 ``sandbox`` (default: ``SandboxProvider.demo()``,
                                          no account, no network), or ``aliyun``,
                                          ``camara``, ``rnd``, ``telesign``, ``twilio``
                                          (built by the adapter's ``from_env()``), or
                                          ``router`` (``Router.from_env()``: routes in
                                          ``RECYCLECHECK_ROUTES``)
``RECYCLECHECK_SANDBOX_FILE``             a sandbox JSON file instead of the demo numbers
``RECYCLECHECK_TIMEOUT``                  the deadline of each check, seconds (0.8)
``RECYCLECHECK_DEFAULT_REGION``           region for national formats (``CN``)
``RECYCLECHECK_POLICY``                   ``secure`` (default) or ``fail_open``
``DEMO_DEVELOPMENT``                      ``true`` (default): serve ``GET /dev/outbox``,
                                          the fake SMS and e-mail gateways' messages
``DEMO_FRESH_BINDING_DAYS``               30 (default; 1 to 44, ``0`` turns it off): the
                                          Guard allows a binding proven that recently
                                          without a lookup (``build_policy`` in
                                          ``guard.py``)
========================================  ==========================================

These are the same ``RECYCLECHECK_*`` names ``recyclecheck.flask`` reads.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping

from recyclecheck import ConfigurationError
from recyclecheck.providers import Provider

__all__ = ["Settings"]

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the app is configured with; tests build one directly."""

    #: A provider name (see the table above), or a provider object (tests pass their own).
    provider: str | Provider = "sandbox"
    sandbox_file: str | None = None
    timeout: float = 0.8
    default_region: str | None = "CN"
    policy: str = "secure"
    development: bool = True
    fresh_binding_days: int = 30
    code_ttl: float = 300.0  # a one-time code lives 5 minutes
    code_attempts: int = 5  # guesses per code
    login_ttl: float = 600.0  # a login must finish within 10 minutes
    step_up_attempts: int = 5  # wrong passwords or e-mail codes before the login is blocked
    sms_per_number: int = 5  # SMS codes per number per sms_window
    sms_window: float = 900.0
    session_ttl: float = 12 * 3600.0
    clock: Callable[[], float] = time.time  # tests pass a settable one

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``environ`` (default ``os.environ``); unset names keep the defaults."""
        env = os.environ if environ is None else environ
        default = cls()
        region = env.get("RECYCLECHECK_DEFAULT_REGION", default.default_region or "")
        return cls(
            provider=env.get("RECYCLECHECK_PROVIDER", "sandbox").strip().lower(),
            sandbox_file=env.get("RECYCLECHECK_SANDBOX_FILE") or None,
            timeout=_number(env, "RECYCLECHECK_TIMEOUT", default.timeout),
            default_region=region.strip().upper() or None,
            policy=env.get("RECYCLECHECK_POLICY", default.policy).strip().lower(),
            development=_flag(env, "DEMO_DEVELOPMENT", default.development),
            fresh_binding_days=_int(env, "DEMO_FRESH_BINDING_DAYS", default.fresh_binding_days),
        )


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    if name not in env:
        return default
    try:
        return float(env[name])
    except ValueError:
        raise ConfigurationError(f"{name} must be a number") from None


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    if name not in env:
        return default
    try:
        return int(env[name])
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number") from None


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value not in _TRUE | _FALSE:
        raise ConfigurationError(f"{name} must be true or false")
    return value in _TRUE
