"""FakeProviderServer: a real local HTTP(S) server speaking every supported wire format."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import select
import shutil
import socket
import ssl
import struct
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import TCPServer
from typing import Any, TypeVar

import attrs
from requests.structures import CaseInsensitiveDict

from .._phone import mask
from ..exceptions import ConfigurationError
from ..providers._answers import Provider
from ..providers._sandbox import SandboxProvider, Scripted
from ..providers.aliyun import AliyunProvider
from ..providers.camara import CamaraProvider
from ..providers.rnd import RndProvider
from ..providers.telesign import TelesignProvider
from ..providers.twilio import TwilioProvider
from . import _wire_aliyun, _wire_camara, _wire_rnd, _wire_telesign, _wire_twilio
from ._backend import Backend, Credentials, normalise_number
from ._faults import (
    DELIVERY_FAULTS,
    FAULT_TYPES,
    ChunkDrip,
    Fault,
    Hang,
    HeaderDrip,
    HugeBody,
    Latency,
    Reset,
    SlowDrip,
)
from ._wire_base import Incoming, Parsed, ProviderWire, Reply, Wire, fault_reply
from ._wire_batch import BatchParsed, scripted_fault

__all__ = ["FakeProviderServer", "RecordedRequest"]

_log = logging.getLogger("recyclecheck.testing")

#: Every wire format the server speaks, tried in turn to route a request.
WIRES: tuple[ProviderWire, ...] = (
    _wire_twilio.WIRE,
    _wire_telesign.WIRE,
    _wire_camara.WIRE,
    _wire_aliyun.WIRE,
    _wire_rnd.WIRE,
)
_WIRES_BY_NAME: Mapping[str, ProviderWire] = {wire.name: wire for wire in WIRES}
_P = TypeVar("_P")

#: Largest request body the server reads.
MAX_REQUEST_BODY = 1024 * 1024
#: How long an idle keep-alive connection (or a TLS handshake) may sit before it is closed.
IDLE_TIMEOUT = 30.0
_HANDSHAKE_TIMEOUT = 5.0
_POLL = 0.02
_CHUNK = 64 * 1024

#: How the server's answer to a request ended (:attr:`RecordedRequest.ended`).
SENT = "sent"
CLIENT_CLOSED = "client_closed"
RESET = "reset"
STOPPED = "stopped"


@attrs.frozen
class RecordedRequest:
    """One request the server received, for assertions.

    ``provider`` is the wire format it was routed to (``"unknown"`` when
    none), ``endpoint`` ``"lookup"``, ``"batch"`` or ``"token"``; ``number``
    the E.164 number a lookup asked about (``None`` when absent or, for a
    hash, unmatched) and ``since`` the first day a change would count for it;
    a batch (Twilio's ``POST /v2/batch/query``, an RND ``tnList`` of several
    items) has ``numbers`` instead, every number it asked about in request
    order (``None`` where unreadable; :attr:`count` of them, shown masked by
    :attr:`masked_numbers`); ``fault`` the injected fault that answered it, if
    any.  ``ended`` says
    how the server's answer ended: ``None`` while it is still being sent (a
    drip, a hang), ``"sent"`` once all of it was written, ``"client_closed"``
    when the client hung up first, ``"reset"`` for a :class:`Reset`, and
    ``"stopped"`` when the server stopped mid-answer.  Each record is a
    snapshot: read :attr:`FakeProviderServer.requests` again to see a later
    ``ended``.  The ``repr`` shows only the masked number (a batch's count).
    """

    provider: str
    endpoint: str | None
    method: str
    path: str = attrs.field(repr=False)
    query: str = attrs.field(repr=False)
    headers: Mapping[str, str] = attrs.field(repr=False)
    body: bytes = attrs.field(repr=False)
    number: str | None = attrs.field(repr=False)
    since: dt.date | None = None
    fault: Fault | None = None
    ended: str | None = None
    numbers: tuple[str | None, ...] = attrs.field(default=(), repr=False)

    @property
    def masked(self) -> str | None:
        """The number, masked for display (``+86 138****8000``), or ``None``."""
        return None if self.number is None else mask(self.number)

    @property
    def count(self) -> int:
        """How many numbers a batch asked about (0 for any other request)."""
        return len(self.numbers)

    @property
    def masked_numbers(self) -> tuple[str | None, ...]:
        """A batch's numbers, masked for display, in request order."""
        return tuple(None if number is None else mask(number) for number in self.numbers)

    def json(self) -> Any:
        """The body decoded as JSON (``None`` when it is not JSON)."""
        return Incoming(self.method, self.path, self.query, self.headers, self.body, "").json()

    def __repr__(self) -> str:
        asked = f"count={self.count}" if self.numbers else f"number={self.masked}"
        return (
            f"<RecordedRequest {self.provider} {self.endpoint} {self.method} "
            f"{asked} since={self.since} fault={self.fault!r} ended={self.ended}>"
        )


@attrs.define
class _Armed:
    fault: Fault
    number: str | None
    remaining: int | None


class _HTTPServer(ThreadingHTTPServer):
    """Threads per connection, every connection tracked so stop() can cut it."""

    daemon_threads = True
    block_on_close = False
    # socketserver's default listen backlog is 5: a concurrent client reconnecting
    # while the accept loop waits for the GIL overflowed it, and the kernel dropped
    # the extra SYNs, stalling each of those clients for a retransmit (1 s or more).
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        fake: FakeProviderServer,
        context: ssl.SSLContext | None,
    ) -> None:
        self.fake = fake
        self.ssl_context = context
        self.stopping = threading.Event()
        self._open: set[socket.socket] = set()
        self._workers: set[threading.Thread] = set()
        self._guard = threading.Lock()
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall on DNS.
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.track(request)
        thread = threading.Thread(
            target=self._run, args=(request, client_address), daemon=True, name="fake-provider"
        )
        with self._guard:
            self._workers.add(thread)
        thread.start()

    def _run(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            self.untrack(request)
            with self._guard:
                self._workers.discard(threading.current_thread())

    def track(self, sock: socket.socket) -> None:
        with self._guard:
            self._open.add(sock)
        if self.stopping.is_set():
            _cut(sock)

    def untrack(self, sock: socket.socket) -> None:
        with self._guard:
            self._open.discard(sock)

    def cut_all(self, join: float) -> None:
        """Shut every open connection, then wait up to ``join`` seconds for their threads."""
        with self._guard:
            sockets, threads = list(self._open), list(self._workers)
        for sock in sockets:
            _cut(sock)
        for thread in threads:
            thread.join(join / max(1, len(threads)))

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-answer and refused TLS handshakes are expected here.
        _log.debug("fake provider connection ended: %s", type(sys.exc_info()[1]).__name__)


def _readable(sock: socket.socket, wait: float) -> bool:
    """Whether ``sock`` has data or an end of stream within ``wait`` seconds.

    ``poll`` where there is one: ``select`` refuses descriptors above 1023,
    which a busy test process (a soak, many servers) reaches.
    """
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLPRI)
        return bool(poller.poll(wait * 1000))
    readable, _, _ = select.select([sock], [], [], wait)
    return bool(readable)


