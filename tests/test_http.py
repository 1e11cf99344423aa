"""The shared HTTP layer over real sockets: deadlines, caps, redirects, TLS, errors without URLs."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme

from recyclecheck import (
    ProviderAuthError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderTimeout,
    ProviderUnavailable,
)
from recyclecheck._deadline import deadline_scope, remaining_time
from recyclecheck._http import USER_AGENT, HttpClient, parse_retry_after

from .rawserver import free_port, hang, raw_server, reset, respond, trickle

NUMBER_PATH = "/v2/PhoneNumbers/+8613800138000"


def client(**kwargs: object) -> HttpClient:
    return HttpClient(provider="test", **kwargs)  # type: ignore[arg-type]


def within(seconds: float) -> deadline_scope:  # type: ignore[valid-type]
    return deadline_scope(time.monotonic() + seconds)


def test_remaining_time_outside_and_inside_a_scope() -> None:
    """remaining_time is None outside a check and counts down inside."""
    assert remaining_time() is None
    with within(1.0):
        left = remaining_time()
        assert left is not None
        assert 0.9 < left <= 1.0
    assert remaining_time() is None


def test_a_server_that_never_answers_is_cut_at_the_deadline() -> None:
    """Connect succeeds, no response: ProviderTimeout at the deadline, no URL in the text."""
    with raw_server(hang) as base, within(0.3):
        started = time.monotonic()
        with pytest.raises(ProviderTimeout) as info:
            client().request("GET", base + NUMBER_PATH)
        assert time.monotonic() - started < 0.45
    assert "8613800138000" not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_a_slow_drip_body_does_not_outlive_the_deadline() -> None:
    """A body trickling in a byte at a time is abandoned at the deadline."""
    with raw_server(trickle) as base, within(0.4):
        started = time.monotonic()
        with pytest.raises(ProviderTimeout):
            client().request("GET", base + "/")
        assert time.monotonic() - started < 0.55


def test_size_cap_declared_and_streamed() -> None:
    """Bodies over the cap are refused, declared or not."""
    with (
        raw_server(respond("200 OK", b"x" * 5000)) as base,
        within(2),
        pytest.raises(ProviderResponseError, match="size cap"),
    ):
        client(max_body=1000).request("GET", base + "/")

    def chunked(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(10):
            conn.sendall(b"3e8\r\n" + b"y" * 1000 + b"\r\n")
        conn.sendall(b"0\r\n\r\n")

    with (
        raw_server(chunked) as base,
        within(2),
        pytest.raises(ProviderResponseError, match="size cap"),
    ):
        client(max_body=4000).request("GET", base + "/")


def test_redirects_are_never_followed() -> None:
    """A 302 to another host is an error, and the other host is never contacted."""
    contacted = threading.Event()

    def other(conn: socket.socket) -> None:
        contacted.set()

    with raw_server(other) as elsewhere:
        redirect = respond("302 Found", b"", {"Location": elsewhere + "/steal"})
        with (
            raw_server(redirect) as base,
            within(2),
            pytest.raises(ProviderResponseError, match="redirect") as info,
        ):
            client().request("GET", base + "/")
    assert info.value.status == 302
    assert not contacted.is_set()


def test_connection_refused_is_unavailable_and_fast() -> None:
    """Nothing listening: ProviderUnavailable at once."""
    port = free_port()
    with within(2):
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable) as info:
            client().request("GET", f"http://127.0.0.1:{port}{NUMBER_PATH}")
    assert time.monotonic() - started < 0.5
    assert "8613800138000" not in str(info.value)
    assert str(port) not in str(info.value)


def test_connection_reset_is_unavailable() -> None:
    """A reset mid-request is a retryable ProviderUnavailable."""
    with raw_server(reset) as base, within(2), pytest.raises(ProviderUnavailable) as info:
        client().request("GET", base + "/")
    assert info.value.retryable


def test_deadline_already_spent() -> None:
    """No request is started when no time is left."""
    with deadline_scope(time.monotonic() - 1), pytest.raises(ProviderTimeout):
        client().request("GET", "http://127.0.0.1:9/")


@pytest.mark.parametrize(
    ("body", "ctype"),
    [
        (b"<html><body>502 Bad Gateway</body></html>", "text/html"),
        (b"<!DOCTYPE html><p>oops", "application/json"),
        (b'{"a": 1', "application/json"),
        (b"", "application/json"),
        (b'{"a": NaN}', "application/json"),
        (b"[" * 100_000, "application/json"),
        (b'{"a": true, "a": false}', "application/json"),
    ],
)
def test_json_body_rejects_non_json(body: bytes, ctype: str) -> None:
    """HTML pages, truncated JSON, NaN and absurd nesting are ProviderResponseError."""
    with raw_server(respond("200 OK", body, {"Content-Type": ctype})) as base, within(2):
        http = client(max_body=200_000)
        response = http.request("GET", base + "/")
        with pytest.raises(ProviderResponseError):
            http.json_body(response)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, ProviderAuthError),
        (403, ProviderAuthError),
        (429, ProviderRateLimited),
        (500, ProviderUnavailable),
        (503, ProviderUnavailable),
        (400, ProviderResponseError),
        (404, ProviderResponseError),
    ],
)
def test_status_mapping(status: int, error: type[Exception]) -> None:
    """Generic status codes map to the exception tree."""
    handler = respond(f"{status} X", b"{}", {"Retry-After": "7"})
    with raw_server(handler) as base, within(2):
        http = client()
        response = http.request("GET", base + "/")
        with pytest.raises(error) as info:
            http.raise_for_status(response)
    if status == 429:
        assert info.value.retry_after == 7  # type: ignore[attr-defined]


def test_retry_after_formats() -> None:
    """Retry-After is read as delay-seconds or an HTTP-date."""
    now = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.timezone.utc)
    assert parse_retry_after("21600") == 21600
    assert parse_retry_after("Sat, 28 Nov 2026 12:00:30 GMT", now=now) == 30
    assert parse_retry_after("Sat, 28 Nov 2026 11:00:00 GMT", now=now) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(
            {
                "ua": self.headers.get("User-Agent"),
                "cookie": self.headers.get("Cookie"),
                "path": self.path,
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", "session=abc")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def echo_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_user_agent_keepalive_and_no_cookies(echo_server: str) -> None:
    """The SDK names itself, and cookies never carry from one lookup to the next."""
    http = client()
    with within(2):
        first = http.json_body(http.request("GET", echo_server + "/a"))
        second = http.json_body(http.request("GET", echo_server + "/b"))
    assert first["ua"] == USER_AGENT
    assert USER_AGENT.startswith("recyclecheck/")
    assert second["cookie"] is None


def test_tls_is_verified(tmp_path: Path) -> None:
    """A certificate from an unknown CA is refused; the same server with ca_bundle works."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"https://127.0.0.1:{server.server_address[1]}/x"
    try:
        with within(2), pytest.raises(ProviderUnavailable, match="TLS") as info:
            client().request("GET", url)
        assert not info.value.retryable
        bundle = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(bundle))
        with within(2):
            assert client(ca_bundle=str(bundle)).request("GET", url).status == 200
    finally:
        server.shutdown()
        server.server_close()


