"""Builders of raw calls for the event-builder tests."""

from __future__ import annotations

from typing import Any

import orjson

from apimon.config import Config
from apimon.event import build_event
from apimon.record import RawCall
from apimon.tee import BodyTee

T0 = 1795615474.785  # 2026-11-25T14:04:34.785Z


def tee(data: bytes, cap: int = 100_000, complete: bool = True) -> BodyTee:
    body = BodyTee(cap)
    body.feed(data)
    body.complete = complete
    return body


def make_raw(
    method: str = "GET",
    path: str = "/items",
    query: str = "",
    req_headers: list[tuple[str, str]] | None = None,
    resp_headers: list[tuple[str, str]] | None = None,
    status: int = 200,
    req_body: bytes | None = None,
    resp_body: bytes | None = None,
    host: str = "api.example.com",
    scheme: str = "https",
    peer: str | None = "203.0.113.9",
    cap: int = 100_000,
) -> RawCall:
    raw = RawCall(method, scheme, host, path, query, list(req_headers or []), peer, T0)
    raw.end = T0 + 0.25
    raw.status = status
    raw.resp_headers = list(resp_headers or [])
    if req_body is not None:
        raw.req_body = tee(req_body, cap)
    if resp_body is not None:
        raw.resp_body = tee(resp_body, cap)
    return raw


def build(raw: RawCall, **options: Any) -> dict[str, Any]:
    # The event as shipped: every event must encode on its own (docs/events.md#shape), and a JSON body
    # may be the app's own bytes (an orjson.Fragment) until it is encoded.
    shipped: dict[str, Any] = orjson.loads(orjson.dumps(build_event(raw, Config.from_options(options))))
    return shipped
