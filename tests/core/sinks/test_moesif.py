"""The Moesif sink against the strict fake collector, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import gzip
import logging
import time

import orjson
import pytest

from apimon.testing import FakeMoesif
from tests.core.sinks.conftest import capture, fast_retries, moesif_client
from tests.factories import make_raw


def test_events_batch_wire_format(moesif: FakeMoesif) -> None:
    # max_batch_events: batches behind the sender do not grow past batch_size here.
    client = moesif_client(moesif, batch_size=4, max_batch_events=4)
    capture(client, 10, resp_headers=[("Content-Type", "application/json")], resp_body=b'{"ok": true}')
    assert client.flush(10)
    assert client.stats()["sent"] == 10 and moesif.rejections == []
    posts = [r for r in moesif.requests if r.path == "/v1/events/batch"]
    assert [len(r.json()) for r in posts] == [4, 4, 2]
    first = posts[0]
    assert first.header("x-moesif-application-id") == moesif.application_id
    assert first.header("content-type") == "application/json"
    assert first.header("content-encoding") == "gzip"
    assert first.header("user-agent").startswith("apimon/")
    assert gzip.decompress(first.raw_body) == first.body
    event = moesif.events[0]
    assert event["request"]["uri"] == "https://api.example.com/calls/0"
    assert event["response"]["body"] == {"ok": True} and event["user_id"] == "u1"
    assert len(moesif.transaction_ids) == 10


def test_users_and_companies(moesif: FakeMoesif) -> None:
    import apimon

    moesif_client(moesif)
    assert apimon.update_user("u1", metadata={"email": "a@example.com"}, session_token="s")
    assert apimon.update_company("c1", metadata={"plan": "pro"})
    assert apimon.flush(10)
    assert moesif.users[0]["user_id"] == "u1" and moesif.users[0]["metadata"] == {"email": "a@example.com"}
    assert moesif.users[0]["modified_time"].endswith("Z")
    assert moesif.companies == [
        {"company_id": "c1", "modified_time": moesif.companies[0]["modified_time"], "metadata": {"plan": "pro"}}
    ]


def test_401_is_not_retried_and_logged_once_without_the_key(caplog: pytest.LogCaptureFixture) -> None:
    import apimon

    with FakeMoesif(application_id="the-right-one") as fake:
        client = apimon.init(
            moesif_application_id="a-wrong-secret-id", moesif_base_url=fake.url, store="off", flush_interval=0.05
        )
        fast_retries(client)
        with caplog.at_level(logging.WARNING, logger="apimon"):
            for _ in range(3):
                capture(client, 2)
                assert client.flush(10)
        stats = client.stats()
        assert stats["failed"] == 6 and stats["sent"] == 0 and stats["retried"] == 0
        assert len([r for r in fake.requests if r.path == "/v1/events/batch"]) == 3  # later batches still tried
        lines = [r.getMessage() for r in caplog.records if "rejected the application id" in r.getMessage()]
        assert lines == ["apimon: Moesif rejected the application id (401); events not delivered and counted as failed"]
        assert "a-wrong-secret-id" not in caplog.text


def test_413_splits_the_batch(moesif: FakeMoesif) -> None:
    client = moesif_client(moesif, batch_size=8)
    fast_retries(client)
    moesif.fail_next(2, 413, {"error": "too large"}, path="/v1/events")  # the 8, then the first half of 4
    capture(client, 8)
    assert client.flush(10)
    sizes = [(len(r.json()), r.status) for r in moesif.requests if r.path == "/v1/events/batch"]
    assert sizes == [(8, 413), (4, 413), (2, 201), (2, 201), (4, 201)]
    assert client.stats()["sent"] == 8 and len(moesif.transaction_ids) == 8


def test_5xx_burst_and_dropped_connections_are_retried_then_delivered(moesif: FakeMoesif) -> None:
    client = moesif_client(moesif)
    fast_retries(client)
    moesif.fail_next(3, 503, path="/v1/events")
    moesif.drop_next(1, path="/v1/events")
    capture(client, 5)
    assert client.flush(10)
    stats = client.stats()
    # The three 503s are retried with backoff; the connection dropped unanswered was a kept one,
    # which the transport tries once more on a new connection at once (a server that closed an
    # idle connection looks the same), so it is not a backoff retry.
    assert stats["sent"] == 5 and stats["failed"] == 0 and stats["retried"] == 3
    assert len([r for r in moesif.requests if r.path == "/v1/events/batch"]) == 5
    assert len(moesif.transaction_ids) == 5


def test_429_waits_for_retry_after(moesif: FakeMoesif) -> None:
    client = moesif_client(moesif)
    fast_retries(client)
    moesif.fail_next(1, 429, {"error": "slow down"}, headers={"Retry-After": "1"}, path="/v1/events")
    t0 = time.monotonic()
    capture(client, 1)
    assert client.flush(10)
    assert time.monotonic() - t0 >= 1.0
    assert client.stats()["sent"] == 1


def test_collector_down_ends_as_counted_failures(moesif: FakeMoesif) -> None:
    client = moesif_client(moesif)
    fast_retries(client, attempts=2)
    moesif.down()
    capture(client, 7)
    assert client.flush(10)
    stats = client.stats()
    assert stats["failed"] == 7 and stats["sent"] == 0 and stats["queued"] == 0


def test_dynamic_sampling_from_config(moesif: FakeMoesif) -> None:
    moesif.config = {
        "sample_rate": 100,
        "user_sample_rate": {"sampled-user": 25, "muted": 0},
        "company_sample_rate": {},
    }
    client = moesif_client(moesif)
    capture(client, 400, user="sampled-user")
    capture(client, 10, user="muted")
    capture(client, 10, user="full")
    assert client.flush(10)
    stats = client.stats()
    kept = [e for e in moesif.events if e["user_id"] == "sampled-user"]
    assert 50 < len(kept) < 160 and {e["weight"] for e in kept} == {4}
    assert not [e for e in moesif.events if e["user_id"] == "muted"]
    assert len([e for e in moesif.events if e["user_id"] == "full"]) == 10
    assert stats["dropped_by_sampling"] == 410 - len(kept) and stats["sent"] == len(kept) + 10
    assert [r.path for r in moesif.requests][0] == "/v1/config"


def test_regex_sampling_rules_come_before_user_and_company_rates(moesif: FakeMoesif) -> None:
    # Moesif's regex_config: the first rule whose conditions match gives the rate, before the
    # user's and the company's (here the user's 100% would otherwise keep everything).
    moesif.config = {
        "sample_rate": 100,
        "user_sample_rate": {"u1": 100},
        "company_sample_rate": {},
        "regex_config": [
            {"conditions": [{"path": "request.route", "value": "^/health"}], "sample_rate": 0},
            {
                "conditions": [
                    {"path": "request.verb", "value": "^POST$"},
                    {"path": "response.status", "value": "^5"},
                ],
                "sample_rate": 50,
            },
            {"conditions": [{"path": "request.ip_address", "value": "^198\\.51\\."}], "sample_rate": 25},
        ],
    }
    client = moesif_client(moesif)
    for i in range(20):
        client.complete(make_raw(path=f"/health/{i}"), None)  # 0%: none kept
    for i in range(400):
        client.complete(make_raw(method="POST", path=f"/pay/{i}", status=503), None)  # 50%
    for i in range(20):
        client.complete(make_raw(method="POST", path=f"/pay/{i}", status=201), None)  # no rule: 100%
    for i in range(400):
        client.complete(make_raw(path=f"/ip/{i}", peer="198.51.100.7"), None)  # 25%
    assert client.flush(10)
    events = moesif.events
    assert not [e for e in events if "/health" in e["request"]["uri"]]
    failed = [e for e in events if e["response"]["status"] == 503]
    assert 140 < len(failed) < 260 and {e["weight"] for e in failed} == {2}
    assert len([e for e in events if e["response"]["status"] == 201]) == 20
    by_ip = [e for e in events if "/ip/" in e["request"]["uri"]]
    assert 60 < len(by_ip) < 150 and {e["weight"] for e in by_ip} == {4}
    stats = client.stats()
    assert stats["dropped_by_sampling"] + stats["sent"] == 840 and stats["rules_skipped"] == 0


def test_config_fetch_failure_leaves_local_sampling(moesif: FakeMoesif) -> None:
    moesif.fail_next(1, 500, path="/v1/config")
    client = moesif_client(moesif)
    capture(client, 5)
    assert client.flush(10) and client.stats()["sent"] == 5


def test_both_destinations_and_the_store_at_once(moesif: FakeMoesif, tmp_path: object) -> None:
    import apimon
    from apimon.store import Store
    from apimon.testing import FakeMoEngage

    with FakeMoEngage() as moe:
        db = f"{tmp_path}/both.db"
        client = apimon.init(
            moesif_application_id=moesif.application_id,
            moesif_base_url=moesif.url,
            moengage_workspace_id=moe.workspace_id,
            moengage_api_key=moe.api_key,
            moengage_base_url=moe.url,
            store=db,
            flush_interval=0.05,
        )
        fast_retries(client)
        moe.delay = 2.0  # a slow MoEngage must not hold up Moesif or the store
        capture(client, 3)
        deadline = time.monotonic() + 5
        # The store is written by the flusher, Moesif by its own worker: wait for both.
        while (len(moesif.events) < 3 or Store(db).count() < 3) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(moesif.events) == 3 and Store(db).count() == 3 and moe.events == []
        assert client.flush(10)
        assert len(moe.events) == 3
        assert client.stats()["sent"] == 6 and client.stats()["stored"] == 3
        assert orjson.loads(Store(db).recent()[0].event_json)["transaction_id"] in moesif.transaction_ids
