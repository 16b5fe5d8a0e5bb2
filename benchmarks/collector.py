"""A local collector in a process of its own (so its CPU is not the measured process's): it
answers like Moesif or MoEngage and only counts the events, keeping nothing (a benchmark sends
millions). Prints its URL, then a count for every ``count`` line on stdin.

The strict, recording fakes are ``apimon.testing``'s; Moesif's own SDKs send fields the seed
rejects (``transfer_encoding: "json"``, nulls), so the benchmark counts without validating.
"""

from __future__ import annotations

import gzip
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson

COUNT = 0
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        return

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        body = b"[]" if self.path == "/v1/rules" else b'{"sample_rate": 100}'
        self._answer(200, body)

    def do_POST(self) -> None:
        global COUNT
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            raw = gzip.decompress(raw)
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self._answer(400, b'{"error": "bad json"}')
            return
        if isinstance(payload, list):  # Moesif: an array of events
            n = len(payload) if self.path == "/v1/events/batch" else 0
        elif payload.get("type") == "event":  # MoEngage Create Event
            n = len(payload.get("actions", []))
        elif payload.get("type") == "transition":  # MoEngage Bulk Import
            n = sum(len(e.get("actions", [])) for e in payload.get("elements", []))
        else:
            n = 0
        with LOCK:
            COUNT += n
        self._answer(200, b'{"status": "success"}')


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    for line in sys.stdin:
        if line.strip() == "count":
            print(COUNT, flush=True)
    print(COUNT, flush=True)


if __name__ == "__main__":
    main()
