"""What Moesif's governance rules cost on the request path, in-process: the same app bare and with
apimon, apimon with no rules, 10 and 100 rules in force (none of which matches the call, so every
rule is checked and the app runs), and a hostile 4 KB header with and without three patterns a
backtracking engine takes seconds or forever on, alternated round by round in one process. One framework
prints one JSON line; ``measure`` runs all three (``benchmarks.run``'s section 6)::

    python -m benchmarks.governance FRAMEWORK ROUNDS PER_ROUND
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
import timeit
from pathlib import Path
from typing import Any

import orjson

from benchmarks.inprocess import asgi_call, bench_rules, wsgi_call

COUNTS = (0, 10, 100)
#: Patterns Python's ``re`` backtracks on for seconds to forever with :data:`PROBE` (RE2 runs them).
REDOS = (r".*@.*\..*$", r".*\d+.*\d+.*x", r"(\w+\s?)+$")
PROBE = [("X-Probe", "a" * 1000 + "!" * 3096)]
FRAMEWORKS = ("flask", "starlette", "django")
REPO = Path(__file__).resolve().parents[1]
#: Issue 20's target: what 10 regex rules may add to a request.
TEN_RULES_US = 5.0


def measure(quick: bool) -> dict[str, Any]:
    # Many short rounds: the host drifts by more than the rules cost over a long one.
    rounds, per_round = (8, 200) if quick else (30, 300)
    out: dict[str, Any] = {"frameworks": {}}
    for fw in FRAMEWORKS:
        command = ["taskset", "-c", "0", sys.executable, "-m", "benchmarks.governance", fw, str(rounds), str(per_round)]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600, env=env)
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            continue
        out["frameworks"][fw] = orjson.loads(proc.stdout.strip().splitlines()[-1])["us"]
        print(f"governance {fw}: {out['frameworks'][fw]}", flush=True)
    # With no rules in force an adapter reads one attribute (``client.rules is None``) and goes on.
    holder = type("Client", (), {"rules": None})()
    n = 5_000_000
    check = timeit.repeat("holder.rules is not None", globals={"holder": holder}, number=n, repeat=5)
    empty = timeit.repeat("pass", number=n, repeat=5)
    out["no_rules_ns"] = max(0.0, (min(check) - min(empty)) / n * 1e9)
    return out


def render(d: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## 6. Governance rules on the request path (in-process, µs per request)",
        "",
        "GET /ping with 0, 10 and 100 of Moesif's governance rules in force (regex rules on the verb"
        " and route, a header, the client IP, a query parameter; none matches, so every rule is checked"
        " and the app runs), the same app bare and with apimon alternated in one process on CPU 0.",
        "",
        "| framework | bare | apimon, no rules | 10 rules | 100 rules | 10 rules add | 100 rules add |",
        "|---|---|---|---|---|---|---|",
    ]
    for fw, us in d.get("frameworks", {}).items():
        lines.append(
            f"| {fw} | {us['bare']:.1f} | {us['rules 0']:.1f} | {us['rules 10']:.1f} | {us['rules 100']:.1f} "
            f"| {us['rules 10'] - us['rules 0']:+.1f} | {us['rules 100'] - us['rules 0']:+.1f} |"
        )
    hostile = [(fw, us) for fw, us in d.get("frameworks", {}).items() if "hostile, rules 0" in us]
    if hostile:
        lines += [
            "",
            "A 4,096-character `X-Probe` header (`a` x 1000, `!` x 3096) against three patterns on that header"
            " that Python's `re` backtracks on (`.*@.*\\..*$`, `.*\\d+.*\\d+.*x`, `(\\w+\\s?)+$`: the last one"
            " never finished in 15 s on 29 characters); the conditions run on RE2 and read 1,024 characters:",
            "",
            "| framework | hostile header, no rules | hostile header, 3 ReDoS rules | the rules add |",
            "|---|---|---|---|",
        ]
        for fw, us in hostile:
            a, b = us["hostile, rules 0"], us["hostile, 3 ReDoS rules"]
            lines.append(f"| {fw} | {a:.1f} | {b:.1f} | {b - a:+.1f} |")
    if "no_rules_ns" in d:
        lines += [
            "",
            f"With no rules in force an adapter's only governance work is reading `client.rules` (None):"
            f" {d['no_rules_ns']:.0f} ns.",
        ]
    return lines


def targets(d: dict[str, Any]) -> list[tuple[str, str, bool]]:
    rows = []
    if "no_rules_ns" in d:
        ns = d["no_rules_ns"]
        rows.append(("governance with no rules: unmeasurable (under 0.1 µs)", f"{ns:.0f} ns", ns < 100))
    for fw, us in d.get("frameworks", {}).items():
        added = us["rules 10"] - us["rules 0"]
        rows.append(
            (
                f"governance {fw}: 10 regex rules add under {TEN_RULES_US:.0f} µs",
                f"{added:+.1f} µs",
                added < TEN_RULES_US,
            )
        )
    return rows


def main() -> None:
    framework, rounds, per_round = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    # The flusher waits for the untimed gap between rounds; the rules are set here, so the
    # background fetch must not replace them.
    os.environ["BENCH_APIMON_EXTRA"] = orjson.dumps(
        {"batch_size": 10000, "flush_interval": 3600, "governance": False}
    ).decode()
    from benchmarks.apps import build, django_app

    if framework == "django":
        from django.conf import settings

        bare = django_app("bare")
        settings.MIDDLEWARE = ["apimon.integrations.django.ApimonMiddleware"]
        from django.core.handlers.wsgi import WSGIHandler

        wrapped = WSGIHandler()
    else:
        bare, wrapped = build(framework, "bare"), build(framework, "apimon")
    import apimon
    from apimon.governance.rules import RuleSet

    client = apimon.ensure_client({})
    snapshots = {n: RuleSet.parse(bench_rules(n), {})[0] if n else None for n in COUNTS}
    loop = asyncio.new_event_loop()

    redos = [
        {
            "_id": f"redos-{i}",
            "type": "regex",
            "regex_config": [{"conditions": [{"path": "request.headers.x-probe", "value": p}]}],
        }
        for i, p in enumerate(REDOS)
    ]
    snapshots["redos"] = RuleSet.parse(redos, {})[0]
    probing = False

    def run(app: Any, n: int) -> list[float]:
        samples = []
        headers = PROBE if probing else ()
        for _ in range(n):
            t0 = time.perf_counter_ns()
            if framework == "starlette":
                loop.run_until_complete(asgi_call(app, "GET", "/ping", b"", headers))
            else:
                wsgi_call(app, "GET", "/ping", b"", headers)
            samples.append((time.perf_counter_ns() - t0) / 1000)
        return samples

    variants: list[tuple[str, Any, Any]] = [("bare", bare, None)]
    variants += [(f"rules {n}", wrapped, snapshots[n]) for n in COUNTS]
    variants += [("hostile, rules 0", wrapped, None), ("hostile, 3 ReDoS rules", wrapped, snapshots["redos"])]
    for name, app, rules in variants:  # warm-up
        client.rules = rules
        probing = name.startswith("hostile")
        run(app, 300)
    apimon.flush(30)
    client.flusher._chunk = 1_000_000  # the flusher sleeps through the timed rounds
    results: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    for r in range(rounds):
        order = variants if r % 2 == 0 else variants[::-1]
        for name, app, rules in order:
            client.rules = rules
            probing = name.startswith("hostile")
            results[name] += run(app, per_round)
        apimon.flush(30)
    medians = {name: statistics.median(samples) for name, samples in results.items()}
    print(orjson.dumps({"framework": framework, "us": medians}).decode(), flush=True)


if __name__ == "__main__":
    main()
