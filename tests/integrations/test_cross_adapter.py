"""Every adapter produces the same event for the same HTTP exchange, apart from times, ids and
the headers a framework or server adds on its own."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest

from apimon.serverproc import ServerProcess, free_port
from tests.conftest import REPO
from tests.httpcheck import exchange, wait_event
from tests.integrations.test_scenarios import FRAMEWORKS

# Added by servers or frameworks by themselves, or differing by nature between runs.
FRAMEWORK_HEADERS = {"Content-Length", "Date", "Server", "X-Test-Id", "Connection", "Transfer-Encoding"}

JWT = "eyJhbGciOiJub25lIn0." + base64.urlsafe_b64encode(b'{"sub":"u-9"}').decode().rstrip("=") + ".x"
MULTIPART = (
    b'--b1\r\nContent-Disposition: form-data; name="title"\r\n\r\nhi\r\n--b1\r\nContent-Disposition:'
    b' form-data; name="f"; filename="x.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
    + bytes(range(64))
    + b"\r\n--b1--\r\n"
)
SCENARIOS: list[tuple[str, str, bytes | None, list[tuple[str, str]]]] = [
    ("POST", "/items", b'{"name": "fig", "secret": "s"}', [("Content-Type", "application/json")]),
    ("GET", "/items/1", None, [("Authorization", f"Bearer {JWT}")]),
    ("PUT", "/items/1", b'{"price": 2}', [("Content-Type", "application/json")]),
    ("POST", "/form", b"a=1&password=p", [("Content-Type", "application/x-www-form-urlencoded")]),
    ("POST", "/upload", MULTIPART, [("Content-Type", "multipart/form-data; boundary=b1")]),
    ("GET", "/download", None, []),
    ("GET", "/gzip", None, [("Accept-Encoding", "gzip")]),
    ("GET", "/cookies", None, [("Cookie", "theme=dark")]),
    ("GET", "/me", None, [("Authorization", "Basic " + base64.b64encode(b"ann:pw").decode())]),
    ("HEAD", "/ping", None, [("X-Forwarded-For", "bad, 192.168.0.4, 203.0.113.5")]),
    ("GET", "/cached", None, [("If-None-Match", '"v1"')]),
    ("DELETE", "/items/1", None, []),
    ("POST", "/echo", b"\xff\xfe binary \x00", [("Content-Type", "application/octet-stream")]),
    ("GET", "/large", None, []),
    ("GET", "/stream?parts=3&delay=0.01", None, [("X-Dup", "1"), ("X-Dup", "2")]),
]


def normalise(event: dict[str, Any], port: int) -> dict[str, Any]:
    event = {k: v for k, v in event.items() if k != "transaction_id"}
    for part in ("request", "response"):
        section = dict(event[part])
        section.pop("time")
        section["headers"] = {k: v for k, v in section["headers"].items() if k not in FRAMEWORK_HEADERS}
        if section.get("status") in (204, 304):
            section["headers"].pop("Content-Type", None)  # Flask and Django default it on body-less responses
        if "uri" in section:
            section["uri"] = re.sub(f":{port}\\b", ":PORT", section["uri"])
            section["headers"]["Host"] = "127.0.0.1:PORT"
        event[part] = section
    metadata = event.get("metadata", {})
    apimon_meta = {k: v for k, v in metadata.get("apimon", {}).items() if k != "route"}
    metadata = (
        {**metadata, "apimon": apimon_meta} if apimon_meta else {k: v for k, v in metadata.items() if k != "apimon"}
    )
    if metadata:
        event["metadata"] = metadata
    else:
        event.pop("metadata", None)
    return event


@pytest.mark.slow
def test_all_adapters_produce_the_same_events(tmp_path: Path) -> None:
    for fw in FRAMEWORKS:
        for module in fw.requires:
            pytest.importorskip(module)
    seen: dict[str, list[dict[str, Any]]] = {}
    for fw in FRAMEWORKS:
        db = str(tmp_path / f"{fw.name}.db")
        port = free_port()
        server = ServerProcess(
            fw.command(port),
            port,
            # One key for all: with none, each store keeps its own and the session tokens differ.
            env={"APIMON_STORE": db, "PYTHONPATH": str(REPO), "APIMON_SESSION_SECRET": "cross-adapter"},
            cwd=str(REPO),
            log_path=str(tmp_path / f"{fw.name}.log"),
        )
        with server:
            events = []
            for method, path, body, headers in SCENARIOS:
                reply = exchange(port, method, path, body, headers, test_id=f"{fw.name}-{method}-{path}")
                events.append(normalise(wait_event(db, reply.test_id), port))
        seen[fw.name] = events
    reference = seen["flask"]
    for name, events in seen.items():
        for (method, path, _, _), want, got in zip(SCENARIOS, reference, events, strict=True):
            assert got == want, f"{name} differs from flask on {method} {path}"
