"""OpenTelemetry metrics and spans, through ``opentelemetry-api`` only (the ``otel`` extra).

Telemetry is automatic and costs nothing to leave on: the library records
through the API, and the application decides by configuring (or not) an
OpenTelemetry SDK, as OpenTelemetry intends for libraries.

- ``import recyclecheck`` never imports ``opentelemetry``; the first hook call
  does, once.  Without the package every hook returns at once, for good.
- Until the application has set a real global ``MeterProvider`` or
  ``TracerProvider`` (the API's proxy and no-op ones do not count), the hooks
  return at once too, and look again at most once every
  :data:`LOOK_INTERVAL` seconds, so an SDK configured after the first check is
  picked up.  The instruments are created once, from the providers found.
- A hook never raises and is never called with a lock held: whatever goes
  wrong inside OpenTelemetry is logged once (by type) and swallowed.
- Attributes hold only low-cardinality values the Guard already shows: an
  action, a reason, a provider's name, an outcome, a breaker state, a bool.
  Never a number, masked or not, an HMAC or a cache key.

The instruments (``docs/operations.md`` has them with what to alert on):

=================================  =========  =========================================
``recyclecheck.decisions``         counter    ``action``, ``reason``, ``provider``, ``cached``
``recyclecheck.cache.lookups``     counter    ``provider``, ``result`` (``hit``/``miss``)
``recyclecheck.provider.duration`` histogram  ``provider``, ``outcome`` (seconds, each attempt)
``recyclecheck.provider.retries``  counter    ``provider``, ``outcome`` (of the failed attempt)
``recyclecheck.breaker.changes``   counter    ``provider``, ``state`` (``open``/``closed``)
``recyclecheck.quota.refusals``    counter    ``provider``
``recyclecheck.sweep.rows``        counter    ``outcome`` (an action, or ``error``)
=================================  =========  =========================================

and one span per check, ``recyclecheck.check``, with the attributes
``recyclecheck.action``, ``recyclecheck.reason``, ``recyclecheck.provider`` and
``recyclecheck.cached``.  It is recorded when the decision is made, from the
moment the check started, as a child of the caller's current span.

:func:`use` and :func:`reset` are the test seam: OpenTelemetry's global
providers can be set once per process, so tests hand theirs in directly.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Final

from .exceptions import (
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderTimeout,
)

if TYPE_CHECKING:
    from ._decision import Decision
    from ._sweep import SweepResult

__all__ = [
    "LOOK_INTERVAL",
    "breaker_changed",
    "decided",
    "provider_called",
    "quota_refused",
    "reset",
    "retried",
    "swept",
    "use",
]

logger = logging.getLogger("recyclecheck")

#: Seconds between looks for an SDK while the application has configured none.
LOOK_INTERVAL: Final = 1.0
#: The meter's and tracer's name (the instrumentation scope).
SCOPE: Final = "recyclecheck"
#: ``Decision.provider`` when the policy decided without asking anyone (``_guard.TRUSTED_BINDING``).
TRUSTED: Final = "policy"
#: Bucket boundaries (seconds) of the provider latency histogram, around a 0.8 s deadline.
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0, 2.5, 5.0)
#: The API's stand-ins that record nothing, by class name with any leading ``_`` dropped
#: (the proxies are not all public: ``_ProxyMeterProvider``, ``ProxyTracerProvider``).
_NOOP_PROVIDERS: Final = frozenset(
    {
        "ProxyMeterProvider",
        "NoOpMeterProvider",
        "DefaultMeterProvider",
        "ProxyTracerProvider",
        "NoOpTracerProvider",
        "DefaultTracerProvider",
    }
)


def outcome_of(result: object) -> str:
    """A provider call's outcome as a stable, low-cardinality word."""
    if not isinstance(result, ProviderError):
        return "ok"
    if isinstance(result, ProviderTimeout):
        return "timeout"
    if isinstance(result, ProviderRateLimited):
        return "rate_limited"
    if isinstance(result, ProviderAuthError):
        return "auth_error"
    if isinstance(result, ProviderResponseError):
        return "bad_response"
    return "unavailable"


