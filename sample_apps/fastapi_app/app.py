"""The sample API on FastAPI: ``uvicorn sample_apps.fastapi_app.app:app`` from the repository root.
``APIMON_SAMPLE_BARE=1`` runs it without apimon."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

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

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
items = Items()


def _json(value: object, status: int = 200) -> Response:
    return Response(dumps(value), status_code=status, media_type="application/json")


async def _body_json(request: Request) -> object:
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return None


@app.api_route("/ping", methods=["GET", "HEAD"])
async def ping() -> Response:
    return _json({"ok": True})


@app.post("/echo")
async def echo(request: Request) -> Response:
    content_type = request.headers.get("content-type", "application/octet-stream")
    return Response(await request.body(), headers={"Content-Type": content_type})


@app.get("/large")
async def large() -> Response:
    return Response(LARGE, media_type="application/json")


@app.get("/work")
async def work() -> Response:
    return Response(work_report(), media_type="application/json")


@app.get("/items")
async def list_items() -> Response:
    return _json({"items": list(items.items.values())})


@app.post("/items")
async def create_item(request: Request) -> Response:
    status, value = items.create(await _body_json(request))
    return _json(value, status)


@app.get("/items/{item_id}")
async def get_item(item_id: int) -> Response:
    status, value = items.get(item_id)
    return _json(value, status)


@app.put("/items/{item_id}")
async def update_item(item_id: int, request: Request) -> Response:
    status, value = items.update(item_id, await _body_json(request))
    return _json(value, status)


@app.delete("/items/{item_id}")
async def delete_item(item_id: int) -> Response:
    items.items.pop(item_id, None)
    return Response(status_code=204)


@app.post("/form")
async def form(request: Request) -> Response:
    data = await request.form()
    return _json({"fields": sorted(data.keys())})


@app.post("/upload")
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


@app.get("/download")
async def download() -> Response:
    return Response(BINARY, media_type="application/octet-stream")


@app.get("/gzip")
async def gzipped() -> Response:
    return Response(GZIPPED, media_type="application/json", headers={"Content-Encoding": "gzip"})


@app.get("/stream")
async def stream(delay: float = 0.05, parts: int = 5) -> Response:
    async def generate() -> AsyncIterator[bytes]:
        for i in range(parts):
            yield f"chunk {i}\n".encode()
            await asyncio.sleep(delay)

    return StreamingResponse(generate(), headers={"Content-Type": "text/plain"})


@app.get("/events")
async def events() -> Response:
    async def generate() -> AsyncIterator[str]:
        for event in SSE_EVENTS:
            yield event
            await asyncio.sleep(0.02)

    return StreamingResponse(generate(), headers={"Content-Type": "text/event-stream"})


@app.get("/cookies")
async def cookies() -> Response:
    response = Response(b"ok", headers={"Content-Type": "text/plain"})
    for cookie in COOKIES:
        response.raw_headers.append((b"set-cookie", cookie.encode()))
    return response


@app.get("/cached")
async def cached(request: Request) -> Response:
    if request.headers.get("if-none-match") == ETAG:
        return Response(status_code=304, headers={"ETag": ETAG})
    return Response(b"cached", headers={"Content-Type": "text/plain", "ETag": ETAG})


@app.get("/me")
async def me(request: Request) -> Response:
    user = user_from(request.headers.get("authorization"))
    return _json({"user": user}) if user else _json({"error": "unauthorized"}, 401)


@app.post("/login")
async def login() -> Response:
    return _json({"token": "not-a-real-token", "ok": True})


@app.get("/partner")
async def partner() -> Response:
    # An outgoing call made while serving this one (the outgoing-call tests).
    import httpx

    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.get(partner_url("fastapi"))
    return _json(answer.json())


@app.get("/boom")
async def boom() -> Response:
    raise RuntimeError("the sample app raised on purpose")


if os.environ.get("APIMON_SAMPLE_BARE") != "1":
    from apimon.integrations.fastapi import ApimonMiddleware

    from sample_apps.common import options_from_env

    app.add_middleware(ApimonMiddleware, flush_interval=0.2, **options_from_env())

# The scope as the ASGI spec also allows it (the scenario suite runs once so): outermost.
from sample_apps.common import spec_shaped  # noqa: E402

app = spec_shaped(app)
