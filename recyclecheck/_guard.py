"""The Guard: one call per SMS-code login, returning a Decision within a deadline.

A check runs in phases: *prepare* (validate the input, work out the question:
pure), *read the cache*, *ask* the providers of the number's route one lane at a
time, and *decide* (the pure policy, then logging and the hook).  The phases are
written once, as a generator that yields each thing it must wait for (a future
and how long to wait); :meth:`Guard.check` drives it by blocking and
:meth:`Guard.acheck` by awaiting, so the two cannot drift apart.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable, Generator, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any

import attrs

from . import _telemetry
from ._answers import NotCovered, Provider
from ._cache import FactCache, MemoryCache, seconds, update_strictly
from ._dates import utc_date
from ._decision import Decision
from ._facts import Fact, answer_from_fact, merge
from ._lane import Flight, Lane, Result
from ._phone import (
    MAX_PHONE_LENGTH,
    NumberMemo,
    check_region,
    e164_of_validated,
    hmac_number,
    memo_key,
    normalize,
)
from ._policy import (
    Outcome,
    Policy,
    Reason,
    binding_date,
    classify,
    evaluate,
    question_date,
    recently_bound,
)
from ._quota import Quota, quotas_by_provider
from ._resilience import CircuitBreaker, WorkerPool
from ._router import Route, Router, budget
from ._secrets import secret_bytes
from .exceptions import ConfigurationError, InvalidInput

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from ._sweep import SweepResult, SweepRow

__all__ = ["Guard"]

logger = logging.getLogger("recyclecheck")

_UTC = dt.timezone.utc
#: The cache namespace (and ``Decision.provider``) of changes pushed to the app.
FEED = "feed"
#: ``Decision.provider`` when ``Policy(trust_recent_binding=...)`` decided: nobody was asked.
TRUSTED_BINDING = "policy"
MAX_TIMEOUT = 60.0
#: The most of a check's budget an out-of-process cache read may take; the rest is
#: the providers', so a stalled cache still leaves time for an answer.
CACHE_READ_SHARE = 0.25

#: What a driver sends back into the phases when a wait ran out.
_TIMED_OUT: Any = object()
#: What the phases wait for: a future, until a ``time.monotonic()`` moment.
_Wait = tuple["Future[Any]", float]
_Steps = Generator[_Wait, Any, Decision]


@attrs.frozen(repr=False)
class _Question:
    """One check's validated input: what to ask, and how to name the number safely."""

    phone: str
    region: str | None
    e164: str | None
    route: Route
    keys: tuple[str, ...]
    masked: str
    binding: dt.date
    today: dt.date
    since: dt.date
    started: float

    def __repr__(self) -> str:
        return f"<_Question {self.masked} since={self.since}>"


def _secret_bytes(secret: bytes | str | None, *, required: bool) -> bytes:
    if secret is None:
        if required:
            raise ConfigurationError(
                "a shared cache needs Guard(secret=...): without one every process "
                "would derive different keys"
            )
        return os.urandom(32)
    return secret_bytes(secret, owner="Guard(secret=...)")


