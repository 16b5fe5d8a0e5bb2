"""The durable outbox: committed before sent, marked when acknowledged, nothing lost to an outage
or a restart, bounded, and never shipped by two processes at once."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import apimon
from apimon.client import Client
from apimon.config import Config
from apimon.store import SHIPPED_MOESIF, Store
from apimon.testing import FakeMoesif
from tests.conftest import REPO
from tests.factories import make_raw


def _durable(fake: FakeMoesif, db: str, **options: object) -> Client:
    return Client(
        Config.from_options(
            moesif_application_id=fake.application_id,
            moesif_base_url=fake.url,
            durable=True,
            store=db,
            flush_interval=0.05,
            **options,
        )
    )


def _capture(client: Client, n: int, tag: str) -> None:
    for i in range(n):
        client.complete(make_raw(path=f"/{tag}/{i}"), None)


def _wait(cond: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_collector_outage_loses_nothing(tmp_path: Path) -> None:
    db = str(tmp_path / "outbox.db")
    with FakeMoesif() as fake:
        fake.down()
        client = _durable(fake, db)
        _capture(client, 30, "during-outage")
        assert client.flush(5), client.stats()
        # Committed, not yet sent.
        assert Store(db).count_unshipped(SHIPPED_MOESIF) == 30, (Store(db).count(), client.stats())
        stats = client.stats()
        assert stats["stored"] == 30 and stats["failed"] == 0, stats
        fake.up()
        for shipper in client.shippers:
            shipper.wake.set()
        _wait(lambda: len(fake.transaction_ids) == 30, timeout=40)
        assert client.drain_outbox(10), client.stats()
        assert Store(db).count_unshipped(SHIPPED_MOESIF) == 0, client.stats()
        assert client.stats()["sent"] == 30 and fake.rejections == [], (client.stats(), fake.rejections)
        client.shutdown(2)


def test_several_batches_in_flight_each_call_sent_once(tmp_path: Path) -> None:
    db = str(tmp_path / "inflight.db")
    with FakeMoesif(latency=0.1) as fake:
        client = _durable(fake, db, batch_size=20, max_batch_events=20)
        _capture(client, 1_000, "in-flight")
        assert client.flush(10)
        _wait(lambda: len(fake.events) >= 1_000, timeout=60)
        assert client.drain_outbox(10), client.stats()
        stats = client.stats()
        client.shutdown(2)
    ids = [e["transaction_id"] for e in fake.events]
    # Acknowledged batch by batch, each call once: no row was claimed by two senders.
    assert len(ids) == len(set(ids)) == 1_000
    assert fake.max_concurrent > 1
    assert stats["sent"] == 1_000 and stats["retried"] == 0
    assert Store(db).count_unshipped(SHIPPED_MOESIF) == 0


RESTART = """
import sys, apimon
from tests.factories import make_raw
client = apimon.init(moesif_application_id="apimon-test-app", moesif_base_url=sys.argv[2], durable=True,
                     store=sys.argv[1], flush_interval=0.05, shutdown_timeout=1.0)
for i in range(20):
    client.complete(make_raw(path=f"/before-restart/{i}"), None)
"""


def test_restart_sends_the_old_outbox_first(tmp_path: Path) -> None:
    db = str(tmp_path / "restart.db")
    with FakeMoesif() as fake:
        fake.down()
        # A first process captures 20 calls while the collector is down, then exits.
        subprocess.run([sys.executable, "-c", RESTART, db, fake.url], check=True, cwd=REPO, timeout=60)
        assert Store(db).count_unshipped(SHIPPED_MOESIF) == 20
        fake.up()
        client = _durable(fake, db)  # the next start, with no new traffic
        _wait(lambda: len(fake.events) == 20)
        _capture(client, 5, "after-restart")
        _wait(lambda: len(fake.events) == 25)
        paths = [e["request"]["uri"].split("example.com")[1] for e in fake.events]
        assert paths[:20] == [f"/before-restart/{i}" for i in range(20)]
        client.shutdown(2)


def test_two_processes_sharing_a_store_never_send_the_same_call(tmp_path: Path) -> None:
    db = str(tmp_path / "shared.db")
    with FakeMoesif() as fake:
        fake.delay = 0.01
        a, b = _durable(fake, db), _durable(fake, db)  # distinct lease owners, like two workers
        for i in range(10):
            _capture(a, 10, f"a{i}")
            _capture(b, 10, f"b{i}")
        _wait(lambda: len(fake.events) >= 200, timeout=40)
        time.sleep(0.5)
        assert len(fake.events) == 200 and len(fake.transaction_ids) == 200  # each exactly once
        assert a.stats()["sent"] + b.stats()["sent"] == 200
        assert 0 in (a.stats()["sent"], b.stats()["sent"])  # one lease holder shipped them all
        a.shutdown(2)
        b.shutdown(2)


def test_outbox_is_bounded_and_evictions_are_counted(tmp_path: Path) -> None:
    db = str(tmp_path / "bounded.db")
    with FakeMoesif() as fake:
        fake.down()
        client = _durable(fake, db, outbox_max_bytes=1 << 16, batch_size=50)
        store = Store(db)
        for _ in range(20):
            _capture(client, 50, "flood")
            assert client.flush(5)
        stats = client.stats()
        assert stats["stored"] == 1000 and stats["dropped_outbox_full"] > 0
        kept = store.count_unshipped(SHIPPED_MOESIF)
        assert kept + stats["dropped_outbox_full"] == 1000
        import sqlite3

        size = sqlite3.connect(db).execute("SELECT SUM(size) FROM calls").fetchone()[0]
        assert size <= (1 << 16) * 1.5  # checked every few batches: a bounded overshoot
        client.shutdown(1)


def test_init_durable_defaults_to_a_store_file(tmp_path: Path, monkeypatch: object) -> None:
    import os

    os.chdir(tmp_path)
    with FakeMoesif() as fake:
        client = apimon.init(moesif_application_id=fake.application_id, moesif_base_url=fake.url, durable=True)
        assert client.config.store_path == "apimon.db"
        _capture(client, 3, "default")
        assert client.drain_outbox(10) and len(fake.events) == 3
        assert Path(tmp_path / "apimon.db").exists()
