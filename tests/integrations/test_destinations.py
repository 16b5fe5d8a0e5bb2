"""End to end: the Flask sample app under a real gunicorn, shipping to the fake Moesif and
MoEngage collectors over loopback, asserted field by field on both vendors at once."""

from __future__ import annotations

import base64
import http.client
import statistics
import time
from pathlib import Path

import pytest

from apimon.testing import FakeMoEngage, FakeMoesif
from tests.httpcheck import exchange
from tests.reliability.harness import flask_server, stats

pytest.importorskip("flask")
pytest.importorskip("gunicorn")

JWT = "eyJhbGciOiJub25lIn0." + base64.urlsafe_b64encode(b'{"sub":"cust-1"}').decode().rstrip("=") + ".sig"


def test_both_vendors_field_by_field(tmp_path: Path) -> None:
    with FakeMoesif() as moesif, FakeMoEngage() as moe:
        server = flask_server(tmp_path, "both", moesif=moesif, moengage=moe)
        with server:
            auth = [("Authorization", f"Bearer {JWT}")]
            created = exchange(
                server.port,
                "POST",
                "/items?src=e2e",
                b'{"name": "kiwi", "password": "x"}',
                [("Content-Type", "application/json"), *auth],
                test_id="e2e-create",
            )
            assert created.status == 201 and created.body == b'{"id":1,"name":"kiwi","password":"x"}'
            exchange(server.port, "GET", "/download", None, auth, test_id="e2e-download")
            exchange(server.port, "GET", "/boom", None, [], test_id="e2e-boom")
        # SIGTERM: the worker's exit flush ships what is still queued.
        assert server.returncode == 0
    assert moesif.rejections == [] and moe.rejections == []
    by_id = {e["request"]["headers"].get("X-Test-Id"): e for e in moesif.events}
    event = by_id["e2e-create"]
    assert event["request"]["uri"] == f"http://127.0.0.1:{server.port}/items?src=e2e"
    assert event["request"]["verb"] == "POST" and event["request"]["ip_address"] == "127.0.0.1"
    assert event["request"]["headers"]["Authorization"] == "[REDACTED]"
    assert event["request"]["body"] == {"name": "kiwi", "password": "[REDACTED]"}
    assert event["response"]["status"] == 201
    assert event["response"]["body"] == {"id": 1, "name": "kiwi", "password": "[REDACTED]"}
    assert event["user_id"] == "cust-1" and event["session_token"].startswith("sha256:")
    assert event["direction"] == "Incoming" and len(event["transaction_id"]) == 36
    assert event["metadata"] == {"apimon": {"route": "/items"}}
    assert by_id["e2e-download"]["response"]["transfer_encoding"] == "base64"
    assert by_id["e2e-boom"]["response"]["status"] == 500 and "user_id" not in by_id["e2e-boom"]
    # MoEngage: only the calls with a user, as "API Call" events of that customer.
    actions = {a["attributes"]["path"]: a for a in moe.events}
    assert set(actions) == {"/items", "/download"}
    action = actions["/items"]
    assert action["customer_id"] == "cust-1" and action["action"] == "API Call"
    assert {k: action["attributes"][k] for k in ("verb", "route", "status", "transaction_id")} == {
        "verb": "POST",
        "route": "/items",
        "status": 201,
        "transaction_id": event["transaction_id"],
    }
    assert action["attributes"]["uri"] == event["request"]["uri"]
    assert action["current_time"] == event["request"]["time"][:19] + "Z"


def _median_latency(port: int, n: int) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("POST", "/echo", body=b'{"a": 1}', headers={"Content-Type": "application/json"})
        conn.getresponse().read()
        samples.append(time.perf_counter() - t0)
    conn.close()
    return statistics.median(samples)


@pytest.mark.slow
def test_collector_down_for_the_whole_run_costs_the_app_nothing(tmp_path: Path) -> None:
    with FakeMoesif() as fast, FakeMoesif() as gone:
        gone.down()  # nothing listens there for the whole run: every connection is refused
        healthy = flask_server(tmp_path, "healthy", moesif=fast, options={"retry_deadline": 1.0})
        broken = flask_server(tmp_path, "broken", moesif=gone, options={"retry_deadline": 1.0})
        with healthy, broken:
            ratios = []
            for _ in range(5):  # alternate which one goes first
                a = _median_latency(healthy.port, 60)
                b = _median_latency(broken.port, 60)
                ratios.append(b / a)
            ratio = statistics.median(ratios)
            deadline = time.monotonic() + 30
            while (final := stats(broken.port))["queued"] and time.monotonic() < deadline:
                time.sleep(0.5)
        assert ratio < 1.3, f"requests got {ratio:.2f}x slower with the collector down"
        assert final["sent"] == 0 and final["queued"] == 0
        # Every call is accounted for: all of them failed, none was lost silently.
        # 5 rounds of 60 calls, plus the readiness probe.
        assert final["captured"] == 301 and final["failed"] == 301 and final["skipped"] >= 1