def _cut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError, ValueError):  # already closed or detached
        sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "recyclecheck-fake"
    sys_version = ""
    timeout = IDLE_TIMEOUT
    server: _HTTPServer

    def setup(self) -> None:
        # Headers and body go out in separate writes: without this, Nagle's
        # algorithm and the client's delayed ACK add ~40 ms to every answer.
        with contextlib.suppress(OSError):
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        context = self.server.ssl_context
        if context is not None:
            raw = self.request
            raw.settimeout(_HANDSHAKE_TIMEOUT)
            wrapped = context.wrap_socket(raw, server_side=True)
            self.server.untrack(raw)
            self.server.track(wrapped)
            self.request = wrapped
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.request)
            if isinstance(self.request, ssl.SSLSocket):
                # socketserver closes only the raw socket, which the TLS wrapper detached.
                self.request.close()

    # http.server writes an access log line per request to stderr; paths hold numbers.
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        """Serve a GET."""
        self._serve()

    def do_POST(self) -> None:
        """Serve a POST."""
        self._serve()

    def _serve(self) -> None:
        record: RecordedRequest | None = None
        ended = CLIENT_CLOSED
        try:
            incoming = self._read()
            if incoming is None:
                return
            fake = self.server.fake
            fault, reply, record = fake._exchange(incoming)
            ended = self._answer(fault, reply)
        except OSError:
            # The client went away (or stop() cut the socket); nothing left to tell it.
            self.close_connection = True
            ended = STOPPED if self.server.stopping.is_set() else CLIENT_CLOSED
        finally:
            if record is not None:
                self.server.fake._ended(record, ended)

    def _read(self) -> Incoming | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._send(Reply.json(411, {"error": "Content-Length required"}))
            return None
        length_text = self.headers.get("Content-Length", "0").strip() or "0"
        if not length_text.isdigit() or int(length_text) > MAX_REQUEST_BODY:
            self.close_connection = True
            self._send(Reply.json(413, {"error": "request body too large"}))
            return None
        body = self.rfile.read(int(length_text))
        parts = urllib.parse.urlsplit(self.path)
        return Incoming(
            self.command,
            parts.path,
            parts.query,
            dict(self.headers.items()),
            body,
            self.server.fake.url,
            parts.path,
        )

    def _answer(self, fault: Fault | None, reply: Reply | None) -> str:
        """Answer (or fail) one request; return how it ended (see RecordedRequest.ended)."""
        if isinstance(fault, Latency) and not self._pause(fault.seconds):
            self.close_connection = True
            return self._gone()
        if isinstance(fault, Hang):
            return self._hang()
        if isinstance(fault, Reset):
            return self._reset()
        if isinstance(fault, HugeBody):
            return self._huge(fault)
        assert reply is not None  # noqa: S101 - only transport faults come without a reply
        return self._send(reply, fault)

    def _send(self, reply: Reply, fault: Fault | None = None) -> str:
        """Send ``reply``, at once or as a drip fault says; return how it ended."""
        head = self._head(reply, chunked=isinstance(fault, ChunkDrip))
        if isinstance(fault, HeaderDrip):
            sent = self._dribble(head, fault.byte_interval)
            if sent:
                self.wfile.write(reply.body)
        elif isinstance(fault, SlowDrip):
            self.wfile.write(head)
            sent = self._dribble(reply.body, fault.byte_interval)
        elif isinstance(fault, ChunkDrip):
            self.wfile.write(head)
            sent = self._chunked(reply.body, fault)
        else:
            self.wfile.write(head + reply.body)  # one write: one segment for small answers
            sent = True
        return SENT if sent else self._gone()

    def _head(self, reply: Reply, *, chunked: bool) -> bytes:
        """The status line and headers of ``reply``, framed by length or as chunks."""
        phrase = self.responses.get(reply.status, ("",))[0]
        lines = [
            f"{self.protocol_version} {reply.status} {phrase}",
            f"Server: {self.version_string()}",
            f"Date: {self.date_time_string()}",
        ]
        lines.extend(f"{name}: {value}" for name, value in reply.headers.items())
        if chunked:
            lines.append("Transfer-Encoding: chunked")
        else:
            lines.append(f"Content-Length: {len(reply.body)}")
        if self.close_connection:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _chunked(self, body: bytes, fault: ChunkDrip) -> bool:
        """Send ``body`` as one chunk, its wide size lines and CRLFs one byte at a time."""
        interval, digits = fault.byte_interval, fault.size_digits
        if not self._dribble(f"{len(body):0{digits}x}\r\n".encode("ascii"), interval):
            return False
        self.wfile.write(body)
        return self._dribble(b"\r\n" + b"0" * digits + b"\r\n\r\n", interval)

    def _dribble(self, data: bytes, interval: float) -> bool:
        """Write ``data`` one byte every ``interval``; False once the client or server quits."""
        for byte in data:
            if not self._pause(interval):
                self.close_connection = True
                return False
            self.wfile.write(bytes((byte,)))
        return True

    def _pause(self, seconds: float) -> bool:
        """Wait ``seconds``; False as soon as the server stops or the client hangs up.

        Whatever the fault, a thread holding a connection notices either within
        ``_POLL`` seconds, so stop() and a client that gives up end it promptly.
        """
        end = time.monotonic() + seconds
        while not self.server.stopping.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return True
            if self._client_left(min(left, _POLL)):
                return False
        return False

    def _client_left(self, wait: float) -> bool:
        """Whether the client hung up (or sent more), waiting up to ``wait`` seconds to see."""
        try:
            return _readable(self.connection, wait)
        except (OSError, ValueError):  # closed or cut under us
            return True

    def _gone(self) -> str:
        return STOPPED if self.server.stopping.is_set() else CLIENT_CLOSED

    def _hang(self) -> str:
        """Hold the connection without a word until the client leaves or the server stops."""
        self.close_connection = True
        while self._pause(3600.0):
            pass
        return self._gone()

    def _reset(self) -> str:
        """Abort the connection with a TCP RST."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        return RESET

    def _huge(self, fault: HugeBody) -> str:
        """Stream a JSON body of ``fault.size`` bytes without building it in memory."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if fault.declare_length:
            self.send_header("Content-Length", str(fault.size))
        else:
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        head, tail = b'{"padding": "', b'"}'
        self.wfile.write(head)
        left = fault.size - len(head) - len(tail)
        chunk = b"x" * _CHUNK
        while left > 0:
            if self.server.stopping.is_set():
                self.close_connection = True
                return STOPPED
            self.wfile.write(chunk[:left])
            left -= min(left, _CHUNK)
        self.wfile.write(tail)
        return SENT


