"""Two versions of apimon side by side on loopback, with the bare app, in one run.

    git worktree add /tmp/apimon-old <rev>
    python -m benchmarks.ab /tmp/apimon-old                   # all frameworks, /ping and /echo
    python -m benchmarks.ab /tmp/apimon-old --frameworks starlette --rounds 5

Each round starts a fresh server per variant (bare, old, new), the order reversed every other
round; prints medians of requests/s, server CPU and p99 as ratios to the bare app of the same
run. The old tree's ``apimon`` package shadows this checkout's through ``PYTHONPATH``; the
adapters (``apimon.integrations``) come from this checkout in both, so this compares the core.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from apimon.serverproc import free_port
from benchmarks.loopback import cpu_seconds, server_for, wrk
from benchmarks.run import REPO, Collector

Sample = tuple[float, float, float]  # requests/s, CPU µs per request, p99 ms


def measure(
    framework: str, variant: str, tree: Path, endpoints: list[str], seconds: int, collector: str
) -> dict[str, Sample]:
    port = free_port()
    server = server_for(framework, "bare" if variant == "bare" else "apimon", port, collector)
    server.env["PYTHONPATH"] = str(tree)
    server.cwd = str(tree)
    out: dict[str, Sample] = {}
    with server:
        pid = server.proc.pid  # type: ignore[union-attr]
        wrk(port, "/ping", 2)  # warm-up
        for endpoint in endpoints:
            cpu0 = cpu_seconds(pid)
            r = wrk(port, endpoint, seconds)
            out[endpoint] = (r["rps"], (cpu_seconds(pid) - cpu0) / r["requests"] * 1e6, r["p99_ms"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", type=Path, help="a checkout (git worktree) of the older revision")
    parser.add_argument("--frameworks", default="flask,starlette,django")
    parser.add_argument("--endpoints", default="/ping,/echo")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=6)
    args = parser.parse_args()
    trees = {"bare": REPO, "old": args.old.resolve(), "new": REPO}
    endpoints = args.endpoints.split(",")
    collector = Collector()
    samples: dict[tuple[str, str, str], list[Sample]] = {}
    try:
        for fw in args.frameworks.split(","):
            for r in range(args.rounds):
                order = list(trees) if r % 2 == 0 else list(trees)[::-1]
                for variant in order:
                    got = measure(fw, variant, trees[variant], endpoints, args.seconds, collector.url)
                    for endpoint, sample in got.items():
                        samples.setdefault((fw, endpoint, variant), []).append(sample)
                    time.sleep(0.5)
            _print(fw, endpoints, samples)
    finally:
        collector.close()


def _median(rows: list[Sample], i: int) -> float:
    return statistics.median(row[i] for row in rows)


def _print(fw: str, endpoints: list[str], samples: dict[tuple[str, str, str], list[Sample]]) -> None:
    for endpoint in endpoints:
        bare = samples[(fw, endpoint, "bare")]
        rps, cpu, p99 = (_median(bare, i) for i in range(3))
        line = f"| {fw} | {endpoint} | {rps:,.0f}/s, {cpu:.1f} µs CPU |"
        for variant in ("old", "new"):
            rows = samples[(fw, endpoint, variant)]
            line += (
                f" {_median(rows, 0) / rps:.0%}, {_median(rows, 1) / cpu:.2f}x CPU, p99 {_median(rows, 2) / p99:.2f}x |"
            )
        print(line, flush=True)


if __name__ == "__main__":
    main()
