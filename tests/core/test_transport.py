"""The sinks' HTTP: one keep-alive connection, replaced when the server closed it, and bounded
waits. Real servers on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from apimon.transport import IDLE_CHECK, NetworkError, Transport


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.endswith("/slow"):
            time.sleep(0.2)  # several requests overlap
        with self.server.lock:
            self.server.bodies.append(body)
        close = self.path.endswith("/close")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"{}")
        self.close_connection = close or self.server.close_after_answer


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.connections = 0
        self.bodies: list[bytes] = []
        self.close_after_answer = False


@contextmanager
def _server() -> Iterator[_Server]:
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _transport(server: _Server, **kwargs: float) -> Transport:
    return Transport(f"http://127.0.0.1:{server.server_port}/base", {"X-Test": "1"}, **kwargs)


def test_batches_in_a_row_share_one_connection() -> None:
    with _server() as server:
        transport = _transport(server)
        answers = [transport.request("POST", "/v1/events/batch", b"[%d]" % i) for i in range(5)]
        transport.close()
    assert [(a.status, a.body) for a in answers] == [(200, b"{}")] * 5
    assert answers[0].headers["content-type"] == "application/json"
    assert server.bodies == [b"[0]", b"[1]", b"[2]", b"[3]", b"[4]"]
    assert server.connections == 1


def test_a_connection_the_server_closed_is_replaced_without_an_error() -> None:
    with _server() as server:
        transport = _transport(server)
        # "Connection: close" in the answer: the next request opens a new connection.
        assert transport.request("POST", "/close", b"a").status == 200
        assert transport.request("POST", "/x", b"b").status == 200
        # Closed by the server without a word while idle: found by the check after IDLE_CHECK.
        server.close_after_answer = True
        assert transport.request("POST", "/x", b"c").status == 200
        time.sleep(IDLE_CHECK + 0.2)
        server.close_after_answer = False
        assert transport.request("POST", "/x", b"d").status == 200
        transport.close()
    assert server.bodies == [b"a", b"b", b"c", b"d"]
    # Three, or four when the server's close after "b" raced the client's next request: "c" then
    # found its kept connection closed and went once more on a new one, without an error.
    assert server.connections in (3, 4)


def test_a_server_that_never_answers_is_a_network_error_after_the_read_timeout() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[socket.socket] = []

    def accept() -> None:
        conn, _ = listener.accept()
        held.append(conn)  # read nothing, answer nothing, keep it open

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    transport = Transport(f"http://127.0.0.1:{listener.getsockname()[1]}", {}, read_timeout=0.3)
    t0 = time.monotonic()
    try:
        with pytest.raises(NetworkError):
            transport.request("POST", "/v1/events/batch", b"[]")
        waited = time.monotonic() - t0
    finally:
        transport.close()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()
    assert 0.25 <= waited < 3.0


def test_a_refused_connection_is_a_network_error() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    transport = Transport(f"http://127.0.0.1:{port}", {})
    with pytest.raises(NetworkError):
        transport.request("POST", "/v1/events/batch", b"[]")


def test_requests_in_flight_at_once_each_get_a_connection_then_share_them() -> None:
    with _server() as server:
        transport = _transport(server)
        barrier = threading.Barrier(4)
        answers: list[int] = []

        def post(i: int) -> None:
            barrier.wait()
            answers.append(transport.request("POST", "/slow", b"%d" % i).status)

        threads = [threading.Thread(target=post, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        opened = server.connections
        assert answers == [200] * 4 and 2 <= opened <= 4
        assert transport.idle_connections == opened
        # One at a time afterwards: the idle connections are reused, none is opened.
        for i in range(5):
            assert transport.request("POST", "/x", b"%d" % i).status == 200
        assert server.connections == opened
        transport.close()
        assert transport.idle_connections == 0
