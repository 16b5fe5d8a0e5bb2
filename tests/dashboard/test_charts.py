"""Chart geometry: axis tops, stacked bars, broken lines."""

from __future__ import annotations

from typing import Any

import pytest

from apimon.dashboard import charts


@pytest.mark.parametrize(
    ("value", "top"), [(0, 1), (0.3, 0.4), (1, 1), (1.01, 2), (23, 40), (61, 80), (81, 100), (950, 1000)]
)
def test_axis_top_is_round(value: float, top: float) -> None:
    assert charts.nice_max(value) == pytest.approx(top)


def bucket(start: str, per_minute: dict[str, float], p: tuple[float, float, float] | None) -> dict[str, Any]:
    rates = {c: per_minute.get(c, 0.0) for c in ("1xx", "2xx", "3xx", "4xx", "5xx")}
    p50, p95, p99 = p if p else (None, None, None)
    return {"start": start, "per_minute": rates, "p50_ms": p50, "p95_ms": p95, "p99_ms": p99}


BUCKETS = [
    bucket("2026-12-02T14:00:00.000Z", {"2xx": 30, "5xx": 10}, (1, 5, 9)),
    bucket("2026-12-02T14:01:00.000Z", {}, None),
    bucket("2026-12-02T14:02:00.000Z", {"2xx": 20}, (2, 3, 4)),
]


def test_status_bars_stack_to_the_rate() -> None:
    chart = charts.status_chart(BUCKETS)
    plot_h = charts.HEIGHT - charts.TOP - charts.BOTTOM
    assert [t["label"] for t in chart["ticks"]] == ["0", "10", "20", "30", "40"]  # the top bar: 40/min
    first = [b for b in chart["bars"] if b["x"] < charts.LEFT + 100]
    assert [b["fill"] for b in first] == [charts.COLOURS["2xx"], charts.COLOURS["5xx"]]
    assert sum(b["h"] for b in first) == pytest.approx(plot_h, abs=0.02)
    # The 5xx segment sits on top of the 2xx one.
    assert first[1]["y"] + first[1]["h"] == pytest.approx(first[0]["y"], abs=0.02)
    assert len(chart["bars"]) == 3 and "5xx: 10.0/min" in first[1]["title"]
    assert [x["label"] for x in chart["xlabels"]] == ["14:00", "14:01", "14:02"]


def test_latency_lines_break_at_empty_buckets() -> None:
    chart = charts.latency_chart(BUCKETS)
    p99 = [line for line in chart["lines"] if line["name"] == "p99"]
    assert len(p99) == 2 and all(len(line["dots"]) == 1 for line in p99)
    assert [t["label"] for t in chart["ticks"]] == ["0", "2.5", "5", "7.5", "10"]


def test_empty_charts_have_axes_and_nothing_else() -> None:
    assert charts.status_chart([])["bars"] == [] and charts.latency_chart([])["lines"] == []
