"""The overview's figures: requests per minute by status class, latency percentiles over time,
top routes (by count, errors, latency) and top users, for the calls that match the filters.

Usage::

    figures = build_overview(Reader("apimon.db"), Filters.parse(request.query_params))
    figures["buckets"], figures["top_routes"], figures["p99_ms"], ...

Aggregation is done by SQLite (GROUP BY over indexed columns); only the durations for the
percentiles come back to Python, as one float per call.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from apimon.dashboard.queries import Filters, Reader, iso
from apimon.store import percentile

# Bucket widths (seconds), the first that gives at most MAX_BUCKETS buckets is used.
WIDTHS = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)
MAX_BUCKETS = 90
TOP = 10
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


def bucket_width(span_seconds: float) -> int:
    for width in WIDTHS:
        if span_seconds / width <= MAX_BUCKETS:
            return width
    # A span of years (a clock that jumped, an old store): still at most MAX_BUCKETS buckets.
    return -(-int(span_seconds) // MAX_BUCKETS)


def build_overview(reader: Reader, filters: Filters) -> dict[str, Any]:
    clauses, params = filters.where()
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    span = reader.query(f"SELECT MIN(ts) AS lo, MAX(ts) AS hi, COUNT(*) AS n FROM calls {where}", params)[0]
    total = int(span["n"])
    if not total:
        return {"total": 0, "buckets": [], "width": 60, "top_routes": [], "top_errors": [], "top_slow": []}
    lo = filters.since if filters.since is not None else float(span["lo"])
    hi = filters.until if filters.until is not None else float(span["hi"])
    width = bucket_width(hi - lo)
    first, last = int(lo // width), int(hi // width)

    counts: dict[int, dict[str, int]] = defaultdict(dict)
    for row in reader.query(
        f"SELECT CAST(ts / ? AS INTEGER) AS b, status / 100 AS c, COUNT(*) AS n FROM calls {where} GROUP BY b, c",
        [width, *params],
    ):
        counts[int(row["b"])][f"{row['c']}xx"] = int(row["n"])
    durations: dict[int, list[float]] = defaultdict(list)
    every: list[float] = []
    for bucket, duration in reader.query(
        f"SELECT CAST(ts / ? AS INTEGER) AS b, duration_ms FROM calls {where}", [width, *params]
    ):
        durations[bucket].append(duration)
        every.append(duration)
    every.sort()

    buckets = []
    for index in range(first, last + 1):
        values = sorted(durations.get(index, ()))
        by_class = counts.get(index, {})
        buckets.append(
            {
                "start": iso(index * width),
                "count": sum(by_class.values()),
                # Per minute, whatever the bucket width, so the axis means the same at every zoom.
                "per_minute": {c: by_class.get(c, 0) * 60 / width for c in STATUS_CLASSES},
                "p50_ms": percentile(values, 50),
                "p95_ms": percentile(values, 95),
                "p99_ms": percentile(values, 99),
            }
        )
    classes = {c: sum(b.get(c, 0) for b in counts.values()) for c in STATUS_CLASSES}
    return {
        "total": total,
        "since": iso(lo),
        "until": iso(hi),
        "width": width,
        "buckets": buckets,
        "by_status_class": {c: n for c, n in classes.items() if n},
        "p50_ms": percentile(every, 50),
        "p95_ms": percentile(every, 95),
        "p99_ms": percentile(every, 99),
        **_top_routes(reader, where, params),
        "top_users": _top_users(reader, clauses, params),
    }


def _top_routes(reader: Reader, where: str, params: list[Any]) -> dict[str, list[dict[str, Any]]]:
    group = (
        "SELECT verb, COALESCE(route, path) AS name, COUNT(*) AS n, SUM(status >= 500) AS errors,"
        " AVG(duration_ms) AS avg_ms, MAX(duration_ms) AS max_ms, MAX(route IS NOT NULL) AS routed"
        f" FROM calls {where}"
        " GROUP BY verb, COALESCE(route, path)"
    )
    orders = {
        "top_routes": "ORDER BY n DESC, name",
        "top_errors": "HAVING errors > 0 ORDER BY errors DESC, n DESC, name",
        "top_slow": "ORDER BY avg_ms DESC, name",
    }
    return {
        key: [
            {
                "verb": r["verb"],
                "route": r["name"],
                "count": int(r["n"]),
                "errors": int(r["errors"]),
                "avg_ms": round(float(r["avg_ms"]), 2),
                "max_ms": round(float(r["max_ms"]), 2),
                # A route template (filter by route) or a bare path (filter by an exact path glob).
                "routed": bool(r["routed"]),
            }
            for r in reader.query(f"{group} {order} LIMIT ?", [*params, TOP])
        ]
        for key, order in orders.items()
    }


def _top_users(reader: Reader, clauses: list[str], params: list[Any]) -> list[dict[str, Any]]:
    where = " AND ".join([*clauses, "user_id IS NOT NULL"])
    rows = reader.query(
        "SELECT user_id, COUNT(*) AS n, SUM(status >= 400) AS failed, AVG(duration_ms) AS avg_ms"
        f" FROM calls WHERE {where} GROUP BY user_id ORDER BY n DESC, user_id LIMIT ?",
        [*params, TOP],
    )
    return [
        {"user_id": r["user_id"], "count": int(r["n"]), "failed": int(r["failed"]), "avg_ms": round(r["avg_ms"], 2)}
        for r in rows
    ]
