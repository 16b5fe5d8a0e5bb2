"""Request bodies are captured whatever read method the framework uses on ``wsgi.input``.

Werkzeug 3 reads through ``readinto`` when the server's stream has one (its own dev server's
buffered socket file, waitress, a ``BytesIO``), and gunicorn's body has none, so the gunicorn
tests alone cannot see a tee that misses ``readinto``. These run Flask under Werkzeug's real
dev server on 127.0.0.1, with and without apimon, and compare the client's bytes too.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import apimon
from apimon.client import Client
from apimon.config import Config
from apimon.tee import BodyTee, TeeReader
from tests.conftest import ListSink
from tests.httpcheck import exchange

pytest.importorskip("flask")
serving = pytest.importorskip("werkzeug.serving")

BODY = orjson.dumps({"name": "widget", "qty": 3, "pad": "x" * 3000})


class Served:
    def __init__(self, app: Any) -> None:
        self.server = serving.make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture()
def sink() -> Iterator[ListSink]:
    sink = ListSink()
    apimon._client = Client(Config.from_options({"flush_interval": 0.05}), sinks=[sink])
    yield sink


def _apps() -> tuple[Any, Any]:
    from apimon.integrations.wsgi import ApimonMiddleware

    from sample_apps.flask_app.app import create_app

    bare, monitored = create_app(), create_app()
    monitored.wsgi_app = ApimonMiddleware(monitored.wsgi_app)  # type: ignore[method-assign]
    return bare, monitored


def test_flask_body_read_through_readinto_is_captured(sink: ListSink) -> None:
    bare, monitored = _apps()
    headers = [("Content-Type", "application/json")]
    with Served(monitored) as m, Served(bare) as b:
        got = exchange(m.port, "POST", "/echo", BODY, headers)
        want = exchange(b.port, "POST", "/echo", BODY, headers)
    assert (got.status, got.body) == (want.status, want.body) == (200, BODY)
    assert apimon.flush(5)
    (event,) = sink.events
    assert event["request"]["body"] == orjson.loads(BODY)
    assert event["response"]["body"] == orjson.loads(BODY)
    assert "metadata" not in event or "truncated" not in event["metadata"].get("apimon", {})


def test_form_post_read_through_readinto_is_captured(sink: ListSink) -> None:
    bare, monitored = _apps()
    form = b"name=widget&qty=3&password=hunter2"
    headers = [("Content-Type", "application/x-www-form-urlencoded")]
    with Served(monitored) as m, Served(bare) as b:
        got = exchange(m.port, "POST", "/form", form, headers)
        want = exchange(b.port, "POST", "/form", form, headers)
    assert (got.status, got.body) == (want.status, want.body)
    assert apimon.flush(5)
    (event,) = sink.events
    assert event["request"]["body"] == "name=widget&qty=3&password=[REDACTED]"


def test_readinto_fills_the_callers_buffer_and_the_tee() -> None:
    data = b"0123456789" * 10
    tee = BodyTee(1000)
    reader = TeeReader(io.BytesIO(data), tee, len(data))
    buf = bytearray(64)
    assert reader.readinto(buf) == 64
    assert bytes(buf) == data[:64]
    view = memoryview(bytearray(64))
    assert reader.readinto(view) == 36
    assert bytes(view[:36]) == data[64:]
    assert tee.data() == data and tee.complete


def test_readinto_on_a_stream_without_it_uses_read() -> None:
    class ReadOnly:
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def read(self, n: int = -1) -> bytes:
            return self._data.read(n)

    tee = BodyTee(1000)
    reader = TeeReader(ReadOnly(b"abcdef"), tee, 6)
    buf = bytearray(4)
    assert reader.readinto(buf) == 4 and bytes(buf) == b"abcd"
    assert reader.readinto(buf) == 2 and bytes(buf[:2]) == b"ef"
    assert reader.readinto(buf) == 0
    assert tee.data() == b"abcdef" and tee.complete


def test_a_body_the_app_left_unread_is_captured_and_a_seekable_stream_put_back() -> None:
    # Found by Flask's own suite under the shim (test_routing_redirect_debugging): Werkzeug's test
    # client follows a 307/308 redirect with the same BytesIO, which the app of the first request
    # never read; reading it for the event must leave it where the app left it.
    data = b"status=success"
    stream = io.BytesIO(data)
    tee = BodyTee(1000)
    TeeReader(stream, tee, len(data)).finish(1000)
    assert tee.data() == data and tee.complete
    assert stream.tell() == 0 and stream.read() == data


def test_a_redirect_that_keeps_the_body_gets_it_under_the_test_client(sink: ListSink) -> None:
    import flask
    from apimon.integrations.wsgi import ApimonMiddleware

    app = flask.Flask("redirects")

    @app.route("/user/", methods=["POST"])
    def user() -> str:
        return flask.request.form["status"]

    original = app.wsgi_app
    app.wsgi_app = ApimonMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    client = app.test_client()
    # /user answers 308 (without reading the body) and the client sends the body again to /user/.
    response = client.post("/user", data={"status": "success"}, follow_redirects=True)
    assert response.data == b"success"
    assert [r.status_code for r in response.history] == [308]
    # The environ the client keeps has its own input stream back, not apimon's reader.
    assert not isinstance(response.request.environ["wsgi.input"], TeeReader)
    assert original is not None
    del response
    assert apimon.flush(5.0)
    first, second = sink.events
    assert (first["response"]["status"], second["response"]["status"]) == (308, 200)
    assert first["request"]["body"] == second["request"]["body"] == "status=success"
    assert second["response"]["body"] == "success"


class OneWay:
    """A request stream that cannot seek, as a server's socket file or wsgiref's InputWrapper."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._inner.read(size)

    def readline(self, size: int = -1) -> bytes:
        return self._inner.readline(size)


