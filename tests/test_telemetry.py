"""OpenTelemetry metrics and spans: the exact figures, read back through the SDK's
in-memory metric reader and span exporter; no number, masked number or HMAC in any
attribute; a no-op (and no import at all) without OpenTelemetry or without an SDK."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from recyclecheck import (
    Guard,
    Policy,
    ProviderAuthError,
    ProviderUnavailable,
    SweepRow,
    TokenBucket,
)
from recyclecheck import _telemetry as telemetry
from recyclecheck._guard import TRUSTED_BINDING
from recyclecheck.providers import LastChange, SandboxProvider

from .fakes import ScriptedProvider, in_turn

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

BOUND = dt.date(2022, 5, 10)
REISSUED = "+8613800138000"
QUIET = "+8613900139000"
UNKNOWN = "+8613700137000"
NUMBERS = (REISSUED, QUIET, UNKNOWN)


class Recorded:
    """The test's own meter and tracer providers, handed to recyclecheck directly."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.meters = MeterProvider(metric_readers=[self.reader])
        self.exporter = InMemorySpanExporter()
        self.tracers = TracerProvider()
        self.tracers.add_span_processor(SimpleSpanProcessor(self.exporter))

    def metrics(self) -> dict[str, dict[frozenset[tuple[str, Any]], Any]]:
        """Each instrument's points: attributes -> sum (counters) or (count, sum) (histograms)."""
        found: dict[str, dict[frozenset[tuple[str, Any]], Any]] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                assert scope.scope.name == "recyclecheck"
                for metric in scope.metrics:
                    points = found.setdefault(metric.name, {})
                    for point in metric.data.data_points:
                        key = frozenset(point.attributes.items())
                        value = getattr(point, "value", None)
                        points[key] = (point.count, point.sum) if value is None else value
        return found

    def counts(self, name: str) -> dict[frozenset[tuple[str, Any]], int]:
        """An instrument's points without the zero ones (a histogram: its counts)."""
        points = self.metrics().get(name, {})
        counted = {k: v[0] if isinstance(v, tuple) else v for k, v in points.items()}
        return {k: v for k, v in counted.items() if v}

    def spans(self) -> list[Any]:
        return list(self.exporter.get_finished_spans())

    def attribute_values(self) -> list[str]:
        """Every attribute value, key, span name and event anywhere, as text."""
        texts: list[str] = []
        for points in self.metrics().values():
            for key in points:
                texts.extend(f"{k}={v}" for k, v in key)
        for span in self.spans():
            texts.append(span.name)
            texts.extend(f"{k}={v}" for k, v in span.attributes.items())
            texts.extend(event.name for event in span.events)
            for event in span.events:
                texts.extend(f"{k}={v}" for k, v in event.attributes.items())
        return texts


def attrs(**values: Any) -> frozenset[tuple[str, Any]]:
    return frozenset(values.items())


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    """recyclecheck records to fresh in-memory providers (never OpenTelemetry's globals)."""
    recording = Recorded()
    telemetry.use(meter_provider=recording.meters, tracer_provider=recording.tracers)
    try:
        yield recording
    finally:
        telemetry.reset()
        recording.meters.shutdown()
        recording.tracers.shutdown()


def sandbox() -> SandboxProvider:
    return SandboxProvider(
        {REISSUED: dt.date(2024, 3, 1), QUIET: LastChange(None), UNKNOWN: ProviderAuthError("x")}
    )


def test_decisions_cache_latency_and_one_span_per_check(recorded: Recorded) -> None:
    """Three numbers asked, two asked again from the cache: exact counters, one latency
    point per lookup, one span per check with the decision's attributes."""
    guard = Guard(sandbox(), breaker_threshold=5)
    for number in NUMBERS:
        guard.check(number, bound_at=BOUND)
    guard.check(REISSUED, bound_at=BOUND)
    guard.check(QUIET, bound_at=BOUND)

    assert recorded.counts("recyclecheck.decisions") == {
        attrs(
            action="step_up", reason="reissued_after_binding", provider="sandbox", cached=False
        ): 1,
        attrs(
            action="step_up", reason="reissued_after_binding", provider="sandbox", cached=True
        ): 1,
        attrs(action="allow", reason="not_reissued", provider="sandbox", cached=False): 1,
        attrs(action="allow", reason="not_reissued", provider="sandbox", cached=True): 1,
        attrs(action="step_up", reason="provider_unavailable", provider="sandbox", cached=False): 1,
    }
    assert recorded.counts("recyclecheck.cache.lookups") == {
        attrs(provider="sandbox", result="miss"): 3,
        attrs(provider="sandbox", result="hit"): 2,
    }
    assert recorded.counts("recyclecheck.provider.duration") == {
        attrs(provider="sandbox", outcome="ok"): 2,
        attrs(provider="sandbox", outcome="auth_error"): 1,  # not retryable: one attempt
    }
    assert recorded.counts("recyclecheck.provider.retries") == {}
    assert recorded.counts("recyclecheck.breaker.changes") == {}

    spans = recorded.spans()
    assert [span.name for span in spans] == ["recyclecheck.check"] * 5
    assert [dict(span.attributes) for span in spans][:2] == [
        {
            "recyclecheck.action": "step_up",
            "recyclecheck.reason": "reissued_after_binding",
            "recyclecheck.provider": "sandbox",
            "recyclecheck.cached": False,
        },
        {
            "recyclecheck.action": "allow",
            "recyclecheck.reason": "not_reissued",
            "recyclecheck.provider": "sandbox",
            "recyclecheck.cached": False,
        },
    ]
    for span in spans:
        assert span.start_time <= span.end_time


