"""A local collector in a process of its own (so its CPU is not the measured process's): it
answers like Moesif or MoEngage and only counts the events, keeping nothing (a benchmark sends
millions). Prints its URL, then a count for every ``count`` line on stdin (``weights``: the sum
of the events' ``weight``, 1 when absent; ``stall`` / ``resume``: hold every answer, or not).

    python -m benchmarks.collector KIND [LATENCY_SECONDS]

With a latency, every answer waits that long, each request on its own thread: a collector that
far away, which takes as many requests at once as are sent.

The strict, recording fakes are ``apimon.testing``'s; Moesif's own SDKs send fields its API reference
rejects (``transfer_encoding: "json"``, nulls), so the benchmark counts without validating.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson

COUNT = 0
WEIGHTS = 0
LOCK = threading.Lock()
LATENCY = 0.0
RUNNING = threading.Event()
RUNNING.set()


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
        global COUNT, WEIGHTS
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        RUNNING.wait(300)
        if LATENCY:
            time.sleep(LATENCY)
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            raw = gzip.decompress(raw)
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self._answer(400, b'{"error": "bad json"}')
            return
        weights = 0
        if isinstance(payload, list):  # Moesif: an array of events
            n = len(payload) if self.path == "/v1/events/batch" else 0
            if n:
                weights = sum(int(e.get("weight") or 1) for e in payload if isinstance(e, dict))
        elif payload.get("type") == "event":  # MoEngage Create Event
            n = len(payload.get("actions", []))
        elif payload.get("type") == "transition":  # MoEngage Bulk Import
            n = sum(len(e.get("actions", [])) for e in payload.get("elements", []))
        else:
            n = 0
        with LOCK:
            COUNT += n
            WEIGHTS += weights or n
        self._answer(200, b'{"status": "success"}')


class Collector:
    """This collector in a process of its own, pinned to CPU 1 (beside the load generator).
    Usage: ``c = Collector("moesif", latency=0.05); c.url; c.count(); c.stall(); c.close()``."""

    def __init__(self, kind: str = "moesif", latency: float = 0.0) -> None:
        self.proc = subprocess.Popen(
            ["taskset", "-c", "1", sys.executable, "-m", "benchmarks.collector", kind, str(latency)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.url = self.proc.stdout.readline().strip()

    def _ask(self, command: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def count(self) -> int:
        return int(self._ask("count"))

    def weights(self) -> int:
        return int(self._ask("weights"))

    def stall(self) -> None:
        self._ask("stall")

    def resume(self) -> None:
        self._ask("resume")

    def close(self) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.close()
            self.proc.wait(30)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(5)


def main() -> None:
    global LATENCY
    if len(sys.argv) > 2:
        LATENCY = float(sys.argv[2])
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "count":
            print(COUNT, flush=True)
        elif command == "weights":
            print(WEIGHTS, flush=True)
        elif command == "stall":
            RUNNING.clear()
            print("stalled", flush=True)
        elif command == "resume":
            RUNNING.set()
            print("resumed", flush=True)
    try:
        print(COUNT, flush=True)
    except BrokenPipeError:
        pass


if __name__ == "__main__":
    main()
