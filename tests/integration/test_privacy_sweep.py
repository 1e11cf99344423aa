"""Privacy sweep: no phone number survives anywhere, for every adapter, over real sockets.

For each adapter -- Twilio, Telesign, CAMARA (client-secret and
``private_key_jwt`` token flows), Alibaba (SHA256, MD5 and NORMAL masks) and
the US RND -- a :class:`FakeProviderServer` is scripted with distinct numbers
the adapter covers (US numbers for Twilio and the RND, Chinese mobiles for
Alibaba, both for Telesign and CAMARA), and with the root logger and every
other logger (``recyclecheck``, ``recyclecheck.testing``, ``urllib3``...) at
DEBUG a realistic mix runs through a Guard whose ``on_decision`` collects
every Decision:

- a number the provider vouches for, a reissued number, a no-data and a
  not-covered number (and, for Alibaba and the RND, a foreign number they
  decline without a request), typed the way people type them: E.164,
  spaced international, national with a region, ``00`` prefix;
- every fault kind of :mod:`recyclecheck.testing` injected on a number of its
  own (a new fault kind fails the sweep until it is swept too);
- the answered numbers again, now from the cache; a circuit breaker opening;
- direct ``adapter.lookup()`` calls: one per fault, one with refused
  credentials, one against a port nothing listens on (requests' error text
  quotes the full URL, number and all), one through a "proxy" whose answer
  has a malformed header line (urllib3 then warns, quoting the URL), and two
  with malformed E.164 input;
- invalid input to ``Guard.check`` (control and invisible characters,
  letters, an extension, unparsable, oversized), each embedding a full number.

Everything that could carry a number is collected as text: every log record
(formatted message with its traceback, ``msg``, ``args`` and every attribute,
``recyclecheck*`` extras included), stdout and stderr, each exception's
``str``, ``repr``, ``args``, attributes and ``traceback.format_exception``
output for it and for every exception chained to it through ``__cause__`` or
``__context__`` (whether or not the context is suppressed), the ``repr`` and
``str`` of the Guards, the adapters, the fake server and its recorded
requests, every Decision and its ``to_dict()`` JSON, the caches, the
MemoryCache's stored keys and facts and the Guard's input memo.  With a
RedisCache on a real redis-server the raw key names and values (``KEYS``,
``GET``, ``SCAN`` and ``redis-cli --scan`` output) are collected too, and the
values must be sealed, not readable plaintext.

:func:`tests.privacy.leaks` then looks for every number in E.164, digits-only
and national form, the unkeyed SHA-256 of each form and the MD5 of the
national form (what the Alibaba adapter sends on the wire -- wire content, but
never log or exception content), and for anything number-shaped at all.  The
exact strings typed into ``Guard.check`` must not appear either.

Each sweep also asserts that it saw what it claims -- DEBUG records from
urllib3 (with paths withheld), the adapter and the fake server; each number's
masked form in the decision log; each fault served by the server and turned
into the expected ProviderError; the cache holding the answered facts -- so
it cannot pass by looking at nothing.  ``test_the_sweep_sees_each_form``
shows that the checker flags a number leaked in each form it claims to catch.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import shutil
import socket
import subprocess
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import phonenumbers
import pytest

from recyclecheck import (
    Action,
    Decision,
    Guard,
    InvalidPhoneNumber,
    MemoryCache,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderTimeout,
    ProviderUnavailable,
    Reason,
    mask,
)
from recyclecheck._deadline import deadline_scope
from recyclecheck._facts import Fact
from recyclecheck._phone import hmac_number
from recyclecheck._redis_cache import RedisCache
from recyclecheck.providers import Answer, NoData, NotCovered
from recyclecheck.testing import (
    AuthRefused,
    ChunkDrip,
    Credentials,
    DecisionLog,
    FakeProviderServer,
    Fault,
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
from recyclecheck.testing._faults import FAULT_TYPES

from ..crowd import run_together
from ..privacy import forbidden_forms, leaks
from ..rawserver import free_port, raw_server
from ..redisserver import RedisServer

#: The Guard's deadline, and the deadline of each direct lookup.  Generous, so that
#: the normal answers arrive in time even with every fault in flight at once.
TIMEOUT = 1.0
UTC = dt.timezone.utc
#: Bound on 2024-03-02, so the provider is asked about changes since 2024-03-01.
BOUND_AT = dt.datetime(2024, 3, 2, 9, 30, tzinfo=UTC)
SINCE = dt.date(2024, 3, 1)
REISSUED_ON = dt.date(2024, 5, 1)
GUARD_SECRET = b"sweep-guard-secret-0123456789"
CACHE_SECRET = b"sweep-cache-secret-0123456789"

US = [f"+1201555{n:04d}" for n in range(100, 120)]
CN = [f"+86139001{n:05d}" for n in range(39000, 39020)]
ALL_NUMBERS = (*US, *CN)

#: Numbers whose scripted answer reaches the Guard as an answer, not a failure.
ANSWERS: dict[str, Any] = {
    "allowed": None,
    "reissued": REISSUED_ON,
    "no_data": NoData(),
    "not_covered": NotCovered(),
}
EXPECTED_REASONS = {
    "allowed": Reason.NOT_REISSUED,
    "reissued": Reason.REISSUED_AFTER_BINDING,
    "no_data": Reason.NO_DATA,
    "not_covered": Reason.NOT_COVERED,
}
#: One fault of every kind, each on a number of its own, and the error it must become.
FAULTS: dict[str, tuple[Fault, type[ProviderError]]] = {
    "latency": (Latency(3 * TIMEOUT), ProviderTimeout),
    "hang": (Hang(), ProviderTimeout),
    "slow_drip": (SlowDrip(byte_interval=0.25), ProviderTimeout),
    "header_drip": (HeaderDrip(byte_interval=0.25), ProviderTimeout),
    "chunk_drip": (ChunkDrip(byte_interval=0.25), ProviderTimeout),
    "rate_limit": (RateLimit(retry_after=30), ProviderRateLimited),
    "server_error": (ServerError(503), ProviderUnavailable),
    "reset": (Reset(), ProviderUnavailable),
    "malformed_json": (MalformedJson(), ProviderResponseError),
    "html_error_page": (HtmlErrorPage(502), ProviderUnavailable),
    "huge_body": (HugeBody(size=1024 * 1024, declare_length=False), ProviderResponseError),
    "redirect": (Redirect(), ProviderResponseError),
    "auth_refused": (AuthRefused(), ProviderAuthError),
}
#: The faults that answer at once: the Redis sweep runs these (failures never reach a cache).
QUICK_FAULTS = {
    name: entry
    for name, entry in FAULTS.items()
    if not isinstance(entry[0], (Latency, Hang, SlowDrip, HeaderDrip, ChunkDrip))
}


@dataclasses.dataclass(frozen=True)
class AdapterKind:
    """One adapter configuration and the numbers it covers.

    ``build(server, **overrides)`` makes the adapter against ``server``;
    ``wrong`` are overrides with credentials the server refuses; ``moved(url)``
    are overrides sending its requests (or its token requests) to ``url``;
    ``foreign`` is a number it declines without a request; ``not_covered`` the
    reason a number the provider does not cover gets (the RND says "no data").
    """

    id: str
    build: Callable[..., Any]
    pool: str  # "US", "CN" or "mixed"
    wrong: Callable[[], dict[str, Any]]
    moved: Callable[[str], dict[str, Any]]
    foreign: str | None = None
    not_covered: Reason = Reason.NOT_COVERED


def _aliyun(mask_kind: str) -> AdapterKind:
    return AdapterKind(
        id=f"aliyun-{mask_kind}",
        build=lambda s, **o: s.aliyun(mask_kind, **o),
        pool="CN",
        wrong=lambda: {"access_key_secret": "wrong-aliyun-secret"},
        moved=lambda url: {"endpoint": url},
        foreign=US[-1],
    )


def _camara(auth: str, wrong: Callable[[], dict[str, Any]]) -> AdapterKind:
    return AdapterKind(
        id=f"camara-{auth}",
        build=lambda s, **o: s.camara(auth, **o),
        pool="mixed",
        wrong=wrong,
        moved=lambda url: {"token_url": url + "/oauth2/token"},
    )


ADAPTERS = [
    AdapterKind(
        id="twilio",
        build=lambda s, **o: s.twilio(**o),
        pool="US",
        wrong=lambda: {"auth_token": "wrong-twilio-token"},
        moved=lambda url: {"base_url": url},
    ),
    AdapterKind(
        id="telesign",
        build=lambda s, **o: s.telesign(**o),
        pool="US",  # the number_deactivation add-on covers the United States
        wrong=lambda: {"api_key": base64.b64encode(b"not the telesign api key").decode()},
        moved=lambda url: {"base_url": url},
    ),
    _camara("secret", lambda: {"client_secret": "wrong-camara-secret"}),
    # Another P-256 key: the assertion's signature does not verify.
    _camara("private_key_jwt", lambda: {"private_key": Credentials().camara_private_key}),
    _aliyun("SHA256"),
    _aliyun("MD5"),
    _aliyun("NORMAL"),
    AdapterKind(
        id="rnd",
        build=lambda s, **o: s.rnd(**o),
        pool="US",
        wrong=lambda: {"refresh_token": "wrong-rnd-refresh-token"},
        moved=lambda url: {"base_url": url},
        foreign=CN[-1],
        not_covered=Reason.NO_DATA,  # the RND has no "not covered" answer of its own
    ),
]


# -- what the sweep collects -------------------------------------------------------------


class Collector(logging.Handler):
    """Keeps every record, and its full text: formatted, raw, and every attribute."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s [%(threadName)s] %(message)s"))
        self.records: list[logging.LogRecord] = []
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # format() adds the exc_info traceback and stack_info; vars() has msg, args, extras.
        text = f"{self.format(record)}\n{record.msg!r} % {record.args!r}\n{vars(record)!r}"
        self.records.append(record)
        self.texts.append(text)


