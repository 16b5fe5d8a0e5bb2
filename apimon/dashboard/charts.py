"""Chart geometry for the overview, drawn as inline SVG by the templates (no JavaScript, no
chart library: the page renders the same offline and under a strict Content-Security-Policy).

Usage::

    chart = status_chart(figures["buckets"])   # {"width", "height", "bars": [...], "ticks": [...], ...}
    chart = latency_chart(figures["buckets"])  # {"lines": [{"name", "points", "colour"}], ...}

Every number is computed here; the template only places it, and escapes every label.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

WIDTH, HEIGHT = 760, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 28
COLOURS = {"1xx": "#8e8e8e", "2xx": "#2e9e5b", "3xx": "#2f7fc1", "4xx": "#e0a100", "5xx": "#d23c3c"}
LINE_COLOURS = {"p50": "#2f7fc1", "p95": "#e0a100", "p99": "#d23c3c"}


def nice_max(value: float) -> float:
    """The smallest 1, 2, 4, 6 or 8 times a power of ten that is at least ``value`` (the axis top;
    its quarters, the grid lines, are then round numbers too)."""
    if value <= 0:
        return 1.0
    scale = 10.0 ** math.floor(math.log10(value))
    return next(step * scale for step in (1, 2, 4, 6, 8, 10) if value <= step * scale * (1 + 1e-9))


def _label(value: float) -> str:
    text = f"{value:,.3f}".rstrip("0").rstrip(".")
    return text or "0"


def _frame(top: float, buckets: Sequence[dict[str, Any]]) -> dict[str, Any]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    ticks = [{"y": round(TOP + plot_h * (1 - i / 4), 1), "label": _label(top * i / 4)} for i in range(5)]
    # At most six time labels, evenly spaced, HH:MM (the page says the times are UTC).
    count = len(buckets)
    step = max(1, -(-count // 6))
    xlabels = [
        {"x": round(LEFT + plot_w * (i + 0.5) / count, 1), "label": buckets[i]["start"][11:16]}
        for i in range(0, count, step)
    ]
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "top": TOP,
        "bottom": HEIGHT - BOTTOM,
        "ticks": ticks,
        "xlabels": xlabels,
    }


def status_chart(buckets: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stacked bars of requests per minute, one bar per bucket, one segment per status class."""
    top = nice_max(max((sum(b["per_minute"].values()) for b in buckets), default=0))
    frame = _frame(top, buckets)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(buckets))
    bars = []
    for i, bucket in enumerate(buckets):
        base = 0.0
        for cls, rate in bucket["per_minute"].items():
            if not rate:
                continue
            height = plot_h * rate / top
            bars.append(
                {
                    "x": round(LEFT + i * slot + slot * 0.1, 2),
                    "y": round(TOP + plot_h - base - height, 2),
                    "w": round(max(1.0, slot * 0.8), 2),
                    "h": round(height, 2),
                    "fill": COLOURS[cls],
                    "title": f"{bucket['start']} {cls}: {rate:.1f}/min",
                }
            )
            base += height
    return {**frame, "bars": bars, "legend": [{"name": c, "colour": v} for c, v in COLOURS.items()]}


def latency_chart(buckets: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """p50, p95 and p99 lines over time; a bucket with no calls breaks the line."""
    top = nice_max(max((b["p99_ms"] or 0 for b in buckets), default=0))
    frame = _frame(top, buckets)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    count = max(1, len(buckets))
    lines = []
    for name, colour in LINE_COLOURS.items():
        segments: list[list[str]] = [[]]
        for i, bucket in enumerate(buckets):
            value = bucket[f"{name}_ms"]
            if value is None:
                if segments[-1]:
                    segments.append([])
                continue
            x = LEFT + plot_w * (i + 0.5) / count
            y = TOP + plot_h * (1 - value / top)
            segments[-1].append(f"{x:.1f},{y:.1f}")
        for points in segments:
            if points:
                # Each point also gets a dot, so a bucket between two empty ones still shows.
                dots = [dict(zip(("x", "y"), p.split(","), strict=True)) for p in points]
                lines.append({"name": name, "colour": colour, "points": " ".join(points), "dots": dots})
    return {
        **frame,
        "lines": lines,
        "legend": [{"name": n, "colour": c} for n, c in LINE_COLOURS.items()],
        "unit": "ms",
    }
