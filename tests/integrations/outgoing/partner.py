"""A partner API on 127.0.0.1 for the outgoing-call tests: JSON, an echo, gzip, a redirect, a slow
answer, and a stream that sends its second part only when the test says so (so a client that
read ahead would hang)."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson


class Partner:
    def __init__(self) -> None:
        self.go_on = threading.Event()  # /stream sends its second part once this is set
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        partner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {"Content-Type": "application/json"}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _record(self, body: bytes = b"") -> None:
                partner.requests.append((self.command, self.path, dict(self.headers.items()), body))

            def do_GET(self) -> None:
                self._record()
                path = self.path.partition("?")[0]
                if path == "/redirect":
                    self._send(302, b"", {"Location": "/json?from=redirect"})
                elif path == "/gzip":
                    self._send(
                        200,
                        gzip.compress(b'{"zipped": true}'),
                        {"Content-Type": "application/json", "Content-Encoding": "gzip"},
                    )
                elif path == "/slow":
                    time.sleep(2.0)
                    self._send(200, b'{"slow": true}')
                elif path == "/cookie":
                    self._send(200, b"{}", {"Content-Type": "application/json", "Set-Cookie": "sid=secret-session"})
                elif path == "/stream":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for i in range(3):
                        if i == 1:
                            partner.go_on.wait(10)
                        data = f"part {i}\n".encode()
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self._send(200, orjson.dumps({"path": self.path, "token": "partner-secret"}))

            def do_POST(self) -> None:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = b""
                    while size := int(self.rfile.readline().strip() or b"0", 16):
                        body += self.rfile.read(size)
                        self.rfile.readline()
                    self.rfile.readline()
                else:
                    body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._record(body)
                self._send(201, body, {"Content-Type": self.headers.get("Content-Type") or "application/octet-stream"})

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                return  # a client that timed out or left mid-stream, on purpose: not a failure here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Partner:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.go_on.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def stream_parts() -> Iterator[bytes]:
    for i in range(3):
        yield f"part {i}\n".encode()