class _Instruments:
    """The instruments and the tracer, made once from the providers found."""

    def __init__(self, meter_provider: Any, tracer_provider: Any) -> None:
        from ._version import __version__  # noqa: PLC0415 - only once telemetry is on

        self.metered = meter_provider is not None
        if meter_provider is not None:
            meter = meter_provider.get_meter(SCOPE, __version__)
            self.decisions = meter.create_counter(
                "recyclecheck.decisions", unit="{decision}", description="Checks by decision"
            )
            self.cache = meter.create_counter(
                "recyclecheck.cache.lookups",
                unit="{check}",
                description="Checks answered from a cached fact (hit) or asking a provider (miss)",
            )
            self.duration = _histogram(meter)
            self.retries = meter.create_counter(
                "recyclecheck.provider.retries",
                unit="{retry}",
                description="Provider lookups retried, by the failure that led to the retry",
            )
            self.breaker = meter.create_counter(
                "recyclecheck.breaker.changes",
                unit="{change}",
                description="Circuit breakers opening and closing",
            )
            self.refusals = meter.create_counter(
                "recyclecheck.quota.refusals",
                unit="{check}",
                description="Provider calls refused by an empty quota (no call made)",
            )
            self.rows = meter.create_counter(
                "recyclecheck.sweep.rows", unit="{row}", description="Sweep rows done, by outcome"
            )
        self.tracer = (
            None if tracer_provider is None else tracer_provider.get_tracer(SCOPE, __version__)
        )

    def decided(self, decision: Decision) -> None:
        provider, cached = decision.provider, decision.cached
        action, reason = decision.action.value, decision.reason.value
        if self.metered:
            self.decisions.add(
                1, {"action": action, "reason": reason, "provider": provider, "cached": cached}
            )
            if cached or provider != TRUSTED:
                self.cache.add(1, {"provider": provider, "result": "hit" if cached else "miss"})
        if self.tracer is not None:
            end = time.time_ns()
            span = self.tracer.start_span(
                "recyclecheck.check",
                start_time=end - int(decision.elapsed * 1e9),
                attributes={
                    "recyclecheck.action": action,
                    "recyclecheck.reason": reason,
                    "recyclecheck.provider": provider,
                    "recyclecheck.cached": cached,
                },
            )
            span.end(end_time=end)


def _histogram(meter: Any) -> Any:
    options: dict[str, Any] = {
        "unit": "s",
        "description": "Provider lookup attempts, from the call to its answer or failure",
    }
    try:  # bucket advice arrived in opentelemetry-api 1.23
        return meter.create_histogram(
            "recyclecheck.provider.duration",
            explicit_bucket_boundaries_advisory=list(LATENCY_BUCKETS),
            **options,
        )
    except TypeError:
        return meter.create_histogram("recyclecheck.provider.duration", **options)


# -- where the instruments come from ------------------------------------------------------

_lock = threading.Lock()
#: The instruments in use (``None``: nothing to record to).
_state: _Instruments | None = None
#: Nothing more to look for: both providers found, OpenTelemetry absent, or :func:`use`.
_settled = False
_next_look = 0.0
_complained = False


def _current() -> _Instruments | None:
    """The instruments, looking for an SDK when a look is due (the hooks' slow path)."""
    global _next_look, _settled, _state  # noqa: PLW0603 - the one process-wide switch
    now = time.monotonic()
    if now < _next_look:
        return _state
    with _lock:
        if _settled or now < _next_look:
            return _state
        _next_look = now + LOOK_INTERVAL
        try:
            _state, _settled = _from_globals(_state)
        except Exception as exc:  # a broken installation: telemetry off, logins go on
            _state, _settled = None, True
            logger.warning("recyclecheck telemetry disabled: %s", type(exc).__name__)
        return _state


