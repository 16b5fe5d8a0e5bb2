"""The dashboard as a Starlette app over one store file, read-only.

Usage::

    app = create_app("apimon.db", token=None, loopback=True)
    uvicorn.run(app, host="127.0.0.1", port=8765)

Pages: ``/`` (the call stream, live over server-sent events from ``/api/stream``),
``/calls/{id}`` (one call), ``/overview`` (charts and top lists). The same data as JSON under
``/api/``. Every SQLite query runs on the dashboard's two reader threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import jinja2
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from apimon._version import __version__
from apimon.dashboard import charts
from apimon.dashboard.display import body_view, event_truncation, raw_body
from apimon.dashboard.overview import STATUS_CLASSES, build_overview
from apimon.dashboard.queries import FilterError, Filters, Reader
from apimon.dashboard.security import Guard

HERE = Path(__file__).parent
STREAM_POLL_SECONDS = 0.5
STREAM_KEEPALIVE_SECONDS = 15.0
# A stream ends after this long; EventSource reconnects with Last-Event-ID and misses nothing.
STREAM_SECONDS = 300.0
T = TypeVar("T")


def _json(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json")


class Dashboard:
    """The request handlers; :func:`create_app` wires them into a Starlette app."""

    def __init__(self, store_path: str) -> None:
        self.store_path = store_path
        self.reader = Reader(store_path)
        # Two long-lived threads, each with its own connection and warm page cache (Starlette's
        # pool would hand queries to up to 40 threads, each opening a cold connection).
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="apimon-dashboard")
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined
        )
        self.templates.globals.update(version=__version__, store_path=store_path, classes=STATUS_CLASSES)
        self.templates.filters["glob_literal"] = glob_literal

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, functools.partial(fn, *args))

    def _page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(self.templates.get_template(name).render(**context), status_code=status)

    def error(self, request: Request, status: int, message: str) -> Response:
        if request.url.path.startswith("/api/"):
            return _json({"error": message}, status)
        return self._page("error.html", status, message=message, filters={}, page="")

    async def stream_page(self, request: Request) -> Response:
        filters = Filters.parse(request.query_params)
        before = _int_param(request, "before")
        page = await self._read(self.reader.calls, filters, before)
        return self._page("stream.html", page="stream", filters=filters.params, calls=page, before=before)

    async def overview_page(self, request: Request) -> Response:
        filters = Filters.parse(request.query_params)
        figures = await self._read(build_overview, self.reader, filters)
        return self._page(
            "overview.html",
            page="overview",
            filters=filters.params,
            figures=figures,
            status_chart=charts.status_chart(figures["buckets"]),
            latency_chart=charts.latency_chart(figures["buckets"]),
        )

    async def call_page(self, request: Request) -> Response:
        found = await self._read(self.reader.call, request.path_params["call_id"])
        if found is None:
            return self.error(request, 404, f"no call {request.path_params['call_id']} in the store")
        call, event = found
        truncated = event_truncation(event)
        sides = {
            side: body_view(event.get(side) or {}, side in truncated, truncated.get(side))
            for side in ("request", "response")
        }
        metadata = event.get("metadata")
        return self._page(
            "call.html",
            page="call",
            filters={},
            call=call,
            event=event,
            bodies=sides,
            metadata=orjson.dumps(metadata, option=orjson.OPT_INDENT_2).decode() if metadata else None,
        )

    async def body_download(self, request: Request) -> Response:
        side = request.path_params["side"]
        found = await self._read(self.reader.call, request.path_params["call_id"])
        if side not in ("request", "response") or found is None:
            return self.error(request, 404, "no such body")
        data = raw_body(found[1].get(side) or {})
        if data is None:
            return self.error(request, 404, f"call {found[0]['id']} has no {side} body")
        # Always a download, never rendered: octet-stream + attachment (+ nosniff from the guard).
        name = f"apimon-call-{found[0]['id']}-{side}.bin"
        headers = {"content-disposition": f'attachment; filename="{name}"'}
        return Response(data, media_type="application/octet-stream", headers=headers)

    async def api_calls(self, request: Request) -> Response:
        page = await self._read(self.reader.calls, Filters.parse(request.query_params), _int_param(request, "before"))
        return _json({"calls": page.rows, "older": page.older})

    async def api_call(self, request: Request) -> Response:
        found = await self._read(self.reader.call, request.path_params["call_id"])
        if found is None:
            return self.error(request, 404, "no such call")
        return _json({"call": found[0], "event": found[1]})

    async def api_overview(self, request: Request) -> Response:
        return _json(await self._read(build_overview, self.reader, Filters.parse(request.query_params)))

    async def api_stream(self, request: Request) -> Response:
        """Server-sent events: one ``call`` event per new matching call, ``id`` = the call's id."""
        filters = Filters.parse(request.query_params)
        after = _int_text(request.headers.get("last-event-id")) or _int_param(request, "after")
        if after is None:
            after = await self._read(self.reader.newest_id)
        return StreamingResponse(
            self._events(request, filters, after),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    async def _events(self, request: Request, filters: Filters, after: int) -> AsyncIterator[bytes]:
        yield b"retry: 2000\n\n"
        deadline = time.monotonic() + STREAM_SECONDS
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and not await request.is_disconnected():
            rows = await self._read(self.reader.calls_after, filters, after)
            for row in rows:
                after = row["id"]
                # orjson never writes a raw newline, so the event is one data: line.
                yield b"id: %d\nevent: call\ndata: %s\n\n" % (after, orjson.dumps(row))
            now = time.monotonic()
            if rows:
                quiet_since = now
            elif now - quiet_since >= STREAM_KEEPALIVE_SECONDS:
                yield b": keepalive\n\n"
                quiet_since = now
            await asyncio.sleep(STREAM_POLL_SECONDS)


def glob_literal(text: str) -> str:
    """A GLOB pattern that matches exactly ``text`` (its ``*``, ``?`` and ``[`` bracketed)."""
    return "".join(f"[{ch}]" if ch in "*?[" else ch for ch in text)


def _int_text(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() and len(text) < 19 else None


def _int_param(request: Request, name: str) -> int | None:
    text = request.query_params.get(name)
    value = _int_text(text)
    if text and value is None:
        raise FilterError(f"{name} must be a call id, got {text!r}")
    return value


def create_app(store_path: str, token: str | None = None, loopback: bool = True) -> ASGIApp:
    """The dashboard for ``store_path``, wrapped in its :class:`Guard`."""
    board = Dashboard(store_path)

    async def filter_error(request: Request, exc: Exception) -> Response:
        return board.error(request, 400, str(exc))

    async def store_error(request: Request, exc: Exception) -> Response:
        return board.error(request, 503, f"cannot read the store {store_path}: {exc}")

    app = Starlette(
        routes=[
            Route("/", board.stream_page),
            Route("/overview", board.overview_page),
            Route("/calls/{call_id:int}", board.call_page),
            Route("/calls/{call_id:int}/body/{side}", board.body_download),
            Route("/api/calls", board.api_calls),
            Route("/api/calls/{call_id:int}", board.api_call),
            Route("/api/overview", board.api_overview),
            Route("/api/stream", board.api_stream),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        exception_handlers={
            FilterError: filter_error,
            sqlite3.Error: store_error,
            FileNotFoundError: store_error,
        },
    )
    return Guard(app, token=token, loopback=loopback)
