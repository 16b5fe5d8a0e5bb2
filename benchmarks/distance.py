"""Delivery at a distance: a worker calls its app at a steady rate while the collector answers
each request late (50 or 200 ms, as Moesif is from most hosts), or not at all (a stall).

Three scenarios, each for apimon and for Moesif's own middleware, side by side:

- ``paced``: the Flask app called in-process at RATE calls/s for SECONDS (POST /echo, 2 KB of
  JSON), the collector LATENCY away: calls delivered, dropped, the worker's peak RSS over its
  baseline.
- ``stall``: the collector stalled while 3,000 calls with ~90 KB JSON bodies (echoed, so ~180 KB
  an event) are made, then resumed: peak RSS, delivered later or counted.
- ``saturated``: a single-core uvicorn Starlette worker under wrk for SECONDS, the collector 50 ms
  away: the delivered events' weights against the calls served.

The worker is a subprocess (``python -m benchmarks.distance worker ...``) pinned to CPU 0; the
collector runs on CPU 1 (``benchmarks.collector``). Run by ``benchmarks.run``, or alone::

    python -m benchmarks.distance [--quick]
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks.collector import Collector

REPO = Path(__file__).resolve().parents[1]
ECHO_2K = orjson.dumps({"pad": "x" * 2038})


def _big_body() -> bytes:
    # ~90 KB of varied JSON records (a page of a list endpoint), not one repeated character.
    rows = [
        {"id": i, "sku": f"{i * 2654435761 % 2**32:08x}", "name": f"item {i}", "price": i * 0.37} for i in range(1400)
    ]
    return orjson.dumps({"items": rows})


def _vm(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def worker(variant: str, rate: float, seconds: float, body_kind: str) -> None:
    """Call the Flask app in-process at ``rate`` calls/s; report on stdin's ``report``."""
    os.environ["BENCH_APIMON_EXTRA"] = "{}"
    from benchmarks.apps import build
    from benchmarks.inprocess import wsgi_call

    app = build("flask", variant)
    body = ECHO_2K if body_kind == "2k" else _big_body()
    for _ in range(200):  # warm-up: imports, caches, threads
        wsgi_call(app, "POST", "/echo", ECHO_2K)
    if variant == "apimon":
        import apimon

        apimon.flush(10)
    baseline = _vm("VmRSS")
    total = int(rate * seconds)
    t0 = time.perf_counter()
    late = 0
    for i in range(total):
        due = t0 + i / rate
        now = time.perf_counter()
        if now < due:
            time.sleep(due - now)
        elif now - due > 0.05:
            late += 1
        wsgi_call(app, "POST", "/echo", body)
    elapsed = time.perf_counter() - t0
    print(orjson.dumps({"phase": "served", "served": total + 200, "elapsed": elapsed}).decode(), flush=True)
    for line in sys.stdin:
        if line.strip() == "report":
            break
    stats: dict[str, int] = {}
    if variant == "apimon":
        import apimon

        apimon.flush(1)
        stats = apimon.stats()
    report = {
        "served": total + 200,
        "timed": total,
        "rate": total / elapsed,
        "late": late,
        "rss_mb": _vm("VmHWM") - baseline,
        "stats": stats,
    }
    print(orjson.dumps(report).decode(), flush=True)


def _delivered(collector: Collector, before: int, expected: int, deadline: float) -> int:
    """Wait for the collector's count to reach ``expected`` or stop growing for 5 s."""
    last, still = -1, time.monotonic()
    while True:
        got = collector.count() - before
        if got >= expected or time.monotonic() >= deadline:
            return got
        if got != last:
            last, still = got, time.monotonic()
        elif time.monotonic() - still > 5:
            return got
        time.sleep(0.5)


