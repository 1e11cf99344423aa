"""A sweep's batch warm-up: one request for many numbers where the provider has one.

A provider with a batch endpoint (``lookup_many``: the RND, Twilio) answers a
hundred numbers in the time of one.  A sweep reads its rows in chunks of the
provider's batch size; for the rows whose first provider has a batch endpoint
and whose question no cached fact answers, it asks once per chunk and stores
every definite answer as the fact a single lookup would have produced.  The
rows are then checked one by one as usual, and find their answers in the cache:
the decision, the policy, the recent-binding rule, feeds and hooks stay in one
place (:meth:`Guard.check`).  A row whose batch answer failed or was unknown is
simply asked again on its own by its check, through its lane's breaker and
retry rules.

The batch request goes through the lane's books: it is skipped while the
circuit is open, takes one quota token (none left: no warm-up), and counts
once for the breaker: a success if it answered any number, else one failure.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ._batch import lookup_many
from ._facts import answer_from_fact
from ._policy import recently_bound
from .exceptions import InvalidInput, ProviderError

if TYPE_CHECKING:
    from ._guard import Guard
    from ._lane import Lane
    from ._sweep import SweepRow

__all__ = ["DEFAULT_BATCH", "prefetched"]

#: Rows read ahead per warm-up when a provider does not say its batch size.
DEFAULT_BATCH = 100


def _batch_lanes(guard: Guard) -> list[Lane]:
    return [
        lane
        for lane in guard.lanes.values()
        if callable(getattr(lane.provider, "lookup_many", None))
    ]


def prefetched(guard: Guard, rows: Iterator[SweepRow]) -> Iterator[SweepRow]:
    """``rows`` unchanged, with each chunk's batch questions asked before it is yielded.

    Without a batch-capable provider the rows pass straight through.  Memory
    stays bounded: one chunk (the largest batch size) is held at a time.
    """
    lanes = _batch_lanes(guard)
    if not lanes or getattr(guard.cache, "max_entries", None) == 0:
        yield from rows  # nothing to batch, or a cache that keeps nothing to warm
        return
    size = max(int(getattr(lane.provider, "max_batch", DEFAULT_BATCH)) for lane in lanes)
    while chunk := list(itertools.islice(rows, max(1, size))):
        _warm(guard, chunk)
        yield from chunk


def _warm(guard: Guard, chunk: list[SweepRow]) -> None:
    """Ask each batch-capable lane once about the chunk's uncached questions."""
    asks: dict[str, list[tuple[str, str, object]]] = {}
    now = time.time()
    for row in chunk:
        try:
            ask = guard._prepare(row.phone, row.bound_at, row.region, time.monotonic())
        except InvalidInput:
            continue  # the row's own check reports it
        if not ask.route.providers or recently_bound(ask.binding, ask.today, guard.policy):
            continue
        lane = guard.lanes[ask.route.providers[0].name]
        if not callable(getattr(lane.provider, "lookup_many", None)):
            continue
        fact = guard._cached_fact(ask.keys[0])
        if fact is not None and answer_from_fact(fact, ask.since, now) is not None:
            continue
        asks.setdefault(lane.name, []).append((ask.keys[0], guard._e164(ask), ask.since))
    for name, questions in asks.items():
        _ask_lane(guard.lanes[name], questions, guard.timeout)


def _ask_lane(lane: Lane, questions: list[tuple[str, str, object]], timeout: float) -> None:
    if not lane.breaker.allow():
        return
    if lane.quota is not None and not lane.quota.try_acquire():
        return
    items = [(e164, since) for _key, e164, since in questions]
    try:
        results = lookup_many(lane.provider, items, timeout=timeout)  # type: ignore[arg-type]
    except InvalidInput:
        return
    failure: ProviderError | None = None
    answered = False
    for (key, _e164, _since), result in zip(questions, results, strict=True):
        if isinstance(result, ProviderError):
            failure = failure or result
        else:
            answered = True
            lane.remember(key, result)
    # One breaker record per request: a provider that answered any item works (its
    # failed items are asked again one by one); one that answered none failed once.
    if answered:
        lane.breaker.record_success()
    elif failure is not None:
        lane.record(failure)
