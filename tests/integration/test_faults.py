"""The Guard against a misbehaving provider, over real sockets.

Every scenario runs a real adapter against :class:`FakeProviderServer` (or a
raw socket server for answers the fake never gives) and asserts the
``Decision`` (action and reason), how long it took against the deadline, and
what reached the wire.  Nothing here is mocked below the socket.

``SLACK`` is what a check may take beyond its deadline: the Guard stops
waiting at the deadline, but on this suite's 2-core machines the waiting
thread may be scheduled late while server threads in the same process hold
the GIL.  The promise under test is "the deadline plus a few milliseconds";
the slack is larger only to keep a loaded CI runner from failing the suite.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from recyclecheck import Action, Decision, Guard, Reason, mask
from recyclecheck.providers import TwilioProvider
from recyclecheck.testing import (
    AuthRefused,
    ChunkDrip,
    Credentials,
    FakeProviderServer,
    Hang,
    HeaderDrip,
    HtmlErrorPage,
    HugeBody,
    Latency,
    MalformedJson,
    RateLimit,
    Redirect,
    Reset,
    ServerError,
    SlowDrip,
)

from ..crowd import run_together
from ..rawserver import free_port, raw_server, respond

TIMEOUT = 0.5
SLACK = 0.1
UTC = dt.timezone.utc
#: Bound on 2024-03-02: a change counts from 2024-03-01 (the one-day margin).
BOUND_AT = dt.datetime(2024, 3, 2, 9, 30, tzinfo=UTC)
REISSUED_ON = dt.date(2024, 5, 1)

US_NEVER, US_REISSUED, US_UNLISTED = "+12015550124", "+12015550123", "+12015550199"
CN_NEVER, CN_REISSUED, CN_UNLISTED = "+8613900139000", "+8613800138000", "+8613600136000"
NUMBERS: dict[str, Any] = {
    US_NEVER: None,
    US_REISSUED: REISSUED_ON,
    CN_NEVER: None,
    CN_REISSUED: REISSUED_ON,
}

#: One adapter per wire format.
ADAPTERS: dict[str, Callable[[FakeProviderServer], Any]] = {
    "twilio": lambda s: s.twilio(),
    "telesign": lambda s: s.telesign(),
    "camara": lambda s: s.camara("secret"),
    "aliyun": lambda s: s.aliyun(),
    "rnd": lambda s: s.rnd(),
}
#: Adapters that authenticate with an OAuth token they fetch and cache.
TOKEN_ADAPTERS = {"camara", "rnd"}


def never_reissued(kind: str) -> str:
    """A number the adapter can be asked about, scripted as never reissued."""
    return CN_NEVER if kind == "aliyun" else US_NEVER


def twilio_at(base_url: str) -> TwilioProvider:
    """A Twilio adapter with the fake's credentials, pointed at any server."""
    credentials = Credentials()
    return TwilioProvider(
        account_sid=credentials.twilio_account_sid,
        auth_token=credentials.twilio_auth_token,
        base_url=base_url,
    )


def lookups(server: FakeProviderServer, number: str | None = None) -> list[Any]:
    """The lookup requests the server received (for ``number`` only, when given)."""
    return [
        r
        for r in server.requests
        if r.endpoint == "lookup" and (number is None or r.number == number)
    ]


def assert_within_deadline(decision: Decision, wall: float, timeout: float = TIMEOUT) -> None:
    """The Decision's own clock and the caller's wall clock both end by the deadline."""
    assert decision.elapsed <= timeout + SLACK
    assert wall <= timeout + SLACK


def timed_check(guard: Guard, number: str, **options: Any) -> tuple[Decision, float]:
    """``guard.check`` and the wall-clock seconds the caller spent in it."""
    started = time.monotonic()
    decision = guard.check(number, bound_at=options.pop("bound_at", BOUND_AT), **options)
    return decision, time.monotonic() - started


def assert_step_up_unavailable(decision: Decision) -> None:
    assert decision.action is Action.STEP_UP
    assert decision.reason is Reason.PROVIDER_UNAVAILABLE
    assert decision.step_up_required
    assert not decision.cached