def run_worker(
    variant: str, rate: float, seconds: float, collector: Collector, body: str, stall: bool
) -> dict[str, Any]:
    env = {**os.environ, "BENCH_COLLECTOR": collector.url, "PYTHONPATH": str(REPO)}
    command = ["taskset", "-c", "0", sys.executable, "-m", "benchmarks.distance", "worker", variant, str(rate)]
    command += [str(seconds), body]
    before, before_weights = collector.count(), collector.weights()
    if stall:
        collector.stall()
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO, env=env)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        served = orjson.loads(proc.stdout.readline())["served"]
        if stall:
            time.sleep(2.0)  # the worker goes on holding what it holds; then the collector returns
            collector.resume()
        delivered = _delivered(collector, before, served, time.monotonic() + 120)
        proc.stdin.write("report\n")
        proc.stdin.flush()
        report: dict[str, Any] = orjson.loads(proc.stdout.readline())
    finally:
        if stall:
            collector.resume()
        proc.kill()
        proc.wait(10)
    report["delivered"] = delivered
    report["weights"] = collector.weights() - before_weights
    return report


def paced(rates: list[tuple[float, float]], seconds: float) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for rate, latency in rates:
        collector = Collector("moesif", latency)
        try:
            for variant in ("apimon", "moesif"):
                r = run_worker(variant, rate, seconds, collector, "2k", stall=False)
                key = f"{variant} {rate:.0f}/s {latency * 1000:.0f}ms"
                out[key] = r | {"variant": variant, "target_rate": rate, "latency_ms": latency * 1000}
                print(f"distance {key}: delivered {r['delivered']}/{r['served']}, +{r['rss_mb']:.0f} MB", flush=True)
        finally:
            collector.close()
    return out


def stalled(calls: int) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for variant in ("apimon", "moesif"):
        collector = Collector("moesif", 0.0)
        try:
            # As fast as the worker goes: 3,000 calls at up to 1,000/s.
            r = run_worker(variant, 1000.0, calls / 1000.0, collector, "90k", stall=True)
        finally:
            collector.close()
        out[variant] = r
        print(f"stalled {variant}: delivered {r['delivered']}/{r['served']}, +{r['rss_mb']:.0f} MB", flush=True)
    return out


def saturated(seconds: int, latency: float = 0.05) -> dict[str, Any]:
    """A single-core uvicorn Starlette worker under wrk, the collector ``latency`` away."""
    from apimon.serverproc import free_port
    from benchmarks.loopback import peak_rss_mb, server_for, wrk

    collector = Collector("moesif", latency)
    try:
        port = free_port()
        before, before_w = collector.count(), collector.weights()
        server = server_for("starlette", "apimon", port, collector.url)
        with server:
            pid = server.proc.pid  # type: ignore[union-attr]
            served = int(wrk(port, "/ping", 2)["requests"])
            r = wrk(port, "/ping", seconds)
            served += int(r["requests"])
            rss = peak_rss_mb(pid)
        time.sleep(1.0)
        delivered = _delivered(collector, before, served, time.monotonic() + 60)
        weights = collector.weights() - before_w
    finally:
        collector.close()
    result = {"served": served, "rps": r["rps"], "delivered": delivered, "weights": weights, "rss_mb": rss}
    print(
        f"saturated starlette, collector {latency * 1000:.0f} ms: served {served}, events {delivered},"
        f" weights {weights} ({weights / served * 100:.1f}%)",
        flush=True,
    )
    return result


def measure(quick: bool) -> dict[str, Any]:
    seconds = 4.0 if quick else 8.0
    return {
        "paced": paced([(4000.0, 0.05), (2000.0, 0.2)], seconds),
        "stalled": stalled(1000 if quick else 3000),
        "saturated": saturated(15 if quick else 60),
    }


