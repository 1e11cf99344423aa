"""Building the app's one :class:`recyclecheck.Guard` from :class:`Settings`.

The Guard is thread-safe and holds the provider's pooled connections, its
circuit breaker and the fact cache, so an app builds one at startup (in the
FastAPI lifespan, ``app.py``) and closes it at shutdown, never one per request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import attrs

import recyclecheck
from recyclecheck.providers import (
    PROVIDERS,  # the SDK's one table of adapters
    Provider,
    SandboxProvider,
)

from .settings import Settings

__all__ = ["build_guard", "build_policy", "build_provider"]

_POLICIES: Mapping[str, Callable[[], recyclecheck.Policy]] = {
    "secure": recyclecheck.Policy,
    "fail_open": recyclecheck.Policy.fail_open,
}


def build_provider(settings: Settings) -> Provider:
    """The provider ``settings`` names (the demo sandbox by default)."""
    if not isinstance(settings.provider, str):
        return settings.provider
    if settings.provider == "sandbox":
        if settings.sandbox_file:
            return SandboxProvider.from_file(settings.sandbox_file)
        return SandboxProvider.demo()
    if settings.provider == "router":
        return recyclecheck.Router.from_env()  # RECYCLECHECK_ROUTES="+86=aliyun; *=camara"
    entry = PROVIDERS.get(settings.provider)
    if entry is None:
        names = ", ".join(["sandbox", *sorted(PROVIDERS), "router"])
        raise recyclecheck.ConfigurationError(f"RECYCLECHECK_PROVIDER must be one of {names}")
    return entry.from_env()  # credentials come from the adapter's own environment variables


def build_policy(settings: Settings) -> recyclecheck.Policy:
    """The configured policy, trusting bindings proven in the last ``fresh_binding_days``.

    A provider with no data on a number says so whatever the date, so without
    the trust its customer would step up at every login.  Carriers hold a
    cancelled number at least 45 days before anyone else gets it, so the
    Guard allows a binding younger than ``fresh_binding_days`` without a lookup
    (reason ``recently_bound``).  Only a passed step-up (or account creation)
    makes a binding that recent, never a plain SMS-code login.  ``0``: off.
    """
    make = _POLICIES.get(settings.policy)
    if make is None:
        raise recyclecheck.ConfigurationError("RECYCLECHECK_POLICY must be secure or fail_open")
    days = settings.fresh_binding_days
    if days == 0:
        return make()
    try:
        return attrs.evolve(make(), trust_recent_binding=days)
    except recyclecheck.ConfigurationError as exc:
        raise recyclecheck.ConfigurationError(
            f"DEMO_FRESH_BINDING_DAYS={days!r} (0 turns it off): {exc}"
        ) from None


def build_guard(settings: Settings) -> recyclecheck.Guard:
    """The app's Guard: the configured provider, policy, deadline and region."""
    policy = build_policy(settings)
    return recyclecheck.Guard(
        build_provider(settings),
        policy=policy,
        timeout=settings.timeout,
        default_region=settings.default_region,
    )
