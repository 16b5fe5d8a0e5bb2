"""The WSGI middleware under a real gunicorn on 127.0.0.1: what was captured, and the exact bytes
the client received compared with the same app without apimon."""

from __future__ import annotations

import base64
import gzip
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from apimon.serverproc import ServerProcess, free_port, gunicorn_command
from tests.conftest import REPO
from tests.httpcheck import Reply, exchange, wait_event

pytest.importorskip("gunicorn")
pytest.importorskip("flask")


class Pair:
    """The same app twice: with apimon (storing to ``db``) and bare."""

    def __init__(self, target: str, db: str, tmp: Path, validated: bool = False) -> None:
        self.db = db
        self.close_marker = str(tmp / f"closed-{free_port()}.txt")
        env = {"APIMON_STORE": db, "PYTHONPATH": str(REPO), "RAWAPP_CLOSE_MARKER": self.close_marker}
        if validated:
            env["APIMON_SAMPLE_VALIDATE"] = "1"
        mport, bport = free_port(), free_port()
        self.monitored = ServerProcess(
            gunicorn_command(target, mport, "--threads", "8"),
            mport,
            env=env,
            cwd=str(REPO),
            ready_path="/ping",
            log_path=str(tmp / "monitored.log"),
        )
        self.bare = ServerProcess(
            gunicorn_command(target, bport, "--threads", "8"),
            bport,
            env={**env, "APIMON_SAMPLE_BARE": "1"},
            cwd=str(REPO),
            ready_path="/ping",
            log_path=str(tmp / "bare.log"),
        )

    def both(
        self, method: str, path: str, body: bytes | None = None, headers: list[tuple[str, str]] | None = None
    ) -> tuple[Reply, Reply, dict[str, Any]]:
        got = exchange(self.monitored.port, method, path, body, headers)
        want = exchange(self.bare.port, method, path, body, headers)
        assert (got.status, got.stable_headers(), got.body) == (want.status, want.stable_headers(), want.body)
        return got, want, wait_event(self.db, got.test_id)


# Each test runs twice: as the server hands over, and with wsgiref's validator on both sides of
# apimon (between gunicorn and apimon, between apimon and the app), so a departure from PEP 3333
# in either direction fails it.


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "validated"])
def flask_pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    tmp = tmp_path_factory.mktemp("flask")
    pair = Pair("sample_apps.flask_app.app:app", str(tmp / "flask.db"), tmp, request.param)
    with pair.monitored, pair.bare:
        yield pair


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "validated"])
def raw_pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    tmp = tmp_path_factory.mktemp("raw")
    pair = Pair("tests.integrations.wsgi.rawapp:app", str(tmp / "raw.db"), tmp, request.param)
    pair.monitored.ready_path = pair.bare.ready_path = "/cookies"
    with pair.monitored, pair.bare:
        yield pair


def test_json_crud_event_and_bytes(flask_pair: Pair) -> None:
    body = b'{"name": "pear", "password": "p"}'
    got, _, event = flask_pair.both("POST", "/items?src=test", body, [("Content-Type", "application/json")])
    assert got.status == 201
    port = flask_pair.monitored.port
    request, response = event["request"], event["response"]
    assert request["uri"] == f"http://127.0.0.1:{port}/items?src=test"
    assert request["verb"] == "POST" and request["ip_address"] == "127.0.0.1"
    assert request["body"] == {"name": "pear", "password": "[REDACTED]"}
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["Content-Length"] == str(len(body))
    assert response["status"] == 201
    assert response["body"]["name"] == "pear"
    assert response["headers"]["Content-Type"] == "application/json"
    assert request["time"] <= response["time"]


