"""Flusher throughput: events per second one process builds, serialises, gzips and ships to a
local collector (in another process), per destination. Prints one JSON line::

    python -m benchmarks.flusher DESTINATION COLLECTOR_URL EVENTS
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import orjson

from apimon.client import Client
from apimon.config import Config
from apimon.record import RawCall
from apimon.tee import BodyTee
from benchmarks.apps import APP_ID


def raw_call(i: int) -> RawCall:
    raw = RawCall(
        "POST",
        "https",
        "api.example.com",
        f"/items/{i % 500}",
        "page=2",
        [
            ("Host", "api.example.com"),
            ("User-Agent", "bench/1.0"),
            ("Accept", "*/*"),
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer abc.def.ghi"),
        ],
        "198.51.100.7",
        1.7e9 + i,
    )
    raw.end = raw.start + 0.004
    raw.status = 200
    raw.resp_headers = [("Content-Type", "application/json"), ("Content-Length", "120")]
    raw.req_body, raw.resp_body = BodyTee(100_000), BodyTee(100_000)
    raw.req_body.feed(b'{"name": "widget", "qty": 3, "tags": ["a", "b"]}')
    raw.resp_body.feed(orjson.dumps({"id": i, "name": "widget", "qty": 3, "price": 9.99, "ok": True}))
    raw.req_body.complete = raw.resp_body.complete = True
    raw.user_id = f"user-{i % 1000}"
    return raw


def main() -> None:
    destination, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    # Every call is queued at once, then the clock runs until the flush: what is measured is how
    # fast the flusher and senders empty a full queue, so the bounds are raised and nothing is
    # sampled for overload.
    options: dict[str, object] = {
        "max_queue": n,
        "max_queue_bytes": 1 << 32,
        "overload_sampling": False,
        "batch_size": 100,
        "flush_interval": 0.05,
    }
    if destination == "moesif":
        options |= {"moesif_application_id": APP_ID, "moesif_base_url": url, "store": "off"}
    elif destination == "moengage":
        options |= {
            "moengage_workspace_id": "BENCH",
            "moengage_api_key": "bench-key",
            "moengage_base_url": url,
            "store": "off",
            "moengage_events_per_minute": 10**7,
            "moengage_bulk": True,
        }
    else:
        options |= {"store": os.path.join(tempfile.mkdtemp(), "bench.db")}
    client = Client(Config.from_options(options))
    calls = [raw_call(i) for i in range(n)]
    t0 = time.perf_counter()
    for raw in calls:
        client.complete(raw, None)
    ok = client.flush(300)
    elapsed = time.perf_counter() - t0
    stats = client.stats()
    print(
        orjson.dumps(
            {
                "destination": destination,
                "events": n,
                "seconds": elapsed,
                "flushed": ok,
                "delivered": stats["sent"] + stats["stored"],
                "events_per_s": n / elapsed,
            }
        ).decode()
    )


if __name__ == "__main__":
    main()
