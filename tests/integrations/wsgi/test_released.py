"""Every call is an event even when nobody finishes its response.

Test clients (Werkzeug's, which Flask's ``app.test_client()`` is) hand the response to a test
that may never read the body, and some servers and middlewares drop the response iterable
without calling ``close()``. The call is then recorded when the iterable is released, with the
body as far as it was read and ``metadata.apimon.incomplete`` saying so; until then it is counted
as ``unfinished``.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from apimon.integrations.wsgi import ApimonMiddleware

import apimon
from apimon.client import Client
from apimon.config import Config
from tests.conftest import ListSink

flask = pytest.importorskip("flask")


@pytest.fixture()
def sink() -> Iterator[ListSink]:
    sink = ListSink()
    apimon._client = Client(Config.from_options({"flush_interval": 0.05}), sinks=[sink])
    yield sink


def _flask_app() -> Any:
    app = flask.Flask("released")

    @app.get("/")
    def index() -> Any:
        return {"hello": "world"}

    @app.get("/parts")
    def parts() -> Any:
        return flask.Response((f"part {i}\n" for i in range(5)), mimetype="text/plain")

    app.wsgi_app = ApimonMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    return app


def _events(sink: ListSink) -> list[dict[str, Any]]:
    assert apimon.flush(5.0)
    return sink.events


def test_flask_test_client_response_never_read_is_an_event_when_released(sink: ListSink) -> None:
    client = _flask_app().test_client()
    response = client.get("/")
    assert response.status_code == 200  # the test looks at the status only, never at the body
    stats = apimon.stats()
    assert (stats["captured"], stats["unfinished"]) == (0, 1)
    assert _events(sink) == []
    del response
    [event] = _events(sink)
    stats = apimon.stats()
    assert (stats["captured"], stats["unfinished"], stats["internal_errors"]) == (1, 0, 0)
    assert event["response"]["status"] == 200
    # Werkzeug's client pulled the first chunk (the whole body here) before handing it over.
    assert event["response"]["body"] == {"hello": "world"}
    assert event["metadata"]["apimon"] == {"route": "/", "incomplete": "released"}


def test_a_response_read_to_its_end_is_complete(sink: ListSink) -> None:
    client = _flask_app().test_client()
    response = client.get("/parts")
    assert response.data == b"".join(f"part {i}\n".encode() for i in range(5))
    [event] = _events(sink)
    assert event["response"]["body"] == "part 0\npart 1\npart 2\npart 3\npart 4\n"
    assert "incomplete" not in event["metadata"]["apimon"]


def test_a_stream_dropped_half_read_keeps_what_was_read(sink: ListSink) -> None:
    client = _flask_app().test_client()
    response = client.get("/parts")
    chunks = response.iter_encoded()
    assert [next(chunks), next(chunks)] == [b"part 0\n", b"part 1\n"]
    del chunks, response
    [event] = _events(sink)
    assert event["response"]["body"] == "part 0\npart 1\n"
    assert event["metadata"]["apimon"]["incomplete"] == "released"


def _hello(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello ", b"world"]


def _careless_server(app: Any, path: str, pulls: int) -> tuple[str, list[bytes]]:
    """A server that takes ``pulls`` chunks and drops the iterable without calling close()."""
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "SERVER_NAME": "t",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.input": None,
    }
    status: list[str] = []
    body = app(environ, lambda s, h, e=None: status.append(s))
    chunks = iter(body)
    got = [next(chunks) for _ in range(pulls)]
    return status[0], got


def test_a_server_that_never_closes_the_iterable(sink: ListSink) -> None:
    app = ApimonMiddleware(_hello)
    status, got = _careless_server(app, "/a", pulls=1)
    assert (status, got) == ("200 OK", [b"hello "])
    status, got = _careless_server(app, "/b", pulls=0)
    a, b = _events(sink)
    assert a["response"]["body"] == "hello " and a["metadata"]["apimon"]["incomplete"] == "released"
    assert "body" not in b["response"] and b["metadata"]["apimon"]["incomplete"] == "released"
    assert apimon.stats()["unfinished"] == 0


def test_a_released_response_in_a_reference_cycle_is_recorded_at_shutdown(sink: ListSink) -> None:
    app = ApimonMiddleware(_hello)
    gc.disable()  # keep the collector from finding the cycle before shutdown does
    try:
        body = app({"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.url_scheme": "http"}, lambda *a: None)
        holder: dict[str, Any] = {"body": body}
        holder["self"] = holder
        del body, holder
        assert apimon.stats()["unfinished"] == 1
        client = apimon._client
        assert client is not None
        assert client.shutdown(5.0)
    finally:
        gc.enable()
    [event] = sink.events
    assert event["metadata"]["apimon"]["incomplete"] == "released"
    stats = apimon.stats()
    assert (stats["captured"], stats["unfinished"], stats["sent"]) == (1, 0, 1)


def test_a_response_still_held_at_shutdown_is_counted_unfinished(
    sink: ListSink, caplog: pytest.LogCaptureFixture
) -> None:
    app = ApimonMiddleware(_hello)
    held = app({"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.url_scheme": "http"}, lambda *a: None)
    client = apimon._client
    assert client is not None
    with caplog.at_level(logging.WARNING, logger="apimon"):
        client.shutdown(2.0)
    stats = apimon.stats()
    assert (stats["captured"], stats["unfinished"]) == (0, 1)
    assert "1 calls were still unfinished at shutdown" in caplog.text
    del held
