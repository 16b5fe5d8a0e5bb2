"""The HTTP server under the fake collectors: a real server on 127.0.0.1 (ephemeral port) in a
daemon thread, recording every request, with fault injection."""

from __future__ import annotations

import gzip
import socket
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import orjson


@dataclass
class Recorded:
    """One request as the fake saw it (``body`` is after gzip decoding)."""

    method: str
    path: str
    headers: dict[str, str]
    raw_body: bytes
    body: bytes
    status: int = 0
    at: float = field(default_factory=time.time)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Recorded], Reply]


class FakeServer:
    """Base of :class:`~apimon.testing.FakeMoesif` and :class:`~apimon.testing.FakeMoEngage`.

    Fault injection: :meth:`fail_next` (answer N requests with a status), :meth:`drop_next`
    (close N connections without answering), ``latency`` / :attr:`delay` (every answer waits
    that many seconds, each request on its own, as a collector that far away would),
    :meth:`stall` and :meth:`resume` (hold every answer until resumed), :meth:`down` and
    :meth:`up` (stop listening, then listen again on the same port). :attr:`max_concurrent` is
    the most requests it held at once.
    """

    max_body_bytes = 50 * 1024 * 1024
    #: The longest a stalled request is held before it is answered anyway.
    MAX_STALL = 120.0

    def __init__(self, latency: float = 0.0) -> None:
        self.requests: list[Recorded] = []
        self.delay = latency
        self.max_concurrent = 0
        self._concurrent = 0
        self._running = threading.Event()
        self._running.set()
        self._lock = threading.Lock()
        # (path prefix or None for any, reply or None to drop the connection)
        self._faults: list[tuple[str | None, Reply | None]] = []
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[Any] = set()
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeServer:
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; with Nagle on, each answer waits for a delayed ACK.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                return

            def setup(self) -> None:
                super().setup()
                with fake._lock:
                    fake._connections.add(self.connection)

            def finish(self) -> None:
                with fake._lock:
                    fake._connections.discard(self.connection)
                super().finish()

            def do_GET(self) -> None:
                fake._serve(self, "GET")

            def do_POST(self) -> None:
                fake._serve(self, "POST")

        server = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        server.daemon_threads = True
        server.allow_reuse_address = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        # Keep-alive connections outlive the listening socket: cut them too, as a dead host would.
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(5)

    def down(self) -> None:
        """Stop listening: connections are refused until :meth:`up`."""
        self.stop()

    def up(self) -> None:
        """Listen again on the same port."""
        ThreadingHTTPServer.allow_reuse_address = True
        self.start()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- fault injection ----------------------------------------------------------------------

    def fail_next(
        self, n: int, status: int, body: Any = None, headers: dict[str, str] | None = None, path: str | None = None
    ) -> None:
        """Answer the next ``n`` requests (to paths starting with ``path``, if given) with ``status``."""
        data = orjson.dumps(body) if body is not None and not isinstance(body, bytes) else (body or b"")
        with self._lock:
            self._faults.extend((path, Reply(status, data, dict(headers or {}))) for _ in range(n))

    def drop_next(self, n: int, path: str | None = None) -> None:
        """Close the next ``n`` connections (to ``path``...) without answering."""
        with self._lock:
            self._faults.extend((path, None) for _ in range(n))

    def stall(self) -> None:
        """Hold every answer (requests are read, then wait) until :meth:`resume`."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def _take_fault(self, path: str) -> Reply | None | str:
        with self._lock:
            for i, (prefix, reply) in enumerate(self._faults):
                if prefix is None or path.startswith(prefix):
                    del self._faults[i]
                    return reply
        return "none"

    # -- serving ------------------------------------------------------------------------------

    def handle(self, request: Recorded) -> Reply:  # pragma: no cover - subclasses answer
        raise NotImplementedError

    def _serve(self, h: BaseHTTPRequestHandler, method: str) -> None:
        if self._server is None:  # down: a request that slipped in on an old connection gets nothing
            h.close_connection = True
            return
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(min(length, self.max_body_bytes + 1)) if length else b""
        headers = {k.lower(): v for k, v in h.headers.items()}
        encoding = headers.get("content-encoding", "").lower()
        try:
            if encoding == "gzip":
                body = gzip.decompress(raw)
            elif encoding == "deflate":
                body = zlib.decompress(raw)
            else:
                body = raw
            bad_encoding = False
        except (OSError, zlib.error, EOFError):
            body, bad_encoding = raw, True
        record = Recorded(method, h.path, headers, raw, body)
        with self._lock:
            self._concurrent += 1
            self.max_concurrent = max(self.max_concurrent, self._concurrent)
        try:
            # The distance (and a stall) comes before the answer is decided, so a fault or a
            # rate limit applies to when the request "arrives", as it would far away.
            self._running.wait(self.MAX_STALL)
            if self.delay:
                time.sleep(self.delay)
        finally:
            # No longer in flight once answered: counted out before the reply is written, since
            # the client may send its next request the moment it reads this one's answer.
            with self._lock:
                self._concurrent -= 1
        self._answer(h, record, bad_encoding)

    def _answer(self, h: BaseHTTPRequestHandler, record: Recorded, bad_encoding: bool) -> None:
        raw = record.raw_body
        fault = self._take_fault(h.path)
        if fault is None:
            # Drop: close the socket without a word.
            h.close_connection = True
            h.connection.shutdown(2)
            record.status = -1
            with self._lock:
                self.requests.append(record)
            return
        if isinstance(fault, Reply):
            reply = fault
        elif bad_encoding:
            reply = Reply(400, b'{"error": "the body is not valid gzip"}')
        elif len(raw) > self.max_body_bytes:
            reply = Reply(413, b'{"error": "payload too large"}')
        else:
            try:
                reply = self.handle(record)
            except Exception as exc:  # a bug in the fake must be visible, not a hang
                reply = Reply(500, orjson.dumps({"error": f"fake collector error: {exc!r}"}))
        record.status = reply.status
        with self._lock:
            self.requests.append(record)
        h.send_response(reply.status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(reply.body)
