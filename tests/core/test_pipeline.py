"""Hooks and mask_event (fail-open, except mask which fails closed) and the accounting invariant."""

from __future__ import annotations

import gc
import logging
from typing import Any

import orjson
import pytest

from apimon.client import Client
from apimon.config import Config
from apimon.counters import LOSS_REASONS, Counters
from apimon.pipeline import Pipeline
from apimon.views import RequestView, ResponseView
from tests.conftest import ListSink
from tests.factories import make_raw


def _run(calls: int = 1, **options: Any) -> tuple[Client, ListSink]:
    sink = ListSink()
    client = Client(Config.from_options(options), sinks=[sink])
    for i in range(calls):
        raw = make_raw(path=f"/items/{i}", req_headers=[("X-Tenant", "acme"), ("x-tenant", "beta")])
        raw.route = "/items/<id>"
        if client.admit(raw, {"native": True}):
            client.complete(raw, {"native": True}, "native-response")
    assert client.flush(5.0)
    return client, sink


def test_hooks_see_neutral_views_and_fill_fields() -> None:
    seen: dict[str, Any] = {}

    def identify_user(req: RequestView, resp: ResponseView) -> str:
        seen.update(
            method=req.method,
            url=req.url,
            tenant=req.headers["X-TENANT"],
            route=req.route,
            native=req.native,
            status=resp.status,
            resp_native=resp.native,
            client=req.client,
        )
        return "u-1"

    client, sink = _run(
        identify_user=identify_user,
        identify_company=lambda req, resp: req.headers.get("x-tenant"),
        get_session_token=lambda req, resp: "sess-1",
        get_metadata=lambda req, resp: {"plan": "pro"},
        api_version=lambda req, resp: 3,
    )
    event = sink.events[0]
    assert seen == {
        "method": "GET",
        "url": "https://api.example.com/items/0",
        "tenant": "acme,beta",
        "route": "/items/<id>",
        "native": {"native": True},
        "status": 200,
        "resp_native": "native-response",
        "client": "203.0.113.9",
    }
    assert event["user_id"] == "u-1" and event["company_id"] == "acme,beta"
    assert event["session_token"] == "sess-1" and event["request"]["api_version"] == "3"
    assert event["metadata"] == {"plan": "pro", "apimon": {"route": "/items/<id>"}}


def test_raising_hooks_are_counted_logged_once_and_the_call_still_captured(caplog: pytest.LogCaptureFixture) -> None:
    def boom(req: RequestView, resp: ResponseView) -> str:
        raise RuntimeError("hook bug")

    with caplog.at_level(logging.WARNING, logger="apimon"):
        client, sink = _run(calls=3, identify_user=boom, get_metadata=boom, skip=boom)
    stats = client.stats()
    assert stats["hook_errors"] == 9 and stats["sent"] == 3
    assert all("user_id" not in e and "metadata" not in e.get("metadata", {}) for e in sink.events)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("identify_user hook raised" in m for m in messages) == 1
    assert sum("skip hook raised" in m for m in messages) == 1


def test_skip_and_sampling_are_counted() -> None:
    client, sink = _run(calls=4, skip=lambda req: req.path.endswith(("/1", "/3")))
    assert client.stats()["skipped"] == 2 and [e["request"]["uri"][-1] for e in sink.events] == ["0", "2"]
    client, sink = _run(calls=400, sample_rate=0.25)
    stats = client.stats()
    assert stats["sampled_out"] + stats["captured"] == 400
    assert 40 < stats["captured"] < 160
    assert {e["weight"] for e in sink.events} == {4}


def test_mask_event_edits_drops_and_fails_closed() -> None:
    def mask(event: dict[str, Any]) -> dict[str, Any] | None:
        uri = event["request"]["uri"]
        if uri.endswith("/0"):
            return None
        if uri.endswith("/1"):
            raise ValueError("mask bug")
        event["metadata"] = {"masked": True}
        return event

    client, sink = _run(calls=3, mask_event=mask)
    stats = client.stats()
    assert stats["dropped_by_mask"] == 2 and stats["hook_errors"] == 1 and stats["sent"] == 1
    assert sink.events[0]["metadata"] == {"masked": True}
    assert stats["captured"] == stats["sent"] + sum(stats[r] for r in LOSS_REASONS)


