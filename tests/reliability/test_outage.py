"""Fault 1: the collector goes down for 30 s mid-run, then comes back."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from apimon.store import SHIPPED_MOESIF, Store
from apimon.testing import FakeMoesif
from tests.reliability.harness import drive, flask_server, record, stats, wait_for

pytestmark = pytest.mark.slow
OUTAGE = 30.0


def _run_with_outage(fake: FakeMoesif, port: int) -> int:
    """Steady load for 40 s; the collector is down from second 5 to second 35."""

    def outage() -> None:
        time.sleep(5)
        fake.down()
        time.sleep(OUTAGE)
        fake.up()

    t = threading.Thread(target=outage)
    t.start()
    load = drive(port, seconds=40.0, threads=2)
    t.join()
    assert load.errors == 0
    return load.sent


def test_durable_outage_every_event_arrives(tmp_path: Path) -> None:
    db = str(tmp_path / "durable.db")
    with FakeMoesif() as fake:
        server = flask_server(tmp_path, "durable", moesif=fake, options={"durable": True, "store": db})
        with server:
            sent = _run_with_outage(fake, server.port)
            expected = sent + server.probes
            arrived = wait_for(lambda: len(fake.transaction_ids) >= expected, timeout=120)
            assert arrived, (
                len(fake.transaction_ids),
                expected,
                stats(server.port),
                Store(db).count_unshipped(SHIPPED_MOESIF),
            )
        assert Store(db).count_unshipped(SHIPPED_MOESIF) == 0
        # At-least-once: a repeat keeps its transaction_id, so distinct ids equal the calls made.
        assert len(fake.transaction_ids) == expected
        record(
            "collector down 30 s mid-run (durable)",
            requests=sent,
            delivered=len(fake.transaction_ids),
            repeats=len(fake.events) - len(fake.transaction_ids),
            lost=expected - len(fake.transaction_ids),
        )


def test_outage_without_durable_counts_every_missing_event(tmp_path: Path) -> None:
    with FakeMoesif() as fake:
        server = flask_server(tmp_path, "plain", moesif=fake, options={"retry_deadline": 5.0})
        with server:
            sent = _run_with_outage(fake, server.port)
            assert wait_for(lambda: stats(server.port)["queued"] == 0, timeout=60)
            final = stats(server.port)
        captured = sent + server.probes
        missing = captured - len(fake.transaction_ids)
        assert final["captured"] == captured
        # Every missing event is counted: failed, dropped, or sampled out while the pipeline was
        # behind (the calls kept meanwhile carry the weight of those left out).
        counted = final["failed"] + final["dropped_queue_full"] + final["sampled_overload"]
        assert missing == counted
        assert missing > 0  # a 30 s outage outlasts the retry deadline
        record(
            "collector down 30 s mid-run (not durable)",
            requests=sent,
            delivered=len(fake.transaction_ids),
            counted_failed=final["failed"],
            sampled_overload=final["sampled_overload"],
            lost_uncounted=missing - counted,
        )