def test_form_multipart_binary_gzip(flask_pair: Pair) -> None:
    _, _, form = flask_pair.both(
        "POST", "/form", b"name=al&password=x", [("Content-Type", "application/x-www-form-urlencoded")]
    )
    assert form["request"]["body"] == "name=al&password=[REDACTED]"

    multipart = (
        b'--b1\r\nContent-Disposition: form-data; name="t"\r\n\r\nv\r\n--b1\r\nContent-Disposition:'
        b' form-data; name="f"; filename="x.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
        + b"\x00\x01" * 50
        + b"\r\n--b1--\r\n"
    )
    got, _, up = flask_pair.both("POST", "/upload", multipart, [("Content-Type", "multipart/form-data; boundary=b1")])
    assert got.body == b'{"files":{"f":100},"fields":{"t":"v"}}'
    assert up["request"]["body"] == {
        "t": "v",
        "f": {"filename": "x.bin", "content_type": "application/octet-stream", "size": 100},
    }

    got, _, binary = flask_pair.both("GET", "/download")
    assert binary["response"]["transfer_encoding"] == "base64"
    assert base64.b64decode(binary["response"]["body"]) == got.body == bytes(range(256)) * 4

    got, _, gz = flask_pair.both("GET", "/gzip", headers=[("Accept-Encoding", "gzip")])
    assert gzip.decompress(got.body).startswith(b'{"compressed":true')
    assert gz["response"]["body"]["compressed"] is True
    assert gz["response"]["headers"]["Content-Encoding"] == "gzip"


def test_invalid_utf8_json_and_text(flask_pair: Pair) -> None:
    _, _, bad = flask_pair.both("POST", "/echo", b"caf\xe9", [("Content-Type", "text/plain")])
    assert bad["request"]["transfer_encoding"] == "base64" and bad["response"]["transfer_encoding"] == "base64"
    _, _, broken = flask_pair.both("POST", "/echo", b"{oops", [("Content-Type", "application/json")])
    assert broken["request"]["body"] == "{oops" and broken["response"]["body"] == "{oops"


def test_head_204_404_and_percent_encoded_path(flask_pair: Pair) -> None:
    got, _, head = flask_pair.both("HEAD", "/ping")
    assert got.body == b"" and "body" not in head["response"] and head["request"]["verb"] == "HEAD"
    flask_pair.both("POST", "/items", b'{"name": "x"}', [("Content-Type", "application/json")])
    got, _, deleted = flask_pair.both("DELETE", "/items/1")
    assert got.status == 204 and deleted["response"]["status"] == 204 and "body" not in deleted["response"]
    got, _, missing = flask_pair.both("GET", "/files/a%2Fb/c%20d?q=caf%C3%A9&x=%2F")
    assert got.status == 404
    assert missing["request"]["uri"].endswith("/files/a%2Fb/c%20d?q=caf%C3%A9&x=%2F")


def test_repeated_request_headers_and_bad_forwarded_for(flask_pair: Pair) -> None:
    _, _, event = flask_pair.both(
        "GET",
        "/ping",
        headers=[("X-Dup", "one"), ("X-Dup", "two"), ("X-Forwarded-For", "nonsense, 10.1.2.3, 999.9.9.9")],
    )
    assert event["request"]["headers"]["X-Dup"] == "one,two"
    assert event["request"]["ip_address"] == "10.1.2.3"


def test_bearer_and_basic_users_and_redaction(flask_pair: Pair) -> None:
    jwt = "eyJhbGciOiJub25lIn0." + base64.urlsafe_b64encode(b'{"sub":"u-7"}').decode().rstrip("=") + ".x"
    got, _, bearer = flask_pair.both("GET", "/me", headers=[("Authorization", f"Bearer {jwt}")])
    assert got.body == b'{"user":"u-7"}'
    assert bearer["user_id"] == "u-7" and bearer["request"]["headers"]["Authorization"] == "[REDACTED]"
    assert bearer["session_token"].startswith("sha256:") and jwt not in str(bearer)
    basic = "Basic " + base64.b64encode(b"bob:pw").decode()
    _, _, event = flask_pair.both("GET", "/me", headers=[("Authorization", basic)])
    assert event["user_id"] == "bob"


def test_large_response_is_marked_truncated_and_bytes_intact(flask_pair: Pair) -> None:
    got, _, event = flask_pair.both("GET", "/large")
    assert len(got.body) == 262_144
    assert "body" not in event["response"]
    assert event["metadata"]["apimon"]["truncated"] == {"response.body": 262_144}


def test_flask_error_page_is_a_500_event(flask_pair: Pair) -> None:
    got, _, event = flask_pair.both("GET", "/boom")
    assert got.status == 500 and event["response"]["status"] == 500


