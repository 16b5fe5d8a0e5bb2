"""The overview's figures: requests per minute by status class, latency percentiles over time,
top routes (by count, errors, latency) and top users, for the calls that match the filters.

Usage::

    figures = build_overview(Reader("apimon.db"), Filters.parse(request.query_params))
    figures["buckets"], figures["top_routes"], figures["p99_ms"], ...

Aggregation is done by SQLite (GROUP BY over indexed columns); only the durations for the
percentiles come back to Python, as one float per call.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from typing import Any
from urllib.parse import urlsplit

import orjson

from apimon.dashboard.queries import Filters, Reader
from apimon.event import iso_ms
from apimon.summary import percentile

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

    # One pass over the rows for both charts: each full scan of the table costs tens of
    # milliseconds at 100,000 calls (the rows carry the events), counting in Python does not.
    counts: dict[int, dict[int, int]] = defaultdict(dict)
    durations: dict[int, list[float]] = defaultdict(list)
    for bucket, cls, duration in reader.tuples(
        f"SELECT CAST(ts / ? AS INTEGER), status / 100, duration_ms FROM calls {where}", [width, *params]
    ):
        durations[bucket].append(duration)
        by_class = counts[bucket]
        by_class[cls] = by_class.get(cls, 0) + 1
    every = sorted(d for values in durations.values() for d in values)

    buckets = []
    for index in range(first, last + 1):
        values = sorted(durations.get(index, ()))
        by_class = counts.get(index, {})
        buckets.append(
            {
                "start": iso_ms(index * width),
                "count": sum(by_class.values()),
                # Per minute, whatever the bucket width, so the axis means the same at every zoom.
                "per_minute": {c: by_class.get(int(c[0]), 0) * 60 / width for c in STATUS_CLASSES},
                "p50_ms": percentile(values, 50),
                "p95_ms": percentile(values, 95),
                "p99_ms": percentile(values, 99),
            }
        )
    classes = {c: sum(b.get(int(c[0]), 0) for b in counts.values()) for c in STATUS_CLASSES}
    return {
        "total": total,
        "since": iso_ms(lo),
        "until": iso_ms(hi),
        "width": width,
        "buckets": buckets,
        "by_status_class": {c: n for c, n in classes.items() if n},
        "p50_ms": percentile(every, 50),
        "p95_ms": percentile(every, 95),
        "p99_ms": percentile(every, 99),
        **_top_routes(reader, where, params),
        "top_users": _top_users(reader, clauses, params),
        "top_hosts": _top_hosts(reader, clauses, params),
    }


def _top_routes(reader: Reader, where: str, params: list[Any]) -> dict[str, list[dict[str, Any]]]:
    # One GROUP BY (one scan; `+verb` keeps SQLite from walking the verb index and fetching
    # every row out of order), ranked three ways here.
    groups = [
        {
            "verb": verb,
            "route": name,
            "count": int(n),
            "errors": int(errors),
            "avg_ms": round(float(avg_ms), 2),
            "max_ms": round(float(max_ms), 2),
            # A route template (filter by route) or a bare path (filter by an exact path glob).
            "routed": bool(routed),
        }
        for verb, name, n, errors, avg_ms, max_ms, routed in reader.tuples(
            "SELECT verb, COALESCE(route, path), COUNT(*), SUM(status >= 500), AVG(duration_ms), MAX(duration_ms),"
            f" MAX(route IS NOT NULL) FROM calls {where} GROUP BY +verb, COALESCE(route, path)",
            params,
        )
    ]
    return {
        "top_routes": heapq.nsmallest(TOP, groups, key=lambda g: (-g["count"], g["route"], g["verb"])),
        "top_errors": heapq.nsmallest(
            TOP, (g for g in groups if g["errors"]), key=lambda g: (-g["errors"], -g["count"], g["route"], g["verb"])
        ),
        "top_slow": heapq.nsmallest(TOP, groups, key=lambda g: (-g["avg_ms"], g["route"], g["verb"])),
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


#: The outgoing calls read for the hosts table, newest first, at most.
HOSTS_SCAN = 10_000


def _top_hosts(reader: Reader, clauses: list[str], params: list[Any]) -> list[dict[str, Any]]:
    """The hosts the app called the most (outgoing calls: direction is indexed, and the host is
    read from the event's URI of at most the newest :data:`HOSTS_SCAN` of them)."""
    if "AS direction" in reader.columns:
        return []  # a store from before outgoing calls
    where = " AND ".join([*clauses, "direction = 'Outgoing'"])
    by_host: dict[str, list[float]] = defaultdict(list)
    failed: dict[str, int] = defaultdict(int)
    for event, status, duration in reader.tuples(
        f"SELECT event, status, duration_ms FROM calls WHERE {where} ORDER BY id DESC LIMIT ?", [*params, HOSTS_SCAN]
    ):
        uri = orjson.loads(event).get("request", {}).get("uri", "")
        host = urlsplit(str(uri)).netloc or "?"
        by_host[host].append(duration)
        failed[host] += status >= 500 or b'"response"' not in event
    rows = [
        {"host": h, "count": len(d), "failed": failed[h], "avg_ms": round(sum(d) / len(d), 2)}
        for h, d in by_host.items()
    ]
    return heapq.nsmallest(TOP, rows, key=lambda r: (-r["count"], r["host"]))