def test_environment_proxy_is_honoured(echo_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY from the environment is used: the echo server receives the proxy-form request."""
    monkeypatch.setenv("HTTP_PROXY", echo_server)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    http = client()
    with within(2):
        seen = http.json_body(http.request("GET", "http://provider.invalid/x"))
    assert seen["path"] == "http://provider.invalid/x"
    monkeypatch.setenv("NO_PROXY", "provider.invalid")
    with within(2), pytest.raises(ProviderUnavailable):
        client().request("GET", "http://provider.invalid/x")


def test_explicit_proxies_override_the_environment(
    echo_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """proxies= wins over the environment."""
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    with within(2):
        assert (
            client(proxies={"http": echo_server}).request("GET", "http://x.invalid/").status == 200
        )


def test_compressed_bodies_are_refused_and_identity_is_asked_for(echo_server: str) -> None:
    """We ask for identity encoding; a server that compresses anyway gets a clear error."""
    gz = respond("200 OK", b"\x1f\x8b\x08\x00", {"Content-Encoding": "gzip"})
    with (
        raw_server(gz) as base,
        within(2),
        pytest.raises(ProviderResponseError, match="compressed"),
    ):
        client().request("GET", base + "/")
    assert client()._session.headers["Accept-Encoding"] == "identity"


def test_a_late_byte_does_not_extend_the_wait_past_the_deadline() -> None:
    """Each body read waits only for what is left of the deadline, not the whole budget."""

    def late(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nab")
        time.sleep(0.3)
        conn.sendall(b"c")
        time.sleep(2)

    with raw_server(late) as base, within(0.4):
        started = time.monotonic()
        with pytest.raises(ProviderTimeout):
            client().request("GET", base + "/")
        assert time.monotonic() - started < 0.5


class _KeepAlive(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        status, body = (302, b"") if self.path == "/redirect" else (200, b"{}")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _open_sockets_to(port: int) -> int:
    """Sockets of this process still open and connected to ``port`` on 127.0.0.1."""
    count = 0
    for candidate in gc.get_objects():
        if isinstance(candidate, socket.socket) and candidate.fileno() != -1:
            with contextlib.suppress(OSError):  # not connected
                count += candidate.getpeername() == ("127.0.0.1", port)
    return count


def test_close_shuts_pooled_sockets_while_an_error_still_refers_to_the_pool() -> None:
    """close() closes every idle pooled connection at once, not when the GC gets round to it.

    urllib3 2 leaves a cleared pool to its finalizer, and an error's traceback
    holds the response that holds the pool: a caller keeping the last error (or
    a worker thread keeping its last task) kept the sockets open after close().
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KeepAlive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    base = f"http://127.0.0.1:{port}"
    try:
        http = client()
        with within(2):
            # ``info`` keeps the error, and with it the pool, alive past close().
            with pytest.raises(ProviderResponseError, match="redirect") as info:
                http.request("GET", base + "/redirect")
            http.request("GET", base + "/ok")  # leaves one idle keep-alive connection
        assert _open_sockets_to(port) == 1
        http.close()
        assert _open_sockets_to(port) == 0, f"still open after close(), with {info.value!r} alive"
    finally:
        server.shutdown()
        server.server_close()