def test_unencodable_metadata_falls_back_to_str() -> None:
    client, sink = _run(get_metadata=lambda req, resp: {"when": object(), "kind": set, 7: "x"})
    assert client.stats()["sent"] == 1
    metadata = sink.events[0]["metadata"]
    assert metadata["when"].startswith("<object object at") and metadata["kind"] == "<class 'set'>"
    assert metadata["7"] == "x"


def test_event_over_one_megabyte_loses_its_bodies_then_is_dropped() -> None:
    sink = ListSink()
    client = Client(Config.from_options(max_body_bytes=900_000), sinks=[sink])
    raw = make_raw(
        resp_headers=[("Content-Type", "text/plain")],
        resp_body=b"a" * 600_000,
        req_headers=[("Content-Type", "text/plain")],
        req_body=b"b" * 600_000,
        cap=900_000,
    )
    client.complete(raw, None)
    huge = make_raw(req_headers=[("X-Huge", "h" * 1_100_000)])
    client.complete(huge, None)
    assert client.flush(5.0)
    stats = client.stats()
    assert stats["sent"] == 1 and stats["dropped_too_large"] == 1
    event = sink.events[0]
    assert "body" not in event["request"] and "body" not in event["response"]
    assert event["metadata"]["apimon"]["truncated"] == {"request.body": None, "response.body": None}


@pytest.mark.parametrize("masked", [False, True])
def test_json_nested_deeper_than_the_encoder_allows_is_shipped_as_text(masked: bool) -> None:
    # Depth is only checked when encoding fails: 240 levels encode (JSON kept), 300 do not (text).
    seen: list[Any] = []

    def mask(event: dict[str, Any]) -> dict[str, Any]:
        seen.append(event["response"].get("body"))
        return event

    sink = ListSink()
    client = Client(Config.from_options(mask_event=mask if masked else None), sinks=[sink])
    bodies = {depth: b"[" * depth + b"]" * depth for depth in (240, 300)}
    for depth, body in bodies.items():
        raw = make_raw(path=f"/deep/{depth}", resp_headers=[("Content-Type", "application/json")], resp_body=body)
        client.complete(raw, None)
    assert client.flush(5.0)
    assert client.stats()["sent"] == 2 and client.stats()["internal_errors"] == 0
    by_path = {e["request"]["uri"].rsplit("/", 1)[1]: e["response"]["body"] for e in sink.events}
    assert by_path["300"] == bodies[300].decode()
    value = by_path["240"]
    for _ in range(239):
        assert isinstance(value, list) and len(value) == 1
        value = value[0]
    assert value == []
    if masked:
        # The too-deep call is built twice, so mask_event sees it as JSON, then as text.
        assert len(seen) == 3 and seen[-1] == bodies[300].decode()


def test_prepared_items_waiting_for_their_batch_hold_json_not_parsed_events() -> None:
    # Items wait in the flusher for a full batch; each must cost the collector one tracked
    # object (the item), not the dozen dicts and lists of its parsed event.
    pipeline = Pipeline(Config.from_options({}), Counters(), [])
    raws = [
        make_raw(
            method="POST",
            req_headers=[("Content-Type", "application/json"), ("X-Id", str(i))],
            req_body=orjson.dumps({"id": i, "tags": ["a", "b"], "nested": {"k": [1, 2]}}),
            resp_headers=[("Content-Type", "application/json")],
            resp_body=orjson.dumps({"ok": True, "items": [{"n": i}]}),
        )
        for i in range(200)
    ]
    gc.collect()
    before = len(gc.get_objects())
    items = [pipeline.prepare(raw) for raw in raws]
    del raws
    gc.collect()
    grown = len(gc.get_objects()) - before
    assert grown <= len(items) + 10, grown
    assert items[7].event["request"]["body"] == {"id": 7, "tags": ["a", "b"], "nested": {"k": [1, 2]}}
    assert orjson.loads(items[7].data) == items[7].event
