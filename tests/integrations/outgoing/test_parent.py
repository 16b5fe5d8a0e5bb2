"""An outgoing call made while an incoming call is served, through every adapter under its real
server (gunicorn: Flask and Django-WSGI with requests; uvicorn: Starlette, FastAPI and Django-ASGI,
the first two with httpx.AsyncClient), with ``capture_outgoing`` from the environment: the
outgoing event names the incoming call as its parent and has its user."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from apimon.serverproc import ServerProcess, free_port
from apimon.store import Store, StoreError
from tests.conftest import REPO
from tests.httpcheck import exchange
from tests.integrations.outgoing.partner import Partner
from tests.integrations.test_scenarios import FRAMEWORKS, Framework


@pytest.fixture(scope="module")
def partner() -> Iterator[Partner]:
    with Partner() as p:
        yield p


@pytest.mark.parametrize("fw", FRAMEWORKS, ids=[f.name for f in FRAMEWORKS])
def test_an_outgoing_call_inside_an_incoming_one_is_linked_to_it(
    fw: Framework, partner: Partner, tmp_path: Path
) -> None:
    for module in (*fw.requires, "requests", "httpx"):
        pytest.importorskip(module)
    db = str(tmp_path / "calls.db")
    env = {
        "PYTHONPATH": str(REPO),
        "APIMON_STORE": db,
        "APIMON_CAPTURE_OUTGOING": "1",
        "APIMON_SAMPLE_PARTNER": partner.url,
    }
    port = free_port()
    payload = base64.urlsafe_b64encode(orjson.dumps({"sub": "u-42"})).decode().rstrip("=")
    with ServerProcess(fw.command(port), port, env=env, cwd=str(REPO), log_path=str(tmp_path / "server.log")):
        reply = exchange(
            port, "GET", "/partner", headers=[("Authorization", f"Bearer eyJhbGciOiJub25lIn0.{payload}.x")]
        )
        assert reply.status == 200
        assert orjson.loads(reply.body) == {"path": f"/json?from={fw.name.split('-')[0]}", "token": "partner-secret"}
        events = _wait_events(db, 2)
    incoming = next(e for e in events if e["direction"] == "Incoming" and "/partner" in e["request"]["uri"])
    outgoing = next(e for e in events if e["direction"] == "Outgoing")
    assert outgoing["request"]["uri"] == partner.url + f"/json?from={fw.name.split('-')[0]}"
    assert outgoing["metadata"]["apimon"]["parent"] == incoming["transaction_id"]
    assert outgoing["user_id"] == incoming["user_id"] == "u-42"
    assert outgoing["session_token"] == incoming["session_token"]
    assert outgoing["response"]["body"] == {"path": f"/json?from={fw.name.split('-')[0]}", "token": "[REDACTED]"}


def _wait_events(db: str, n: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15
    events: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            events = [c.event() for c in Store(db, readonly=True).recent(limit=100)]
        except StoreError:
            events = []
        if len(events) >= n:
            return events
        time.sleep(0.1)
    raise AssertionError(f"{len(events)} events in {db}, expected {n}")
