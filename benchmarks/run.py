"""Run every benchmark, print a markdown table and write it to BENCHMARKS.md.

    ./dev bench            # the full run (about 25 minutes on 2 cores)
    ./dev bench --quick    # shorter rounds, for a smoke check

Variants side by side in one run: the bare app, apimon, and Moesif's own middleware
(moesifwsgi, moesifasgi, moesifdjango), both shipping to a local collector.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks import builder, distance, governance, loopback, outgoing
from benchmarks.collector import Collector

REPO = Path(__file__).resolve().parents[1]
FRAMEWORKS = ["flask", "starlette", "django"]
ENDPOINTS = ["/ping", "/echo", "/large"]
PING_TARGET = {"flask": 15.0, "django": 15.0, "starlette": 30.0}


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def in_process(collector: Collector, rounds: int, per_round: int) -> dict[tuple[str, str, str], dict[str, float]]:
    out: dict[tuple[str, str, str], dict[str, float]] = {}
    for fw in FRAMEWORKS:
        for variant in ("apimon", "apimon-compat", "moesif"):
            for endpoint in ENDPOINTS:
                before = collector.count()
                # Moesif's middleware takes milliseconds per /large call: fewer calls, same rounds.
                n = per_round // 5 if endpoint == "/large" else per_round
                command = [
                    "taskset",
                    "-c",
                    "0",
                    sys.executable,
                    "-m",
                    "benchmarks.inprocess",
                    fw,
                    variant,
                    endpoint,
                    str(rounds),
                    str(n),
                ]
                env = {**os.environ, "BENCH_COLLECTOR": collector.url, "PYTHONPATH": str(REPO)}
                try:
                    proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=240, env=env)
                except subprocess.TimeoutExpired:
                    print(f"in-process {fw} {variant} {endpoint}: over 240 s, left out", flush=True)
                    continue
                if proc.returncode != 0:
                    print(proc.stderr[-2000:], file=sys.stderr)
                    continue
                data = orjson.loads(proc.stdout.strip().splitlines()[-1])
                deadline = time.monotonic() + (15 if variant == "moesif" else 5)
                delivered = collector.count() - before
                while delivered < data["requests"] and time.monotonic() < deadline:
                    time.sleep(0.5)
                    delivered = collector.count() - before
                bare, var = statistics.median(data["bare"]), statistics.median(data["variant"])
                out[(fw, variant, endpoint)] = {
                    "bare_us": bare,
                    "us": var,
                    "bare_p99": pct(data["bare"], 0.99),
                    "p99": pct(data["variant"], 0.99),
                    "overhead_pct": (var / bare - 1) * 100,
                    "delivered_pct": min(100.0, delivered / data["requests"] * 100),
                }
                print(
                    f"in-process {fw:9} {variant:6} {endpoint:6} bare {bare:8.1f} us  {variant} {var:8.1f} us"
                    f"  ({(var / bare - 1) * 100:+.1f}%)  delivered {delivered}/{data['requests']}",
                    flush=True,
                )
    return out


LOOPBACK_VARIANTS = ["bare", "apimon", "apimon-path", "apimon-build", "moesif"]
LOOPBACK_FIGURES = ("rps", "p50_ms", "p99_ms", "cpu_s_per_10k", "main_us", "background_us")


def loopback_rounds(
    fw: str,
    rounds: int,
    seconds: int,
    collector: Collector,
    variants: list[str] = LOOPBACK_VARIANTS,
    endpoints: list[str] = ENDPOINTS,
) -> dict[Any, dict[str, Any]]:
    """Every variant ``rounds`` times, the order reversed every other round (the machine's speed
    drifts over minutes); each figure is the median over the rounds, delivered counts the sum."""
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for r in range(rounds):
        order = variants if r % 2 == 0 else variants[::-1]
        for variant in order:
            result = loopback.run(fw, variant, endpoints, seconds, collector)
            runs[variant].append(result)
            print(
                f"loopback {fw} {variant} round {r + 1}: "
                + ", ".join(f"{ep} {result[ep]['rps']:,.0f}/s p99 {result[ep]['p99_ms']:.2f}ms" for ep in endpoints),
                flush=True,
            )
    out: dict[Any, dict[str, Any]] = {}
    for variant, results in runs.items():
        merged: dict[str, Any] = {
            ep: {k: statistics.median(r[ep][k] for r in results) for k in LOOPBACK_FIGURES} for ep in endpoints
        }
        merged["rss_mb"] = statistics.median(r["rss_mb"] for r in results)
        merged["served"] = sum(r["served"] for r in results)
        merged["delivered"] = sum(r["delivered"] for r in results)
        out[(fw, variant)] = merged
    return out


# ``GET /work`` (about a millisecond of SQLite and JSON, as a real endpoint does) gets its own
# rounds of these, by loopback_rounds.
WORK_VARIANTS = ["bare", "apimon", "moesif"]


def _work_table(work: dict[Any, dict[str, Any]]) -> list[str]:
    lines = [
        "",
        "### A realistic endpoint: `GET /work`",
        "",
        "About a millisecond of real work per request (a GROUP BY over 4,000 rows of an in-memory SQLite"
        " table, the top 50 shaped as 3.4 KB of JSON), the same servers and rounds as above. Overhead is"
        " server CPU per request against bare, all threads.",
        "",
        "| framework | variant | req/s | vs bare | p99 ms | p99 vs bare | CPU µs / req | overhead | delivered |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for fw in FRAMEWORKS:
        if (fw, "bare") not in work:
            continue
        bare = work[(fw, "bare")]["/work"]
        for variant in WORK_VARIANTS:
            whole = work[(fw, variant)]
            r = {**whole["/work"], "served": whole["served"], "delivered": whole["delivered"]}
            delivered = "-" if variant == "bare" else f"{min(1.0, r['delivered'] / max(1, r['served'])):.0%}"
            cpu_us = r["cpu_s_per_10k"] * 100
            lines.append(
                f"| {fw} | {variant} | {r['rps']:,.0f} | {r['rps'] / bare['rps']:.0%} | {r['p99_ms']:.2f} "
                f"| {r['p99_ms'] / bare['p99_ms']:.2f}x | {cpu_us:,.0f} "
                f"| {(r['cpu_s_per_10k'] / bare['cpu_s_per_10k'] - 1) * 100:+.1f}% | {delivered} |"
            )
    return lines


def _cpu_split(lb: dict[Any, dict[str, Any]]) -> list[str]:
    """Where apimon's server CPU goes, from the same runs, by the stage each variant stops at:
    the request path (apimon-path against bare), handing events to the flusher and building them
    (apimon-build against apimon-path), shipping them (apimon against apimon-build). Each stage
    counts all threads, so what a background thread's work costs the request thread (caches, GIL
    hand-offs) is in the stage that does the work. The last column is what a request may cost in
    all for the server to keep 90% of bare's requests/s on its one core."""
    lines = [
        "",
        "Where apimon's server CPU goes, µs per request, all threads (medians of the same rounds). Request"
        " path: apimon-path (events dropped at the queue) against bare. Build: apimon-build (events"
        " handed to the flusher, built and encoded, then discarded) against apimon-path. Ship: apimon"
        " (gzip, HTTP, the sender thread) against apimon-build. On one saturated core, keeping 90% of"
        " bare's requests/s leaves apimon a budget of bare / 9 per request.",
        "",
        "| framework | endpoint | bare | request path | build | ship | apimon in all | budget for 90% req/s "
        "| apimon request thread | apimon background |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for fw in FRAMEWORKS:
        runs = [r for v in ("bare", "apimon-path", "apimon-build", "apimon") if (r := lb.get((fw, v)))]
        if len(runs) < 4:
            continue
        for ep in ENDPOINTS:
            b, p, d, a = (_cpu_us(r[ep]) for r in runs)
            full = runs[3][ep]
            lines.append(
                f"| {fw} | {ep} | {b:.1f} | {p - b:+.1f} | {d - p:+.1f} | {a - d:+.1f} | {a - b:+.1f} | {b / 9:.1f} "
                f"| {full['main_us']:.1f} | {full['background_us']:.1f} |"
            )
    return lines


def _cpu_us(figures: dict[str, Any]) -> float:
    """Server CPU per request in µs, all threads."""
    return float(figures["cpu_s_per_10k"]) * 100


#: Collector latencies of the flusher throughput runs, seconds (loopback, 50 ms, 200 ms away).
LATENCIES = (0.0, 0.05, 0.2)


def flusher(events: int) -> dict[str, dict[str, Any]]:
    out = {}
    runs = [(d, lat) for d in ("moesif", "moengage") for lat in LATENCIES] + [("store", 0.0)]
    for destination, latency in runs:
        collector = Collector(destination, latency) if destination != "store" else None
        url = collector.url if collector else "-"
        proc = subprocess.run(
            ["taskset", "-c", "0", sys.executable, "-m", "benchmarks.flusher", destination, url, str(events)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=900,
        )
        if collector:
            collector.close()
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            continue
        key = destination if destination == "store" else f"{destination} {latency * 1000:.0f} ms"
        out[key] = orjson.loads(proc.stdout.strip().splitlines()[-1]) | {"latency_ms": latency * 1000}
        print(f"flusher to {key}: {out[key]['events_per_s']:,.0f} events/s", flush=True)
    return out


def dashboard(calls: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.dashboard", str(calls)]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=900)
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return {}
    out: dict[str, Any] = orjson.loads(proc.stdout.strip().splitlines()[-1])
    for store in ("empty", "full"):
        print(f"dashboard ({store}): " + ", ".join(f"{k} {v:.1f} ms" for k, v in out[store].items()), flush=True)
    return out


DASHBOARD_TARGET_MS = 500.0


def _builder() -> str:
    from apimon import native

    return "compiled loops (apimon._speedups)" if native.ACTIVE else "pure Python (APIMON_PURE_PYTHON=1 or not built)"


def in_process_table(ip: dict[Any, dict[str, float]]) -> list[str]:
    """Section 1's table: µs per request in process, bare, apimon, apimon.compat and Moesif's own."""
    lines = [
        "| framework | endpoint | bare | apimon | apimon overhead | apimon.compat | compat overhead | moesif"
        " | moesif overhead | apimon p99 / bare p99 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for fw in FRAMEWORKS:
        for ep in ENDPOINTS:
            a, m = ip.get((fw, "apimon", ep)), ip.get((fw, "moesif", ep))
            c = ip.get((fw, "apimon-compat", ep))
            if not a:
                continue
            moesif = f"{m['us']:.1f} | {m['overhead_pct']:+.0f}%" if m else "- | -"
            compat = f"{c['us']:.1f} | {c['overhead_pct']:+.1f}%" if c else "- | -"
            lines.append(
                f"| {fw} | {ep} | {a['bare_us']:.1f} | {a['us']:.1f} | {a['overhead_pct']:+.1f}% | {compat} | {moesif} "
                f"| {a['p99'] / a['bare_p99']:.2f}x |"
            )
    return lines


def render(
    ip: dict[Any, dict[str, float]],
    lb: dict[Any, dict[str, Any]],
    fl: dict[str, dict[str, Any]],
    quick: bool,
    dash: dict[str, Any] | None = None,
    dist: dict[str, Any] | None = None,
    gov: dict[str, Any] | None = None,
    og: dict[str, Any] | None = None,
    work: dict[Any, dict[str, Any]] | None = None,
    build: dict[tuple[str, str], dict[str, float]] | None = None,
) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Produced by `./dev bench` (`benchmarks/run.py`); every figure below comes from one run",
        f"on this machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}{' (--quick)' if quick else ''}; "
        f"event builder: {_builder()}.",
        "Medians, with A/B order alternated between rounds; ratios against the bare app measured in the same run.",
        "",
        "## 1. In-process (app object called directly), µs per request",
        "",
        *in_process_table(ip),
    ]
    lines += [
        "",
        "The flusher's work runs between rounds here (untimed); its cost is in the server CPU column below."
        " apimon.compat is apimon under Moesif's settings dict (no hooks set): Moesif's column, one import changed.",
        "",
        "## 2. Real servers on loopback (server on CPU 0, wrk on CPU 1)",
        "",
        f"Medians of {'1 round' if quick else '3 rounds'}, the order of the variants reversed every other round;"
        " delivered is the sum over the rounds.",
        "",
        "| framework | variant | endpoint | req/s | vs bare | p50 ms | p99 ms | p99 vs bare | CPU s / 10k req |"
        " CPU vs bare | peak RSS MB | delivered |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for fw in FRAMEWORKS:
        bare = lb.get((fw, "bare"))
        for variant in LOOPBACK_VARIANTS:
            r = lb.get((fw, variant))
            if not r or not bare:
                continue
            for ep in ENDPOINTS:
                x, b = r[ep], bare[ep]
                if variant in loopback.NOT_SHIPPED:
                    delivered = "-"
                else:
                    delivered = f"{min(100.0, r['delivered'] / r['served'] * 100):.0f}%"
                lines.append(
                    f"| {fw} | {variant} | {ep} | {x['rps']:,.0f} | {x['rps'] / b['rps'] * 100:.0f}% "
                    f"| {x['p50_ms']:.2f} "
                    f"| {x['p99_ms']:.2f} | {x['p99_ms'] / b['p99_ms']:.2f}x | {x['cpu_s_per_10k']:.2f} "
                    f"| {x['cpu_s_per_10k'] / b['cpu_s_per_10k']:.2f}x | {r['rss_mb']:.0f} | {delivered} |"
                )
    lines += _cpu_split(lb)
    if work:
        lines += _work_table(work)
    if build:
        lines += builder.render(build)
    lines += [
        "",
        "## 3. Flusher throughput (one process, to a local collector in another process)",
        "",
        "The collector answers each request after its latency (each request on its own thread, as a"
        " collector that far away would); MoEngage through Bulk Import with its pacing limit raised.",
        "",
        "| destination | collector latency | events | seconds | events/s | delivered |",
        "|---|---|---|---|---|---|",
    ]
    for dest, r in fl.items():
        lines.append(
            f"| {dest.split()[0]} | {r['latency_ms']:.0f} ms | {r['events']:,} | {r['seconds']:.2f} "
            f"| {r['events_per_s']:,.0f} | {r['delivered']:,} |"
        )
    if dist:
        lines += distance.render(dist)
    if dash:
        lines += [
            "",
            "## 5. Dashboard (`apimon serve`, server on CPU 0, client on CPU 1)",
            "",
            f"Median ms per page over real HTTP; the full store holds {dash['calls']:,} calls spread over 24 hours"
            f" (written in {dash['fill_s']:.0f} s through apimon's client and store sink).",
            "",
            f"| page | empty store | {dash['calls']:,} calls |",
            "|---|---|---|",
        ]
        for page, ms in dash["full"].items():
            lines.append(f"| {page} | {dash['empty'][page]:.1f} | {ms:.1f} |")
    if gov:
        lines += governance.render(gov)
    if og:
        lines += outgoing.render(og)
    lines += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    for row in targets(ip, lb, fl, dash or {}, dist) + governance.targets(gov or {}) + outgoing.targets(og or {}):
        lines.append(f"| {row[0]} | {row[1]} | {'yes' if row[2] else '**no**'} |")
    return "\n".join(lines) + "\n"


def targets(
    ip: dict[Any, dict[str, float]],
    lb: dict[Any, dict[str, Any]],
    fl: dict[str, dict[str, Any]],
    dash: dict[str, Any],
    dist: dict[str, Any] | None = None,
) -> list[tuple[str, str, bool]]:
    dist = dist or {}
    rows = []
    for fw in FRAMEWORKS:
        a, m = ip.get((fw, "apimon", "/ping")), ip.get((fw, "moesif", "/ping"))
        if a:
            rows.append(
                (
                    f"in-process /ping {fw}: at most +{PING_TARGET[fw]:.0f}%",
                    f"{a['overhead_pct']:+.1f}%",
                    a["overhead_pct"] <= PING_TARGET[fw],
                )
            )
        if a and m:
            # Each variant runs in a process of its own, beside its own bare app; the machine's
            # speed drifts between processes, so what each adds is compared relative to its bare.
            added_a, added_m = a["overhead_pct"], m["overhead_pct"]
            rows.append(
                (
                    f"in-process /ping {fw}: at most 1/10 of what Moesif adds",
                    f"{added_a:+.1f}% vs {added_m:+.0f}% of bare ({a['us'] - a['bare_us']:.1f} vs"
                    f" {m['us'] - m['bare_us']:.1f} µs)",
                    added_a <= added_m / 10,
                )
            )
        large = ip.get((fw, "apimon", "/large"))
        if large:
            rows.append(
                (
                    f"in-process /large {fw}: at most 1.10x bare",
                    f"{large['us'] / large['bare_us']:.2f}x",
                    large["us"] / large["bare_us"] <= 1.10,
                )
            )
        bare, ap = lb.get((fw, "bare")), lb.get((fw, "apimon"))
        if bare and ap:
            for ep in ("/ping", "/echo"):
                kept = ap[ep]["rps"] / bare[ep]["rps"] * 100
                rows.append((f"loopback {fw} {ep}: at least 90% of bare req/s", f"{kept:.0f}%", kept >= 90))
                p99 = ap[ep]["p99_ms"] / bare[ep]["p99_ms"]
                rows.append((f"loopback {fw} {ep}: p99 at most 1.5x bare", f"{p99:.2f}x", p99 <= 1.5))
            cpu = ap["/echo"]["cpu_s_per_10k"] / bare["/echo"]["cpu_s_per_10k"]
            rows.append((f"server CPU {fw} /echo: at most 1.25x bare", f"{cpu:.2f}x", cpu <= 1.25))
            rss = ap["rss_mb"] - bare["rss_mb"]
            rows.append((f"peak RSS {fw}: at most 25 MB above bare", f"{rss:+.0f} MB", rss <= 25))
            delivered = ap["delivered"] / ap["served"] * 100
            rows.append((f"loopback {fw}: 100% of events delivered", f"{delivered:.1f}%", delivered >= 100))
    for latency, floor in ((0, 36_000), (50, 20_000), (200, 10_000)):
        r = fl.get(f"moesif {latency} ms")
        if r:
            rate = r["events_per_s"]
            rows.append(
                (
                    f"flusher to Moesif {latency} ms away: at least {floor:,} events/s",
                    f"{rate:,.0f}",
                    rate >= floor and r["delivered"] == r["events"],
                )
            )
    rows += distance.targets(dist)
    for page, ms in dash.get("full", {}).items():
        rows.append(
            (
                f"dashboard {page} with {dash['calls']:,} calls: under {DASHBOARD_TARGET_MS:.0f} ms",
                f"{ms:.0f} ms",
                ms < DASHBOARD_TARGET_MS,
            )
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", default=str(REPO / "BENCHMARKS.md"))
    parser.add_argument("--in-process", action="store_true", help="section 1 alone, printed (BENCHMARKS.md untouched)")
    args = parser.parse_args()
    rounds, per_round, seconds, events = (4, 300, 4, 20_000) if args.quick else (8, 500, 8, 100_000)
    if args.in_process:
        collector = Collector()
        try:
            print("\n".join(in_process_table(in_process(collector, rounds, per_round))))
        finally:
            collector.close()
        return 0
    lb_rounds, lb_seconds = (1, 4) if args.quick else (3, 5)
    collector = Collector()
    try:
        ip = in_process(collector, rounds, per_round)
        lb: dict[Any, dict[str, Any]] = {}
        work: dict[Any, dict[str, Any]] = {}
        for fw in FRAMEWORKS:
            lb.update(loopback_rounds(fw, lb_rounds, lb_seconds, collector))
            work.update(loopback_rounds(fw, lb_rounds, lb_seconds, collector, WORK_VARIANTS, ["/work"]))
    finally:
        collector.close()
    build = builder.side_by_side(1 if args.quick else 3, 1000 if args.quick else 3000)
    fl = flusher(events)
    dist = distance.measure(args.quick)
    dash = dashboard(20_000 if args.quick else 100_000)
    gov = governance.measure(args.quick)
    partner = Collector()
    try:
        og = outgoing.measure(partner.url, args.quick)
    finally:
        partner.close()
    text = render(ip, lb, fl, args.quick, dash, dist, gov, og, work, build)
    Path(args.output).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