def render(d: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## 4. Delivery at a distance (the collector answers each request late, or stalls)",
        "",
        "Worker: the Flask app called in-process at a steady rate (POST /echo, 2 KB of JSON) on CPU 0;"
        " the collector on CPU 1 holds every answer for its latency. Peak RSS is over the worker's own"
        " baseline after warm-up. Moesif's middleware (moesifwsgi) on the same runs.",
        "",
        "| variant | calls/s asked | collector | calls/s made | calls | delivered | dropped | peak RSS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in d.get("paced", {}).values():
        dropped = _dropped(r)
        lines.append(
            f"| {r['variant']} | {r['target_rate']:,.0f} | {r['latency_ms']:.0f} ms | {r['rate']:,.0f} "
            f"| {r['served']:,} | {r['delivered'] / r['served'] * 100:.1f}% | {dropped} | +{r['rss_mb']:.0f} MB |"
        )
    stall = d.get("stalled", {})
    if stall:
        lines += [
            "",
            "Collector stalled while the calls are made (POST /echo with ~90 KB of JSON, echoed: ~180 KB an"
            " event), resumed 2 s after the last one:",
            "",
            "| variant | calls | delivered after the stall | counted drops | internal errors | peak RSS |",
            "|---|---|---|---|---|---|",
        ]
        for variant, r in stall.items():
            stats = r.get("stats") or {}
            counted = sum(
                v for k, v in stats.items() if k.startswith("dropped_") or k in ("failed", "sampled_overload")
            )
            lines.append(
                f"| {variant} | {r['served']:,} | {r['delivered']:,} | {counted if stats else '-'} "
                f"| {stats.get('internal_errors', '-')} | +{r['rss_mb']:.0f} MB |"
            )
    sat = d.get("saturated")
    if sat:
        lines += [
            "",
            "Saturated single-core worker (uvicorn, Starlette /ping, wrk with 8 connections), collector 50 ms"
            " away: events delivered and the sum of their `weight` against the calls served.",
            "",
            "| calls served | req/s | events delivered | sum of weights | weights / calls | peak RSS MB |",
            "|---|---|---|---|---|---|",
            f"| {sat['served']:,} | {sat['rps']:,.0f} | {sat['delivered']:,} | {sat['weights']:,} "
            f"| {sat['weights'] / sat['served'] * 100:.2f}% | {sat['rss_mb']:.0f} |",
        ]
    return lines


def _counted(stats: dict[str, int]) -> int:
    """Calls apimon counted as not delivered, every reason (sampled out for overload included)."""
    return sum(v for k, v in stats.items() if k.startswith("dropped_") or k in ("failed", "sampled_overload"))


def _dropped(r: dict[str, Any]) -> str:
    stats = r.get("stats") or {}
    if not stats:
        return f"{max(0, r['served'] - r['delivered']):,} (not delivered)"
    counted = sum(v for k, v in stats.items() if k.startswith("dropped_") or k == "failed")
    sampled = stats.get("sampled_overload", 0)
    return f"{counted:,}" + (f" (+{sampled:,} sampled with weights)" if sampled else "")


def targets(d: dict[str, Any]) -> list[tuple[str, str, bool]]:
    rows = []
    for r in d.get("paced", {}).values():
        if r["variant"] != "apimon":
            continue
        share = r["delivered"] / r["served"] * 100
        rows.append(
            (
                f"{r['target_rate']:,.0f} calls/s, collector {r['latency_ms']:.0f} ms: 100% delivered within +64 MB",
                f"{share:.1f}%, +{r['rss_mb']:.0f} MB",
                share >= 100 and r["rss_mb"] <= 64,
            )
        )
    stall = d.get("stalled", {}).get("apimon")
    if stall:
        stats = stall.get("stats") or {}
        counted = _counted(stats)
        ok = stall["delivered"] + counted >= stall["served"] and stats.get("internal_errors", 1) == 0
        rows.append(
            (
                "collector stalled, ~90 KB bodies: peak RSS at most +100 MB, every call delivered or counted",
                f"+{stall['rss_mb']:.0f} MB, {stall['delivered']:,} delivered"
                f" + {counted:,} counted of {stall['served']:,}",
                ok and stall["rss_mb"] <= 100,
            )
        )
    sat = d.get("saturated")
    if sat:
        share = sat["weights"] / sat["served"] * 100
        rows.append(
            (
                "saturated Starlette worker, collector 50 ms: weights within 1% of the calls",
                f"{share:.2f}%",
                abs(share - 100) <= 1,
            )
        )
    return rows


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        worker(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
        return
    data = measure("--quick" in sys.argv)
    print("\n".join(render(data)))
    for row in targets(data):
        print(row)


if __name__ == "__main__":
    main()
