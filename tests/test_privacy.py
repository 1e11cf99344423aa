"""Privacy sweep: no full number, digits-only form or plain hash in logs, errors, reprs or caches."""

from __future__ import annotations

import datetime as dt
import logging
import time
import traceback
from urllib.parse import quote

import pytest

from recyclecheck import (
    Guard,
    InvalidInput,
    MemoryCache,
    ProviderError,
    ProviderResponseError,
    ProviderTimeout,
    ProviderUnavailable,
)
from recyclecheck._deadline import deadline_scope
from recyclecheck._http import HttpClient
from recyclecheck._phone import normalize
from recyclecheck.providers import Answer, ChangedSince, SandboxProvider

from .privacy import leaks
from .rawserver import free_port, hang, raw_server, respond

NUMBERS = ("+8613800138000", "+8613900139000", "+14155552671", "+8618612345678")
BOUND = dt.datetime(2022, 5, 10, tzinfo=dt.timezone.utc)


class PathProvider:
    """Puts the number in the URL path, as Twilio does, over real sockets."""

    name = "pathy"

    def __init__(self, base: str) -> None:
        self.http = HttpClient(provider=self.name)
        self.base = base

    def lookup(self, number: str, since: dt.date) -> Answer:
        response = self.http.request("GET", f"{self.base}/v2/PhoneNumbers/{quote(number, safe='')}")
        self.http.raise_for_status(response)
        body = self.http.json_body(response)
        return ChangedSince(since, body["changed"] is True)


def test_leak_detector_finds_what_it_should() -> None:
    """The detector itself: it finds numbers in every form, and ignores ordinary digits."""
    assert leaks("GET /v2/PhoneNumbers/+8613800138000")
    assert leaks("user 138 0013 8000 logged in")
    assert leaks("tn=4155552671")
    assert leaks("hash deadbeef", ["+8613800138000"]) == []
    assert leaks("elapsed=1764345600000 id=2024-03-01 +86 138****8000") == []


def test_realistic_mix_leaks_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """Allows, step-ups, bad answers, timeouts, bad input: logs, errors, reprs and cache stay clean."""
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    cache = MemoryCache()

    sandbox = Guard(SandboxProvider.demo(), cache=cache, secret=b"k" * 32)
    for number in NUMBERS:
        decision = sandbox.check(number, bound_at=BOUND)
        texts += [repr(decision), str(decision), str(decision.to_dict())]
    texts += [repr(sandbox), repr(sandbox.provider), repr(cache), repr(normalize(NUMBERS[0]))]
    texts += cache.keys()
    stored = [cache.get(key) for key in cache.keys()]  # noqa: SIM118 - not a dict
    texts += [fact.to_bytes().decode() for fact in stored if fact is not None]

    for bad in ("+86 138 0013 800", "86138001380000000", "+1 415 555 2671 ext 9", "0\x00138"):
        with pytest.raises(InvalidInput) as info:
            sandbox.check(bad, bound_at=BOUND)
        texts.append(str(info.value))

    for handler in (respond("200 OK", b'{"changed": "yes"'), respond("503 No", b"<html>"), hang):
        with raw_server(handler) as base:
            provider = PathProvider(base)
            guard = Guard(provider, timeout=0.3, breaker_threshold=2)
            for number in NUMBERS:
                texts.append(repr(guard.check(number, bound_at=BOUND)))
            for number in NUMBERS[:1]:
                try:
                    with deadline_scope(time.monotonic() + 0.3):
                        provider.lookup(number, dt.date(2022, 5, 9))
                except ProviderError as exc:
                    texts += [str(exc), repr(exc)]

    texts += [caplog.text]
    texts += [str(vars(record)) for record in caplog.records]
    found = [leak for text in texts for leak in leaks(text, NUMBERS)]
    assert found == []
    assert "+86 138****8000" in caplog.text


def test_urllib3_debug_lines_withhold_our_request_paths(caplog: pytest.LogCaptureFixture) -> None:
    """urllib3 logs request lines at DEBUG; for our requests the path is withheld."""
    caplog.set_level(logging.DEBUG, logger="urllib3")
    with raw_server(respond("200 OK", b'{"changed": false}')) as base:
        provider = PathProvider(base)
        with deadline_scope(time.monotonic() + 2):
            provider.lookup(NUMBERS[0], dt.date(2022, 5, 9))
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")]
    assert any("<withheld>" in line for line in lines)
    assert not [line for line in lines if leaks(line, NUMBERS)]


def test_urllib3_header_warnings_withhold_our_urls(caplog: pytest.LogCaptureFixture) -> None:
    """A response header line that does not parse makes urllib3 warn with the full URL.

    That is a WARNING, so it reaches production logs: for our requests the URL is withheld.
    """

    # ": no-name" is a header line without a name.
    malformed_header = respond("200 OK", b'{"changed": false}', {"": "no-name"})
    caplog.set_level(logging.DEBUG, logger="urllib3")
    with raw_server(malformed_header) as base:
        provider = PathProvider(base)
        with deadline_scope(time.monotonic() + 2):
            provider.lookup(NUMBERS[0], dt.date(2022, 5, 9))
    warnings = [
        record.getMessage()
        for record in caplog.records
        if record.name == "urllib3.connection" and record.levelno == logging.WARNING
    ]
    assert len(warnings) == 1
    assert warnings[0].startswith("Failed to parse headers (url=<withheld>)")
    assert leaks(caplog.text, NUMBERS) == []


def test_transport_errors_keep_no_requests_exception() -> None:
    """A transport error keeps no requests exception, not even as a suppressed ``__context__``.

    requests' and urllib3's exceptions quote the URL in their text and attributes:
    here the number is in the path and in the query, as Twilio and Alibaba send it.
    """
    closed = f"http://127.0.0.1:{free_port()}"
    path = f"/v2/PhoneNumbers/{quote(NUMBERS[0], safe='')}"
    params = {"InputNumber": NUMBERS[0][3:]}
    client = HttpClient(provider="pathy")
    errors: list[ProviderError] = []
    with raw_server(hang) as hung:
        for base, expected in ((closed, ProviderUnavailable), (hung, ProviderTimeout)):
            with deadline_scope(time.monotonic() + 0.3), pytest.raises(expected) as info:
                client.request("GET", base + path, params=params)
            errors.append(info.value)
    for error in errors:
        assert (error.__cause__, error.__context__) == (None, None)
        text = "".join(traceback.format_exception(error)) + repr(vars(error))
        assert leaks(text, NUMBERS) == []


def test_malformed_json_errors_keep_no_decoder_error() -> None:
    """A JSONDecodeError keeps the whole body in ``.doc``; the body may echo the number.

    The ProviderResponseError keeps no such error, not even as a suppressed ``__context__``.
    """
    body = b'{"phone_number": "' + NUMBERS[0].encode() + b'", "valid": tru'
    with raw_server(respond("200 OK", body, {"Content-Type": "application/json"})) as base:
        client = HttpClient(provider="pathy")
        with deadline_scope(time.monotonic() + 2):
            response = client.request("GET", base + "/")
        with pytest.raises(ProviderResponseError, match="malformed JSON") as info:
            client.json_body(response)
    error = info.value
    assert (error.__cause__, error.__context__) == (None, None)
    text = "".join(traceback.format_exception(error)) + repr(vars(error))
    assert leaks(text, NUMBERS) == []
