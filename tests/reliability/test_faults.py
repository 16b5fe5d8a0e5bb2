"""Faults 2 and 3: a collector that answers 500 bursts, 429 with a reset, very slowly, or drops
connections costs the app nothing (latency compared as a ratio with a healthy run in the same
test) and memory stays bounded; overload is dropped and counted, never blocking requests."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from apimon.testing import FakeMoesif
from tests.reliability.harness import drive, flask_server, record, rss_mb, stats, wait_for

pytestmark = pytest.mark.slow


def _ratio(healthy: int, faulty: int, rounds: int = 3, seconds: float = 1.5) -> float:
    ratios = []
    for i in range(rounds):
        order = [(healthy, "h"), (faulty, "f")] if i % 2 == 0 else [(faulty, "f"), (healthy, "h")]
        medians = {}
        for port, name in order:
            medians[name] = drive(port, seconds=seconds, threads=1).p50
        ratios.append(medians["f"] / medians["h"])
    return statistics.median(ratios)


FAULTS = {
    "500 burst": lambda f: f.fail_next(40, 500, path="/v1/events"),
    "429 with a 2 s reset": lambda f: f.fail_next(3, 429, headers={"x-ratelimit-reset": "2"}, path="/v1/events"),
    "10 s answers": lambda f: setattr(f, "delay", 10.0),
    "dropped connections": lambda f: f.drop_next(40, path="/v1/events"),
}


def test_collector_faults_leave_the_app_alone(tmp_path: Path) -> None:
    with FakeMoesif() as good, FakeMoesif() as bad:
        healthy = flask_server(tmp_path, "healthy", moesif=good, options={"retry_deadline": 5.0})
        faulty = flask_server(tmp_path, "faulty", moesif=bad, options={"retry_deadline": 5.0})
        with healthy, faulty:
            for name, inject in FAULTS.items():
                inject(bad)
                ratio = _ratio(healthy.port, faulty.port)
                bad.delay = 0.0
                rss = rss_mb(faulty.proc.pid)  # type: ignore[union-attr]
                baseline_rss = rss_mb(healthy.proc.pid)  # type: ignore[union-attr]
                record(
                    f"collector fault: {name}",
                    latency_ratio=round(ratio, 3),
                    rss_mb=round(rss, 1),
                    healthy_rss_mb=round(baseline_rss, 1),
                )
                assert ratio < 1.3, f"{name}: requests {ratio:.2f}x slower than with a healthy collector"
                # The bound: max_queue (10,000) raw calls in the flusher plus as many encoded
                # events waiting for the destination.
                assert rss < baseline_rss + 80, f"{name}: {rss:.0f} MB resident"
            assert wait_for(lambda: stats(faulty.port)["queued"] == 0, timeout=90)
            final = stats(faulty.port)
        lost = final["captured"] - len(bad.transaction_ids)
        # Whatever did not arrive is counted: failed, dropped, or sampled out while the pipeline
        # was behind (kept calls then carry the weight of those left out).
        assert lost == final["failed"] + final["dropped_queue_full"] + final["sampled_overload"]


def test_overload_is_dropped_and_counted_never_blocking(tmp_path: Path) -> None:
    with FakeMoesif() as slow:
        slow.delay = 0.2  # one request of 10 events at a time: at most ~50 events/s accepted
        options = {
            "batch_size": 10,
            "max_batch_events": 10,
            "max_in_flight": 1,
            "max_queue": 2_000,
            "retry_deadline": 2.0,
        }
        server = flask_server(tmp_path, "overload", moesif=slow, options=options)
        with server:
            load = drive(server.port, seconds=12.0, threads=4)
            rss = rss_mb(server.proc.pid)  # type: ignore[union-attr]
            rate = load.sent / 12.0
            now = stats(server.port)
        assert load.errors == 0
        assert rate >= 500, f"only {rate:.0f} requests/s: not an overload"
        # The overload sampler took over from blind drops: 1 call in N kept, with weight N.
        assert now["sampled_overload"] > 0
        assert load.p99 < 0.1, f"p99 {load.p99 * 1000:.0f} ms: requests waited on the flusher"
        assert rss < 150, f"{rss:.0f} MB resident under overload"
        accounted = now["sent"] + now["failed"] + now["dropped_queue_full"] + now["sampled_overload"] + now["queued"]
        assert accounted == now["captured"]
        record(
            "overload: 10x+ what the collector accepts, 12 s",
            requests_per_s=round(rate),
            accepted_per_s=round(now["sent"] / 12.0),
            sampled_overload=now["sampled_overload"],
            dropped_counted=now["dropped_queue_full"],
            p99_ms=round(load.p99 * 1000, 1),
            rss_mb=round(rss, 1),
            lost_uncounted=now["captured"] - accounted,
        )
