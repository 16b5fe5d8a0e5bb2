"""The sample API on Starlette: ``uvicorn sample_apps.starlette_app.app:app`` from the repository root.
``APIMON_SAMPLE_BARE=1`` runs it without apimon."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from sample_apps.common import (
    BINARY,
    COOKIES,
    ETAG,
    GZIPPED,
    LARGE,
    SSE_EVENTS,
    Items,
    dumps,
    partner_url,
    user_from,
    work_report,
)

items = Items()


def _json(value: object, status: int = 200) -> Response:
    return Response(dumps(value), status_code=status, media_type="application/json")


async def ping(request: Request) -> Response:
    return _json({"ok": True})


async def echo(request: Request) -> Response:
    return Response(
        await request.body(), headers={"Content-Type": request.headers.get("content-type", "application/octet-stream")}
    )


async def large(request: Request) -> Response:
    return Response(LARGE, media_type="application/json")


async def work(request: Request) -> Response:
    return Response(work_report(), media_type="application/json")


async def list_items(request: Request) -> Response:
    return _json({"items": list(items.items.values())})


async def create_item(request: Request) -> Response:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        body = None
    status, value = items.create(body)
    return _json(value, status)


async def item(request: Request) -> Response:
    item_id = request.path_params["item_id"]
    if request.method == "DELETE":
        items.items.pop(item_id, None)
        return Response(status_code=204)
    if request.method == "PUT":
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            body = None
        status, value = items.update(item_id, body)
        return _json(value, status)
    status, value = items.get(item_id)
    return _json(value, status)


async def form(request: Request) -> Response:
    data = await request.form()
    return _json({"fields": sorted(data.keys())})


async def upload(request: Request) -> Response:
    data = await request.form()
    files: dict[str, int] = {}
    fields: dict[str, str] = {}
    for name, value in data.multi_items():
        if isinstance(value, str):
            fields[name] = value
        else:
            files[name] = len(await value.read())
    return _json({"files": files, "fields": fields})


async def download(request: Request) -> Response:
    return Response(BINARY, media_type="application/octet-stream")


async def gzipped(request: Request) -> Response:
    return Response(GZIPPED, media_type="application/json", headers={"Content-Encoding": "gzip"})


async def stream(request: Request) -> Response:
    delay = float(request.query_params.get("delay", "0.05"))
    parts = int(request.query_params.get("parts", "5"))

    async def generate() -> AsyncIterator[bytes]:
        for i in range(parts):
            yield f"chunk {i}\n".encode()
            await asyncio.sleep(delay)

    return StreamingResponse(generate(), headers={"Content-Type": "text/plain"})


async def events(request: Request) -> Response:
    async def generate() -> AsyncIterator[str]:
        for event in SSE_EVENTS:
            yield event
            await asyncio.sleep(0.02)

    return StreamingResponse(generate(), headers={"Content-Type": "text/event-stream"})


async def cookies(request: Request) -> Response:
    response = Response(b"ok", headers={"Content-Type": "text/plain"})
    for cookie in COOKIES:
        response.raw_headers.append((b"set-cookie", cookie.encode()))
    return response


async def cached(request: Request) -> Response:
    if request.headers.get("if-none-match") == ETAG:
        return Response(status_code=304, headers={"ETag": ETAG})
    return Response(b"cached", headers={"Content-Type": "text/plain", "ETag": ETAG})


async def me(request: Request) -> Response:
    user = user_from(request.headers.get("authorization"))
    return _json({"user": user}) if user else _json({"error": "unauthorized"}, 401)


async def login(request: Request) -> Response:
    return _json({"token": "not-a-real-token", "ok": True})


async def partner(request: Request) -> Response:
    # An outgoing call made while serving this one (the outgoing-call tests).
    import httpx

    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.get(partner_url("starlette"))
    return _json(answer.json())


async def boom(request: Request) -> Response:
    raise RuntimeError("the sample app raised on purpose")


routes = [
    Route("/ping", ping),
    Route("/echo", echo, methods=["POST"]),
    Route("/large", large),
    Route("/work", work),
    Route("/items", list_items, methods=["GET"]),
    Route("/items", create_item, methods=["POST"]),
    Route("/items/{item_id:int}", item, methods=["GET", "PUT", "DELETE"]),
    Route("/form", form, methods=["POST"]),
    Route("/upload", upload, methods=["POST"]),
    Route("/download", download),
    Route("/gzip", gzipped),
    Route("/stream", stream),
    Route("/events", events),
    Route("/cookies", cookies),
    Route("/cached", cached),
    Route("/me", me),
    Route("/login", login, methods=["POST"]),
    Route("/boom", boom),
    Route("/partner", partner),
]

app = Starlette(routes=routes)
if os.environ.get("APIMON_SAMPLE_BARE") != "1":
    from apimon.integrations.starlette import ApimonMiddleware

    from sample_apps.common import options_from_env

    options: dict[str, object] = {"flush_interval": 0.2, **options_from_env()}
    if os.environ.get("APIMON_SAMPLE_WORKER_PID") == "1":
        # Which worker served each call, for the multi-worker reliability tests.
        options["get_metadata"] = lambda request, response: {"worker_pid": os.getpid()}
    app.add_middleware(ApimonMiddleware, **options)

# The scope as the ASGI spec also allows it (the scenario suite runs once so): outermost.
from sample_apps.common import spec_shaped  # noqa: E402

app = spec_shaped(app)