@contextlib.contextmanager
def everything_at_debug() -> Iterator[Collector]:
    """Root and every logger at DEBUG, enabled and propagating, into one Collector."""
    for name in ("urllib3.connection", "urllib3.connectionpool", "urllib3.util.retry"):
        logging.getLogger(name)  # exist now, so they are set below like the rest
    root = logging.getLogger()
    loggers = [root] + [
        found
        for found in list(logging.Logger.manager.loggerDict.values())
        if isinstance(found, logging.Logger)
    ]
    saved = [(each, each.level, each.disabled, each.propagate) for each in loggers]
    collector = Collector()
    for each in loggers:
        each.setLevel(logging.DEBUG)
        each.disabled = False
        each.propagate = True
    root.addHandler(collector)
    try:
        yield collector
    finally:
        root.removeHandler(collector)
        for each, level, disabled, propagate in saved:
            each.setLevel(level)
            each.disabled = disabled
            each.propagate = propagate


def exception_texts(exc: BaseException) -> list[str]:
    """Every text of ``exc`` and of each exception chained to it, suppressed or not."""
    texts = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        texts += [
            str(current),
            repr(current),
            repr(current.args),
            repr(vars(current)),
            "".join(traceback.format_exception_only(current)),
        ]
        pending += [current.__cause__, current.__context__]
    return texts


