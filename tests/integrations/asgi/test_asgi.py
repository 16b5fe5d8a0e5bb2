"""The pure-ASGI middleware driven by a scripted server in one real event loop: the cases a
real server rarely produces on demand (missing client, raising before or after the response
starts, lifespan, websocket, many interleaved requests)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apimon.integrations.asgi import ApimonMiddleware

import apimon
from apimon.store import Store
from apimon.types import Message, Receive, Scope, Send

# Every test runs with the scope as servers give it and as the ASGI spec also allows it: server,
# client and headers as one-shot iterables, header pairs as lists, tuples for lists, the optional
# keys left out where their default is what the server would have said.
SHAPES = ("usual", "iterables", "tuples", "sparse")
_shape = "usual"


@pytest.fixture(autouse=True, params=SHAPES)
def scope_shape(request: pytest.FixtureRequest) -> Iterator[str]:
    global _shape
    _shape = request.param
    yield request.param
    _shape = "usual"


def shaped(scope: Scope, shape: str) -> Scope:
    """``scope`` in one of the spec's allowed :data:`SHAPES`, holding the same values."""
    if shape == "iterables":
        pairs = list(scope["headers"])
        scope["headers"] = ([name, value] for name, value in pairs)
        for key in ("server", "client"):
            if scope.get(key) is not None:
                scope[key] = iter(list(scope[key]))
    elif shape == "tuples":
        scope["headers"] = tuple(tuple(pair) for pair in scope["headers"])
        for key in ("server", "client"):
            if scope.get(key) is not None:
                scope[key] = list(scope[key])
    elif shape == "sparse":
        for key, default in (("root_path", ""), ("scheme", "http"), ("query_string", b""), ("http_version", "1.1")):
            if scope.get(key) == default:
                del scope[key]
        if scope.get("raw_path") == scope["path"].encode():
            del scope["raw_path"]
    return scope


def http_scope(
    path: str = "/x",
    client: Any = ("203.0.113.1", 5000),
    headers: list[tuple[bytes, bytes]] | None = None,
    method: str = "POST",
) -> Scope:
    return shaped(
        {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"example.test"), (b"content-type", b"text/plain")] if headers is None else headers,
            "client": client,
            "server": ("127.0.0.1", 8000),
        },
        _shape,
    )


async def drive(app: Any, scope: Scope, chunks: list[bytes]) -> list[Message]:
    """A scripted server: feeds ``chunks`` as the request body, collects what the app sends."""
    pending = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    sent: list[Message] = []

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await asyncio.sleep(0.001 * (len(body) % 7))  # interleave concurrent requests
    await send({"type": "http.response.body", "body": body[:3], "more_body": True})
    await send({"type": "http.response.body", "body": body[3:]})


def events(db: str) -> list[dict[str, Any]]:
    assert apimon.flush(5.0)
    return [c.event() for c in reversed(Store(db, readonly=True).recent(limit=1000))]


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = str(tmp_path / "asgi.db")
    apimon.init(store=path, flush_interval=3600)
    return path


def test_concurrent_requests_never_mix(db: str) -> None:
    app = ApimonMiddleware(echo_app)

    async def main() -> list[list[Message]]:
        return await asyncio.gather(
            *(drive(app, http_scope(f"/r/{i}"), [f"body-{i}-".encode(), b"x" * i]) for i in range(50))
        )

    results = asyncio.run(main())
    for i, sent in enumerate(results):
        assert b"".join(m.get("body", b"") for m in sent[1:]) == f"body-{i}-".encode() + b"x" * i
    captured = {e["request"]["uri"]: e for e in events(db)}
    assert len(captured) == 50
    for i in range(50):
        event = captured[f"http://example.test/r/{i}"]
        assert event["request"]["body"] == event["response"]["body"] == f"body-{i}-" + "x" * i
        assert event["request"]["ip_address"] == "203.0.113.1"


def test_missing_client_and_host(db: str) -> None:
    app = ApimonMiddleware(echo_app)
    asyncio.run(drive(app, http_scope(client=None, headers=[]), [b"hi"]))
    [event] = events(db)
    assert "ip_address" not in event["request"]
    assert event["request"]["uri"] == "http://127.0.0.1:8000/x"


async def raise_before(scope: Scope, receive: Receive, send: Send) -> None:
    raise ValueError("before start")


async def raise_after(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 201, "headers": []})
    await send({"type": "http.response.body", "body": b"part", "more_body": True})
    raise KeyError("after start")