def _ignores_the_body(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"did not read it"]


@pytest.mark.parametrize("stream", [io.BytesIO, OneWay], ids=["seekable", "one-way"])
@pytest.mark.parametrize(
    "later",
    [
        lambda s: s.read(),
        lambda s: s.read(5) + s.read(100),
        lambda s: b"".join(iter(lambda: s.readline(), b"")),
        lambda s: s.readline(3) + s.read(),
    ],
    ids=["read", "read-sized", "readline", "readline-sized"],
)
def test_reading_the_body_after_the_call_gets_what_it_gets_bare(sink: ListSink, stream: Any, later: Any) -> None:
    from apimon.integrations.wsgi import ApimonMiddleware

    data = b"line one\nline two\nthe end"

    def call(app: Any) -> bytes:
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/later",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "wsgi.url_scheme": "http",
            "CONTENT_LENGTH": str(len(data)),
            "CONTENT_TYPE": "text/plain",
            "wsgi.input": stream(data),
        }
        result = app(environ, lambda status, headers, exc_info=None: None)
        b"".join(result)
        getattr(result, "close", lambda: None)()
        # A deferred task (or a test client) reads the request after the response is done.
        return bytes(later(environ["wsgi.input"]))

    bare = call(_ignores_the_body)
    assert call(ApimonMiddleware(_ignores_the_body)) == bare == later(io.BytesIO(data))
    assert apimon.flush(5.0)
    [event] = sink.events
    assert event["request"]["body"] == data.decode()  # and apimon still has it for the event


@settings(max_examples=1500, deadline=None)
@given(
    st.binary(max_size=14).map(lambda b: bytes(b"ab\n"[x % 3] for x in b)),
    st.integers(0, 14),
    st.lists(st.tuples(st.sampled_from(["read", "readline", "readlines"]), st.integers(-1, 6)), max_size=6),
)
def test_a_replay_reads_as_the_whole_stream_would(data: bytes, cut: int, calls: list[tuple[str, int]]) -> None:
    from apimon.tee import Replay

    cut = min(cut, len(data))
    replay, whole = Replay(data[:cut], io.BytesIO(data[cut:])), io.BytesIO(data)
    for method, size in calls:
        args = () if method == "readlines" else (size,)
        assert getattr(replay, method)(*args) == getattr(whole, method)(*args), (method, size)
