"""A collector at a real distance, and one that stalls: the Flask sample app under gunicorn,
the fake Moesif answering every request 200 ms late or holding every answer."""

from __future__ import annotations

import time
from pathlib import Path

import orjson

from apimon.testing import FakeMoesif
from tests.reliability.harness import drive, flask_server, record, rss_mb, stats


def _wait_drained(port: int, timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    now = stats(port)
    while now["queued"] and time.monotonic() < deadline:
        time.sleep(0.25)
        now = stats(port)
    return now


def test_a_collector_200_ms_away_gets_every_call(tmp_path: Path) -> None:
    with FakeMoesif(latency=0.2) as far:
        server = flask_server(tmp_path, "far", moesif=far)
        with server:
            load = drive(server.port, seconds=6.0, threads=4)
            now = _wait_drained(server.port, 60)
        assert load.errors == 0 and now["queued"] == 0
        assert now["dropped_queue_full"] == 0 and now["sampled_overload"] == 0 and now["failed"] == 0
        assert now["sent"] == now["captured"] == len(far.transaction_ids)
        assert far.max_concurrent > 1
        posts = [r for r in far.requests if r.path == "/v1/events/batch"]
        record(
            "collector 200 ms away, 4 clients for 6 s",
            requests=load.sent,
            requests_per_s=round(load.sent / 6.0),
            captured=now["captured"],
            delivered=len(far.transaction_ids),
            lost=now["captured"] - len(far.transaction_ids),
            batches=len(posts),
            most_requests_in_flight=far.max_concurrent,
            p99_ms=round(load.p99 * 1000, 1),
        )


def test_a_stalled_collector_with_large_bodies_stays_within_the_byte_bound(tmp_path: Path) -> None:
    # ~90 KB of JSON records, echoed: ~180 KB an event; 10,000 of them would be ~1.8 GB.
    body = orjson.dumps({"items": [{"id": i, "sku": f"{i * 2654435761 % 2**32:08x}"} for i in range(3_000)]})
    with FakeMoesif() as stalled:
        server = flask_server(tmp_path, "stalled", moesif=stalled)
        with server:
            pid = server.proc.pid  # type: ignore[union-attr]
            drive(server.port, seconds=1.0, threads=2)  # warm-up
            baseline = rss_mb(pid)
            stalled.stall()
            load = drive(server.port, seconds=8.0, threads=4, body=body)
            held = rss_mb(pid)
            during = stats(server.port)
            stalled.resume()
            now = _wait_drained(server.port, 120)
        assert load.errors == 0 and now["queued"] == 0 and now["internal_errors"] == 0
        counted = now["failed"] + now["dropped_queue_full"] + now["sampled_overload"]
        assert now["sent"] + counted == now["captured"]
        assert now["sent"] == len(stalled.transaction_ids)
        assert held - baseline < 100, f"+{held - baseline:.0f} MB resident with the collector stalled"
        record(
            "collector stalled 8 s, ~90 KB JSON bodies (echoed), 4 clients",
            requests=load.sent,
            captured=now["captured"],
            delivered_after=now["sent"],
            sampled_overload=now["sampled_overload"],
            dropped_counted=now["dropped_queue_full"] + now["failed"],
            lost_uncounted=now["captured"] - now["sent"] - counted,
            queued_bytes_during=during["queued_bytes"],
            rss_growth_mb=round(held - baseline, 1),
        )
