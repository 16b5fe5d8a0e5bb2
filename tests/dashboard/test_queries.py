"""The dashboard's queries over a real store file written by apimon's capture pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest

from apimon.dashboard.overview import bucket_width, build_overview
from apimon.dashboard.queries import FilterError, Filters, Reader, parse_time
from apimon.event import iso_ms
from tests.dashboard.calls import Spec, fill
from tests.factories import T0

SPECS = [
    Spec("/items/1", route="/items/<id>", user="alice", at=0, ms=10),
    Spec("/items/2", route="/items/<id>", user="bob", status=404, at=30, ms=20),
    Spec("/items", method="POST", status=201, user="alice", at=70, ms=30),
    Spec("/boom", status=500, at=75, ms=400),
    Spec("/boom", status=503, user="alice", at=130, ms=600),
    Spec("/health", at=131, ms=1),
]


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Reader:
    path = str(tmp_path_factory.mktemp("queries") / "calls.db")
    fill(path, SPECS)
    return Reader(path)


def paths(rows: list[dict[str, object]]) -> list[object]:
    return [r["path"] for r in rows]


def test_newest_first_with_every_filter(reader: Reader) -> None:
    assert paths(reader.calls(Filters()).rows) == ["/health", "/boom", "/boom", "/items", "/items/2", "/items/1"]
    assert paths(reader.calls(Filters.parse({"status": "5xx"})).rows) == ["/boom", "/boom"]
    assert paths(reader.calls(Filters.parse({"status": "404"})).rows) == ["/items/2"]
    assert paths(reader.calls(Filters.parse({"verb": "post"})).rows) == ["/items"]
    assert paths(reader.calls(Filters.parse({"path": "/items/*"})).rows) == ["/items/2", "/items/1"]
    assert paths(reader.calls(Filters.parse({"route": "/items/<id>", "user": "bob"})).rows) == ["/items/2"]
    window = {"since": iso_ms(T0 + 70), "until": iso_ms(T0 + 131)}
    assert paths(reader.calls(Filters.parse(window)).rows) == ["/boom", "/boom", "/items"]
    # Blank parameters (an empty form field) are no filter at all.
    assert len(reader.calls(Filters.parse({"status": "", "user": " "})).rows) == 6


def test_keyset_pages_and_the_live_tail(reader: Reader) -> None:
    first = reader.calls(Filters(), limit=4)
    assert [r["id"] for r in first.rows] == [6, 5, 4, 3] and first.older == 3
    second = reader.calls(Filters(), before=first.older, limit=4)
    assert [r["id"] for r in second.rows] == [2, 1] and second.older is None
    assert [r["id"] for r in reader.calls_after(Filters(), after_id=3)] == [4, 5, 6]
    assert [r["id"] for r in reader.calls_after(Filters.parse({"status": "5xx"}), after_id=0)] == [4, 5]
    assert reader.newest_id() == 6


def test_call_detail_is_the_event_as_shipped(reader: Reader) -> None:
    found = reader.call(2)
    assert found is not None
    summary, event = found
    assert summary["status"] == 404 and summary["user_id"] == "bob" and summary["time"] == iso_ms(T0 + 30)
    assert event["response"]["status"] == 404 and event["response"]["body"] == {"ok": True}
    assert reader.call(999) is None


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"status": "6xx"}, "status must be"),
        ({"status": "99"}, "status must be"),
        ({"verb": "FETCH"}, "unknown verb"),
        ({"since": "yesterday"}, "not an ISO 8601 time"),
        ({"since": "2026-12-02T10:00", "until": "2026-12-02T09:00"}, "ends before it starts"),
        ({"direction": "sideways"}, "direction must be incoming or outgoing"),
    ],
)
def test_bad_filters_say_what_is_wrong(query: dict[str, str], message: str) -> None:
    with pytest.raises(FilterError, match=message):
        Filters.parse(query)


def test_times_are_utc_unless_they_say_otherwise() -> None:
    assert parse_time("2026-11-25T14:04:34.785") == pytest.approx(T0)
    assert parse_time("2026-11-25T14:04:34.785Z") == pytest.approx(T0)
    assert parse_time("2026-11-25T15:04:34.785+01:00") == pytest.approx(T0)
    assert iso_ms(T0) == "2026-11-25T14:04:34.785Z"


def test_overview_figures(reader: Reader) -> None:
    figures = build_overview(reader, Filters())
    assert figures["total"] == 6
    assert figures["by_status_class"] == {"2xx": 3, "4xx": 1, "5xx": 2}
    assert figures["width"] == 60
    # T0 is 34.785 s into its minute: the calls at +30, +70 and +75 s share the second minute.
    assert [b["count"] for b in figures["buckets"]] == [1, 3, 2]
    assert figures["buckets"][1]["per_minute"] == {"1xx": 0, "2xx": 1, "3xx": 0, "4xx": 1, "5xx": 1}
    assert figures["buckets"][1]["p99_ms"] == pytest.approx(400, abs=0.01)
    assert figures["buckets"][1]["p50_ms"] == pytest.approx(30, abs=0.01)
    assert (figures["p50_ms"], figures["p99_ms"]) == (pytest.approx(20, abs=0.01), pytest.approx(600, abs=0.01))
    top = figures["top_routes"][0]
    assert (top["verb"], top["route"], top["count"], top["routed"]) == ("GET", "/boom", 2, False)
    assert figures["top_routes"][1]["route"] == "/items/<id>" and figures["top_routes"][1]["routed"]
    assert [(r["route"], r["errors"]) for r in figures["top_errors"]] == [("/boom", 2)]
    assert figures["top_slow"][0]["route"] == "/boom" and figures["top_slow"][0]["max_ms"] == pytest.approx(600)
    assert [(u["user_id"], u["count"], u["failed"]) for u in figures["top_users"]] == [("alice", 3, 1), ("bob", 1, 1)]


def test_overview_follows_the_filters(reader: Reader) -> None:
    figures = build_overview(reader, Filters.parse({"user": "alice"}))
    assert figures["total"] == 3 and figures["by_status_class"] == {"2xx": 2, "5xx": 1}
    assert build_overview(reader, Filters.parse({"path": "/nothing*"}))["total"] == 0


def test_bucket_width_keeps_charts_readable() -> None:
    assert bucket_width(0) == 60
    assert bucket_width(90 * 60) == 60
    assert bucket_width(90 * 60 + 1) == 300
    assert bucket_width(30 * 86400) == 12 * 3600
    # Years of span (a clock that jumped) still give at most 90 buckets.
    span = 10 * 365 * 86400
    assert span / bucket_width(span) <= 90


def test_reader_never_writes(tmp_path: Path) -> None:
    path = str(tmp_path / "ro.db")
    fill(path, SPECS[:1])
    before = Path(path).read_bytes()
    reader = Reader(path)
    with pytest.raises(Exception, match="readonly|read-only|query_only"):
        reader.query("DELETE FROM calls")
    reader.calls(Filters())
    build_overview(reader, Filters())
    reader.close()
    assert Path(path).read_bytes() == before


def test_direction_filter_column_and_outgoing_hosts(tmp_path: Path) -> None:
    import apimon
    from apimon.client import Client
    from apimon.config import Config
    from apimon.outgoing import OutgoingCall
    from tests.factories import make_raw

    path = str(tmp_path / "mixed.db")
    client = apimon._client = Client(Config.from_options(store=path))
    client.complete(make_raw(path="/in"), None)
    for url, status in (
        ("https://api.stripe.com/v1/a", 200),
        ("https://api.stripe.com/v1/b", 500),
        ("https://x.io/c", 200),
    ):
        call = OutgoingCall.start("GET", url, [])
        assert call is not None
        call.response(status, [])
        call.finish()
    assert client.flush(5)
    reader = Reader(path)
    outgoing = reader.calls(Filters.parse({"direction": "outgoing"})).rows
    assert [(r["path"], r["direction"]) for r in outgoing] == [
        ("/c", "Outgoing"),
        ("/v1/b", "Outgoing"),
        ("/v1/a", "Outgoing"),
    ]
    assert [r["path"] for r in reader.calls(Filters.parse({"direction": "Incoming"})).rows] == ["/in"]
    figures = build_overview(reader, Filters.parse({}))
    assert figures["top_hosts"] == [
        {"host": "api.stripe.com", "count": 2, "failed": 1, "avg_ms": figures["top_hosts"][0]["avg_ms"]},
        {"host": "x.io", "count": 1, "failed": 0, "avg_ms": figures["top_hosts"][1]["avg_ms"]},
    ]
