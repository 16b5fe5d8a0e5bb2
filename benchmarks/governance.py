"""What Moesif's governance rules cost on the request path, in-process: the same app bare and with
apimon, apimon with no rules, 10 and 100 rules in force (none of which matches the call, so every
rule is checked and the app runs), alternated round by round in one process. Prints one JSON
line; run by ``benchmarks.run``::

    python -m benchmarks.governance FRAMEWORK ROUNDS PER_ROUND
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from typing import Any

import orjson

from benchmarks.inprocess import asgi_call, bench_rules, wsgi_call

COUNTS = (0, 10, 100)


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

    def run(app: Any, n: int) -> list[float]:
        samples = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            if framework == "starlette":
                loop.run_until_complete(asgi_call(app, "GET", "/ping", b""))
            else:
                wsgi_call(app, "GET", "/ping", b"")
            samples.append((time.perf_counter_ns() - t0) / 1000)
        return samples

    variants: list[tuple[str, Any, Any]] = [("bare", bare, None)]
    variants += [(f"rules {n}", wrapped, snapshots[n]) for n in COUNTS]
    for _, app, rules in variants:  # warm-up
        client.rules = rules
        run(app, 300)
    apimon.flush(30)
    client.flusher._chunk = 1_000_000  # the flusher sleeps through the timed rounds
    results: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    for r in range(rounds):
        order = variants if r % 2 == 0 else variants[::-1]
        for name, app, rules in order:
            client.rules = rules
            results[name] += run(app, per_round)
        apimon.flush(30)
    medians = {name: statistics.median(samples) for name, samples in results.items()}
    print(orjson.dumps({"framework": framework, "us": medians}).decode(), flush=True)


if __name__ == "__main__":
    main()
