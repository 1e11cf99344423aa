"""Building the app's one :class:`recyclecheck.Guard` from :class:`Settings`.

The Guard is thread-safe and holds the provider's pooled connections, its
circuit breaker and the fact cache, so an app builds one at startup (in the
FastAPI lifespan, ``app.py``) and closes it at shutdown, never one per request.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping

import recyclecheck
from recyclecheck.providers import (
    AliyunProvider,
    Answer,
    CamaraProvider,
    ChangedSince,
    Provider,
    RndProvider,
    SandboxProvider,
    TelesignProvider,
    TwilioProvider,
)

from .settings import Settings

__all__ = ["FreshBinding", "build_guard", "build_provider"]

log = logging.getLogger(__name__)

_ADAPTERS: Mapping[str, Callable[[], Provider]] = {
    "aliyun": AliyunProvider.from_env,
    "camara": CamaraProvider.from_env,
    "rnd": RndProvider.from_env,
    "telesign": TelesignProvider.from_env,
    "twilio": TwilioProvider.from_env,
}
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
    from_env = _ADAPTERS.get(settings.provider)
    if from_env is None:
        names = ", ".join(["sandbox", *_ADAPTERS])
        raise recyclecheck.ConfigurationError(f"RECYCLECHECK_PROVIDER must be one of {names}")
    return from_env()  # credentials come from the adapter's own environment variables


def build_guard(settings: Settings) -> recyclecheck.Guard:
    """The app's Guard: the configured provider, policy, deadline and region."""
    policy = _POLICIES.get(settings.policy)
    if policy is None:
        raise recyclecheck.ConfigurationError("RECYCLECHECK_POLICY must be secure or fail_open")
    provider = build_provider(settings)
    if settings.fresh_binding_days:
        provider = FreshBinding(provider, days=settings.fresh_binding_days, clock=settings.clock)
    return recyclecheck.Guard(
        provider,
        policy=policy(),
        timeout=settings.timeout,
        default_region=settings.default_region,
    )


class FreshBinding:
    """A provider wrapper: a binding proven in the last ``days`` days needs no lookup.

    After a step-up the app moves ``bound_at`` to now.  A provider with dated
    records then answers "no change since", and the next SMS-code login goes
    straight in; but a provider with *no data* on a number says so whatever
    the date, so that customer would be stepped up at every login.  Carriers
    hold a cancelled number for 45 (US) to 90 days (China) before anyone else
    can get it, so a number whose holder proved the account within the last 30
    days cannot have changed hands since: for such a binding this answers "no
    change" without asking the provider.  Only a step-up (or account creation)
    makes a binding that recent, never a plain SMS-code login, and the Guard
    still makes the decision.  Use the rule only if your carriers' quarantine
    is longer than ``days``.
    """

    def __init__(self, inner: Provider, *, days: int, clock: Callable[[], float] = time.time):
        if not 0 < days <= 45:
            raise recyclecheck.ConfigurationError("DEMO_FRESH_BINDING_DAYS must be 0 to 45")
        self.inner = inner
        self.name = inner.name  # decisions, logs and cache entries keep the provider's name
        self.days = days
        self._clock = clock

    def lookup(self, number: str, since: dt.date) -> Answer:
        """``ChangedSince(since, False)`` for a fresh binding, else the inner provider's answer."""
        today = dt.datetime.fromtimestamp(self._clock(), dt.timezone.utc).date()
        if since >= today - dt.timedelta(days=self.days):
            log.debug("fresh binding for %s: provider not asked", recyclecheck.mask(number))
            return ChangedSince(since, False)
        return self.inner.lookup(number, since)

    def close(self) -> None:
        """Close the wrapped provider (``Guard.close()`` calls this)."""
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()