class FakeProviderServer:
    """A real HTTP(S) server on 127.0.0.1 speaking every provider's wire format.

    It serves Twilio Lookup, Telesign Phone ID, CAMARA Number Recycling (with
    its OAuth2 token endpoint), Alibaba Dytnsapi and the US RND on one port,
    checks credentials the way each real service does (signatures included),
    answers from scripted numbers, records every request and injects faults.

    ``numbers`` maps numbers to what :class:`~recyclecheck.providers.SandboxProvider`
    accepts: a reissue date, ``None`` (never reissued), any ``Answer``, or a
    ``ProviderError`` to fail with.  Unlisted numbers get each provider's "no
    data" answer, and numbers outside a provider's coverage (a Chinese number
    asked of Twilio, say) its out-of-coverage answer, whatever their script.
    ``tls=True`` serves HTTPS with a throwaway CA (needs
    ``trustme``; see :attr:`ca_bundle`).  ``credentials`` are those accepted
    (fake defaults); ``token_lifetime`` is the ``expires_in`` of issued tokens.

    Use it as a context manager, or from a pytest fixture::

        @pytest.fixture
        def fake():
            with FakeProviderServer({"+8613800138000": date(2024, 3, 1)}) as server:
                yield server

        def test_login(fake):
            guard = recyclecheck.Guard(fake.twilio())
    """

    def __init__(
        self,
        numbers: Mapping[str, Scripted] | None = None,
        *,
        tls: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: Credentials | None = None,
        token_lifetime: int = 3600,
    ) -> None:
        if not isinstance(tls, bool):
            raise ConfigurationError("tls must be a bool")
        if not isinstance(host, str) or not host:
            raise ConfigurationError("host must be a non-empty str")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigurationError("port must be an int from 0 to 65535")
        if credentials is not None and not isinstance(credentials, Credentials):
            raise ConfigurationError("credentials must be a recyclecheck.testing.Credentials")
        self.credentials = credentials if credentials is not None else Credentials()
        self.tls = tls
        self._host = host
        self._port = port
        self._backend = Backend(
            numbers, credentials=self.credentials, token_lifetime=token_lifetime
        )
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._faults: list[_Armed] = []
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None
        self._ca_dir: str | None = None
        self._ca_bundle: str | None = None

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **options: Any) -> FakeProviderServer:
        """Script the server from a sandbox JSON file (as :meth:`SandboxProvider.from_file`).

        ``options`` are the constructor's keyword arguments.
        """
        return cls(SandboxProvider.from_file(path).scripted, **options)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> FakeProviderServer:
        """Bind, start serving on a background thread, and return ``self``."""
        if self._httpd is not None:
            raise RuntimeError("FakeProviderServer is already running")
        context = self._tls_context() if self.tls else None
        try:
            httpd = _HTTPServer((self._host, self._port), self, context)
        except OSError:
            self._drop_ca()
            raise
        port = httpd.server_address[1]
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._url = f"{'https' if self.tls else 'http'}://{host}:{port}"
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        _log.debug("fake provider server listening on %s", self._url)
        return self

    def stop(self) -> None:
        """Stop serving and cut every open connection (hung ones too); returns promptly."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        httpd.stopping.set()
        httpd.shutdown()
        httpd.cut_all(join=1.0)
        httpd.server_close()
        if thread is not None:
            thread.join(1.0)
        self._httpd = self._thread = None
        self._drop_ca()
        _log.debug("fake provider server stopped")

    def __enter__(self) -> FakeProviderServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _tls_context(self) -> ssl.SSLContext:
        try:
            import trustme  # noqa: PLC0415 - a test-only extra, imported only when TLS is asked for
        except ImportError:
            raise ConfigurationError(
                "tls=True needs trustme: pip install 'recyclecheck[testing]'"
            ) from None
        ca = trustme.CA()
        names = ["127.0.0.1", "localhost", "::1"]
        if self._host not in names:
            names.append(self._host)
        cert = ca.issue_cert(*names)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        self._ca_dir = tempfile.mkdtemp(prefix="recyclecheck-fake-ca-")
        bundle = Path(self._ca_dir) / "ca.pem"
        ca.cert_pem.write_to_path(str(bundle))
        self._ca_bundle = str(bundle)
        return context

    def _drop_ca(self) -> None:
        if self._ca_dir is not None:
            shutil.rmtree(self._ca_dir, ignore_errors=True)
        self._ca_dir = self._ca_bundle = None

    # -- addresses ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL (``http://127.0.0.1:PORT``) every adapter points at."""
        if self._url is None or self._httpd is None:
            raise RuntimeError("FakeProviderServer is not running: call start() first")
        return self._url

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        if self._httpd is None:
            raise RuntimeError("FakeProviderServer is not running: call start() first")
        return int(self._httpd.server_address[1])

    @property
    def ca_bundle(self) -> str | None:
        """Path of the throwaway CA's PEM (``tls=True`` only; ``None`` over plain HTTP)."""
        if self.tls and self._ca_bundle is None:
            raise RuntimeError("FakeProviderServer is not running: call start() first")
        return self._ca_bundle

    # -- script, faults, records ----------------------------------------------------------

    def script(self, number: str, value: Scripted) -> None:
        """Script (or re-script) one number, with the values ``numbers`` accepts."""
        self._backend.script({number: value})

    def inject(self, fault: Fault, *, number: str | None = None, times: int | None = None) -> None:
        """Answer with ``fault``: for lookups of ``number`` only, or for every request.

        ``times=N`` fires it for the next N matching requests, then stops (e.g.
        ``inject(ServerError(), times=2)``: two 503s, then normal answers).
        A number's own faults win over global ones; earlier injections first.
        Global faults also hit token endpoints.  A batch request listing
        ``number`` is a matching request: the fault answers the whole batch.
        """
        if not isinstance(fault, FAULT_TYPES):
            raise ConfigurationError("fault must be one of the recyclecheck.testing faults")
        if times is not None and (
            isinstance(times, bool) or not isinstance(times, int) or times < 1
        ):
            raise ConfigurationError("times must be a positive int or None")
        e164 = None if number is None else normalise_number(number)
        with self._lock:
            self._faults.append(_Armed(fault, e164, times))

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        with self._lock:
            self._faults.clear()

    def expire_tokens(self) -> None:
        """Expire every issued CAMARA and RND token, as if their lifetime had passed."""
        self._backend.expire_tokens()

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Forget requests, faults and tokens, and restore the numbers given at construction."""
        with self._lock:
            self._requests.clear()
            self._faults.clear()
        self._backend.reset()

    def _take_fault(self, parsed: Parsed) -> Fault | None:
        """The injected fault for this request (a number's own first), counting it down."""
        if isinstance(parsed, BatchParsed):
            asked = {number for number in parsed.numbers if number is not None}
        else:
            asked = {parsed.number} if parsed.number is not None else set()
        with self._lock:
            for own in (True, False) if asked else (False,):
                for armed in self._faults:
                    if (armed.number in asked) if own else armed.number is None:
                        if armed.remaining is not None:
                            armed.remaining -= 1
                            if armed.remaining <= 0:
                                self._faults.remove(armed)
                        return armed.fault
        return None

    # -- one exchange -------------------------------------------------------------------

    def _exchange(self, incoming: Incoming) -> tuple[Fault | None, Reply | None, RecordedRequest]:
        """Route, record and answer one request; the reply is None for transport faults."""
        wire, endpoint = _route(incoming)
        parsed = wire.parse(incoming, endpoint, self._backend)
        fault = self._take_fault(parsed)
        if fault is None and parsed.endpoint in ("lookup", "batch"):
            fault = scripted_fault(parsed, self._backend)
        record = self._record(
            wire.name, parsed.endpoint if wire is not _NOT_FOUND else None, incoming, parsed, fault
        )
        reply: Reply | None
        if fault is None or isinstance(fault, DELIVERY_FAULTS):
            reply = wire.respond(incoming, parsed, self._backend)
        elif isinstance(fault, (Hang, Reset, HugeBody)):
            reply = None
        else:
            reply = fault_reply(wire, incoming, parsed, fault)
        _log.debug(
            "fake %s %s %s %s -> %s",
            wire.name,
            parsed.endpoint,
            incoming.method,
            f"count={len(parsed.numbers)}"
            if isinstance(parsed, BatchParsed)
            else f"number={'-' if parsed.number is None else mask(parsed.number)}",
            reply.status if reply is not None else type(fault).__name__,
        )
        return fault, reply, record

    def _record(
        self,
        provider: str,
        endpoint: str | None,
        incoming: Incoming,
        parsed: Parsed,
        fault: Fault | None,
    ) -> RecordedRequest:
        record = RecordedRequest(
            provider=provider,
            endpoint=endpoint,
            method=incoming.method,
            path=incoming.path,
            query=incoming.query,
            headers=CaseInsensitiveDict(incoming.headers),
            body=incoming.body,
            number=parsed.number,
            since=parsed.since,
            fault=fault,
            numbers=parsed.numbers if isinstance(parsed, BatchParsed) else (),
        )
        with self._lock:
            self._requests.append(record)
        return record

    def _ended(self, record: RecordedRequest, ended: str) -> None:
        """Note how the answer to ``record`` ended (unless reset() forgot it meanwhile)."""
        with self._lock:
            # From the newest: the record is one of the last few (soaks record 100k).
            for index in range(len(self._requests) - 1, -1, -1):
                if self._requests[index] is record:
                    self._requests[index] = attrs.evolve(record, ended=ended)
                    return

    # -- adapters wired to this server ----------------------------------------------------

    def _transport(self) -> dict[str, Any]:
        return {"ca_bundle": self.ca_bundle} if self.tls else {}

    def environment(self) -> dict[str, str]:
        """Environment variables that point every adapter's ``from_env()`` at this server.

        With them exported, ``recyclecheck check --provider NAME`` and an app's own
        ``XProvider.from_env()`` talk to the fake instead of the real service
        (plain HTTP only: ``from_env`` takes no CA bundle).
        """
        environment: dict[str, str] = {}
        for wire in WIRES:
            environment.update(wire.environment(self.url, self.credentials))
        return environment

    def provider(self, name: str, **options: Any) -> Provider:
        """The adapter registered as ``name`` pointed at this server with accepted credentials.

        ``name`` is a :data:`~recyclecheck._registry.PROVIDERS` name (``"twilio"``,
        ``"telesign"``, ``"camara"``, ``"aliyun"``, ``"rnd"``); an unknown one is a
        :class:`~recyclecheck.ConfigurationError` listing the known names.  With
        ``tls=True`` the adapter trusts the throwaway CA.  ``options`` are the
        adapter's own choices (Telesign's and CAMARA's ``auth``, Alibaba's ``mask``)
        or keyword overrides replacing any constructor argument (``auth_token="wrong"``).
        """
        wire = _WIRES_BY_NAME.get(name) if isinstance(name, str) else None
        if wire is None:
            known = ", ".join(sorted(_WIRES_BY_NAME))
            raise ConfigurationError(f"unknown provider {name!r}: one of {known}")
        return self._adapter(wire.adapter, options)

    def _adapter(self, build: Callable[..., _P], options: Mapping[str, Any]) -> _P:
        """``build`` (a wire's ``adapter``) called with this server's URL, credentials and TLS."""
        return build(self.url, self.credentials, self._transport(), **options)

    def twilio(self, **overrides: Any) -> TwilioProvider:
        """``provider("twilio")``: a :class:`TwilioProvider` with the accepted SID and token.

        Keyword ``overrides`` replace any constructor argument (e.g. ``auth_token="wrong"``).
        """
        return self._adapter(_wire_twilio.WIRE.adapter, overrides)

    def telesign(self, auth: str = "digest", **overrides: Any) -> TelesignProvider:
        """``provider("telesign")``: a :class:`TelesignProvider`; ``auth``: digest or basic."""
        return self._adapter(_wire_telesign.WIRE.adapter, {"auth": auth, **overrides})

    def camara(self, auth: str = "secret", **overrides: Any) -> CamaraProvider:
        """``provider("camara")``: a :class:`CamaraProvider` with its API root here.

        ``auth`` is ``"token"`` (a static bearer token), ``"secret"`` (client
        credentials with a client secret) or ``"private_key_jwt"``.
        """
        return self._adapter(_wire_camara.WIRE.adapter, {"auth": auth, **overrides})

    def aliyun(self, mask: str = "SHA256", **overrides: Any) -> AliyunProvider:
        """``provider("aliyun")``: an :class:`AliyunProvider` sending the number as ``mask``."""
        return self._adapter(_wire_aliyun.WIRE.adapter, {"mask": mask, **overrides})

    def rnd(self, **overrides: Any) -> RndProvider:
        """``provider("rnd")``: an :class:`RndProvider` with the accepted refresh token."""
        return self._adapter(_wire_rnd.WIRE.adapter, overrides)

    def __repr__(self) -> str:
        where = self._url if self._httpd is not None else "stopped"
        return f"<FakeProviderServer {where} tls={self.tls}>"


def _route(incoming: Incoming) -> tuple[Wire, str]:
    for wire in WIRES:
        endpoint = wire.route(incoming.method, incoming.route)
        if endpoint is not None:
            return wire, endpoint
    return _NOT_FOUND, "unknown"


class _NotFoundWire:
    """Generic error replies for requests no provider endpoint matches."""

    name = "unknown"

    def environment(self, url: str, credentials: Credentials) -> dict[str, str]:
        return {}  # no adapter speaks this "wire"

    def route(self, method: str, route: str) -> str | None:
        return None

    def parse(self, request: Incoming, endpoint: str, backend: Backend) -> Parsed:
        return Parsed(endpoint)

    def respond(self, request: Incoming, parsed: Parsed, backend: Backend) -> Reply:
        return Reply.json(404, {"error": "not found"})

    def refused(self, request: Incoming, parsed: Parsed) -> Reply:
        return Reply.json(401, {"error": "unauthorized"})

    def rate_limited(self, request: Incoming, parsed: Parsed, retry_after: str | None) -> Reply:
        headers = {"Retry-After": retry_after} if retry_after is not None else None
        return Reply.json(429, {"error": "too many requests"}, headers)

    def server_error(self, request: Incoming, parsed: Parsed, status: int) -> Reply:
        return Reply.json(status, {"error": "server error"})


_NOT_FOUND = _NotFoundWire()
