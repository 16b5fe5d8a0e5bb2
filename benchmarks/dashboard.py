"""The dashboard row: median time of the overview and of a filtered stream page served by
``apimon serve``, with 100,000 calls in the store next to an empty store.

    python -m benchmarks.dashboard      # prints one JSON line; run.py calls measure()

The calls, a mix of endpoints, statuses and users spread over 24 hours, are captured as an app's
would be: apimon's client builds the events and its store sink writes them.
"""

from __future__ import annotations

import http.client
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

import orjson

from apimon.client import Client
from apimon.config import Config
from apimon.record import RawCall
from apimon.serverproc import ServerProcess, free_port
from apimon.store import Store
from apimon.tee import BodyTee

PAGES = {"overview": "/overview", "filtered stream": "/?status=5xx&path=/items/*"}
ROUTES = [("GET", "/items/{n}", "/items/<int:id>"), ("POST", "/items", None), ("GET", "/ping", None)]
STATUSES = [200] * 80 + [201] * 5 + [404] * 8 + [500] * 5 + [503] * 2


def fill(path: str, n: int, seed: int = 7) -> None:
    """``n`` calls over the last 24 hours, through apimon's own client, flusher and store sink."""
    rng = random.Random(seed)
    client = Client(Config.from_options(store=path, store_max_rows=n + 1, max_queue=10_000))
    now = time.time()
    for i in range(n):
        verb, template, route = ROUTES[i % len(ROUTES)]
        raw_path = template.format(n=rng.randrange(1, 5000))
        start = now - 86400 + 86400 * i / n
        headers = [("Accept", "application/json")]
        raw = RawCall(verb, "https", "api.example.com", raw_path, "", headers, "203.0.113.9", start)
        raw.status = rng.choice(STATUSES)
        raw.end = start + rng.lognormvariate(-4.0, 0.8)
        raw.route = route
        raw.user_id = f"user-{rng.randrange(200)}"
        raw.resp_headers = [("Content-Type", "application/json")]
        body = BodyTee(10_000)
        body.feed(orjson.dumps({"id": i, "name": "pear", "tags": ["a", "b"]}))
        body.complete = True
        raw.resp_body = body
        client.complete(raw, None)
        if i % 5000 == 4999:
            client.flush(60)  # the queue holds 10,000: never let it drop
    client.flush(60)
    stats = client.stats()
    client.shutdown(10)
    assert stats["stored"] == n, stats


def timed_get(port: int, path: str) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        start = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        elapsed = time.perf_counter() - start
        assert response.status == 200, (path, response.status)
        return elapsed * 1000
    finally:
        conn.close()


def measure_store(path: str, repeats: int) -> dict[str, float]:
    apimon = shutil.which("apimon", path=os.path.dirname(sys.executable)) or "apimon"
    port = free_port()
    # The server on CPU 0, this client on CPU 1, as in the loopback benchmarks.
    command = ["taskset", "-c", "0", apimon, "serve", "--store", path, "--port", str(port)]
    with ServerProcess(command, port, ready_path="/static/app.css"):
        out = {}
        for name, page in PAGES.items():
            for _ in range(2):
                timed_get(port, page)  # warm the page cache and the templates
            out[name] = statistics.median(timed_get(port, page) for _ in range(repeats))
        return out


def measure(calls: int = 100_000, repeats: int = 15) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        empty, full = os.path.join(tmp, "empty.db"), os.path.join(tmp, "full.db")
        Store(empty).open()
        started = time.perf_counter()
        fill(full, calls)
        fill_s = time.perf_counter() - started
        return {
            "calls": calls,
            "fill_s": fill_s,
            "empty": measure_store(empty, repeats),
            "full": measure_store(full, repeats),
        }


if __name__ == "__main__":
    os.sched_setaffinity(0, {1})
    print(orjson.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)).decode())