class Tracked:
    """The adapter as the Guard sees it, counting lookups in flight.

    A Guard stops waiting at its deadline while its worker finishes the lookup
    on its own; :meth:`idle` lets the sweep wait for those before it stops
    collecting, so their log records are swept too.
    """

    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter
        self.name = adapter.name
        self._changed = threading.Condition()
        self._in_flight = 0

    def lookup(self, number: str, since: dt.date) -> Answer:
        with self._changed:
            self._in_flight += 1
        try:
            answer: Answer = self.adapter.lookup(number, since)
            return answer
        finally:
            with self._changed:
                self._in_flight -= 1
                self._changed.notify_all()

    def idle(self, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._in_flight == 0, timeout)

    def close(self) -> None:
        self.adapter.close()

    def __repr__(self) -> str:
        return repr(self.adapter)


def malformed_header(conn: socket.socket) -> None:
    """A proxy's 502 with a header line that has no name (urllib3 warns about it)."""
    conn.sendall(
        b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\n: no-name\r\n"
        b"Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    conn.shutdown(socket.SHUT_WR)
    while conn.recv(4096):  # drain until the client hangs up: no RST on close
        pass


# -- the numbers ---------------------------------------------------------------------------


def presentations(e164: str, index: int) -> tuple[str, str | None]:
    """How a person might type ``e164`` (rotating through four styles), with its region."""
    parsed = phonenumbers.parse(e164, None)
    style = index % 4
    if style == 0:
        return e164, None
    if style == 1:
        return phonenumbers.format_number(
            parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL
        ), None
    if style == 2:
        national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
        return national, phonenumbers.region_code_for_number(parsed)
    return f"00{parsed.country_code} {phonenumbers.national_significant_number(parsed)}", None


def invalid_inputs(e164: str) -> list[str]:
    """Inputs that embed the full number and must be refused without echoing it."""
    return [
        e164 + "\x00",  # control character
        e164[:4] + "\u200b" + e164[4:],  # zero-width space
        e164 + " abc",  # letters
        e164[:-1] + "O",  # a letter O for a zero
        f"tel:{e164};ext=12",  # extension
        "+ " + e164,  # unparsable
        e164 + " " * 64,  # oversized
    ]


def assign(kind: AdapterKind, roles: list[str]) -> dict[str, str]:
    """A distinct number the adapter covers for each role."""
    us, cn = iter(US), iter(CN)
    pools = {"US": [us], "CN": [cn], "mixed": [cn, us]}[kind.pool]
    return {role: next(pools[index % len(pools)]) for index, role in enumerate(roles)}


# -- one sweep -------------------------------------------------------------------------


@dataclasses.dataclass
class Sweep:
    """Everything one sweep did and saw."""

    kind: AdapterKind
    numbers: dict[str, str]
    typed: dict[str, tuple[str, str | None]] = dataclasses.field(default_factory=dict)
    texts: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    decisions: dict[str, Decision] = dataclasses.field(default_factory=dict)
    cached: dict[str, Decision] = dataclasses.field(default_factory=dict)
    failures: dict[str, BaseException | Answer] = dataclasses.field(default_factory=dict)
    invalid: list[tuple[str, BaseException | None]] = dataclasses.field(default_factory=list)
    log: DecisionLog = dataclasses.field(default_factory=DecisionLog)
    records: list[logging.LogRecord] = dataclasses.field(default_factory=list)
    fault_requests: dict[str, list[Any]] = dataclasses.field(default_factory=dict)

    def add(self, source: str, *texts: object) -> None:
        self.texts += [(source, text if isinstance(text, str) else repr(text)) for text in texts]

    def add_exception(self, source: str, exc: BaseException) -> None:
        self.add(source, *exception_texts(exc))

    def leaked(self) -> list[tuple[str, list[str], str]]:
        """Each collected text that holds a number, typed input or known form of one."""
        typed = [raw for raw, _ in self.typed.values()] + [raw for raw, _ in self.invalid]
        found = []
        for source, text in self.texts:
            hits = leaks(text, ALL_NUMBERS) + [raw for raw in typed if raw in text]
            if hits:
                found.append((source, hits, text[:300]))
        return found


def run_sweep(
    kind: AdapterKind,
    cache: Any,
    faults: dict[str, tuple[Fault, type[ProviderError]]],
    capfd: pytest.CaptureFixture[str],
) -> Sweep:
    """Run the mix against a fresh fake server with everything at DEBUG; collect every text."""
    roles = [*ANSWERS, *faults, "breaker"]
    sweep = Sweep(kind, assign(kind, roles))
    numbers = sweep.numbers
    script: dict[str, Any] = {numbers[role]: ANSWERS.get(role) for role in roles}
    with everything_at_debug() as collector:
        # Every number is scripted, so a hashed Alibaba number is recognised (and a
        # fault that failed to fire would show up as an answer, not an error).
        with FakeProviderServer(script) as server:
            for role, (fault, _) in faults.items():
                server.inject(fault, number=numbers[role])
            server.inject(ServerError(503), number=numbers["breaker"])
            _mix(sweep, server, cache, faults)
            sweep.fault_requests = {
                role: [r for r in server.requests if r.number == numbers[role] and r.fault]
                for role in faults
            }
            sweep.add("server", repr(server), str(server))
            sweep.add("recorded requests", *server.requests)
            sweep.add("recorded requests (str)", *(str(r) for r in server.requests))
        sweep.records = collector.records
        sweep.texts += [("log record", text) for text in collector.texts]
    captured = capfd.readouterr()
    sweep.add("stdout", captured.out)
    sweep.add("stderr", captured.err)
    return sweep


def _mix(
    sweep: Sweep,
    server: FakeProviderServer,
    cache: Any,
    faults: dict[str, tuple[Fault, type[ProviderError]]],
) -> None:
    kind, numbers = sweep.kind, sweep.numbers
    adapter = kind.build(server)
    tracked = Tracked(adapter)
    refused = kind.build(server, **kind.wrong())
    dead = kind.build(server, **kind.moved(f"http://127.0.0.1:{free_port()}"))
    guard = Guard(
        tracked,
        timeout=TIMEOUT,
        cache=cache,
        secret=GUARD_SECRET,
        on_decision=sweep.log,
        max_workers=64,
        breaker_threshold=10_000,  # every fault must reach the server
    )
    checked = [*ANSWERS, *faults]
    if kind.foreign is not None:
        numbers["foreign"] = kind.foreign
        checked.append("foreign")
    for index, role in enumerate(checked):
        sweep.typed[role] = presentations(numbers[role], index)

    def check(role: str) -> None:
        raw, region = sweep.typed[role]
        sweep.decisions[role] = guard.check(raw, bound_at=BOUND_AT, region=region)

    def lookup(label: str, provider: Any, number: str) -> None:
        with deadline_scope(time.monotonic() + TIMEOUT):
            try:
                sweep.failures[label] = provider.lookup(number, SINCE)
            except ProviderError as exc:
                sweep.failures[label] = exc

    with raw_server(malformed_header) as proxy_url:
        proxied = kind.build(server, **kind.moved(proxy_url))
        # Everything at once: one deadline's wait for all the slow faults.
        tasks: list[Callable[[], None]] = [lambda role=role: check(role) for role in checked]
        tasks += [lambda role=role: lookup(role, adapter, numbers[role]) for role in faults]
        tasks += [
            lambda: lookup("refused credentials", refused, numbers["allowed"]),
            lambda: lookup("connection refused", dead, numbers["allowed"]),
            lambda: lookup("malformed header", proxied, numbers["allowed"]),
        ]
        # Daemon threads joined against a bound: a stuck check fails the sweep, never hangs it.
        run_together(tasks, within=30, name="sweep")
        proxied.close()

    # The answered numbers again: from the cache (the memo for the same text,
    # a fresh parse for E.164).
    for role in ("allowed", "reissued"):
        sweep.cached[role] = guard.check(
            sweep.typed[role][0], bound_at=BOUND_AT, region=sweep.typed[role][1]
        )
        sweep.cached[role + " as E.164"] = guard.check(numbers[role], bound_at=BOUND_AT)

    # Invalid input, to the Guard and straight to the adapter.
    for raw in invalid_inputs(numbers["allowed"]):
        try:
            guard.check(raw, bound_at=BOUND_AT)
        except InvalidPhoneNumber as exc:
            sweep.invalid.append((raw, exc))
            sweep.add_exception("Guard.check(invalid input)", exc)
        else:
            sweep.invalid.append((raw, None))
    spaced, _ = presentations(numbers["allowed"], 1)
    for raw in (spaced, numbers["allowed"] + "\n"):
        try:
            adapter.lookup(raw, SINCE)
        except InvalidPhoneNumber as exc:
            sweep.invalid.append((raw, exc))
            sweep.add_exception("lookup(invalid input)", exc)
        else:
            sweep.invalid.append((raw, None))

    # A breaker that opens after one failure: the next login is not even asked about.
    fragile = Guard(
        tracked, timeout=TIMEOUT, secret=GUARD_SECRET, breaker_threshold=1, on_decision=sweep.log
    )
    sweep.decisions["breaker"] = fragile.check(numbers["breaker"], bound_at=BOUND_AT)
    sweep.decisions["circuit open"] = fragile.check(numbers["no_data"], bound_at=BOUND_AT)

    assert tracked.idle(timeout=10), "a lookup the Guard gave up on never finished"
    for label, failure in sweep.failures.items():
        if isinstance(failure, BaseException):
            sweep.add_exception(f"lookup({label})", failure)
        else:
            sweep.add(f"lookup({label}) answer", failure)
    for each in (*sweep.decisions.values(), *sweep.cached.values(), *sweep.log):
        sweep.add("decision", repr(each), str(each), json.dumps(each.to_dict()))
    sweep.add("decision log", sweep.log)
    for label, provider in (
        ("adapter", adapter),
        ("refused", refused),
        ("dead", dead),
        ("proxied", proxied),
    ):
        sweep.add(label, repr(provider), str(provider), vars(provider))
    for label, each in (("guard", guard), ("fragile guard", fragile)):
        sweep.add(label, repr(each), str(each), vars(each), each.breaker, each.cache)
        flights = [lane._flights for lane in each.lanes.values()]
        sweep.add(label + " memo", each._memo._entries, flights)
    sweep.add("cache", repr(cache), str(cache), vars(cache))
    if isinstance(cache, MemoryCache):
        sweep.add("memory cache contents", cache._entries, cache.keys())
        sweep.add(
            "memory cache facts", *(fact.to_bytes().decode() for _, fact in cache._entries.values())
        )
    for each in (guard, fragile, refused, dead):
        each.close()


# -- what every sweep must show ---------------------------------------------------------

#: Where every sweep must have collected text from.
SOURCES = {
    "log record",
    "stdout",
    "stderr",
    "decision",
    "decision log",
    "adapter",
    "guard",
    "guard memo",
    "cache",
    "server",
    "recorded requests",
    "Guard.check(invalid input)",
    "lookup(invalid input)",
    "lookup(connection refused)",
    "lookup(malformed header)",
    "lookup(refused credentials)",
    "lookup(server_error)",
}


def assert_clean(sweep: Sweep) -> None:
    """No number, typed input or known form of one in anything collected."""
    found = sweep.leaked()
    assert not found, f"{len(found)} leaking texts, first: {found[:3]}"


def assert_complete(sweep: Sweep, faults: dict[str, tuple[Fault, type[ProviderError]]]) -> None:
    """The sweep saw what it claims to have swept."""
    numbers, records = sweep.numbers, sweep.records
    sources = {source for source, _ in sweep.texts}
    assert sources >= SOURCES, SOURCES - sources

    # Answers became the expected decisions, then came from the cache.
    expected = {**EXPECTED_REASONS, "not_covered": sweep.kind.not_covered}
    for role, reason in expected.items():
        decision = sweep.decisions[role]
        assert (decision.reason, decision.cached) == (reason, False), role
        assert decision.masked_number == mask(numbers[role])
    assert sweep.decisions["allowed"].action is Action.ALLOW
    # Only Telesign answers with the change date; the others say "changed since".
    dated = sweep.kind.id == "telesign"
    assert sweep.decisions["reissued"].reissued_on == (REISSUED_ON if dated else None)
    if "foreign" in sweep.decisions:
        assert sweep.decisions["foreign"].reason is Reason.NOT_COVERED
    for label, decision in sweep.cached.items():
        role = label.split()[0]
        assert decision.cached, label
        assert decision.reason is EXPECTED_REASONS[role], label

    # Every fault was served for its number, and became a ProviderError and an unavailable.
    for role, (fault, error) in faults.items():
        served = sweep.fault_requests[role]
        assert served, f"{role}: the server never served its fault"
        assert all(type(r.fault) is type(fault) for r in served), role
        failure = sweep.failures[role]
        assert type(failure) is error, f"{role}: {failure!r}"
        assert sweep.decisions[role].reason is Reason.PROVIDER_UNAVAILABLE, role
    assert isinstance(sweep.failures["refused credentials"], ProviderAuthError)
    assert isinstance(sweep.failures["connection refused"], ProviderUnavailable)
    assert isinstance(sweep.failures["malformed header"], ProviderUnavailable)
    assert sweep.decisions["breaker"].reason is Reason.PROVIDER_UNAVAILABLE
    assert sweep.decisions["circuit open"].reason is Reason.PROVIDER_UNAVAILABLE
    assert any("breaker=open" in text for source, text in sweep.texts if source == "fragile guard")
    # The fake server's records were swept, and they show the masked number only.
    shown = mask(numbers["allowed"])
    assert any(shown in text for source, text in sweep.texts if source == "recorded requests")

    # Every invalid input was refused, without its text in the message.
    assert len(sweep.invalid) == len(invalid_inputs(numbers["allowed"])) + 2
    for raw, exc in sweep.invalid:
        assert isinstance(exc, InvalidPhoneNumber), repr(raw)
        assert raw.strip() not in str(exc)

    # The logs were there to be swept: urllib3 at DEBUG (paths withheld), the header
    # warning (URL withheld), the adapter, the fake server, the Guard's masked decisions.
    def messages(prefix: str, level: int = logging.DEBUG) -> list[str]:
        return [r.getMessage() for r in records if r.name.startswith(prefix) and r.levelno == level]

    urllib3_lines = messages("urllib3.connectionpool")
    assert any('<withheld> HTTP/1.1" 200' in line for line in urllib3_lines)
    assert any(
        "Failed to parse headers (url=<withheld>)" in line
        for line in messages("urllib3.connection", logging.WARNING)
    )
    assert messages("recyclecheck.providers")
    assert any(line.startswith("fake ") for line in messages("recyclecheck.testing"))
    assert any("circuit opened" in line for line in messages("recyclecheck", logging.WARNING))
    decided = "\n".join(messages("recyclecheck", logging.INFO))
    for role in [*ANSWERS, *faults]:
        assert f"number={mask(numbers[role])} " in decided, role
    assert len(sweep.log) == len(sweep.decisions) + len(sweep.cached)


# -- the tests -----------------------------------------------------------------------------


def test_every_fault_kind_is_swept() -> None:
    """The sweep injects one fault of every kind recyclecheck.testing offers."""
    assert {type(fault) for fault, _ in FAULTS.values()} == set(FAULT_TYPES)


def test_the_numbers_are_valid_and_covered() -> None:
    """The sweep's numbers are valid, distinct, and of the regions the adapters cover."""
    assert len(set(ALL_NUMBERS)) == len(ALL_NUMBERS)
    for number in ALL_NUMBERS:
        parsed = phonenumbers.parse(number, None)
        assert phonenumbers.is_valid_number(parsed), number
        region = phonenumbers.region_code_for_number(parsed)
        assert region == ("US" if number in US else "CN"), number


@pytest.mark.parametrize("kind", ADAPTERS, ids=[kind.id for kind in ADAPTERS])
def test_privacy_sweep(kind: AdapterKind, capfd: pytest.CaptureFixture[str]) -> None:
    """Every fault kind, answer and bad input, with a MemoryCache: no number anywhere."""
    cache = MemoryCache()
    sweep = run_sweep(kind, cache, FAULTS, capfd)
    assert_clean(sweep)
    assert_complete(sweep, FAULTS)
    # The vouched-for and the reissued number, under the Guard's keyed HMACs; failures,
    # no-data and not-covered answers are no facts.
    provider = sweep.decisions["allowed"].provider
    assert set(cache.keys()) == {
        hmac_number(GUARD_SECRET, provider, sweep.numbers[role]) for role in ("allowed", "reissued")
    }


def redis_texts(sweep: Sweep, server: RedisServer, client: Any) -> dict[bytes, bytes]:
    """Add what Redis holds to the sweep, as a client and redis-cli see it; the raw values."""
    names = sorted(client.keys("*"))
    sweep.add("redis KEYS", names)
    cursor, scanned = client.execute_command("SCAN", 0, "COUNT", 1000)
    assert (int(cursor), sorted(scanned)) == (0, names)
    sweep.add("redis SCAN", scanned)
    values = {name: client.get(name) for name in names}
    sweep.add("redis GET", values)
    sweep.add("redis GET (latin-1)", *(value.decode("latin-1") for value in values.values()))
    cli = shutil.which("redis-cli")
    if cli is not None:  # redis-cli quotes and escapes: what an operator would see
        port = ["-p", str(server.port)]
        listing = subprocess.run(
            [cli, *port, "--scan"], capture_output=True, text=True, check=True, timeout=10
        ).stdout
        assert sorted(listing.split()) == [name.decode() for name in names]
        sweep.add("redis-cli --scan", listing)
        for name in names:
            shown = subprocess.run(
                [cli, *port, "--no-raw", "GET", name.decode()],  # escaped, as a person sees it
                capture_output=True,
                text=True,
                check=True,
                timeout=10,
            ).stdout
            assert shown.startswith('"\\x01'), shown  # the sealed format's version byte
            sweep.add("redis-cli GET", shown)
    return values


@pytest.mark.redis
@pytest.mark.parametrize("kind", ADAPTERS, ids=[kind.id for kind in ADAPTERS])
def test_privacy_sweep_redis_cache(
    kind: AdapterKind, redis_server: RedisServer, capfd: pytest.CaptureFixture[str]
) -> None:
    """With a RedisCache on a real server: Redis holds sealed facts under keyed names only.

    The faults that answer at once run here (the slow ones are swept above;
    failures never reach a cache).
    """
    client = redis_server.client()
    client.flushdb()
    cache = RedisCache(client, secret=CACHE_SECRET)
    sweep = run_sweep(kind, cache, QUICK_FAULTS, capfd)
    values = redis_texts(sweep, redis_server, client)
    assert_clean(sweep)
    assert_complete(sweep, QUICK_FAULTS)

    # Redis holds the two facts, under keyed names of the Guard's keys...
    provider = sweep.decisions["allowed"].provider
    keys = {
        role: hmac_number(GUARD_SECRET, provider, sweep.numbers[role])
        for role in ("allowed", "reissued")
    }
    assert sorted(values) == sorted(cache.key_name(key).encode() for key in keys.values())
    # ...the real facts (they read back, and the rechecks came from them)...
    facts = {role: cache.get(key) for role, key in keys.items()}
    assert all(isinstance(fact, Fact) for fact in facts.values())
    assert facts["reissued"] is not None
    assert facts["reissued"].changed_from is not None
    assert facts["allowed"] is not None
    assert facts["allowed"].quiet_from == SINCE
    # ...sealed: not the plaintext, no date from it, nothing printable, no Guard key.
    for role, fact in facts.items():
        assert fact is not None
        raw = values[cache.key_name(keys[role]).encode()]
        assert raw[:1] == b"\x01"
        assert len(raw) == 1 + 12 + len(fact.to_bytes()) + 16
        assert fact.to_bytes() not in raw
        for when in (fact.changed_from, fact.quiet_from):
            if when is not None:
                assert when.isoformat().encode() not in raw
        assert not raw.decode("latin-1").isprintable()
    for key in keys.values():
        assert not [blob for blob in (*values, *values.values()) if key.encode() in blob]


def test_the_sweep_sees_each_form() -> None:
    """Negative control: a number leaked in any form the sweep claims to catch is flagged.

    Each form goes through the same path a real leak would: a log record's
    message, args or ``recyclecheck*`` extra into the :class:`Collector`, or the
    suppressed ``__context__`` of an exception into :func:`exception_texts`, then
    :meth:`Sweep.leaked`.  (Records are handed to the Collector directly: through
    the root logger they would also, rightly, fail the suite-wide log check.)
    """
    for number in (US[0], CN[0]):
        parsed = phonenumbers.parse(number, None)
        shown = [
            *forbidden_forms(number),
            phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL),
            phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL),
        ]
        for form in shown:
            collector = Collector()
            for args, extra in (((form,), None), (("-",), form)):
                record = logging.LogRecord(
                    "recyclecheck.providers.twilio",
                    logging.DEBUG,
                    __file__,
                    1,
                    "asked about %s",
                    args,
                    None,
                )
                if extra is not None:
                    record.recyclecheck_error = extra
                collector.handle(record)
            try:
                try:
                    raise ValueError(f"Max retries exceeded with url: /v2/PhoneNumbers/{form}")
                except ValueError:
                    raise ProviderUnavailable("transport error", provider="twilio") from None
            except ProviderUnavailable as exc:
                hidden = exception_texts(exc)
            for texts in ([collector.texts[0]], [collector.texts[1]], hidden):
                sweep = Sweep(ADAPTERS[0], {"allowed": number})
                sweep.add("collected", *texts)
                assert form in [hit for _, hits, _ in sweep.leaked() for hit in hits], form

    # An invalid input echoed back is caught even when it is no number-shaped string.
    typed = Sweep(ADAPTERS[0], {"allowed": US[0]})
    typed.invalid.append(("+1201555010O", None))
    typed.add("exception", "phone +1201555010O is not valid")
    assert [hits for _, hits, _ in typed.leaked()] == [["+1201555010O"]]
    # ...and masked numbers, ports, epochs and UUIDs are not leaks.
    clean = Sweep(ADAPTERS[0], {"allowed": US[0]})
    clean.add(
        "log record",
        f"number={mask(US[0])} number={mask(CN[0])} http://127.0.0.1:41234 "
        "quiet_until=1764349200.125 x-correlator 5f0c4a1e-9b2d-4c8e-a7f3-0d6e2b91c4aa",
    )
    assert clean.leaked() == []
