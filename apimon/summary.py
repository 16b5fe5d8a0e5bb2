"""The figures of `apimon stats` over a store: counts by status class and by route, duration
percentiles, and the outgoing calls by host. Usage::

    figures = summarize(Store("apimon.db", readonly=True))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from apimon.store import Store


def summarize(store: Store) -> dict[str, Any]:
    """Counts by status class and by route, and duration percentiles."""
    by_class = {
        f"{r['cls']}xx": r["n"]
        for r in store.query("SELECT status / 100 AS cls, COUNT(*) AS n FROM calls GROUP BY cls ORDER BY cls")
    }
    by_route = [
        {
            "route": r["route"],
            "verb": r["verb"],
            "count": r["n"],
            "errors": r["errors"],
            "p50_ms": None,
            "avg_ms": round(r["avg_ms"], 2),
        }
        for r in store.query(
            "SELECT verb, COALESCE(route, path) AS route, COUNT(*) AS n, SUM(status >= 500) AS errors,"
            " AVG(duration_ms) AS avg_ms FROM calls GROUP BY verb, COALESCE(route, path)"
            " ORDER BY n DESC LIMIT 50"
        )
    ]
    durations = [r["duration_ms"] for r in store.query("SELECT duration_ms FROM calls ORDER BY duration_ms")]
    return {
        "outgoing_by_host": outgoing_by_host(store),
        "total": len(durations),
        "by_status_class": by_class,
        "by_route": by_route,
        "p50_ms": percentile(durations, 50),
        "p95_ms": percentile(durations, 95),
        "p99_ms": percentile(durations, 99),
    }


def outgoing_by_host(store: Store) -> list[dict[str, Any]]:
    """The calls the app made, by the host it called: count, errors (no answer, or 5xx) and
    mean duration, the busiest first."""
    by_host: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    for call in store.recent(limit=1_000_000, direction="Outgoing"):
        event = call.event()
        host = urlsplit(str(event.get("request", {}).get("uri", ""))).netloc or "?"
        by_host.setdefault(host, []).append(call.duration_ms)
        failed = "response" not in event or call.status >= 500
        errors[host] = errors.get(host, 0) + failed
    rows = [
        {"host": h, "count": len(d), "errors": errors[h], "avg_ms": round(sum(d) / len(d), 2)}
        for h, d in by_host.items()
    ]
    return sorted(rows, key=lambda r: -int(r["count"]))


def percentile(sorted_values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile of an ascending sequence; None when empty."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * pct // 100))
    return round(float(sorted_values[int(rank) - 1]), 3)