def test_streamed_response_is_not_buffered(raw_pair: Pair) -> None:
    sock = socket.create_connection(("127.0.0.1", raw_pair.monitored.port), timeout=10)
    t0 = time.monotonic()
    sock.sendall(b"GET /slow-stream?4 HTTP/1.1\r\nHost: t\r\nX-Test-Id: stream-1\r\nConnection: close\r\n\r\n")
    received = b""
    first_at = None
    while True:
        data = sock.recv(65536)
        if not data:
            break
        if first_at is None and b"part 0" in received + data:
            first_at = time.monotonic() - t0
        received += data
    total = time.monotonic() - t0
    sock.close()
    # Four parts, 0.5 s apart: the first reaches the client long before the last is produced.
    assert first_at is not None and first_at < 0.4 and total >= 1.5
    event = wait_event(raw_pair.db, "stream-1")
    assert event["response"]["body"] == "part 0\npart 1\npart 2\npart 3\n"
    # ISO 8601 strings of one format sort like the times they name: the duration is real.
    assert event["response"]["time"] > event["request"]["time"]


def test_app_raising_before_start_is_500_and_reraised(raw_pair: Pair) -> None:
    got, want, event = raw_pair.both("GET", "/raise-before")
    assert got.status == 500
    assert event["response"]["status"] == 500
    assert event["metadata"]["apimon"]["error"] == "RuntimeError"


def test_app_raising_mid_stream_records_what_the_client_got(raw_pair: Pair) -> None:
    sock = socket.create_connection(("127.0.0.1", raw_pair.monitored.port), timeout=10)
    sock.sendall(b"GET /raise-mid HTTP/1.1\r\nHost: t\r\nX-Test-Id: mid-1\r\nConnection: close\r\n\r\n")
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    assert data.startswith(b"HTTP/1.1 200 OK")
    event = wait_event(raw_pair.db, "mid-1")
    assert event["response"]["status"] == 200
    assert event["metadata"]["apimon"]["error"] == "RuntimeError"


def test_write_callable_and_two_set_cookies(raw_pair: Pair) -> None:
    got, _, event = raw_pair.both("GET", "/write")
    assert got.body == b"written, then returned" and event["response"]["body"] == "written, then returned"
    got, _, cookies = raw_pair.both("GET", "/cookies")
    assert [v for k, v in got.headers if k.lower() == "set-cookie"] == ["a=1; Path=/", "b=2; Path=/"]
    assert cookies["response"]["headers"]["Set-Cookie"] == "a=1; Path=/,b=2; Path=/"
    assert "cookies" in Path(raw_pair.close_marker).read_text().split()


def test_unread_request_body_is_still_captured(raw_pair: Pair) -> None:
    _, _, event = raw_pair.both("POST", "/ignore-body", b'{"k": 1}', [("Content-Type", "application/json")])
    assert event["request"]["body"] == {"k": 1}


def test_huge_upload_is_teed_not_held(raw_pair: Pair) -> None:
    body = b"z" * 2_000_000
    got, _, event = raw_pair.both("POST", "/echo", body, [("Content-Type", "application/octet-stream")])
    assert got.body == body
    assert event["metadata"]["apimon"]["truncated"] == {"request.body": 2_000_000, "response.body": 2_000_000}


def test_client_disconnect_mid_stream_is_recorded(raw_pair: Pair) -> None:
    sock = socket.create_connection(("127.0.0.1", raw_pair.monitored.port), timeout=10)
    sock.sendall(b"GET /slow-stream?6 HTTP/1.1\r\nHost: t\r\nX-Test-Id: gone-1\r\n\r\n")
    seen = b""
    while b"part 0" not in seen:
        seen += sock.recv(65536)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()  # RST: the server's next write fails
    event = wait_event(raw_pair.db, "gone-1", timeout=15)
    assert event["response"]["status"] == 200
    assert event["response"]["body"].startswith("part 0\n")
    assert len(event["response"]["body"]) < len("part 0\n") * 6


def test_fifty_concurrent_requests_are_all_captured(flask_pair: Pair) -> None:
    def one(i: int) -> Reply:
        return exchange(
            flask_pair.monitored.port, "POST", "/echo", f'{{"n": {i}}}'.encode(), [("Content-Type", "application/json")]
        )

    with ThreadPoolExecutor(max_workers=50) as pool:
        replies = list(pool.map(one, range(50)))
    for i, reply in enumerate(replies):
        assert reply.status == 200 and reply.body == f'{{"n": {i}}}'.encode()
        event = wait_event(flask_pair.db, reply.test_id)
        assert event["request"]["body"] == {"n": i} and event["response"]["body"] == {"n": i}
