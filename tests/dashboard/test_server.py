"""``apimon serve`` over real HTTP: pages, JSON, downloads, the event stream, and its guard."""

from __future__ import annotations

import base64
import http.client
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from apimon.dashboard.security import CSP
from apimon.serverproc import ServerProcess
from tests.dashboard.calls import HOSTILE, Spec, fill
from tests.dashboard.server import APIMON, dashboard
from tests.httpcheck import Reply, exchange

BINARY = bytes(range(256)) * 3
SPECS = [
    Spec("/items/1", route="/items/<id>", user="alice"),
    Spec(
        "/echo",
        method="POST",
        req_body=HOSTILE.encode(),
        req_type="text/html",
        resp_body=HOSTILE.encode(),
        resp_type="text/html",
        headers=[("X-Evil", HOSTILE)],
        user=HOSTILE,
        at=1,
    ),
    Spec("/download", resp_body=BINARY, resp_type="application/octet-stream", at=2),
    Spec("/boom", status=500, at=3, ms=250),
    Spec("/files/<script>window.__apimon_pwned = 3</script>", route="<b>route</b>", at=4),
]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("serve") / "calls.db")
    fill(path, SPECS)
    return path


@pytest.fixture(scope="module")
def server(db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = str(tmp_path_factory.mktemp("serve-log") / "serve.log")
    with dashboard(db, log_path=log) as proc:
        yield proc


def get(server: ServerProcess, path: str, headers: list[tuple[str, str]] | None = None) -> Reply:
    return exchange(server.port, "GET", path, headers=headers)


def header(reply: Reply, name: str) -> str | None:
    return next((v for k, v in reply.headers if k.lower() == name), None)


def test_every_page_is_served_with_a_strict_policy(server: ServerProcess) -> None:
    for path in ("/", "/overview", "/calls/1", "/?status=5xx", "/overview?user=alice"):
        reply = get(server, path)
        assert reply.status == 200, (path, reply.body[:200])
        assert header(reply, "content-type") == "text/html; charset=utf-8"
        assert header(reply, "content-security-policy") == CSP
        assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP
        assert header(reply, "x-content-type-options") == "nosniff"
        assert header(reply, "x-frame-options") == "DENY"


def test_hostile_captures_are_escaped_everywhere(server: ServerProcess) -> None:
    stream = get(server, "/").body.decode()
    detail = get(server, "/calls/2").body.decode()
    overview = get(server, "/overview").body.decode()
    escaped = "&lt;script&gt;window.__apimon_pwned = 1&lt;/script&gt;"
    for page in (stream, detail, overview):
        assert "<script>window" not in page and "<img src=x" not in page
        # The only script element is the dashboard's own file.
        assert page.count("<script") == 1 and '<script src="/static/app.js" defer></script>' in page
    assert escaped in stream  # the user id column
    assert "/files/&lt;script&gt;window.__apimon_pwned = 3&lt;/script&gt;" in stream
    assert "&lt;b&gt;route&lt;/b&gt;" in stream and "<b>route" not in stream + overview
    assert detail.count(escaped) >= 3  # the request body, the response body, the X-Evil header, the user


def test_filtered_stream_and_json(server: ServerProcess) -> None:
    page = get(server, "/?status=5xx").body.decode()
    assert "/boom" in page and "/items/1" not in page
    data = orjson.loads(get(server, "/api/calls?verb=GET&path=/items/*").body)
    assert [c["path"] for c in data["calls"]] == ["/items/1"] and data["older"] is None
    bad = get(server, "/?status=6xx")
    assert bad.status == 400 and b"status must be a class" in bad.body
    api_bad = get(server, "/api/calls?before=x")
    assert api_bad.status == 400 and orjson.loads(api_bad.body) == {"error": "before must be a call id, got 'x'"}


def test_call_detail_and_downloads(server: ServerProcess) -> None:
    detail = get(server, "/calls/3").body.decode()
    assert "binary, 768 bytes" in detail and "00000000  00 01 02 03" in detail
    download = get(server, "/calls/3/body/response")
    assert download.status == 200 and download.body == BINARY
    assert header(download, "content-type") == "application/octet-stream"
    assert header(download, "content-disposition") == 'attachment; filename="apimon-call-3-response.bin"'
    # A captured HTML body downloads as bytes and is never served as HTML.
    html = get(server, "/calls/2/body/request")
    assert html.body == HOSTILE.encode() and header(html, "content-type") == "application/octet-stream"
    event = orjson.loads(get(server, "/api/calls/3").body)["event"]
    assert base64.b64decode(event["response"]["body"]) == BINARY and event["response"]["transfer_encoding"] == "base64"
    assert get(server, "/calls/99").status == 404
    assert get(server, "/calls/1/body/request").status == 404  # a GET without a body
    assert get(server, "/calls/1/body/elsewhere").status == 404


def test_overview_json_and_chart(server: ServerProcess) -> None:
    figures = orjson.loads(get(server, "/api/overview").body)
    assert figures["total"] == 5 and figures["by_status_class"] == {"2xx": 4, "5xx": 1}
    page = get(server, "/overview").body.decode()
    assert page.count('<rect class="bar"') == 2  # one minute: a 2xx and a 5xx segment
    assert '<polyline class="line"' in page


def test_it_is_read_only(server: ServerProcess, db: str) -> None:
    before = Path(db).stat().st_mtime_ns
    for method in ("POST", "PUT", "DELETE"):
        assert exchange(server.port, method, "/api/calls", body=b"{}").status == 405
    assert Path(db).stat().st_mtime_ns == before


def status_with_host(port: int, host: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("GET", "/", skip_host=True)
        conn.putheader("Host", host)
        conn.endheaders()
        return conn.getresponse().status
    finally:
        conn.close()


def test_dns_rebinding_is_refused(server: ServerProcess) -> None:
    # A page on evil.example whose name resolves to 127.0.0.1 sends its own Host header.
    assert status_with_host(server.port, f"evil.example:{server.port}") == 421
    assert status_with_host(server.port, f"localhost:{server.port}") == 200
    assert status_with_host(server.port, f"[::1]:{server.port}") == 200


def read_events(
    port: int, path: str, want: int, timeout: float = 10.0, headers: dict[str, str] | None = None
) -> list[dict[str, object]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        assert response.status == 200 and response.getheader("content-type", "").startswith("text/event-stream")
        events: list[dict[str, object]] = []
        deadline = time.monotonic() + timeout
        block: list[str] = []
        while len(events) < want and time.monotonic() < deadline:
            line = response.fp.readline().decode().rstrip("\n")
            if line:
                block.append(line)
                continue
            fields = dict(item.split(": ", 1) for item in block if not item.startswith(":") and ": " in item)
            if fields.get("event") == "call":
                events.append({"id": int(fields["id"]), **orjson.loads(fields["data"])})
            block = []
        return events
    finally:
        conn.close()


def test_stream_sends_new_calls_as_they_are_stored(tmp_path: Path) -> None:
    db = str(tmp_path / "live.db")
    fill(db, [Spec("/old")])
    with dashboard(db) as proc:
        writer = threading.Timer(1.0, fill, args=(db, [Spec("/new", status=201), Spec("/skipped", status=404)]))
        writer.start()
        try:
            events = read_events(proc.port, "/api/stream?status=2xx", want=1)
        finally:
            writer.join()
        assert [(e["id"], e["path"], e["status"]) for e in events] == [(2, "/new", 201)]
        fill(db, [Spec("/later")])
        assert read_events(proc.port, "/api/stream?after=0", want=1)[0]["path"] == "/old"
        # Reconnecting with Last-Event-ID (what EventSource does) resumes after that call.
        resumed = read_events(proc.port, "/api/stream?after=0", want=1, headers={"Last-Event-ID": "3"})
        assert [(e["id"], e["path"]) for e in resumed] == [(4, "/later")]


def test_token_gate(db: str) -> None:
    token = "t0ken-for-the-test-suite"
    with dashboard(db, "--token", token) as proc:
        assert exchange(proc.port, "GET", "/").status == 401
        assert exchange(proc.port, "GET", "/?token=wrong").status == 401
        entry = exchange(proc.port, "GET", f"/?status=5xx&token={token}")
        assert entry.status == 303 and header(entry, "location") == "/?status=5xx"
        cookie = (header(entry, "set-cookie") or "").split(";")[0]
        assert "HttpOnly" in (header(entry, "set-cookie") or "") and token not in cookie
        assert exchange(proc.port, "GET", "/?status=5xx", headers=[("Cookie", cookie)]).status == 200
        assert exchange(proc.port, "GET", "/api/calls", headers=[("Authorization", f"Bearer {token}")]).status == 200
        assert exchange(proc.port, "GET", "/", headers=[("Cookie", "apimon_ui=forged")]).status == 401
        # The redirect after the token login never leaves the dashboard (an open redirect would
        # carry a user from a link with a valid token to any site).
        for path, local in [
            ("//evil.example/x", "/evil.example/x"),
            ("/\\evil.example/x", "/evil.example/x"),
            ("///evil.example", "/evil.example"),
            ("/%2F%2Fevil.example", "/evil.example"),  # the server decodes it to //evil.example
        ]:
            hop = exchange(proc.port, "GET", f"{path}?token={token}")
            assert hop.status == 303 and header(hop, "location") == local, (path, header(hop, "location"))


def run_serve(*args: str) -> subprocess.CompletedProcess[str]:
    assert APIMON
    return subprocess.run([APIMON, "serve", *args], capture_output=True, text=True, timeout=30)


def test_unsafe_or_impossible_starts_are_refused(db: str, tmp_path: Path) -> None:
    # Refused before anything binds: these never open a socket off loopback.
    remote = run_serve("--store", db, "--host", "0.0.0.0")
    assert remote.returncode == 2 and "refusing to bind to 0.0.0.0" in remote.stderr
    weak = run_serve("--store", db, "--host", "0.0.0.0", "--allow-remote", "--token", "short")
    assert weak.returncode == 2 and "at least 16 characters" in weak.stderr
    missing = run_serve("--store", str(tmp_path / "nope.db"))
    assert missing.returncode == 2 and "no apimon store at" in missing.stderr
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 100)
    assert "is not an apimon store" in run_serve("--store", str(junk)).stderr