def fails_in_time(
    server: FakeProviderServer, guard: Guard, kind: str, fault: Any
) -> tuple[str, Decision]:
    """Inject ``fault`` on a never-reissued number, check it, and assert the login steps
    up with ``provider_unavailable`` by the deadline; returns the number and Decision."""
    number = never_reissued(kind)
    server.inject(fault, number=number)
    decision, wall = timed_check(guard, number)
    assert_step_up_unavailable(decision)
    assert_within_deadline(decision, wall)
    return number, decision


@pytest.fixture(autouse=True, params=["check", "acheck"])
def driver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every case runs twice: through ``check`` and through ``await acheck`` (each call
    on an event loop of its own, as an async login handler would run it)."""
    if request.param == "acheck":

        def check_by_awaiting(self: Guard, phone: str, **options: Any) -> Decision:
            return asyncio.run(Guard.acheck(self, phone, **options))

        monkeypatch.setattr(Guard, "check", check_by_awaiting)
    return str(request.param)


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(NUMBERS) as fake:
        yield fake


@pytest.fixture(params=list(ADAPTERS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def guard(server: FakeProviderServer, kind: str) -> Iterator[Guard]:
    """A Guard with the default policy on ``kind``'s adapter, wired to the server."""
    with Guard(ADAPTERS[kind](server), timeout=TIMEOUT) as built:
        yield built


# -- the healthy baseline: the same path answers when nothing is wrong -----------------


def test_healthy_provider_answers(server: FakeProviderServer, guard: Guard, kind: str) -> None:
    """Control for every scenario below: no fault, a real answer, well inside the deadline."""
    number = never_reissued(kind)
    decision, wall = timed_check(guard, number)
    assert (decision.action, decision.reason) == (Action.ALLOW, Reason.NOT_REISSUED)
    assert_within_deadline(decision, wall)
    reissued = CN_REISSUED if kind == "aliyun" else US_REISSUED
    decision = guard.check(reissued, bound_at=BOUND_AT)
    assert (decision.action, decision.reason) == (Action.STEP_UP, Reason.REISSUED_AFTER_BINDING)
    assert len(lookups(server)) == 2


# -- slow and silent providers ----------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [Hang(), SlowDrip(0.05), Latency(5)],
    ids=["accepts-and-never-answers", "slow-drip-body", "answers-after-5s"],
)
def test_slow_provider_costs_one_deadline(
    server: FakeProviderServer, guard: Guard, kind: str, fault: Any
) -> None:
    """Whatever the provider does with the connection, the login waits one deadline, no more."""
    number, decision = fails_in_time(server, guard, kind, fault)
    # It really waited for the provider (no early give-up for another reason)...
    assert decision.elapsed >= TIMEOUT / 2
    # ...and asked it once: a timeout leaves no time for a retry.
    assert [r.fault for r in lookups(server, number)] == [fault]


#: How long the pause between two dripped bytes is.  Each byte comes well inside any
#: per-read timeout; each drip lasts many deadlines (headers: 130-odd bytes, about 7 s;
#: chunk framing: two chunk-size lines of 64 digits, about 7 s; bodies: 15 s or more).
DRIP = 0.05
#: After the deadline, how long the worker may take to let go of a trickling connection.
RELEASE = 0.2


def settles(condition: Callable[[], bool], by: float) -> bool:
    """Whether ``condition`` holds now or turns true before the monotonic moment ``by``."""
    while not condition():
        if time.monotonic() >= by:
            return condition()
        time.sleep(0.005)
    return True


@pytest.mark.parametrize(
    "fault",
    [HeaderDrip(DRIP), ChunkDrip(DRIP), SlowDrip(DRIP)],
    ids=["header-drip", "chunk-size-drip", "body-drip"],
)
def test_a_trickling_answer_does_not_pin_a_worker(
    server: FakeProviderServer, guard: Guard, kind: str, fault: Any
) -> None:
    """Headers, chunk-size lines or a body trickling in byte by byte: the login steps up by
    the deadline, and shortly after it no worker still reads the answer and the connection
    is closed, so a slow provider cannot fill the pool and starve healthy lookups."""
    started = time.monotonic()
    number, _ = fails_in_time(server, guard, kind, fault)
    by = started + TIMEOUT + RELEASE
    assert settles(lambda: guard.pool.in_flight == 0, by), (
        f"{guard.pool.in_flight} worker(s) still reading the answer {RELEASE}s after the deadline"
    )
    (record,) = lookups(server, number)
    assert record.fault == fault
    assert settles(lambda: lookups(server, number)[0].ended == "client_closed", by), (
        f"the server still sending (ended={lookups(server, number)[0].ended}) "
        f"{RELEASE}s after the deadline"
    )


