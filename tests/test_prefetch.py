"""Sweeps use a provider's batch endpoint: one request per chunk warms the cache, then
every row's check answers from it; failed or unknown items are asked one by one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from recyclecheck import Guard, MemoryCache, Reason, SweepRow
from recyclecheck.testing import FakeProviderServer, ServerError

BOUND = dt.date(2022, 5, 10)
NUMBERS = [f"+1201555{n:04d}" for n in range(250)]
REISSUED = set(NUMBERS[::7])


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    script = {n: (dt.date(2024, 3, 1) if n in REISSUED else None) for n in NUMBERS}
    with FakeProviderServer(script) as fake:
        yield fake


def _rows() -> Iterator[SweepRow]:
    for index, number in enumerate(NUMBERS):
        yield SweepRow(account_id=f"acct-{index}", phone=number, bound_at=BOUND)


def _endpoints(server: FakeProviderServer) -> list[str]:
    return [r.endpoint for r in server.requests]


def test_a_sweep_asks_a_batch_provider_once_per_chunk(server: FakeProviderServer) -> None:
    with Guard(server.twilio(), timeout=2, cache=MemoryCache()) as guard:
        results = list(guard.sweep(_rows(), concurrency=8))
    assert [r.account_id for r in results] == [f"acct-{i}" for i in range(len(NUMBERS))]
    for number, result in zip(NUMBERS, results, strict=True):
        expected = Reason.REISSUED_AFTER_BINDING if number in REISSUED else Reason.NOT_REISSUED
        assert result.reason is expected
    assert _endpoints(server).count("batch") == 3  # 250 numbers, 100 a request
    assert "lookup" not in _endpoints(server)


def test_without_a_cache_to_warm_every_row_is_asked_alone(server: FakeProviderServer) -> None:
    """A cache that keeps nothing would lose a warm-up's answers: none is made."""
    with Guard(server.twilio(), timeout=2, cache=MemoryCache(max_entries=0)) as guard:
        results = list(guard.sweep(_rows(), concurrency=8))
    assert sum(r.reason is Reason.REISSUED_AFTER_BINDING for r in results) == len(REISSUED)
    assert _endpoints(server).count("lookup") == len(NUMBERS)
    assert "batch" not in _endpoints(server)


def test_a_failed_batch_falls_back_to_single_lookups(server: FakeProviderServer) -> None:
    server.inject(ServerError(), times=2)  # the first batch request, then one single lookup
    with Guard(server.twilio(), timeout=2, cache=MemoryCache()) as guard:
        results = list(guard.sweep(_rows(), concurrency=8))
        assert guard.lanes["twilio"].breaker.state == "closed"
    assert sum(r.reason is Reason.REISSUED_AFTER_BINDING for r in results) == len(REISSUED)
    assert all(r.error is None for r in results)
    assert "lookup" in _endpoints(server)  # the first chunk's rows were asked alone


def test_a_provider_without_a_batch_endpoint_is_swept_row_by_row(
    server: FakeProviderServer,
) -> None:
    with Guard(server.telesign(), timeout=2, cache=MemoryCache()) as guard:
        results = list(guard.sweep(_rows(), concurrency=8))
    assert len(results) == len(NUMBERS)
    assert "batch" not in _endpoints(server)