def test_the_histogram_is_in_seconds_with_login_sized_buckets(recorded: Recorded) -> None:
    """A 30 ms lookup lands in the (0.025, 0.05] bucket of a histogram in seconds."""
    guard = Guard(ScriptedProvider(delay=0.03))
    guard.check(QUIET, bound_at=BOUND)
    data = recorded.reader.get_metrics_data()
    [metric] = [
        m
        for r in data.resource_metrics
        for s in r.scope_metrics
        for m in s.metrics
        if m.name == "recyclecheck.provider.duration"
    ]
    assert metric.unit == "s"
    [point] = metric.data.data_points
    assert 0.03 <= point.sum < 0.5
    assert list(point.explicit_bounds) == list(telemetry.LATENCY_BUCKETS)
    assert point.bucket_counts[list(point.explicit_bounds).index(0.05)] == 1


def test_failures_retries_and_the_breaker_opening_and_closing(recorded: Recorded) -> None:
    """Two failing checks (a retry each) open the breaker; the open circuit makes no call;
    the probe after recovery succeeds and closes it."""
    down = ProviderUnavailable("down", provider="scripted")
    provider = ScriptedProvider(in_turn(down, down, down, down, LastChange(None)))
    guard = Guard(provider, breaker_threshold=2, breaker_recovery=0.2)
    for _ in range(3):
        decision = guard.check(QUIET, bound_at=BOUND)
        assert decision.reason.value == "provider_unavailable"
    assert guard.breaker.state == "open"
    assert provider.count == 4
    time.sleep(0.25)
    assert guard.check(QUIET, bound_at=BOUND).reason.value == "not_reissued"
    assert guard.breaker.state == "closed"

    assert recorded.counts("recyclecheck.provider.duration") == {
        attrs(provider="scripted", outcome="unavailable"): 4,
        attrs(provider="scripted", outcome="ok"): 1,
    }
    assert recorded.counts("recyclecheck.provider.retries") == {
        attrs(provider="scripted", outcome="unavailable"): 2,
    }
    assert recorded.counts("recyclecheck.breaker.changes") == {
        attrs(provider="scripted", state="open"): 1,
        attrs(provider="scripted", state="closed"): 1,
    }
    assert recorded.counts("recyclecheck.decisions") == {
        attrs(
            action="step_up", reason="provider_unavailable", provider="scripted", cached=False
        ): 3,
        attrs(action="allow", reason="not_reissued", provider="scripted", cached=False): 1,
    }
    assert recorded.counts("recyclecheck.cache.lookups") == {
        attrs(provider="scripted", result="miss"): 4,
    }


def test_a_quota_refusal_is_counted_and_makes_no_call(recorded: Recorded) -> None:
    """An empty bucket: one refusal counted, no latency point, no breaker change."""
    bucket = TokenBucket(rate=0.001, burst=1, clock=lambda: 0.0)  # a frozen clock: no refill
    provider = ScriptedProvider()
    guard = Guard(provider, quota=bucket, breaker_threshold=1)
    assert guard.check(QUIET, bound_at=BOUND).reason.value == "not_reissued"  # the one token
    refused = guard.check(UNKNOWN, bound_at=BOUND)
    assert refused.reason.value == "provider_unavailable"
    assert provider.count == 1

    assert recorded.counts("recyclecheck.quota.refusals") == {attrs(provider="scripted"): 1}
    assert recorded.counts("recyclecheck.provider.duration") == {
        attrs(provider="scripted", outcome="ok"): 1
    }
    assert recorded.counts("recyclecheck.breaker.changes") == {}
    assert guard.breaker.state == "closed"


