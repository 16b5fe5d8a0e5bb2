"""Generic pure-ASGI middleware: Starlette, FastAPI, Django-ASGI, Quart, Litestar or any ASGI app.

Usage::

    from apimon.integrations.asgi import ApimonMiddleware
    app.add_middleware(ApimonMiddleware)                    # Starlette / FastAPI
    app = ApimonMiddleware(app, store="calls.db")           # any ASGI app

Non-HTTP scopes (websocket) pass through untouched; on lifespan shutdown the flusher is flushed
in a worker thread, never on the event loop. ``receive`` and ``send`` are teed up to the body cap,
never pre-drained, and all per-request state lives in one object per call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import apimon
from apimon.client import Client
from apimon.record import BodyTee, RawCall
from apimon.types import ASGIApp, Message, Receive, Scope, Send

_PATH_SAFE = "/;=,:@!$&'()*+~"

RouteResolver = Callable[[Scope], "str | None"]


def resolve_scope(raw: RawCall) -> None:
    """Fill ``raw``'s request fields from its copy of the scope (runs on the flusher thread)."""
    scope: Scope = raw.source
    headers = scope.get("headers") or []
    host = None
    for name, value in headers:
        if name == b"host":
            host = value.decode("latin-1")
            break
    scheme = scope.get("scheme") or "http"
    if not host:
        server = scope.get("server")
        if server:
            name_, port = server[0], server[1]
            host = name_ if port is None or port == (443 if scheme in ("https", "wss") else 80) else f"{name_}:{port}"
        else:
            host = "localhost"
    raw_path = scope.get("raw_path")
    if raw_path:
        path = raw_path.decode("latin-1").partition("?")[0]
    else:
        path = quote(scope.get("root_path", "") + scope.get("path", "/"), safe=_PATH_SAFE)
    client = scope.get("client")
    raw.method = scope.get("method", "GET")
    raw.scheme = scheme
    raw.host = host
    raw.raw_path = path or "/"
    raw.query = (scope.get("query_string") or b"").decode("latin-1")
    raw.req_headers = list(headers)
    raw.peer = str(client[0]) if client else None


class _Call:
    """The per-request state: tees ``receive`` and ``send`` and finishes the event once."""

    __slots__ = (
        "client",
        "raw",
        "scope",
        "receive_inner",
        "send_inner",
        "started",
        "done",
        "route_resolver",
        "log_body",
    )

    def __init__(
        self,
        client: Client,
        raw: RawCall,
        scope: Scope,
        receive: Receive,
        send: Send,
        route_resolver: RouteResolver | None,
    ) -> None:
        self.client = client
        self.raw = raw
        self.scope = scope
        self.receive_inner = receive
        self.send_inner = send
        self.started = False
        self.done = False
        self.route_resolver = route_resolver
        self.log_body = client.config.log_body

    async def receive(self) -> Message:
        message = await self.receive_inner()
        if message["type"] == "http.request":
            raw = self.raw
            tee = raw.req_body
            if tee is None:
                tee = raw.req_body = BodyTee(self.client.config.max_body_bytes)
            tee.feed(message.get("body", b""))
            if not message.get("more_body", False):
                tee.complete = True
        return message

    async def send(self, message: Message) -> None:
        kind = message["type"]
        raw = self.raw
        if kind == "http.response.start":
            self.started = True
            raw.status = message["status"]
            raw.resp_headers = message.get("headers") or []
        elif kind == "http.response.body":
            tee = raw.resp_body
            if tee is None and self.log_body:
                tee = raw.resp_body = BodyTee(self.client.config.max_body_bytes)
            if tee is not None:
                tee.feed(message.get("body", b""))
            if not message.get("more_body", False):
                try:
                    await self.send_inner(message)
                finally:
                    if tee is not None:
                        tee.complete = True
                    self.finish()
                return
        await self.send_inner(message)

    def finish(self, error: BaseException | None = None) -> None:
        if self.done:
            return
        self.done = True
        raw = self.raw
        raw.end = time.time()
        if error is not None:
            raw.error = type(error).__name__
            if not self.started:
                raw.status = 500
        if self.route_resolver is not None:
            try:
                raw.route = self.route_resolver(self.scope)
            except Exception:
                raw.route = None
        self.client.complete(raw, self.scope)


class ApimonMiddleware:
    """Capture every HTTP request/response of an ASGI app as an API Call event.

    :param app: the ASGI application to wrap.
    :param options: apimon options (CONTRACT 1.2); used to create the process-wide client if
        :func:`apimon.init` has not been called yet. A wrong option raises ``ValueError`` here.
    """

    #: Subclasses for a framework (Starlette, FastAPI) set this to read the route template.
    route_resolver: RouteResolver | None = None

    def __init__(self, app: ASGIApp, **options: Any) -> None:
        self.app = app
        apimon.ensure_client(options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "lifespan":
                await self.app(scope, receive, self._lifespan_send(send))
                return
            await self.app(scope, receive, send)
            return
        client = apimon._client
        if client is None or not client.config.enabled:
            await self.app(scope, receive, send)
            return
        try:
            raw = RawCall.deferred(dict(scope), resolve_scope, time.time())
            admitted = client.admit_all or client.admit(raw, scope)
        except Exception:
            client.counters.incr("internal_errors")
            admitted = False
        if not admitted:
            await self.app(scope, receive, send)
            return
        call = _Call(client, raw, scope, receive, send, type(self).route_resolver)
        try:
            # Bodies are teed lazily, at their first bytes: a GET costs no buffers.
            await self.app(scope, call.receive if call.log_body else receive, call.send)
        except BaseException as exc:
            call.finish(exc)
            raise
        # The app returned without ending the response (client gone, or an app bug): record what was seen.
        call.finish()

    def _lifespan_send(self, send: Send) -> Send:
        async def lifespan_send(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                client = apimon._client
                if client is not None:
                    # Flushing waits on a thread and may do I/O: never on the event loop.
                    await asyncio.to_thread(client.flush, client.config.shutdown_timeout)
            await send(message)

        return lifespan_send
