"""The flusher's build of one event (``Pipeline.prepare``: the raw call resolved, the event built
and encoded), compiled speedups against pure Python, per framework and endpoint.

Each measurement runs in a process of its own (the choice is made at import, by
``APIMON_PURE_PYTHON``), the two alternated over the rounds::

    python -m benchmarks.builder FRAMEWORK ENDPOINT CALLS   # prints µs per event, one JSON line
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from apimon.flusher import TICK

REPO = Path(__file__).resolve().parents[1]
ENDPOINTS = ["/ping", "/echo", "/large", "/work"]


def _raw_calls(framework: str, endpoint: str, n: int) -> tuple[Any, list[Any]]:
    """``n`` raw calls as the adapter queued them, taken from the flusher before it saw them."""
    from benchmarks.inprocess import _request, asgi_call, wsgi_call

    # Every call queued and none built until timed: no bound or overload sampling may drop any.
    extra = {
        "batch_size": 10_000,
        "flush_interval": 3600,
        "max_queue": 1_000_000,
        "max_queue_bytes": 1 << 32,
        "overload_sampling": False,
    }
    os.environ["BENCH_APIMON_EXTRA"] = orjson.dumps(extra).decode()
    from benchmarks.apps import build, django_app

    app = django_app("apimon") if framework == "django" else build(framework, "apimon")
    method, path, body = _request(endpoint)
    loop = asyncio.new_event_loop()
    import apimon

    call = wsgi_call if framework != "starlette" else None
    for i in range(n + 1):
        if call is not None:
            call(app, method, path, body)
        else:
            loop.run_until_complete(asgi_call(app, method, path, body))
        if i == 0:
            client = apimon.get_client()
            assert client is not None
            # The flusher must leave the queue alone, the calls are built below, timed: no wake-up
            # by queue length or by the overload tick; its current wait ends, then it sleeps for
            # flush_interval.
            client.flusher._chunk = 1 << 30
            client.flusher._tick = None
            time.sleep(TICK + 0.2)
    raws = list(client.flusher._queue)
    client.flusher._queue.clear()
    if len(raws) < n:
        raise SystemExit(f"{len(raws)} of {n} calls were queued")
    return client, raws[-n:]


def measure(framework: str, endpoint: str, n: int) -> float:
    warm = 500
    client, raws = _raw_calls(framework, endpoint, n + warm)
    prepare = client.pipeline.prepare
    for raw in raws[:warm]:  # caches filled, code paths warm: the steady state is timed
        prepare(raw)
    timed = raws[warm:]
    t0 = time.perf_counter_ns()
    for raw in timed:
        if prepare(raw) is None:
            raise SystemExit("an event was dropped")
    return (time.perf_counter_ns() - t0) / 1000 / len(timed)


def side_by_side(rounds: int, calls: int) -> dict[tuple[str, str], dict[str, float]]:
    """Median µs per event, compiled and pure, per (framework, endpoint)."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for framework in ("flask", "starlette", "django"):
        for endpoint in ENDPOINTS:
            runs: dict[str, list[float]] = {"compiled": [], "pure": []}
            for r in range(rounds):
                for mode in ("compiled", "pure") if r % 2 == 0 else ("pure", "compiled"):
                    env = {k: v for k, v in os.environ.items() if k != "APIMON_PURE_PYTHON"}
                    if mode == "pure":
                        env["APIMON_PURE_PYTHON"] = "1"
                    done = subprocess.run(
                        [
                            "taskset",
                            "-c",
                            "0",
                            sys.executable,
                            "-m",
                            "benchmarks.builder",
                            framework,
                            endpoint,
                            str(calls),
                        ],
                        capture_output=True,
                        text=True,
                        cwd=REPO,
                        env=env,
                        check=True,
                    )
                    result = orjson.loads(done.stdout.strip().splitlines()[-1])
                    assert result["compiled"] is (mode == "compiled"), result
                    runs[mode].append(result["us"])
            out[(framework, endpoint)] = {mode: statistics.median(v) for mode, v in runs.items()}
            print(
                f"build {framework} {endpoint}: compiled {out[(framework, endpoint)]['compiled']:.1f} us, "
                f"pure {out[(framework, endpoint)]['pure']:.1f} us",
                flush=True,
            )
    return out


def render(results: dict[tuple[str, str], dict[str, float]]) -> list[str]:
    lines = [
        "",
        "### The event build, compiled and pure Python",
        "",
        "`Pipeline.prepare` per event on the flusher (the raw call resolved, the event built, redacted"
        " and encoded), for calls queued by each adapter in-process; one process per figure, on CPU 0,"
        " compiled (`apimon._speedups`) and pure Python (`APIMON_PURE_PYTHON=1`) alternated, medians.",
        "",
        "| framework | endpoint | compiled µs | pure µs | compiled / pure |",
        "|---|---|---|---|---|",
    ]
    for (framework, endpoint), r in results.items():
        lines.append(
            f"| {framework} | {endpoint} | {r['compiled']:.1f} | {r['pure']:.1f} | {r['compiled'] / r['pure']:.2f}x |"
        )
    return lines


if __name__ == "__main__":
    from apimon import native

    us = measure(sys.argv[1], sys.argv[2], int(sys.argv[3]))
    print(orjson.dumps({"us": us, "compiled": native.ACTIVE}).decode())
