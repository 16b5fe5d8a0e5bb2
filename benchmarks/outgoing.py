"""What recording an outgoing call costs the thread that makes it (its CPU time per call): the
same GET to a server on 127.0.0.1 (the benchmark collector, in a process of its own on CPU 1) with each client bare and
instrumented, alternated round by round in one process on CPU 0. The events are built by the
flusher between rounds (untimed: that is the flusher's work, on its own thread). Prints one JSON
line; ``measure`` runs it and ``benchmarks.run`` prints section 7::

    python -m benchmarks.outgoing COLLECTOR_URL ROUNDS PER_ROUND
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
#: Issue 23's target: µs an outgoing call may take longer on the calling thread.
ADDED_US = 15.0


def clients(url: str) -> dict[str, tuple[Callable[[], None], Callable[[], None]]]:
    """Per client: (make one call, switch recording on or off)."""
    import httpx
    import requests
    import urllib3
    from apimon.integrations import httpx as ihttpx
    from apimon.integrations import urllib3 as iurllib3

    target = url + "/v1/config"
    hx = httpx.Client()
    session = requests.Session()
    pool = urllib3.PoolManager()
    loop = asyncio.new_event_loop()
    ahx = httpx.AsyncClient()

    def async_get() -> None:
        loop.run_until_complete(ahx.get(target))

    return {
        "httpx": (lambda: hx.get(target).read() and None, ihttpx.instrument),
        "httpx async": (async_get, ihttpx.instrument),
        "requests": (lambda: session.get(target).content and None, iurllib3.instrument),
        "urllib3": (lambda: pool.request("GET", target).data and None, iurllib3.instrument),
    }


def main() -> None:
    url, rounds, per_round = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    from apimon.integrations import httpx as ihttpx
    from apimon.integrations import urllib3 as iurllib3

    import apimon

    client = apimon.init(
        store="off",
        moesif_application_id="bench",
        moesif_base_url=url,
        flush_interval=3600,
        batch_size=10_000,
        governance=False,
    )
    out: dict[str, dict[str, float]] = {}
    for name, (call, instrument) in clients(url).items():
        for _ in range(200):  # warm-up: connections open, caches filled
            call()
        samples: dict[str, list[float]] = {"bare": [], "apimon": []}
        for r in range(rounds):
            for variant in ("bare", "apimon") if r % 2 == 0 else ("apimon", "bare"):
                if variant == "apimon":
                    instrument()
                    client.flusher._chunk = 1_000_000  # the flusher sleeps through the timed round
                for _ in range(per_round):
                    # CPU time of this thread: what the call costs the app, not the loopback wait.
                    t0 = time.thread_time_ns()
                    call()
                    samples[variant].append((time.thread_time_ns() - t0) / 1000)
                ihttpx.uninstrument()
                iurllib3.uninstrument()
                apimon.flush(30)
        bare, recorded = statistics.median(samples["bare"]), statistics.median(samples["apimon"])
        out[name] = {"bare_us": bare, "apimon_us": recorded}
    stats = client.stats()
    print(orjson.dumps({"clients": out, "captured": stats["captured"], "errors": stats["internal_errors"]}).decode())


def measure(collector_url: str, quick: bool) -> dict[str, Any]:
    rounds, per_round = (8, 200) if quick else (30, 300)
    command = [
        "taskset",
        "-c",
        "0",
        sys.executable,
        "-m",
        "benchmarks.outgoing",
        collector_url,
        str(rounds),
        str(per_round),
    ]
    proc = subprocess.run(
        command, capture_output=True, text=True, cwd=REPO, timeout=900, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return {}
    data: dict[str, Any] = orjson.loads(proc.stdout.strip().splitlines()[-1])
    for name, r in data["clients"].items():
        print(f"outgoing {name}: bare {r['bare_us']:.1f} us, apimon {r['apimon_us']:.1f} us", flush=True)
    return data


def render(d: dict[str, Any]) -> list[str]:
    if not d:
        return []
    lines = [
        "",
        "## 7. Outgoing calls (µs of CPU per call on the calling thread)",
        "",
        "GET to the benchmark collector on 127.0.0.1 (its own process, CPU 1) with each client bare and"
        " with apimon's instrumentation, alternated in one process on CPU 0; the events are built by the"
        " flusher between rounds, off the calling thread.",
        "",
        "| client | bare | apimon | added |",
        "|---|---|---|---|",
    ]
    for name, r in d["clients"].items():
        lines.append(f"| {name} | {r['bare_us']:.1f} | {r['apimon_us']:.1f} | {r['apimon_us'] - r['bare_us']:+.1f} |")
    return lines


def targets(d: dict[str, Any]) -> list[tuple[str, str, bool]]:
    rows = []
    for name, r in d.get("clients", {}).items():
        added = r["apimon_us"] - r["bare_us"]
        rows.append(
            (
                f"outgoing {name}: under {ADDED_US:.0f} µs added on the calling thread",
                f"{added:+.1f} µs",
                added < ADDED_US,
            )
        )
    return rows


if __name__ == "__main__":
    main()