def _from_globals(state: _Instruments | None) -> tuple[_Instruments | None, bool]:
    try:
        from opentelemetry import metrics, trace  # noqa: PLC0415 - the optional extra
    except ImportError:
        return None, True
    meter_provider: Any = metrics.get_meter_provider()
    tracer_provider: Any = trace.get_tracer_provider()
    meter_provider = None if _records_nothing(meter_provider) else meter_provider
    tracer_provider = None if _records_nothing(tracer_provider) else tracer_provider
    settled = meter_provider is not None and tracer_provider is not None
    if meter_provider is None and tracer_provider is None:
        return None, False
    if (
        state is not None
        and state.metered == (meter_provider is not None)
        and (state.tracer is not None) == (tracer_provider is not None)
    ):
        return state, settled
    return _Instruments(meter_provider, tracer_provider), settled


def _records_nothing(provider: object) -> bool:
    return type(provider).__name__.lstrip("_") in _NOOP_PROVIDERS


def use(*, meter_provider: Any = None, tracer_provider: Any = None) -> None:
    """Record to these providers from now on (both ``None``: record nothing); for tests."""
    global _next_look, _settled, _state  # noqa: PLW0603 - the one process-wide switch
    with _lock:
        if meter_provider is None and tracer_provider is None:
            _state = None
        else:
            _state = _Instruments(meter_provider, tracer_provider)
        _settled, _next_look = True, 0.0


def reset() -> None:
    """Back to the automatic mode: look for the global providers on the next hook call."""
    global _next_look, _settled, _state
    with _lock:
        _state, _settled, _next_look = None, False, 0.0


def _failed(exc: Exception) -> None:
    global _complained  # noqa: PLW0603 - log once per process, not once per check
    if not _complained:
        _complained = True
        logger.warning(
            "recyclecheck telemetry failed: %s (further failures unlogged)", type(exc).__name__
        )


# -- the hooks: each returns at once when there is nothing to record to, never raises -----


def decided(decision: Decision) -> None:
    """A check decided: count it (and its cache lookup), and record its span."""
    state = _state if _settled else _current()
    if state is None:
        return
    try:
        state.decided(decision)
    except Exception as exc:
        _failed(exc)


def provider_called(provider: str, result: object, started: float) -> None:
    """One lookup attempt settled with ``result`` (an answer or a ProviderError)."""
    state = _state if _settled else _current()
    if state is None or not state.metered:
        return
    try:
        state.duration.record(
            time.monotonic() - started, {"provider": provider, "outcome": outcome_of(result)}
        )
    except Exception as exc:
        _failed(exc)


def retried(provider: str, error: ProviderError) -> None:
    """A failed lookup is about to be tried again."""
    state = _state if _settled else _current()
    if state is None or not state.metered:
        return
    try:
        state.retries.add(1, {"provider": provider, "outcome": outcome_of(error)})
    except Exception as exc:
        _failed(exc)


def breaker_changed(provider: str, state_name: str) -> None:
    """A circuit breaker opened (``"open"``) or closed (``"closed"``)."""
    state = _state if _settled else _current()
    if state is None or not state.metered:
        return
    try:
        state.breaker.add(1, {"provider": provider, "state": state_name})
    except Exception as exc:
        _failed(exc)


def quota_refused(provider: str) -> None:
    """A provider call was refused by its empty quota."""
    state = _state if _settled else _current()
    if state is None or not state.metered:
        return
    try:
        state.refusals.add(1, {"provider": provider})
    except Exception as exc:
        _failed(exc)


def swept(result: SweepResult) -> None:
    """A sweep finished one row."""
    state = _state if _settled else _current()
    if state is None or not state.metered:
        return
    try:
        outcome = "error" if result.action is None else result.action.value
        state.rows.add(1, {"outcome": outcome})
    except Exception as exc:
        _failed(exc)