def test_a_sweep_counts_rows_by_outcome(recorded: Recorded) -> None:
    """Rows done by outcome (an action, or error for a row that cannot be checked); each
    row's check is a decision and a span as well."""
    guard = Guard(sandbox())
    rows = [
        SweepRow("a1", REISSUED, BOUND),
        SweepRow("a2", QUIET, BOUND),
        SweepRow("a3", QUIET, BOUND),
        SweepRow("a4", "12345", BOUND),  # not a valid number: an error result
    ]
    results = list(guard.sweep(rows, concurrency=2))
    assert [r.error is not None for r in results] == [False, False, False, True]

    assert recorded.counts("recyclecheck.sweep.rows") == {
        attrs(outcome="step_up"): 1,
        attrs(outcome="allow"): 2,
        attrs(outcome="error"): 1,
    }
    assert sum(recorded.counts("recyclecheck.decisions").values()) == 3
    assert len(recorded.spans()) == 3


def test_acheck_records_like_check(recorded: Recorded) -> None:
    """The async driver goes through the same decision: a decision and a span."""
    guard = Guard(sandbox())
    asyncio.run(guard.acheck(QUIET, bound_at=BOUND))
    assert recorded.counts("recyclecheck.decisions") == {
        attrs(action="allow", reason="not_reissued", provider="sandbox", cached=False): 1
    }
    assert [span.name for span in recorded.spans()] == ["recyclecheck.check"]


def test_the_check_span_is_a_child_of_the_callers_span(recorded: Recorded) -> None:
    """The span sits under the app's current span and covers the check from its start."""
    guard = Guard(ScriptedProvider(delay=0.02))
    tracer = recorded.tracers.get_tracer("app")
    with tracer.start_as_current_span("login") as login:
        decision = guard.check(QUIET, bound_at=BOUND)
    [check, _login] = recorded.spans()
    assert check.parent is not None
    assert check.parent.span_id == login.get_span_context().span_id
    assert check.context.trace_id == login.get_span_context().trace_id
    assert (check.end_time - check.start_time) / 1e9 == pytest.approx(decision.elapsed, abs=0.005)
    assert check.end_time - check.start_time >= 0.02 * 1e9


def test_policy_decisions_are_not_cache_lookups(recorded: Recorded) -> None:
    """A check the policy answered from a recent binding asked no cache for its answer."""
    assert telemetry.TRUSTED == TRUSTED_BINDING
    guard = Guard(sandbox(), policy=Policy(trust_recent_binding=dt.timedelta(days=30)))
    recent = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3)
    decision = guard.check(QUIET, bound_at=recent)
    assert decision.provider == TRUSTED_BINDING
    assert recorded.counts("recyclecheck.cache.lookups") == {}
    assert sum(recorded.counts("recyclecheck.decisions").values()) == 1


ALLOWED_VALUES = {
    "recyclecheck.check",
    *(f"action={a}" for a in ("allow", "step_up", "deny")),
    *(f"outcome={o}" for o in ("ok", "timeout", "unavailable", "rate_limited", "auth_error")),
    "outcome=bad_response",
    "outcome=error",
    *(f"outcome={a}" for a in ("allow", "step_up", "deny")),
}


def test_no_number_masked_number_or_hmac_in_any_attribute(recorded: Recorded) -> None:
    """Every scenario at once; then every attribute key and value, span name and event is
    searched for the numbers (E.164, national, digits, masked) and for anything hex-like."""
    down = ProviderUnavailable("down", provider="scripted")
    for guard in (
        Guard(sandbox()),
        Guard(ScriptedProvider(in_turn(down, down, down, down)), breaker_threshold=1),
        Guard(ScriptedProvider(), quota=TokenBucket(rate=0.001, burst=1, clock=lambda: 0.0)),
    ):
        for number in (*NUMBERS, "+86 138 0013 8000", "13900139000"):
            decision = guard.check(number, bound_at=BOUND, region="CN")
            masked = decision.masked_number
        list(guard.sweep([SweepRow("a", QUIET, BOUND)]))
    texts = recorded.attribute_values()
    assert texts
    masks = {"+86 138****8000", "+86 139****9000", "+86 137****7000", masked}
    for text in texts:
        for number in NUMBERS:
            national = number.removeprefix("+86")
            for form in (number, number.lstrip("+"), national, national[:3], national[-4:]):
                assert form not in text, text
        for form in masks:
            assert form not in text
        assert not re.search(r"\d{3,}", text), text
        assert not re.search(r"[0-9a-f]{16,}", text), text
    keys = {text.split("=", 1)[0] for text in texts if "=" in text}
    assert keys <= {
        "action",
        "reason",
        "provider",
        "cached",
        "result",
        "outcome",
        "state",
        "recyclecheck.action",
        "recyclecheck.reason",
        "recyclecheck.provider",
        "recyclecheck.cached",
    }


