"""Shared pieces of the fault-injection suite: the Flask sample app under gunicorn with apimon
pointed at the fake collectors, a bounded load generator, resident memory, and the figures
that RELIABILITY.md reports."""

from __future__ import annotations

import fcntl
import http.client
import json
import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from apimon.serverproc import ServerProcess, free_port, gunicorn_command
from apimon.testing import FakeMoEngage, FakeMoesif
from tests.conftest import REPO

FIGURES = Path(os.environ.get("APIMON_RELIABILITY_FIGURES", REPO / ".reliability-figures.json"))


def record(test: str, **figures: Any) -> None:
    """Add a row to the figures RELIABILITY.md is made from (`./dev reliability`). The suite may
    run in several processes (pytest-xdist): each row is added under a lock and the file
    replaced whole, so no reader sees half a file and no row is lost."""
    with open(f"{FIGURES}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
        rows[test] = figures
        partial = FIGURES.with_name(f"{FIGURES.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(rows, indent=2, sort_keys=True))
        os.replace(partial, FIGURES)


def flask_server(
    tmp: Path,
    name: str,
    *,
    moesif: FakeMoesif | None = None,
    moengage: FakeMoEngage | None = None,
    options: dict[str, Any] | None = None,
    gunicorn_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> ServerProcess:
    port = free_port()
    full_env = {"PYTHONPATH": str(REPO), "APIMON_SAMPLE_OPTIONS": orjson.dumps(options or {}).decode(), **(env or {})}
    if moesif is not None:
        full_env |= {"APIMON_MOESIF_APPLICATION_ID": moesif.application_id, "APIMON_MOESIF_BASE_URL": moesif.url}
    if moengage is not None:
        full_env |= {
            "APIMON_MOENGAGE_WORKSPACE_ID": moengage.workspace_id,
            "APIMON_MOENGAGE_API_KEY": moengage.api_key,
            "APIMON_MOENGAGE_BASE_URL": moengage.url,
        }
    return ServerProcess(
        gunicorn_command("sample_apps.flask_app.app:app", port, *gunicorn_args),
        port,
        env=full_env,
        cwd=str(REPO),
        log_path=str(tmp / f"{name}.log"),
        stop_timeout=20,
    )


def stats(port: int) -> dict[str, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/_apimon/stats")
        value: dict[str, int] = orjson.loads(conn.getresponse().read())
        return value
    finally:
        conn.close()


@dataclass
class Load:
    sent: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) if self.latencies else 0.0

    @property
    def p99(self) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def drive(
    port: int,
    seconds: float,
    threads: int = 4,
    max_requests: int = 1_000_000,
    path: str = "/echo",
    user: str | None = "load-user",
    fresh: bool = False,
    body: bytes = b'{"n": 1}',
) -> Load:
    """POST ``body`` (small JSON by default; the app echoes it) from ``threads`` keep-alive
    connections for at most ``seconds``."""
    load = Load()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    headers = {"Content-Type": "application/json"}
    if user:
        import base64

        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:pw".encode()).decode()

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        local: list[float] = []
        errors = 0
        while time.monotonic() < deadline:
            with lock:
                if load.sent >= max_requests:
                    break
                load.sent += 1
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                if response.read() != body or response.status != 200:
                    errors += 1
            except (OSError, http.client.HTTPException):
                errors += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            local.append(time.perf_counter() - t0)
            if fresh:
                conn.close()
        conn.close()
        with lock:
            load.latencies.extend(local)
            load.errors += errors

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return load


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its children (gunicorn's workers), in MB."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            continue
    return total / 1024


def wait_for(cond: Any, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(interval)
    return bool(cond())
