"""Bodies that arrive in one piece skip the request path's BodyTee (``RawCall.keep_response``):
the event and the client's bytes must be exactly what the streaming tee gives, on each side of
the cap, for WSGI (iterable and ``write()``) and ASGI, and a body over the cap holds nothing."""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

import apimon
from apimon.client import Client
from apimon.config import Config
from apimon.record import RawCall
from tests.conftest import ListSink

CAP = 64
SMALL = orjson.dumps({"ok": True, "n": 1})
BIG = orjson.dumps({"pad": "y" * 200})


@pytest.fixture()
def sink() -> Iterator[ListSink]:
    sink = ListSink()
    apimon._client = Client(Config.from_options({"flush_interval": 0.05, "max_body_bytes": CAP}), sinks=[sink])
    yield sink


def _environ() -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/x",
        "RAW_URI": "/x",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "127.0.0.1:8000",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
    }


def _wsgi(chunks: list[Any], write: bytes | None = None, stop_after: int | None = None) -> bytes:
    from apimon.integrations.wsgi import ApimonMiddleware

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        w = start_response("200 OK", [("Content-Type", "application/json")])
        if write is not None:
            w(write)
        return iter(chunks)

    got = bytearray()
    result = ApimonMiddleware(app)(_environ(), lambda status, headers, exc_info=None: got.extend)
    for i, chunk in enumerate(result):
        got += chunk
        if stop_after is not None and i + 1 >= stop_after:
            break
    result.close()  # type: ignore[attr-defined]
    return bytes(got)


def _event(sink: ListSink) -> dict[str, Any]:
    assert apimon.flush(5)
    (event,) = sink.events
    return event


def _truncated(event: dict[str, Any]) -> Any:
    return event.get("metadata", {}).get("apimon", {}).get("truncated")


def test_wsgi_one_chunk_within_the_cap_is_the_body(sink: ListSink) -> None:
    assert _wsgi([SMALL]) == SMALL
    event = _event(sink)
    assert event["response"]["body"] == orjson.loads(SMALL)
    assert _truncated(event) is None
    assert sink.items[0].response_bytes == len(SMALL)


def test_wsgi_one_chunk_over_the_cap_reports_its_size_only(sink: ListSink) -> None:
    assert _wsgi([BIG]) == BIG
    event = _event(sink)
    assert "body" not in event["response"]
    assert _truncated(event) == {"response.body": len(BIG)}
    assert sink.items[0].response_bytes == len(BIG)


def test_wsgi_a_bytearray_chunk_changed_after_it_was_sent_is_recorded_as_sent(sink: ListSink) -> None:
    chunk = bytearray(SMALL)

    def chunks() -> Iterator[bytearray]:
        yield chunk
        chunk[:] = b"x" * len(chunk)  # the app reuses its buffer once the server has the bytes

    from apimon.integrations.wsgi import ApimonMiddleware

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "application/json")])
        return chunks()

    result = ApimonMiddleware(app)(_environ(), lambda *a: None)
    assert b"".join(bytes(c) for c in result) == SMALL
    assert chunk == b"x" * len(SMALL)
    assert _event(sink)["response"]["body"] == orjson.loads(SMALL)


def test_wsgi_two_chunks_are_joined_and_write_comes_first(sink: ListSink) -> None:
    assert _wsgi([SMALL[:5], SMALL[5:]], write=b"") == SMALL
    assert _event(sink)["response"]["body"] == orjson.loads(SMALL)
    sink.items.clear()
    assert _wsgi([SMALL[5:]], write=SMALL[:5]) == SMALL
    assert _event(sink)["response"]["body"] == orjson.loads(SMALL)


def test_wsgi_response_closed_after_its_first_chunk_keeps_what_was_sent(sink: ListSink) -> None:
    text = [b"first ", b"second"]
    assert _wsgi(text, stop_after=1) == b"first "
    event = _event(sink)
    assert event["response"]["body"] == "first "


def _asgi(messages: list[dict[str, Any]]) -> bytes:
    from apimon.integrations.asgi import ApimonMiddleware

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for message in messages:
            await send(message)

    got: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            got.append(message.get("body", b""))

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "path": "/x",
        "raw_path": b"/x",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000")],
        "client": ("127.0.0.1", 5000),
    }
    asyncio.run(ApimonMiddleware(app)(scope, receive, send))
    return b"".join(got)


def test_asgi_one_message_on_each_side_of_the_cap(sink: ListSink) -> None:
    assert _asgi([{"type": "http.response.body", "body": b"hello"}]) == b"hello"
    assert _event(sink)["response"]["body"] == "hello"
    sink.items.clear()
    big = b"z" * (CAP + 1)
    assert _asgi([{"type": "http.response.body", "body": big}]) == big
    event = _event(sink)
    assert "body" not in event["response"]
    assert _truncated(event) == {"response.body": CAP + 1}


def test_asgi_streamed_messages_are_joined(sink: ListSink) -> None:
    parts = [b"a" * 10, b"b" * 10, b""]
    messages = [{"type": "http.response.body", "body": p, "more_body": i < 2} for i, p in enumerate(parts)]
    assert _asgi(messages) == b"a" * 10 + b"b" * 10
    assert _event(sink)["response"]["body"] == "a" * 10 + "b" * 10


def test_keep_response_over_the_cap_holds_no_reference_to_the_body() -> None:
    raw = RawCall("GET", "http", "h", "/", "", [], None, 0.0)
    raw.keep_response(BIG, CAP)
    assert raw.resp_whole is None and raw.resp_over == len(BIG)
    raw.settle_bodies(CAP)
    assert raw.resp_body is not None
    assert (raw.resp_body.size, raw.resp_body.truncated, raw.resp_body.complete, raw.resp_body.chunks) == (
        len(BIG),
        True,
        True,
        [],
    )


@pytest.mark.parametrize("body", [SMALL, BIG], ids=["within-cap", "over-cap"])
def test_asgi_request_in_one_message_is_recorded_with_its_size(sink: ListSink, body: bytes) -> None:
    from apimon.integrations.asgi import ApimonMiddleware

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        message = await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": message["body"]})

    got: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            got.append(message["body"])

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/x",
        "raw_path": b"/x",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json")],
    }
    asyncio.run(ApimonMiddleware(app)(scope, receive, send))
    assert got == [body]
    event = _event(sink)
    assert sink.items[0].request_bytes == len(body)
    if body is SMALL:
        assert event["request"]["body"] == orjson.loads(SMALL) and _truncated(event) is None
    else:
        # The echoed response is over the cap too.
        assert "body" not in event["request"] and "body" not in event["response"]
        assert _truncated(event) == {"request.body": len(BIG), "response.body": len(BIG)}
