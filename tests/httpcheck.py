"""Helpers for tests against real servers: raw HTTP exchanges and waiting for stored events."""

from __future__ import annotations

import http.client
import time
import uuid
from dataclasses import dataclass
from typing import Any

from apimon.store import Store, StoreError

# Headers a server adds by itself and that differ between two runs.
VOLATILE = {"date", "server"}


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    test_id: str

    def stable_headers(self) -> list[tuple[str, str]]:
        return [(k.lower(), v) for k, v in self.headers if k.lower() not in VOLATILE]


def exchange(
    base_port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: list[tuple[str, str]] | None = None,
    test_id: str | None = None,
) -> Reply:
    """One request on a fresh connection; header pairs are sent as given (repeats allowed)."""
    test_id = test_id or uuid.uuid4().hex
    conn = http.client.HTTPConnection("127.0.0.1", base_port, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        conn.putheader("X-Test-Id", test_id)
        for name, value in headers or []:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        data = response.read()
        return Reply(response.status, response.getheaders(), data, test_id)
    finally:
        conn.close()


def wait_event(db: str, test_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """The stored event whose request carried ``X-Test-Id: test_id``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            for call in Store(db, readonly=True).recent(limit=500):
                event = call.event()
                if event["request"]["headers"].get("X-Test-Id") == test_id:
                    return event
        except StoreError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"no event with X-Test-Id {test_id} in {db} after {timeout}s")
