"""The MoEngage sink against the strict fake Data API, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import logging
import time

import pytest

import apimon
from apimon.testing import FakeMoEngage
from tests.core.sinks.conftest import capture, fast_retries, moengage_client
from tests.factories import make_raw


def test_event_mapping_and_auth(moengage: FakeMoEngage) -> None:
    client = moengage_client(moengage)
    for i, user in enumerate(["ann", "bob", "ann"]):
        raw = make_raw(
            method="POST",
            path=f"/orders/{i}",
            status=201,
            resp_body=b"{}",
            resp_headers=[("Content-Type", "application/json")],
        )
        raw.user_id, raw.company_id, raw.route = user, "acme", "/orders/<id>"
        raw.metadata = {"plan": {"tier": 2, "name": "pro"}, "tags": ["a", "b"], "moe_x": 1, "long": "y" * 600}
        client.complete(raw, None)
    assert client.flush(10)
    assert moengage.rejections == [] and client.stats()["sent"] == 3
    posts = [r for r in moengage.requests if r.path == f"/v1/event/{moengage.workspace_id}"]
    # One request per customer per flush, with all of that customer's calls as actions.
    assert sorted((r.json()["customer_id"], len(r.json()["actions"])) for r in posts) == [("ann", 2), ("bob", 1)]
    request = posts[0]
    token = base64.b64encode(f"{moengage.workspace_id}:{moengage.api_key}".encode()).decode()
    assert request.header("authorization") == f"Basic {token}"
    assert request.header("moe-appkey") == moengage.workspace_id
    assert request.header("content-type") == "application/json"
    action = next(e for e in moengage.events if e["customer_id"] == "bob")
    attrs = action["attributes"]
    assert action["action"] == "API Call" and action["platform"] == "web" and action["user_timezone_offset"] == 0
    assert action["current_time"] == "2026-11-25T14:04:34Z"
    keys = ("direction", "verb", "uri", "path", "route", "status", "duration_ms", "company_id")
    assert {k: attrs[k] for k in keys} == {
        "direction": "Incoming",
        "verb": "POST",
        "uri": "https://api.example.com/orders/1",
        "path": "/orders/1",
        "route": "/orders/<id>",
        "status": 201,
        "duration_ms": 250.0,
        "company_id": "acme",
    }
    assert attrs["response_bytes"] == 2 and attrs["request_bytes"] == 0
    assert attrs["plan_tier"] == 2 and attrs["plan_name"] == "pro" and attrs["tags"] == '["a","b"]'
    assert attrs["attr_moe_x"] == 1 and len(attrs["long"]) == 512
    assert not any(k.startswith("moe_") for k in attrs) and "body" not in str(attrs.keys())


def test_calls_without_a_user_are_counted_not_sent(moengage: FakeMoEngage) -> None:
    client = moengage_client(moengage)
    capture(client, 4, user=None)
    capture(client, 1, user="u")
    assert client.flush(10)
    stats = client.stats()
    assert stats["dropped_no_user"] == 4 and stats["sent"] == 1 and len(moengage.events) == 1


def test_track_user(moengage: FakeMoEngage) -> None:
    moengage_client(moengage)
    apimon.update_user("ann", metadata={"email": "ann@example.com", "plan": {"tier": 1}}, ip_address="198.51.100.1")
    apimon.update_company("acme")  # MoEngage has no companies: nothing is sent
    assert apimon.flush(10)
    assert moengage.users == [
        {
            "type": "customer",
            "customer_id": "ann",
            "attributes": {"email": "ann@example.com", "plan_tier": 1, "ip_address": "198.51.100.1"},
        }
    ]


def test_fail_status_body_is_a_failure_and_401_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    with FakeMoEngage(api_key="right") as fake:
        client = apimon.init(
            moengage_workspace_id=fake.workspace_id,
            moengage_api_key="wrong-secret",
            moengage_base_url=fake.url,
            store="off",
            flush_interval=0.05,
        )
        with caplog.at_level(logging.WARNING, logger="apimon"):
            capture(client, 2)
            assert client.flush(10)
            capture(client, 2)
            assert client.flush(10)
        assert client.stats()["failed"] == 4 and client.stats()["retried"] == 0
        assert caplog.text.count("MoEngage rejected the workspace id or API key (401)") == 1
        assert "wrong-secret" not in caplog.text
    with FakeMoEngage() as fake:
        client = apimon.init(
            moengage_workspace_id=fake.workspace_id,
            moengage_api_key=fake.api_key,
            moengage_base_url=fake.url,
            store="off",
            flush_interval=0.05,
        )
        fake.fail_next(1, 200, {"status": "fail", "error": {"type": "TypeError", "message": "expected string"}})
        capture(client, 1)
        assert client.flush(10)
        assert client.stats()["failed"] == 1 and client.stats()["sent"] == 0


def test_5xx_retried_at_the_seed_interval(moengage: FakeMoEngage) -> None:
    client = moengage_client(moengage)
    fast_retries(client, fixed=0.2)
    moengage.fail_next(2, 502)
    t0 = time.monotonic()
    capture(client, 1)
    assert client.flush(10)
    assert time.monotonic() - t0 >= 0.4
    assert client.stats()["sent"] == 1 and client.stats()["retried"] == 2


def test_429_waits_for_the_ratelimit_reset(moengage: FakeMoEngage) -> None:
    client = moengage_client(moengage)
    moengage.fail_next(1, 429, {"status": "fail"}, headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1"})
    t0 = time.monotonic()
    capture(client, 1)
    assert client.flush(10)
    assert time.monotonic() - t0 >= 1.0 and client.stats()["sent"] == 1


@pytest.mark.slow
def test_100k_events_from_5000_users_paced_and_under_100kb() -> None:
    # A 2-second window stands for MoEngage's minute: 30,000 events per window.
    with FakeMoEngage(event_limit=30_000, window=2.0) as fake:
        client = apimon.init(
            moengage_workspace_id=fake.workspace_id,
            moengage_api_key=fake.api_key,
            moengage_base_url=fake.url,
            store="off",
            flush_interval=0.05,
            batch_size=5_000,
            max_queue=200_000,
            # The whole burst is queued at once and waits seconds for the pacer, on purpose.
            max_queue_bytes=1 << 30,
            overload_sampling=False,
            moengage_bulk=True,
            moengage_rate_window=2.0,
        )
        t0 = time.monotonic()
        for i in range(100_000):
            raw = make_raw(path=f"/items/{i}")
            raw.user_id = f"user-{i % 5000}"
            client.complete(raw, None)
        assert client.flush(120)
        elapsed = time.monotonic() - t0
        stats = client.stats()
        assert stats["sent"] == 100_000 and stats["failed"] == 0, stats
        assert len(fake.events) == 100_000 and fake.rejections == []
        assert len({e["customer_id"] for e in fake.events}) == 5_000
        assert not [r for r in fake.requests if r.status == 429]  # paced: the limit was never hit
        assert fake.largest_body <= 100 * 1024
        assert elapsed >= 2 * (100_000 / 30_000 - 1)  # at least three full windows were needed


def test_per_customer_requests_paced_under_a_small_limit() -> None:
    with FakeMoEngage(event_limit=50, window=1.0) as fake:
        client = apimon.init(
            moengage_workspace_id=fake.workspace_id,
            moengage_api_key=fake.api_key,
            moengage_base_url=fake.url,
            store="off",
            flush_interval=0.05,
            moengage_events_per_minute=50,
            moengage_rate_window=1.0,
        )
        capture(client, 120, user="one")
        assert client.flush(20)
        assert client.stats()["sent"] == 120 and not [r for r in fake.requests if r.status == 429]


def test_an_outgoing_call_carries_its_direction(moengage: FakeMoEngage) -> None:
    from apimon.outgoing import OutgoingCall, incoming, leave

    client = moengage_client(moengage)
    parent = make_raw(path="/checkout")
    parent.user_id = "ann"
    token = incoming(parent)
    try:
        call = OutgoingCall.start("POST", "https://pay.example/charges", [])
        assert call is not None
        call.response(201, [])
        call.finish()
    finally:
        leave(token)
    client.complete(parent, None)
    assert client.flush(10)
    directions = sorted(e["attributes"]["direction"] for e in moengage.events if e["customer_id"] == "ann")
    assert directions == ["Incoming", "Outgoing"]