def test_latency_inside_the_deadline_still_answers(server: FakeProviderServer) -> None:
    """A slow but timely provider is not a failure."""
    server.inject(Latency(TIMEOUT / 3), number=US_NEVER)
    with Guard(server.twilio(), timeout=TIMEOUT) as guard:
        decision, wall = timed_check(guard, US_NEVER)
    assert (decision.action, decision.reason) == (Action.ALLOW, Reason.NOT_REISSUED)
    assert_within_deadline(decision, wall)
    assert decision.elapsed >= TIMEOUT / 3


def test_a_body_trickling_in_within_each_read_timeout_still_ends_at_the_deadline(
    server: FakeProviderServer,
) -> None:
    """Each byte arrives well inside any per-read timeout; only a whole-body deadline stops it."""
    server.inject(SlowDrip(0.01), number=US_NEVER)
    with Guard(server.twilio(), timeout=TIMEOUT) as guard:
        decision, wall = timed_check(guard, US_NEVER)
    assert_step_up_unavailable(decision)
    assert_within_deadline(decision, wall)


def test_connection_refused() -> None:
    """Nothing listening: step up at once (the one retry is refused too)."""
    with Guard(twilio_at(f"http://127.0.0.1:{free_port()}"), timeout=TIMEOUT) as guard:
        decision, wall = timed_check(guard, US_NEVER)
    assert_step_up_unavailable(decision)
    assert_within_deadline(decision, wall)
    assert decision.elapsed < TIMEOUT / 2


def test_connection_reset(server: FakeProviderServer, guard: Guard, kind: str) -> None:
    """A reset after the request is a transport failure: retried once, then step up."""
    number, _ = fails_in_time(server, guard, kind, Reset())
    assert [r.fault for r in lookups(server, number)] == [Reset(), Reset()]


# -- TLS the client must reject -----------------------------------------------------------


@pytest.fixture
def tls_server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(NUMBERS, tls=True) as fake:
        yield fake


def test_tls_server_with_the_right_ca_answers(tls_server: FakeProviderServer) -> None:
    """Control: the same HTTPS server, trusted through its CA bundle, answers."""
    with Guard(tls_server.twilio(), timeout=TIMEOUT) as guard:
        decision = guard.check(US_NEVER, bound_at=BOUND_AT)
    assert decision.reason is Reason.NOT_REISSUED


def _another_ca_bundle(tmp_path: Path) -> str:
    path = tmp_path / "another-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return str(path)


@pytest.mark.parametrize("trust", ["system-store", "another-ca"])
def test_untrusted_certificate_is_rejected(
    tls_server: FakeProviderServer, tmp_path: Path, trust: str
) -> None:
    """A certificate from a CA the client does not trust ends the call before any request."""
    bundle = None if trust == "system-store" else _another_ca_bundle(tmp_path)
    with Guard(tls_server.twilio(ca_bundle=bundle), timeout=TIMEOUT) as guard:
        decision, wall = timed_check(guard, US_NEVER)
    assert_step_up_unavailable(decision)
    assert_within_deadline(decision, wall)
    # The handshake failed, so no HTTP request (and no credential) ever reached the server.
    assert tls_server.requests == []


def test_plain_http_to_a_tls_port_is_unavailable(tls_server: FakeProviderServer) -> None:
    """Speaking HTTP to an HTTPS port gets a non-HTTP reply: step up, not a crash."""
    plain = tls_server.url.replace("https://", "http://")
    with Guard(tls_server.twilio(base_url=plain), timeout=TIMEOUT) as guard:
        decision, wall = timed_check(guard, US_NEVER)
    assert_step_up_unavailable(decision)
    assert_within_deadline(decision, wall)


# -- rate limits and server errors --------------------------------------------------------