def test_app_raising_before_and_after_the_response_started(db: str) -> None:
    with pytest.raises(ValueError, match="before start"):
        asyncio.run(drive(ApimonMiddleware(raise_before), http_scope("/before"), [b""]))
    with pytest.raises(KeyError):
        asyncio.run(drive(ApimonMiddleware(raise_after), http_scope("/after"), [b""]))
    before, after = events(db)
    assert before["response"]["status"] == 500 and before["metadata"]["apimon"]["error"] == "ValueError"
    assert after["response"]["status"] == 201 and after["metadata"]["apimon"]["error"] == "KeyError"
    assert after["response"]["body"] == "part"


def test_request_body_is_never_pre_drained(db: str) -> None:
    calls = 0

    async def ignores_body(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def main() -> None:
        async def receive() -> Message:
            nonlocal calls
            calls += 1
            return {"type": "http.request", "body": b"unread", "more_body": False}

        async def send(message: Message) -> None:
            pass

        await ApimonMiddleware(ignores_body)(http_scope(), receive, send)

    asyncio.run(main())
    assert calls == 0
    [event] = events(db)
    assert event["response"]["status"] == 204 and "body" not in event["request"]


def test_disconnect_is_recorded_with_what_was_seen(db: str) -> None:
    async def streams_until_disconnect(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
        message = await receive()
        assert message["type"] == "http.disconnect"

    async def main() -> None:
        async def receive() -> Message:
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            pass

        await ApimonMiddleware(streams_until_disconnect)(http_scope(method="GET"), receive, send)

    asyncio.run(main())
    [event] = events(db)
    assert event["response"]["status"] == 200 and event["response"]["body"] == "tick\n"
    # The app returned before its last body message: the event says the response never ended.
    assert event["metadata"]["apimon"]["incomplete"] == "unended"
    stats = apimon.stats()
    assert (stats["captured"], stats["unfinished"]) == (1, 0)


def test_websocket_passes_through_untouched(db: str) -> None:
    seen: list[Any] = []

    async def ws_app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.extend([scope, receive, send])

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        pass

    scope = {"type": "websocket", "path": "/ws", "headers": []}
    asyncio.run(ApimonMiddleware(ws_app)(scope, receive, send))
    assert seen == [scope, receive, send]
    assert apimon.flush(5.0) and apimon.stats()["captured"] == 0


def test_lifespan_shutdown_flushes_off_the_loop(tmp_path: Path) -> None:
    db = str(tmp_path / "life.db")
    apimon.init(store=db, flush_interval=3600, batch_size=1000)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await echo_app(scope, receive, send)

    wrapped = ApimonMiddleware(app)

    async def main() -> int:
        await drive(wrapped, http_scope(), [b"queued"])
        assert Store(db).count() == 0  # still in memory: the interval is an hour
        inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

        async def receive() -> Message:
            return inbox.pop(0)

        async def send(message: Message) -> None:
            pass

        await wrapped({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
        return Store(db).count()

    assert asyncio.run(main()) == 1


def test_lifespan_shutdown_under_a_loop_that_is_not_asyncio(tmp_path: Path) -> None:
    # Found by Starlette's own suite under the shim: its TestClient runs apps under trio too
    # (anyio), where awaiting asyncio.to_thread raised at every lifespan shutdown. Here the
    # middleware's coroutine is driven by hand, with no asyncio loop running, as trio would.
    db = str(tmp_path / "life.db")
    apimon.init(store=db, flush_interval=3600, batch_size=1000)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await echo_app(scope, receive, send)

    wrapped = ApimonMiddleware(app)
    asyncio.run(drive(wrapped, http_scope(), [b"queued"]))
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[Message] = []

    async def receive() -> Message:
        return inbox.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    coroutine = wrapped({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    with pytest.raises(StopIteration):
        coroutine.send(None)  # runs to its end without suspending: nothing awaited asyncio
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    deadline = time.monotonic() + 5
    while Store(db).count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)  # the flush runs on a thread of its own
    assert Store(db).count() == 1


def test_memoryview_and_bytearray_bodies_are_captured_and_passed_on(db: str) -> None:
    # Found by Starlette's own suite under the shim (test_response_memoryview): a Starlette
    # Response sends a memoryview body as it is, and the event build failed on it.
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": memoryview(b"echo: " + bytes(message["body"]))})

    async def main() -> list[Message]:
        async def receive() -> Message:
            return {"type": "http.request", "body": bytearray(b"abc"), "more_body": False}

        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)

        await ApimonMiddleware(app)(http_scope(), receive, send)
        return sent

    sent = asyncio.run(main())
    assert bytes(sent[-1]["body"]) == b"echo: abc"
    [event] = events(db)
    assert event["request"]["body"] == "abc" and event["response"]["body"] == "echo: abc"
    assert apimon.stats()["internal_errors"] == 0


def test_disabled_passes_through(tmp_path: Path) -> None:
    db = str(tmp_path / "off.db")
    apimon.init(store=db, enabled=False)
    sent = asyncio.run(drive(ApimonMiddleware(echo_app), http_scope(), [b"abc"]))
    assert sent[-1]["body"] == b""
    assert apimon.stats()["captured"] == 0


def test_the_app_reads_the_scope_as_it_would_bare(db: str, scope_shape: str) -> None:
    seen: dict[str, Any] = {}

    async def reads_everything(scope: Scope, receive: Receive, send: Send) -> None:
        # What an app or framework does with them: unpack, iterate, each once more after apimon.
        seen["server"] = tuple(scope["server"]) if scope.get("server") is not None else None
        seen["client"] = tuple(scope["client"]) if scope.get("client") is not None else None
        seen["headers"] = [(bytes(n), bytes(v)) for n, v in scope["headers"]]
        await receive()
        headers = ([b"x-from", b"generator"], [b"content-type", b"text/plain"])
        await send({"type": "http.response.start", "status": 200, "headers": (list(p) for p in headers)})
        await send({"type": "http.response.body", "body": b"ok"})

    bare_seen: dict[str, Any] = {}
    bare_sent = asyncio.run(drive(reads_everything, http_scope(headers=[(b"host", b"h.test"), (b"x-a", b"1")]), [b""]))
    bare_seen.update(seen)
    sent = asyncio.run(
        drive(ApimonMiddleware(reads_everything), http_scope(headers=[(b"host", b"h.test"), (b"x-a", b"1")]), [b""])
    )
    assert (
        seen
        == bare_seen
        == {
            "server": ("127.0.0.1", 8000),
            "client": ("203.0.113.1", 5000),
            "headers": [(b"host", b"h.test"), (b"x-a", b"1")],
        }
    )
    assert [list(map(tuple, m.get("headers", ()))) for m in sent] == [
        list(map(tuple, m.get("headers", ()))) for m in bare_sent
    ]
    [event] = events(db)
    assert event["request"]["uri"] == "http://h.test/x" and event["request"]["ip_address"] == "203.0.113.1"
    assert event["request"]["headers"]["X-A"] == "1"
    assert event["response"]["headers"] == {"X-From": "generator", "Content-Type": "text/plain"}


def test_missing_optional_keys_give_a_complete_event(db: str) -> None:
    scope = http_scope(client=None, headers=[])
    for key in ("server", "root_path", "raw_path", "query_string", "http_version", "scheme"):
        scope.pop(key, None)
    asyncio.run(drive(ApimonMiddleware(echo_app), scope, [b"hi"]))
    [event] = events(db)
    assert event["request"]["uri"] == "http://localhost/x" and event["response"]["body"] == "hi"
    assert apimon.stats()["internal_errors"] == 0


@pytest.mark.parametrize(
    "headers", [5, b"host: x", [(b"host",)], [(b"a", b"b", b"c")]], ids=["int", "bytes", "one", "three"]
)
def test_a_scope_apimon_cannot_read_is_passed_through_and_counted(db: str, headers: Any) -> None:
    seen = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["headers"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    scope = http_scope()
    scope["headers"] = headers
    sent = asyncio.run(drive(ApimonMiddleware(app), scope, [b""]))
    assert seen == [headers] and sent[0]["status"] == 204  # the app got it as the server gave it
    stats = apimon.stats()
    assert stats["scopes_unreadable"] == 1 and stats["internal_errors"] == 0 and events(db) == []


def test_response_headers_the_app_changes_after_sending_are_not_what_is_recorded(db: str) -> None:
    async def reuses_its_list(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/plain"), (b"x-n", b"1")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        headers.clear()
        headers.append((b"x-later", b"changed"))
        await send({"type": "http.response.body", "body": b"ok"})

    asyncio.run(drive(ApimonMiddleware(reuses_its_list), http_scope(), [b""]))
    [event] = events(db)
    assert event["response"]["headers"] == {"Content-Type": "text/plain", "X-N": "1"}