class Guard:
    """Decides whether an SMS-code login may proceed on this phone number.

    ``provider`` answers "was this number reissued since D?";
    ``policy`` maps reasons to actions (secure by default);
    ``timeout`` (seconds or ``timedelta``) is the wall-clock deadline of each
    :meth:`check`, honoured whatever the provider does;
    ``cache`` keeps provider facts (a private :class:`MemoryCache` by default);
    ``secret`` keys the HMAC that names numbers in the cache (random per process
    if omitted; required with a shared cache);
    ``default_region`` lets national formats parse (``"CN"``);
    ``on_decision`` is called with every Decision (for metrics; its errors are
    logged and swallowed);
    ``max_workers`` bounds concurrent provider calls;
    ``breaker_threshold`` consecutive failures open the circuit for
    ``breaker_recovery`` seconds;
    ``quota`` paces provider calls: one :class:`Quota` (a :class:`TokenBucket`,
    or a :class:`RedisTokenBucket` shared by a fleet) that every provider's
    calls draw from, or a mapping of provider name to its own quota (providers
    left out are not paced).  Only a new provider call takes a token; with none
    left the check answers ``provider_unavailable`` at once (logged as rate
    limited, never counted by the breaker), never a wait.
    """

    def __init__(
        self,
        provider: Provider,
        *,
        policy: Policy | None = None,
        timeout: float | dt.timedelta = 0.8,
        cache: FactCache | None = None,
        secret: bytes | str | None = None,
        default_region: str | None = None,
        on_decision: Callable[[Decision], object] | None = None,
        max_workers: int = 16,
        breaker_threshold: int = 5,
        breaker_recovery: float | dt.timedelta = 30.0,
        quota: Quota | Mapping[str, Quota] | None = None,
    ) -> None:
        name = getattr(provider, "name", None)
        if not isinstance(name, str) or not name or not callable(getattr(provider, "lookup", None)):
            raise ConfigurationError("provider needs a non-empty str name and a lookup() method")
        if policy is not None and not isinstance(policy, Policy):
            raise ConfigurationError("policy must be a recyclecheck.Policy")
        self.timeout = seconds(timeout, name="timeout")
        if not 0 < self.timeout <= MAX_TIMEOUT:
            raise ConfigurationError(f"timeout must be between 0 and {MAX_TIMEOUT:g} seconds")
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ConfigurationError("max_workers must be a positive int")
        if (
            isinstance(breaker_threshold, bool)
            or not isinstance(breaker_threshold, int)
            or (breaker_threshold < 1)
        ):
            raise ConfigurationError("breaker_threshold must be a positive int")
        if on_decision is not None and not callable(on_decision):
            raise ConfigurationError("on_decision must be callable")
        self.provider = provider
        self.provider_name = name
        self.policy = policy or Policy()
        self.cache: FactCache = cache if cache is not None else MemoryCache()
        try:
            self.default_region = check_region(default_region)
        except InvalidInput:
            raise ConfigurationError("default_region is not a region phonenumbers knows") from None
        self.on_decision = on_decision
        self._key = _secret_bytes(secret, required=bool(getattr(self.cache, "shared", False)))
        # Cache I/O that may block (Redis) runs here, apart from the providers' slots.
        self._io = WorkerPool(max_workers, name="recyclecheck-cache")
        self._cache_blocks = not isinstance(self.cache, MemoryCache)
        self._route_for: Callable[[str], Route]
        if isinstance(provider, Router):
            providers, self._route_for = provider.providers, provider.route_for
        else:
            single = Route((provider,))
            providers, self._route_for = (provider,), lambda _e164: single
        if FEED in {p.name for p in providers}:
            raise ConfigurationError(f"the provider name {FEED!r} is reserved for record_change()")
        recovery = seconds(breaker_recovery, name="breaker_recovery")
        quotas = quotas_by_provider(quota, (p.name for p in providers))
        #: One lane per provider: its own breaker, worker slots, cache namespace and quota.
        self.lanes: Mapping[str, Lane] = {
            p.name: Lane(
                p,
                cache=self.cache,
                key=self._key,
                io=self._io,
                max_workers=max_workers,
                breaker_threshold=breaker_threshold,
                breaker_recovery=recovery,
                quota=quotas.get(p.name),
            )
            for p in providers
        }
        primary = self.lanes[providers[0].name] if providers else None
        #: The first provider's breaker and worker pool (the only ones without a Router).
        self.breaker: CircuitBreaker = primary.breaker if primary else CircuitBreaker()
        self.pool: WorkerPool = primary.pool if primary else WorkerPool(max_workers)
        self._memo = NumberMemo()

    def __repr__(self) -> str:
        return (
            f"<Guard provider={self.provider_name!r} timeout={self.timeout:g} "
            f"breaker={self.breaker.state}>"
        )

    # -- the one call, two drivers ----------------------------------------------------

    def check(
        self,
        phone: str,
        *,
        bound_at: dt.datetime | dt.date,
        region: str | None = None,
    ) -> Decision:
        """Decide whether this login may proceed on an SMS code alone.

        ``phone`` is the number being logged in with; ``bound_at`` the moment the
        account last *proved* it holds this number by something stronger than an
        SMS code (an aware ``datetime`` or a ``date``).  Never move ``bound_at``
        on a plain SMS-code login.

        Raises :class:`~recyclecheck.InvalidPhoneNumber` or
        :class:`~recyclecheck.InvalidInput` for bad input, before any I/O.
        Everything that goes wrong with the provider becomes a Decision with
        reason ``provider_unavailable`` within ``timeout``.
        """
        started = time.monotonic()
        steps = self._steps(self._prepare(phone, bound_at, region, started), inline=True)
        sent: Any = None
        try:
            while True:
                future, until = steps.send(sent)
                try:
                    sent = future.result(timeout=max(0.0, until - time.monotonic()))
                except FutureTimeout:
                    sent = _TIMED_OUT
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def acheck(
        self,
        phone: str,
        *,
        bound_at: dt.datetime | dt.date,
        region: str | None = None,
    ) -> Decision:
        """:meth:`check` for ``async`` code: the same Decision, deadline and rules.

        Nothing blocks the event loop.  With ``greenlet`` installed (the
        ``async`` extra) a lookup over a warm connection runs on the loop's own
        thread, each socket wait a wait in the loop's selector (``_loop_io``);
        every other provider call, and out-of-process cache reads, run on the
        Guard's workers and are awaited.  Cancelling the awaiting task abandons
        only the wait; a provider call it started goes on and its answer still
        lands in the cache.  Built on ``asyncio`` (under Trio, run :meth:`check`
        in ``trio.to_thread``).
        """
        import asyncio  # noqa: PLC0415 - only async callers pay for importing asyncio

        started = time.monotonic()
        loop = asyncio.get_running_loop()
        steps = self._steps(
            self._prepare(phone, bound_at, region, started), inline=False, loop=loop
        )
        sent: Any = None
        try:
            while True:
                future, until = steps.send(sent)
                sent = future.result() if future.done() else await _until(loop, future, until)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    # -- phases -----------------------------------------------------------------------

    def _prepare(
        self, phone: object, bound_at: object, region: str | None, started: float
    ) -> _Question:
        """Validate the input and work out the question to ask (pure, no I/O)."""
        # The region is part of what the input means, so it is settled before the memo
        # is consulted: a remembered input must mean the same as a fresh one.
        region = self.default_region if region is None else check_region(region)
        memo: str | None = None
        remembered = None
        if isinstance(phone, str) and len(phone) <= MAX_PHONE_LENGTH:
            # Inputs seen before skip re-validation: the memo holds HMACs and masks only.
            memo = memo_key(self._key, region, phone)
            remembered = self._memo.get(memo)
        e164: str | None = None
        if remembered is None:
            number = normalize(phone, region)
            e164, masked = number.e164, number.masked
            route = self._route_for(e164)
            keys = (
                *(self.lanes[p.name].cache_key(e164) for p in route.providers),
                self._feed_key(e164),
            )
            if memo is not None:
                self._memo.put(memo, (route, keys, masked, e164 == phone))
        else:
            route, keys, masked, canonical = remembered
            if canonical:
                e164 = phone  # type: ignore[assignment]  # the input *is* its E.164 form
        now = dt.datetime.now(_UTC)
        binding = binding_date(bound_at, now=now)
        return _Question(
            phone=phone,  # type: ignore[arg-type]  # normalize() or the memo proved it a str
            region=region,
            e164=e164,
            route=route,
            keys=keys,
            masked=masked,
            binding=binding,
            today=now.date(),
            since=question_date(binding, now.date()),
            started=started,
        )

    def _steps(self, ask: _Question, *, inline: bool, loop: Any = None) -> _Steps:
        """The rest of a check: cache, the route's lanes in turn, the decision."""
        deadline = ask.started + self.timeout
        lanes = [self.lanes[p.name] for p in ask.route.providers]
        facts = yield from self._read_facts(ask.keys, deadline)
        known = _answer_from_facts(facts, [*(lane.name for lane in lanes), FEED], ask.since)
        # A change anyone reported (a provider, a feed) wins over every shortcut.
        if known is not None and classify(known[1], ask.since) is Reason.REISSUED_AFTER_BINDING:
            return self._decide(known[1], ask, provider=known[0], cached=True)
        trusted = recently_bound(ask.binding, ask.today, self.policy)
        if trusted is not None:
            return self._announce(trusted, ask, provider=TRUSTED_BINDING, cached=False)
        if known is not None:
            return self._decide(known[1], ask, provider=known[0], cached=True)
        if not lanes:
            return self._decide(NotCovered(), ask, provider=self.provider_name, cached=False)
        result: Result = NotCovered()
        decided_by = lanes[0].name
        for index, lane in enumerate(lanes):
            now = time.monotonic()
            if index and now >= deadline:
                break  # no time left for the next provider: the last answer stands
            until = budget(deadline, len(lanes) - index, now)
            started = lane.start(
                ask.keys[index],
                lambda: self._e164(ask),
                ask.since,
                until,
                inline=inline,
                loop=loop,
            )
            if isinstance(started, Flight):
                sent = yield started.future, until
                result = started.expired() if sent is _TIMED_OUT else sent
            else:
                result = started
            decided_by = lane.name
            if not ask.route.falls_back(result, ask.since):
                break
        return self._decide(result, ask, provider=decided_by, cached=False)

    def _read_facts(
        self, keys: tuple[str, ...], deadline: float
    ) -> Generator[_Wait, Any, list[Fact | None]]:
        """Each lane's cached fact, read within the check's deadline."""
        if not self._cache_blocks:
            return [self._cached_fact(key) for key in keys]
        # An out-of-process cache may stall (a Redis that accepts and never answers):
        # read it on a worker, and give it at most a share of the budget so the
        # providers still have time to answer.
        future = self._io.submit(lambda: [self._cached_fact(key) for key in keys])
        if future is None:
            logger.warning("recyclecheck cache read skipped: all cache workers busy")
            return [None] * len(keys)
        until = min(deadline, time.monotonic() + self.timeout * CACHE_READ_SHARE)
        facts = yield future, until
        if facts is _TIMED_OUT:
            logger.warning("recyclecheck cache read timed out; asking the provider")
            return [None] * len(keys)
        return facts  # type: ignore[no-any-return]

    def _cached_fact(self, key: str) -> Fact | None:
        try:
            return self.cache.get(key)
        except Exception as exc:
            logger.warning("recyclecheck cache read failed: %s", type(exc).__name__)
            return None

    @staticmethod
    def _e164(ask: _Question) -> str:
        return ask.e164 if ask.e164 is not None else e164_of_validated(ask.phone, ask.region)

    # -- decision ---------------------------------------------------------------------

    def _decide(self, result: Result, ask: _Question, *, provider: str, cached: bool) -> Decision:
        return self._announce(
            evaluate(result, ask.since, self.policy), ask, provider=provider, cached=cached
        )

    def _announce(
        self, outcome: Outcome, ask: _Question, *, provider: str, cached: bool
    ) -> Decision:
        """Dress the outcome up as a Decision, log it and call the hook."""
        masked = ask.masked
        decision = Decision(
            action=outcome.action,
            reason=outcome.reason,
            since=ask.since,
            provider=provider,
            masked_number=masked,
            reissued_on=outcome.reissued_on,
            cached=cached,
            elapsed=time.monotonic() - ask.started,
        )
        _telemetry.decided(decision)  # never raises; a no-op without an OpenTelemetry SDK
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                "recyclecheck decision: number=%s action=%s reason=%s provider=%s cached=%s",
                masked,
                outcome.action.value,
                outcome.reason.value,
                provider,
                cached,
            )
        if self.on_decision is not None:
            try:
                self.on_decision(decision)
            except Exception as exc:
                logger.warning("recyclecheck on_decision hook raised %s", type(exc).__name__)
        return decision

    # -- facts pushed to the app ------------------------------------------------------

    def record_change(
        self, phone: str, *, on: dt.date | dt.datetime, region: str | None = None
    ) -> None:
        """Record that ``phone`` changed hands (or was deactivated) on ``on``.

        For numbers pushed to the app rather than asked about: a carrier's or an
        industry platform's notice of a number about to be reissued, a provider's
        event (Twilio's ``reassigned-number.detected``), a row of a deactivation
        file.  The fact is stored in the Guard's cache like a provider's answer
        (under its own ``feed`` namespace, kept ``change_ttl``), so every later
        check bound before ``on`` steps up without a lookup; ``Decision.provider``
        is ``"feed"``.  A later date replaces an earlier one, never the reverse,
        even when processes record the same number at the same instant: the
        read, merge and write are one atomic update on a ``RedisCache`` or
        ``MemoryCache``.

        Raises :class:`~recyclecheck.InvalidPhoneNumber` or
        :class:`~recyclecheck.InvalidInput` for bad input.  Unlike :meth:`check`,
        this waits for the cache (it is not on a login path) and raises
        :class:`~recyclecheck.CacheUnavailable` when it cannot read the stored
        fact (then nothing is written, so a later date is never lost) or cannot
        write the new one; the call can simply be repeated.  A ``RedisCache``
        reports every failure, its open breaker too, and a key other writers
        kept changing through every retry.  A cache of your own is updated with
        its ``update_strict`` if it has one, else read and written with its
        ``get_strict``/``set_strict`` (or ``get``/``set``), not atomically, and
        only what those raise is reported.
        """
        region = self.default_region if region is None else check_region(region)
        e164 = normalize(phone, region).e164
        if isinstance(on, dt.datetime):
            if on.utcoffset() is None:
                raise InvalidInput("on must be a date or an aware datetime")
            day = utc_date(on)
        elif isinstance(on, dt.date):
            day = on
        else:
            raise InvalidInput(f"on must be a date or an aware datetime, not {type(on).__name__}")
        key = self._feed_key(e164)
        fact = Fact(changed_from=day, change_exact=True)
        # Raises before anything is written if the read fails; atomic where the cache can be.
        update_strictly(self.cache, key, lambda stored: merge(stored, fact))

    def _feed_key(self, e164: str) -> str:
        return hmac_number(self._key, FEED, e164)

    # -- many checks ahead of their logins --------------------------------------------

    def sweep(
        self,
        rows: Iterable[SweepRow],
        *,
        concurrency: int = 8,
        timeout: float | dt.timedelta | None = None,
        rate: float | None = None,
    ) -> Iterator[SweepResult]:
        """Check every row's account ahead of its next login; one result per row, in order.

        ``rows`` is any iterable of :class:`~recyclecheck.SweepRow` (a generator
        over a database cursor, say); it is read as results are taken, so memory
        stays constant whatever its length.  At most ``concurrency`` checks run
        at once (no more than ``max_workers``), each one :meth:`check` with its
        own deadline of ``timeout`` seconds (default: the Guard's); ``rate``
        caps the checks started a second (leave the rest of a quota to logins).
        A row that cannot be checked (an invalid number) gives a result with
        ``error`` set; nothing a row holds stops the sweep.

        Raises :class:`~recyclecheck.ConfigurationError` at once for bad
        options (docs/sweeps.md has the whole story).
        """
        from ._sweep import sweep  # noqa: PLC0415 - _sweep needs this module first

        return sweep(self, rows, concurrency=concurrency, timeout=timeout, rate=rate)

    def close(self) -> None:
        """Release the providers' pooled connections (where they have a ``close``)."""
        close = getattr(self.provider, "close", None)
        if callable(close):
            close()

    def __enter__(self) -> Guard:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