@pytest.mark.parametrize(
    "retry_after",
    [21600, dt.datetime.now(UTC) + dt.timedelta(hours=6)],
    ids=["seconds", "http-date"],
)
def test_rate_limit_with_a_long_retry_after_is_not_waited_for(
    server: FakeProviderServer, guard: Guard, kind: str, retry_after: Any
) -> None:
    """429 asking for six hours: step up at once, no retry, no sleeping through the login."""
    number, decision = fails_in_time(server, guard, kind, RateLimit(retry_after))
    assert decision.elapsed < TIMEOUT / 2
    assert len(lookups(server, number)) == 1


def test_rate_limit_with_a_retry_after_that_fits_is_retried(server: FakeProviderServer) -> None:
    """``Retry-After: 0`` fits the deadline: the one retry gets the answer."""
    server.inject(RateLimit(0), number=US_NEVER, times=1)
    with Guard(server.twilio(), timeout=TIMEOUT) as guard:
        decision, wall = timed_check(guard, US_NEVER)
    assert (decision.action, decision.reason) == (Action.ALLOW, Reason.NOT_REISSUED)
    assert_within_deadline(decision, wall)
    assert [r.fault for r in lookups(server, US_NEVER)] == [RateLimit(0), None]


def test_503_twice_then_200_is_exactly_one_retry(
    server: FakeProviderServer, guard: Guard, kind: str
) -> None:
    """The first login's check makes two calls (one retry), fails, and steps up in time;
    the next login gets the provider's real answer."""
    number = never_reissued(kind)
    server.inject(ServerError(503), number=number, times=2)
    decision, wall = timed_check(guard, number)
    assert_step_up_unavailable(decision)
    assert_within_deadline(decision, wall)
    assert [r.fault for r in lookups(server, number)] == [ServerError(503), ServerError(503)]

    decision, wall = timed_check(guard, number)
    assert (decision.action, decision.reason) == (Action.ALLOW, Reason.NOT_REISSUED)
    assert_within_deadline(decision, wall)
    assert [r.fault for r in lookups(server, number)][2:] == [None]


def test_503_once_is_ridden_out_by_the_retry(
    server: FakeProviderServer, guard: Guard, kind: str
) -> None:
    number = never_reissued(kind)
    server.inject(ServerError(503), number=number, times=1)
    decision, wall = timed_check(guard, number)
    assert (decision.action, decision.reason) == (Action.ALLOW, Reason.NOT_REISSUED)
    assert_within_deadline(decision, wall)
    assert len(lookups(server, number)) == 2


def test_refused_credentials_step_up_without_retry(
    server: FakeProviderServer, guard: Guard, kind: str
) -> None:
    """An auth failure is not transient: step up.  Adapters holding an OAuth token
    fetch a fresh one once (it may have been revoked early) and try again; the
    others make one call."""
    number, _ = fails_in_time(server, guard, kind, AuthRefused())
    expected_calls = 2 if kind in TOKEN_ADAPTERS else 1
    assert len(lookups(server, number)) == expected_calls


# -- the circuit breaker ------------------------------------------------------------------


RECOVERY = 0.4


def test_breaker_opens_stops_calls_and_recovers(server: FakeProviderServer) -> None:
    """A provider failing continuously: after ``threshold`` failed logins the provider is
    no longer called, however many logins follow; when it comes back, so do answers."""
    threshold = 3
    server.inject(ServerError(503))
    numbers = [f"+1201555{n:04d}" for n in range(1000, 1100)]
    with Guard(
        server.twilio(), timeout=TIMEOUT, breaker_threshold=threshold, breaker_recovery=RECOVERY
    ) as guard:
        for number in numbers[:threshold]:
            assert_step_up_unavailable(guard.check(number, bound_at=BOUND_AT))
        assert guard.breaker.state == "open"
        calls_when_opened = len(lookups(server))
        assert calls_when_opened == 2 * threshold  # each failed login: one call, one retry

        for number in numbers[threshold:]:
            decision, wall = timed_check(guard, number)
            assert_step_up_unavailable(decision)
            assert_within_deadline(decision, wall)
        # Ninety-seven more logins, not one more provider call.
        assert len(lookups(server)) == calls_when_opened

        # After the recovery time one probe goes out; the provider still fails: open again.
        time.sleep(RECOVERY + 0.05)
        assert_step_up_unavailable(guard.check(numbers[0], bound_at=BOUND_AT))
        assert guard.breaker.state == "open"
        probes = len(lookups(server)) - calls_when_opened
        assert 1 <= probes <= 2
        assert_step_up_unavailable(guard.check(numbers[1], bound_at=BOUND_AT))
        assert len(lookups(server)) == calls_when_opened + probes

        # The provider recovers; after the recovery time the probe succeeds and closes it.
        server.clear_faults()
        time.sleep(RECOVERY + 0.05)
        decision = guard.check(US_NEVER, bound_at=BOUND_AT)
        assert (decision.action, decision.reason) == (Action.ALLOW, Reason.NOT_REISSUED)
        assert guard.breaker.state == "closed"
        decision = guard.check(US_REISSUED, bound_at=BOUND_AT)
        assert decision.reason is Reason.REISSUED_AFTER_BINDING


