"""The embedded store against real SQLite files."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import orjson
import pytest

from apimon.client import Client
from apimon.config import Config
from apimon.store import Store, StoredCall, StoreError
from apimon.summary import summarize
from tests.factories import make_raw


def _call(i: int, status: int = 200, path: str | None = None, user: str | None = None, size: int = 10) -> StoredCall:
    return StoredCall(
        transaction_id=f"tx-{i}",
        ts=1.7e9 + i,
        verb="GET",
        path=path or f"/items/{i}",
        route="/items/<id>",
        status=status,
        duration_ms=float(i),
        user_id=user,
        company_id=None,
        event_json=orjson.dumps({"i": i, "pad": "x" * size}),
    )


def test_wal_mode_indexes_and_owner_only_file(tmp_path: Path) -> None:
    db = tmp_path / "calls.db"
    store = Store(str(db))
    store.insert([_call(1)])
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {
        "calls_ts",
        "calls_status",
        "calls_verb",
        "calls_path",
        "calls_route",
        "calls_duration",
        "calls_user",
        "calls_company",
    } <= indexes


def test_queries_filter_and_order_newest_first(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "q.db"))
    store.insert([_call(i, status=500 if i % 5 == 0 else 200, user="alice" if i % 2 else None) for i in range(1, 21)])
    assert [c.transaction_id for c in store.recent(limit=3)] == ["tx-20", "tx-19", "tx-18"]
    assert [c.status for c in store.recent(limit=50, status_class=5)] == [500, 500, 500, 500]
    assert [c.path for c in store.recent(limit=50, path_glob="/items/1?")] == [f"/items/{i}" for i in range(19, 9, -1)]
    assert all(c.user_id == "alice" for c in store.recent(limit=50, user_id="alice"))
    by_id = store.get("3")
    assert by_id is not None and by_id.event() == {"i": 3, "pad": "x" * 10}
    by_tx = store.get("tx-7")
    assert by_tx is not None and by_tx.id == 7
    assert store.get("nope") is None
    summary = summarize(store)
    assert summary["total"] == 20 and summary["by_status_class"] == {"2xx": 16, "5xx": 4}
    assert (summary["p50_ms"], summary["p95_ms"], summary["p99_ms"]) == (10.0, 19.0, 20.0)


def test_retention_keeps_newest_rows(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "r.db"), max_rows=50)
    for start in range(0, 200, 20):
        store.insert([_call(i) for i in range(start, start + 20)])
    rows = store.recent(limit=1000)
    assert len(rows) == 50 and rows[0].transaction_id == "tx-199" and rows[-1].transaction_id == "tx-150"


def test_retention_by_bytes(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "b.db"), max_rows=1_000_000, max_bytes=200_000)
    for start in range(0, 2000, 100):
        store._batches = 0  # check the byte bound on every batch
        store.insert([_call(i, size=1_000) for i in range(start, start + 100)])
    total = sqlite3.connect(tmp_path / "b.db").execute("SELECT SUM(size) FROM calls").fetchone()[0]
    assert total <= 200_000
    assert store.recent(limit=1)[0].transaction_id == "tx-1999"


def test_unwritable_store_degrades_to_counted_failures(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    if os.access(ro, os.W_OK):  # root ignores directory modes: use a path that cannot exist instead
        target = str(tmp_path / "file-not-dir")
        Path(target).write_text("x")
        path = os.path.join(target, "calls.db")
    else:
        path = str(ro / "calls.db")
    client = Client(Config.from_options(store=path))
    for _ in range(3):
        client.complete(make_raw(), None)
    assert client.flush(5.0)
    stats = client.stats()
    assert stats["failed"] == 3 and stats["stored"] == 0
    assert sum("cannot open apimon store" in r.getMessage() for r in caplog.records) == 1


def test_readonly_store_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no apimon store"):
        Store(str(tmp_path / "missing.db"), readonly=True).recent()


def test_client_writes_events_as_shipped(tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    client = Client(Config.from_options(store=db))
    raw = make_raw(method="POST", path="/items", status=201)
    raw.route = "/items"
    client.complete(raw, None)
    assert client.flush(5.0)
    [row] = Store(db).recent()
    event = row.event()
    assert (row.verb, row.path, row.route, row.status, row.duration_ms) == ("POST", "/items", "/items", 201, 250.0)
    assert row.transaction_id == event["transaction_id"] and event["response"]["status"] == 201


def test_writers_setting_up_a_new_file_at_once_all_open(tmp_path: Path) -> None:
    # The flusher's store sink and an outbox shipper (or two workers) open a new file together:
    # the switch to WAL could answer "database is locked" at once, and a batch was dropped.
    import threading

    errors: list[Exception] = []
    for round_ in range(20):
        path = str(tmp_path / f"race-{round_}.db")
        gate = threading.Barrier(6)

        def open_one(path: str = path, gate: threading.Barrier = gate) -> None:
            gate.wait()
            try:
                Store(path).open()
            except Exception as exc:  # collected for the assertion
                errors.append(exc)

        threads = [threading.Thread(target=open_one) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert errors == []
