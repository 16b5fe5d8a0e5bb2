"""The sender at a distance: several requests in flight, batches that grow while behind, a 429
that holds them all, the byte bound, overload sampling and shutdown with requests in flight.
Real fake collectors on 127.0.0.1 that answer late (``latency``) or not at all (``stall``)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import orjson
import pytest

import apimon
from apimon.counters import LOSS_REASONS
from apimon.sinks.threaded import ThreadedSink
from apimon.testing import FakeMoEngage, FakeMoesif
from tests.core.sinks.conftest import capture, fast_retries, moesif_client
from tests.factories import make_raw


@pytest.fixture
def far_moesif() -> Iterator[FakeMoesif]:
    with FakeMoesif(latency=0.2) as fake:
        yield fake  # type: ignore[misc]


def _sender(client: apimon.Client) -> ThreadedSink:
    sink = client.sinks[0]
    assert isinstance(sink, ThreadedSink)
    return sink


def _accounted(stats: dict[str, int]) -> int:
    return stats["sent"] + sum(stats[r] for r in LOSS_REASONS) + stats["queued"]


def _posts(fake: FakeMoesif) -> list[int]:
    return [len(r.json()) for r in fake.requests if r.path == "/v1/events/batch" and r.status == 201]


def test_a_backlog_far_away_is_sent_several_requests_at_once(far_moesif: FakeMoesif) -> None:
    client = moesif_client(far_moesif, batch_size=20, max_batch_events=20)
    capture(client, 1_000)
    assert client.flush(60)
    stats = client.stats()
    assert stats["sent"] == 1_000 and stats["failed"] == 0 and stats["dropped_queue_full"] == 0
    assert len(far_moesif.transaction_ids) == 1_000 and len(far_moesif.events) == 1_000
    # 50 requests of 20 events, 200 ms each: one at a time would be 10 s. The limit grew with
    # the backlog, and the collector saw them overlap.
    assert far_moesif.max_concurrent > 1
    assert _sender(client).limiter.grown > 0
    assert max(_posts(far_moesif)) == 20


def test_batches_grow_while_the_backlog_is_behind(far_moesif: FakeMoesif) -> None:
    client = moesif_client(far_moesif, batch_size=10, max_batch_events=150, max_in_flight=1)
    capture(client, 600)
    assert client.flush(60)
    sizes = _posts(far_moesif)
    assert sum(sizes) == 600 and client.stats()["sent"] == 600
    # One slot, a backlog: each request takes what waits, up to max_batch_events.
    assert max(sizes) > 10 and max(sizes) <= 150
    assert len(sizes) < 600 / 10
    assert far_moesif.max_concurrent == 1


def test_a_light_load_keeps_one_request_in_flight() -> None:
    with FakeMoesif(latency=0.02) as fake:
        client = moesif_client(fake, batch_size=5)
        for _ in range(6):
            capture(client, 5)
            assert client.flush(10)
        assert fake.max_concurrent == 1 and client.stats()["sent"] == 30
        assert _sender(client).limiter.limit <= 2


def test_a_429_holds_every_request_in_flight_for_its_retry_after() -> None:
    with FakeMoesif(latency=0.05) as fake:
        client = moesif_client(fake, batch_size=10, max_batch_events=10)
        fast_retries(client)
        capture(client, 200)
        time.sleep(0.3)  # several requests in flight by now
        fake.fail_next(4, 429, {"error": "slow down"}, {"Retry-After": "1"}, path="/v1/events")
        capture(client, 200)
        assert client.flush(30)
        stats = client.stats()
        assert stats["sent"] == 400 and stats["failed"] == 0 and len(fake.transaction_ids) == 400
        limited = [r for r in fake.requests if r.status == 429]
        assert len(limited) == 4
        first = min(r.at for r in limited)
        # Requests that arrive after a 429 and before its Retry-After ran out can only be ones
        # that were already on the wire (sent before the answer came back, 50 ms later; the
        # margin is for a busy machine's scheduling).
        early = [r for r in fake.requests if r.path == "/v1/events/batch" and first + 0.35 < r.at < first + 0.9]
        assert early == []
        assert _sender(client).limiter.shrunk > 0


def test_the_byte_bound_holds_a_stalled_backlog_of_large_bodies() -> None:
    body = orjson.dumps({"rows": [{"id": i, "name": f"row {i}"} for i in range(3_000)]})  # ~60 KB
    with FakeMoesif() as fake:
        fake.stall()
        client = moesif_client(fake, max_queue_bytes=4 << 20, overload_sampling=False)
        highest = 0
        for i in range(200):
            raw = make_raw(
                method="POST",
                path=f"/big/{i}",
                req_headers=[("Content-Type", "application/json")],
                req_body=body,
                resp_headers=[("Content-Type", "application/json")],
                resp_body=body,
            )
            client.complete(raw, None)
            highest = max(highest, client.budget.used)
            time.sleep(0.002)
        stats = client.stats()
        # 200 calls of ~120 KB each would be 24 MB: the bound kept 4 MB, the rest was counted.
        assert highest <= 4 << 20
        assert stats["dropped_queue_full"] > 100
        fake.resume()
        assert client.flush(30)
        stats = client.stats()
        assert stats["internal_errors"] == 0
        assert stats["sent"] == len(fake.events) > 0
        assert stats["sent"] + stats["dropped_queue_full"] == stats["captured"] == 200
        assert client.budget.used == 0


def test_overload_keeps_one_call_in_n_with_weights_that_add_up() -> None:
    # A collector that takes ~50 events/s (one request of 10 at a time, 200 ms each) fed 400
    # calls/s: the backlog grows, and the sampler keeps 1 in N with weight N instead of letting
    # the queue overflow.
    with FakeMoesif(latency=0.2) as fake:
        client = moesif_client(fake, batch_size=10, max_batch_events=10, max_in_flight=1, max_queue=2_000)
        for i in range(1_600):
            client.complete(make_raw(path=f"/calls/{i}"), None)
            time.sleep(0.0025)
        fake.delay = 0.0  # then the collector comes close again, and the backlog drains
        assert client.flush(60)
        stats = client.stats()
    assert stats["captured"] == 1_600 and stats["dropped_queue_full"] == 0 and stats["failed"] == 0
    assert stats["sampled_overload"] > 0
    assert stats["sent"] + stats["sampled_overload"] == 1_600
    weights = [e.get("weight", 1) for e in fake.events]
    assert max(weights) > 1 and all(w & (w - 1) == 0 for w in weights)  # powers of two
    # Every kept call stands for the N it was picked from: the weights add up to the calls, but
    # for the partial cycle each change of N leaves (seen: 1,600 to 1,602 in three runs).
    assert abs(sum(weights) - 1_600) <= 16  # 1%


def test_shutdown_with_requests_in_flight_is_bounded_by_its_timeout() -> None:
    with FakeMoesif() as fake:
        fake.stall()
        client = moesif_client(fake, batch_size=10, max_batch_events=10)
        capture(client, 300)
        time.sleep(0.3)
        t0 = time.monotonic()
        done = client.shutdown(1.0)
        waited = time.monotonic() - t0
        fake.resume()
    assert done is False and waited < 2.0
    stats = client.stats()
    assert _accounted(stats) == stats["captured"] == 300


def test_moengage_customers_are_sent_side_by_side() -> None:
    with FakeMoEngage(latency=0.1) as fake:
        client = apimon.init(
            moengage_workspace_id=fake.workspace_id,
            moengage_api_key=fake.api_key,
            moengage_base_url=fake.url,
            store="off",
            flush_interval=0.05,
        )
        for i in range(200):
            raw = make_raw(path=f"/calls/{i}")
            raw.user_id = f"user-{i % 40}"
            client.complete(raw, None)
        assert client.flush(30)
        assert client.stats()["sent"] == 200 and fake.rejections == []
        assert fake.max_concurrent > 1
        assert len(fake.events) == 200