def test_breaker_does_not_open_on_answers(server: FakeProviderServer) -> None:
    """ "No data" and "reissued" are answers, not failures: the circuit stays closed."""
    with Guard(server.twilio(), timeout=TIMEOUT, breaker_threshold=2) as guard:
        for number in [US_UNLISTED, US_REISSUED, "+12015550177", "+12015550178"]:
            assert guard.check(number, bound_at=BOUND_AT).step_up_required
        assert guard.breaker.state == "closed"
    assert len(lookups(server)) == 4


# -- malformed answers and redirects ---------------------------------------------------------


MALFORMED = [
    MalformedJson(),
    HtmlErrorPage(200),
    HtmlErrorPage(502),
    HugeBody(),
    HugeBody(2 * 1024 * 1024, declare_length=False),
]


@pytest.mark.parametrize("fault", MALFORMED, ids=repr)
def test_malformed_answers_step_up(
    server: FakeProviderServer, guard: Guard, kind: str, fault: Any
) -> None:
    """Nothing malformed is ever read as "not reissued", even for a never-reissued number."""
    number, _ = fails_in_time(server, guard, kind, fault)
    # A 502 page is a transient server error (one retry); the rest are not retried.
    expected_calls = 2 if fault == HtmlErrorPage(502) else 1
    assert len(lookups(server, number)) == expected_calls


#: Twilio answers a live server could send that are well-formed HTTP but wrong JSON.
_TWILIO_SHAPE = (
    '{"phone_number": "+12015550124", "reassigned_number": '
    '{"last_verified_date": "2024-03-01", "is_number_reassigned": %s, "error_code": null}}'
)
CONFUSED_BODIES = {
    "boolean-as-string": _TWILIO_SHAPE % '"false"',
    "boolean-as-int": _TWILIO_SHAPE % "0",
    "unknown-enum": _TWILIO_SHAPE % '"maybe"',
    "missing-package": '{"phone_number": "+12015550124"}',
    "package-is-a-list": '{"phone_number": "+12015550124", "reassigned_number": []}',
    "duplicate-keys": (_TWILIO_SHAPE % "true").replace(
        '"error_code": null', '"error_code": null, "is_number_reassigned": false'
    ),
    "top-level-array": "[]",
    "truncated": (_TWILIO_SHAPE % "false")[:-3],
    "not-utf8": '{"phone_number": "\xff\xfe"}',
}


@pytest.mark.parametrize("body", list(CONFUSED_BODIES.values()), ids=list(CONFUSED_BODIES))
def test_well_formed_http_with_wrong_json_steps_up(body: str) -> None:
    """Type-confused answers over a real socket: a provider error, never an allow."""
    encoded = body.encode("latin-1")
    answer = respond("200 OK", encoded, {"Content-Type": "application/json"})
    with raw_server(answer) as url, Guard(twilio_at(url), timeout=TIMEOUT) as guard:
        decision, wall = timed_check(guard, US_NEVER)
    assert_step_up_unavailable(decision)
    assert_within_deadline(decision, wall)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_never_followed(
    server: FakeProviderServer, guard: Guard, kind: str, status: int
) -> None:
    """A redirect, even to a reachable URL that would answer "not reissued", is a failure."""
    number = never_reissued(kind)
    # The URL of a genuine lookup of this number: where a redirect could most plausibly
    # send a client that follows it (the adapter itself is asked, past the Guard's cache).
    guard.provider.lookup(number, dt.date(2024, 3, 1))
    genuine = lookups(server, number)[-1]
    target = f"{server.url}{genuine.path}" + (f"?{genuine.query}" if genuine.query else "")
    server.inject(Redirect(target, status), number=number)

    decision, wall = timed_check(guard, number)
    assert_step_up_unavailable(decision)
    assert_within_deadline(decision, wall)
    redirected = [r for r in lookups(server, number) if r.fault is not None]
    assert [r.fault for r in redirected] == [Redirect(target, status)]
    # The genuine lookup above is the only other one: the redirect target was never fetched.
    assert len(lookups(server, number)) == 2


