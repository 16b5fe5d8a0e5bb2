"""Fault 4: several workers. gunicorn --preload with 4 workers and uvicorn with 4 workers: events
from every worker arrive; worker recycling (--max-requests) loses nothing in durable mode."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from apimon.serverproc import ServerProcess, free_port, uvicorn_command
from apimon.testing import FakeMoesif
from tests.conftest import REPO
from tests.reliability.harness import drive, flask_server, record, wait_for

pytestmark = pytest.mark.slow


def _children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def _worker_pids(events: list[dict[str, Any]]) -> set[int]:
    return {e["metadata"]["worker_pid"] for e in events if "worker_pid" in e.get("metadata", {})}


def test_gunicorn_preload_four_workers(tmp_path: Path) -> None:
    with FakeMoesif() as fake:
        server = flask_server(
            tmp_path,
            "preload",
            moesif=fake,
            gunicorn_args=("--preload", "--workers", "4"),
            env={"APIMON_SAMPLE_WORKER_PID": "1"},
        )
        with server:
            pid = server.proc.pid  # type: ignore[union-attr]
            assert wait_for(lambda: len(_children(pid)) == 4, timeout=20)  # all booted
            workers = _children(pid)
            load = drive(server.port, seconds=5.0, threads=8)
        # Stopped (SIGTERM): every worker's exit flush shipped what it had queued.
        assert len(workers) == 4 and load.errors == 0
        expected = load.sent + server.probes
        assert len(fake.transaction_ids) == expected
        assert _worker_pids(fake.events) == workers  # every worker's events arrived, not the master's
        record(
            "gunicorn --preload, 4 workers",
            requests=load.sent,
            delivered=len(fake.transaction_ids),
            workers_seen=len(_worker_pids(fake.events)),
            lost=expected - len(fake.transaction_ids),
        )


def test_uvicorn_four_workers(tmp_path: Path) -> None:
    with FakeMoesif() as fake:
        port = free_port()
        env = {
            "PYTHONPATH": str(REPO),
            "APIMON_SAMPLE_WORKER_PID": "1",
            "APIMON_MOESIF_APPLICATION_ID": fake.application_id,
            "APIMON_MOESIF_BASE_URL": fake.url,
        }
        server = ServerProcess(
            uvicorn_command("sample_apps.starlette_app.app:app", port, "--workers", "4"),
            port,
            env=env,
            cwd=str(REPO),
            log_path=str(tmp_path / "uvicorn.log"),
            stop_timeout=20,
        )
        with server:
            pid = server.proc.pid  # type: ignore[union-attr]
            assert wait_for(lambda: len(_children(pid)) >= 4, timeout=20)
            load = drive(server.port, seconds=5.0, threads=8, path="/echo", fresh=True)
            assert wait_for(lambda: len(fake.transaction_ids) >= load.sent + server.probes, timeout=20)
            workers = _children(pid)
        assert load.errors == 0
        assert len(fake.transaction_ids) == load.sent + server.probes
        assert _worker_pids(fake.events) <= workers and len(_worker_pids(fake.events)) >= 3
        record(
            "uvicorn --workers 4",
            requests=load.sent,
            delivered=len(fake.transaction_ids),
            workers_seen=len(_worker_pids(fake.events)),
            lost=load.sent + server.probes - len(fake.transaction_ids),
        )


def test_worker_recycling_loses_nothing_in_durable_mode(tmp_path: Path) -> None:
    db = str(tmp_path / "recycle.db")
    with FakeMoesif() as fake:
        server = flask_server(
            tmp_path,
            "recycle",
            moesif=fake,
            options={"durable": True, "store": db},
            gunicorn_args=("--workers", "2", "--max-requests", "50", "--max-requests-jitter", "10"),
        )
        with server:
            load = drive(server.port, seconds=6.0, threads=4)
            expected = load.sent + server.probes
            assert wait_for(lambda: len(fake.transaction_ids) >= expected, timeout=60)
        assert load.errors == 0
        assert len(fake.transaction_ids) == expected
        record(
            "gunicorn --max-requests 50 (durable)",
            requests=load.sent,
            delivered=len(fake.transaction_ids),
            recycled_workers=load.sent // 50,
            lost=expected - len(fake.transaction_ids),
        )


def test_sigterm_flushes_queued_events_in_time(tmp_path: Path) -> None:
    import time

    with FakeMoesif() as fake:
        # Events wait an hour in memory: only the exit flush can ship them.
        server = flask_server(
            tmp_path,
            "sigterm",
            moesif=fake,
            options={"flush_interval": 3600, "batch_size": 10_000, "shutdown_timeout": 2.0},
        )
        with server:
            load = drive(server.port, seconds=2.0, threads=2)
            assert len(fake.events) == 0
            t0 = time.monotonic()
            server.stop(signal.SIGTERM)
            stopped_in = time.monotonic() - t0
        assert len(fake.transaction_ids) == load.sent + server.probes
        assert stopped_in < 2.0 + 3.0  # shutdown_timeout plus gunicorn's own exit
        record(
            "SIGTERM with events queued",
            requests=load.sent,
            delivered=len(fake.transaction_ids),
            exit_seconds=round(stopped_in, 2),
            lost=load.sent + server.probes - len(fake.transaction_ids),
        )


def test_sigterm_durable_with_collector_down_delivers_after_next_start(tmp_path: Path) -> None:
    db = str(tmp_path / "next-start.db")
    with FakeMoesif() as fake:
        fake.down()
        server = flask_server(
            tmp_path, "first", moesif=fake, options={"durable": True, "store": db, "shutdown_timeout": 1.0}
        )
        with server:
            load = drive(server.port, seconds=2.0, threads=2)
        fake.up()
        again = flask_server(tmp_path, "second", moesif=fake, options={"durable": True, "store": db})
        with again:
            expected = load.sent + server.probes + again.probes
            assert wait_for(lambda: len(fake.transaction_ids) >= expected, timeout=60)
        assert len(fake.transaction_ids) == expected
        record(
            "SIGTERM, collector down (durable): delivered after the next start",
            requests=load.sent,
            delivered=len(fake.transaction_ids),
            lost=expected - len(fake.transaction_ids),
        )


def test_kill_9_of_a_worker_loses_nothing_committed(tmp_path: Path) -> None:
    import os
    import threading

    from apimon.store import Store

    db = str(tmp_path / "kill9.db")
    with FakeMoesif() as fake:
        fake.delay = 0.05
        server = flask_server(
            tmp_path, "kill9", moesif=fake, options={"durable": True, "store": db}, gunicorn_args=("--workers", "2")
        )
        with server:
            killed: list[int] = []

            def killer() -> None:
                import time

                time.sleep(2.0)
                victim = sorted(_children(server.proc.pid))[0]  # type: ignore[union-attr]
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)

            t = threading.Thread(target=killer)
            t.start()
            load = drive(server.port, seconds=5.0, threads=4)
            t.join()
            committed = {c.transaction_id for c in Store(db).recent(limit=1_000_000)}
            assert wait_for(lambda: committed <= fake.transaction_ids, timeout=90)
        assert killed and committed <= fake.transaction_ids
        # Several batches were in flight at once, and no call was in two of them at the same time:
        # a repeat (the killed worker's unacknowledged batch, resent) arrives after the first
        # request's answer, never while it is still on the wire.
        assert fake.max_concurrent > 1
        overlapping = _sent_twice_at_once(fake, fake.delay)
        assert overlapping == 0
        record(
            "kill -9 of a worker (durable)",
            requests=load.sent,
            committed=len(committed),
            committed_delivered=len(committed & fake.transaction_ids),
            lost_committed=len(committed - fake.transaction_ids),
            in_memory_at_kill=load.sent + server.probes - len(committed),
            most_requests_in_flight=fake.max_concurrent,
            sent_twice_at_once=overlapping,
        )


def _sent_twice_at_once(fake: FakeMoesif, latency: float) -> int:
    """Calls found in two accepted batches whose requests were on the wire at the same time."""
    seen: dict[str, float] = {}
    overlapping = 0
    for request in fake.requests:
        if request.path != "/v1/events/batch" or request.status != 201:
            continue
        for event in request.json():
            first = seen.setdefault(event["transaction_id"], request.at)
            if first != request.at and abs(request.at - first) < latency:
                overlapping += 1
    return overlapping