def test_telemetry_failures_never_reach_the_login(
    recorded: Recorded, caplog: pytest.LogCaptureFixture
) -> None:
    """Instruments that raise: the check still decides, and the failure is logged once."""

    class Broken:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError("broken")

    class BrokenMeters:
        def get_meter(self, *args: Any, **kwargs: Any) -> Any:
            class Meter:
                def __getattr__(self, name: str) -> Any:
                    return lambda *a, **k: Broken()

            return Meter()

    telemetry.use(meter_provider=BrokenMeters(), tracer_provider=None)
    telemetry._complained = False
    guard = Guard(sandbox())
    with caplog.at_level(logging.WARNING, logger="recyclecheck"):
        for _ in range(3):
            assert guard.check(QUIET, bound_at=BOUND).reason.value == "not_reissued"
    failures = [r for r in caplog.records if "telemetry failed" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].getMessage() == (
        "recyclecheck telemetry failed: RuntimeError (further failures unlogged)"
    )


def test_without_an_sdk_nothing_is_recorded_and_the_hooks_return_at_once() -> None:
    """opentelemetry-api alone (the proxy providers): no instruments are made; each hook
    costs about a microsecond."""
    telemetry.reset()
    try:
        guard = Guard(sandbox())
        guard.check(QUIET, bound_at=BOUND)
        assert telemetry._state is None
        assert not telemetry._settled
        for stand_in in (
            metrics.get_meter_provider(),
            trace.get_tracer_provider(),
            metrics.NoOpMeterProvider(),
            trace.NoOpTracerProvider(),
        ):
            assert telemetry._records_nothing(stand_in), stand_in
        assert not telemetry._records_nothing(MeterProvider())
        assert not telemetry._records_nothing(TracerProvider())
        decision = guard.check(QUIET, bound_at=BOUND)
        started = time.perf_counter()
        for _ in range(10_000):
            telemetry.decided(decision)
        assert (time.perf_counter() - started) / 10_000 < 20e-6  # ~0.2 us; loose for CI
    finally:
        telemetry.reset()


def _run(code: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout.split()


def test_importing_recyclecheck_does_not_import_opentelemetry() -> None:
    """`import recyclecheck` (and building a Guard) loads no opentelemetry module."""
    code = (
        "import sys, recyclecheck\n"
        "from recyclecheck.providers import SandboxProvider\n"
        "recyclecheck.Guard(SandboxProvider.demo())\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    assert _run(code) == ["[]"]


def test_without_opentelemetry_checks_work_and_telemetry_is_off_for_good() -> None:
    """With opentelemetry unimportable, a check decides and telemetry settles off."""
    code = (
        "import sys, datetime\n"
        "sys.modules['opentelemetry'] = None\n"
        "import recyclecheck\n"
        "from recyclecheck import _telemetry\n"
        "from recyclecheck.providers import SandboxProvider\n"
        "guard = recyclecheck.Guard(SandboxProvider.demo())\n"
        "d = guard.check('+86 139 0013 9000', bound_at=datetime.date(2022, 5, 10))\n"
        "print(d.action.value, _telemetry._settled, _telemetry._state)\n"
    )
    assert _run(code) == ["allow", "True", "None"]


def test_a_global_sdk_is_picked_up_without_any_recyclecheck_setting() -> None:
    """The app sets OpenTelemetry's global providers (even after its first check): the
    next checks record to them; nothing in recyclecheck is configured."""
    code = (
        "import datetime, time\n"
        "import recyclecheck\n"
        "from recyclecheck import _telemetry\n"
        "from recyclecheck.providers import SandboxProvider\n"
        "from opentelemetry import metrics, trace\n"
        "from opentelemetry.sdk.metrics import MeterProvider\n"
        "from opentelemetry.sdk.metrics.export import InMemoryMetricReader\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter\n"
        "guard = recyclecheck.Guard(SandboxProvider.demo())\n"
        "bound = datetime.date(2022, 5, 10)\n"
        "guard.check('+86 139 0013 9000', bound_at=bound)\n"
        "reader, exporter = InMemoryMetricReader(), InMemorySpanExporter()\n"
        "metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))\n"
        "tracers = TracerProvider()\n"
        "tracers.add_span_processor(SimpleSpanProcessor(exporter))\n"
        "trace.set_tracer_provider(tracers)\n"
        "time.sleep(_telemetry.LOOK_INTERVAL + 0.1)\n"
        "guard.check('+86 139 0013 9000', bound_at=bound)\n"
        "guard.check('+86 139 0013 9000', bound_at=bound)\n"
        "data = reader.get_metrics_data()\n"
        "[decisions] = [m for r in data.resource_metrics for s in r.scope_metrics"
        " for m in s.metrics if m.name == 'recyclecheck.decisions']\n"
        "print(sum(p.value for p in decisions.data.data_points), len(exporter.get_finished_spans()),"
        " _telemetry._settled)\n"
    )
    assert _run(code) == ["2", "2", "True"]