async def _until(loop: Any, future: Future[Any], until: float) -> Any:
    """Await a thread's ``future`` on ``loop`` until ``until``; ``_TIMED_OUT`` after.

    Cheaper than ``asyncio.wait_for(asyncio.wrap_future(...))`` (no task, no
    chained future), and it never tries to cancel the thread's future: a
    provider call started for this login goes on and lands in the cache.
    """
    waiter = loop.create_future()
    loop_thread = threading.get_ident()

    def resolve(_done: Future[Any]) -> None:
        if not waiter.done():
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody awaits
                waiter.set_result(_done.result())

    def expire() -> None:
        if not waiter.done():
            waiter.set_result(_TIMED_OUT)

    def on_done(done: Future[Any]) -> None:  # on the thread that resolved ``future``
        if threading.get_ident() == loop_thread:
            resolve(done)  # a call run on the loop's own thread (``_loop_io``)
            return
        with contextlib.suppress(RuntimeError):  # the loop closed while the call went on
            loop.call_soon_threadsafe(resolve, done)

    timer = loop.call_at(loop.time() + max(0.0, until - time.monotonic()), expire)
    future.add_done_callback(on_done)
    try:
        return await waiter
    finally:
        timer.cancel()


def _answer_from_facts(
    facts: list[Fact | None], names: list[str], since: dt.date
) -> tuple[str, Result] | None:
    """The cached answer for this check, and whose it is.

    A change any provider reported wins over another's quiet: facts combine
    monotonically across providers as they do across time.
    """
    now = time.time()
    answers = [
        (name, answer)
        for name, fact in zip(names, facts, strict=True)
        if fact is not None and (answer := answer_from_fact(fact, since, now)) is not None
    ]
    for name, answer in answers:
        if classify(answer, since) is Reason.REISSUED_AFTER_BINDING:
            return name, answer
    return answers[0] if answers else None