def test_redirect_to_another_host_is_not_followed(server: FakeProviderServer) -> None:
    server.inject(Redirect("https://elsewhere.invalid/v2/PhoneNumbers/x"), number=US_NEVER)
    with Guard(server.twilio(), timeout=TIMEOUT) as guard:
        decision, wall = timed_check(guard, US_NEVER)
    assert_step_up_unavailable(decision)
    assert_within_deadline(decision, wall)
    assert decision.elapsed < TIMEOUT / 2


# -- concurrency ------------------------------------------------------------------------------


def _run_together(count: int, work: Callable[[int], Decision]) -> list[Decision]:
    """Start ``count`` daemon threads, release them at once, return each one's Decision in
    order; a thread still running after 30 s fails the test with every thread's stack."""
    return run_together([functools.partial(work, index) for index in range(count)], within=30)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (Latency(0.2), (Action.STEP_UP, Reason.REISSUED_AFTER_BINDING)),
        (Hang(), (Action.STEP_UP, Reason.PROVIDER_UNAVAILABLE)),
    ],
    ids=["slow-answer", "hung-provider"],
)
def test_200_concurrent_checks_of_one_number_make_one_provider_call(
    server: FakeProviderServer, fault: Any, expected: tuple[Action, Reason]
) -> None:
    """Single flight: a burst of logins for one number shares one provider call, and
    every login gets the same decision, by the deadline."""
    server.inject(fault, number=US_REISSUED)
    timeout = 1.0
    with Guard(server.twilio(), timeout=timeout) as guard:
        decisions = _run_together(200, lambda _i: guard.check(US_REISSUED, bound_at=BOUND_AT))
    assert len(decisions) == 200
    assert {(d.action, d.reason) for d in decisions} == {expected}
    assert max(d.elapsed for d in decisions) <= timeout + SLACK
    assert len(lookups(server, US_REISSUED)) == 1


def test_64_threads_with_different_numbers_get_their_own_answers(
    server: FakeProviderServer,
) -> None:
    """No cross-talk: each number's decision carries its own reissue date and mask."""
    count = 64
    numbers = [f"+1201555{n:04d}" for n in range(2000, 2000 + count)]  # Telesign covers the US
    script: dict[str, dt.date | None] = {}
    for index, number in enumerate(numbers):
        script[number] = None if index % 2 else REISSUED_ON + dt.timedelta(days=index)
        server.script(number, script[number])
    # Overlap the calls on the wire, so answers would mix if anything were shared.
    server.inject(Latency(0.05))
    rounds = 5
    # Telesign answers with the date of the change, so each decision shows whose it is.
    with Guard(server.telesign(), timeout=2.0, max_workers=count) as guard:

        def work(index: int) -> Decision:
            number = numbers[index % count]
            return guard.check(number, bound_at=BOUND_AT)

        decisions = _run_together(count * rounds, work)
    for index, decision in enumerate(decisions):
        number = numbers[index % count]
        assert decision.masked_number == mask(number)
        if script[number] is None:
            assert (decision.action, decision.reason) == (Action.ALLOW, Reason.NOT_REISSUED)
            assert decision.reissued_on is None
        else:
            assert decision.reason is Reason.REISSUED_AFTER_BINDING
            assert decision.reissued_on == script[number]
    # Each number was asked about at least once and, thanks to the cache and single
    # flight, at most once per round.
    for number in numbers:
        assert 1 <= len(lookups(server, number)) <= rounds
