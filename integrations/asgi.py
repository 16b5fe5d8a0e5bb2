"""Generic pure-ASGI middleware: Starlette, FastAPI, Django-ASGI, Quart, Litestar or any ASGI app.

Usage::

    from apimon.integrations.asgi import ApimonMiddleware
    app.add_middleware(ApimonMiddleware)                    # Starlette / FastAPI
    app = ApimonMiddleware(app, store="calls.db")           # any ASGI app

Non-HTTP scopes (websocket) pass through untouched; on lifespan shutdown the flusher is flushed
in a worker thread, never on the event loop. ``receive`` and ``send`` are teed up to the body cap,
never pre-drained; per-request state lives in the call's frame and two closures.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import apimon
from apimon import outgoing
from apimon.client import Client
from apimon.event import response_transaction_id
from apimon.governance.fields import ScopeFields
from apimon.governance.gate import content_length, with_headers_bytes
from apimon.governance.rules import Decision, RuleSet
from apimon.record import RawCall
from apimon.tee import UNENDED, BodyTee
from apimon.types import ASGIApp, Message, Receive, Scope, Send

_PATH_SAFE = "/;=,:@!$&'()*+~"

RouteResolver = Callable[[Scope], "str | None"]


def readable_scope(scope: Scope) -> bool:
    """Make what the ASGI spec lets a server give as any iterable (``server``, ``client``,
    ``headers`` and each header pair) into lists and tuples, in the scope itself, once, on the
    request path: apimon reads them (later, on the flusher thread) and the app reads them after,
    so a one-shot iterator must not be consumed by the first reader. The common shapes (uvicorn's,
    hypercorn's, daphne's) are left as they are. False when the scope cannot be read."""
    headers = scope.get("headers")
    if headers is not None and type(headers) is not list:
        if isinstance(headers, tuple):
            pass
        elif isinstance(headers, bytes | str | dict) or not hasattr(headers, "__iter__"):
            return False
        else:
            scope["headers"] = headers = list(headers)
    if headers:
        for pair in headers:
            if (type(pair) is not tuple and type(pair) is not list) or len(pair) != 2:
                # A pair that is some other iterable is read once, into a tuple both readers take.
                fixed = _pairs(headers)
                if fixed is None:
                    return False
                scope["headers"] = fixed
                break
    for key in ("server", "client"):
        value = scope.get(key)
        if value is not None and type(value) is not tuple and type(value) is not list:
            if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
                return False
            scope[key] = tuple(value)
    return True


def _pair(pair: Any) -> tuple[Any, Any]:
    name, value = pair
    return (name, value)


def _pairs(headers: Any) -> list[Any] | None:
    """The header pairs as lists and tuples of two, or None when one is not a pair."""
    out = []
    for pair in headers:
        if type(pair) is not tuple and type(pair) is not list:
            if isinstance(pair, str | bytes | dict) or not hasattr(pair, "__iter__"):
                return None
            pair = tuple(pair)
        if len(pair) != 2:
            return None
        out.append(pair)
    return out


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


def _resolver_for(route_resolver: RouteResolver | None) -> Callable[[RawCall], None]:
    """How a call's request fields are read on the flusher thread: the scope copy, plus the
    route template the framework wrote into the live scope (``raw.native``) during the call."""
    if route_resolver is None:
        return resolve_scope

    def resolve(raw: RawCall) -> None:
        scope = raw.native
        resolve_scope(raw)
        try:
            raw.route = route_resolver(scope)
        except Exception:
            raw.route = None

    return resolve


class ApimonMiddleware:
    """Capture every HTTP request/response of an ASGI app as an API Call event.

    :param app: the ASGI application to wrap.
    :param options: apimon options (README.md#options); used to create the process-wide client if
        :func:`apimon.init` has not been called yet. A wrong option raises ``ValueError`` here.
    """

    #: Subclasses for a framework (Starlette, FastAPI) set this to read the route template.
    route_resolver: RouteResolver | None = None

    def __init__(self, app: ASGIApp, **options: Any) -> None:
        self.app = app
        apimon.ensure_client(options)
        self._resolve = _resolver_for(type(self).route_resolver)

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
        decision = None
        try:
            if not readable_scope(scope):
                client.counters.incr("scopes_unreadable")
                await self.app(scope, receive, send)
                return
            raw = RawCall.deferred(dict(scope), self._resolve, time.time())
            # Moesif's governance rules, when there are any: decided before the app runs.
            rules = client.rules
            if rules is not None:
                if rules.needs_body:
                    decision, receive = await _govern_with_body(client, rules, raw, scope, receive)
                else:
                    decision = client.governor.decide(rules, ScopeFields(scope), raw, scope)
            admitted = client.admit_all or client.admit(raw, scope)
        except Exception:
            client.counters.incr("internal_errors")
            admitted = False
        if not admitted:
            if decision is not None:
                await _uncaptured(self.app, decision, scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        client.started()
        # All per-call state lives in this frame and its two closures: a per-call object with its
        # own methods cost ~2 µs more per request in situ (benchmarks, Starlette /ping).
        raw.native = scope
        config = client.config
        cap = config.max_body_bytes
        log_body = config.log_body
        with_tid = config.transaction_id_header
        # With hooks, the call is completed in this coroutine: a hook that returns an awaitable
        # (an ``async def`` hook) is awaited on this loop.
        awaits = client.hooks.at_finish
        done = False

        def ended(error: BaseException | None = None) -> bool:
            nonlocal done
            if done:
                return False
            done = True
            raw.end = time.time()
            if error is not None:
                raw.error = type(error).__name__
                if not raw.status:
                    raw.status = 500
            return True

        def finish(error: BaseException | None = None) -> None:
            if ended(error):
                client.complete(raw, scope)

        async def finish_async(error: BaseException | None = None) -> None:
            if ended(error):
                await client.complete_async(raw, scope)

        async def send_tee(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.body":
                more = message.get("more_body", False)
                if log_body:
                    body = message.get("body", b"")
                    tee = raw.resp_body
                    if tee is not None:
                        tee.feed(body)
                    elif not more:
                        raw.keep_response(body, cap)  # the common case: one message, no copy, no tee
                    else:
                        tee = raw.resp_body = BodyTee(cap)
                        tee.feed(body)
                if not more:
                    try:
                        await send(message)
                    finally:
                        if raw.resp_body is not None:
                            raw.resp_body.complete = True
                        if awaits:
                            await finish_async()
                        else:
                            finish()
                    return
            elif kind == "http.response.start":
                headers = message.get("headers") or ()
                if type(headers) is not list and type(headers) is not tuple:
                    # Any iterable, per the spec: read once, and the server gets the same pairs.
                    headers = [_pair(p) for p in headers]
                    message = {**message, "headers": headers}
                if decision is not None and decision.headers:
                    message = {**message, "headers": with_headers_bytes(headers, decision.headers)}
                if with_tid:
                    tid = response_transaction_id(raw)
                    tid_pair = (b"x-moesif-transaction-id", tid.encode("ascii"))
                    message = {**message, "headers": [*(message.get("headers") or ()), tid_pair]}
                raw.status = message["status"]
                # A copy: the app may reuse or change its list after sending it.
                raw.resp_headers = tuple(message.get("headers") or ())
            await send(message)

        async def receive_tee() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                more = message.get("more_body", False)
                tee = raw.req_body
                if tee is None and not more and len(body) <= cap:
                    # One message within the cap: no copy, no tee (but a buffer the sender may
                    # reuse, a bytearray or memoryview, is copied).
                    raw.req_whole = body if type(body) is bytes else bytes(body)
                    return message
                if tee is None:
                    tee = raw.req_body = BodyTee(cap)
                tee.feed(body)
                if not more:
                    tee.complete = True
            return message

        app = self.app if decision is None or decision.blocked_by is None else _answer(decision, cap if log_body else 0)
        # Outgoing calls the app makes meanwhile (its tasks too) are linked to this one.
        token = outgoing.incoming(raw) if outgoing.active else None
        try:
            # Bodies are teed lazily, at their first bytes: a GET costs no buffers.
            await app(scope, receive_tee if log_body else receive, send_tee)
        except Exception as exc:
            if awaits:
                await finish_async(exc)
            else:
                finish(exc)
            raise
        except BaseException as exc:
            # Cancelled: nothing more may be awaited here.
            finish(exc)
            raise
        finally:
            if token is not None:
                outgoing.leave(token)
        if not done:
            # The app returned without ending the response (client gone, or an app bug): record
            # what was seen, and say so.
            raw.incomplete = UNENDED
            if awaits:
                await finish_async()
            else:
                finish()

    def _lifespan_send(self, send: Send) -> Send:
        async def lifespan_send(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                client = apimon._client
                if client is not None:
                    await _flush_off_the_loop(client)
            await send(message)

        return lifespan_send


async def _govern_with_body(
    client: Client, rules: RuleSet, raw: RawCall, scope: Scope, receive: Receive
) -> tuple[Decision | None, Receive]:
    """The rules' decision, and the ``receive`` the app is to read the request body from: a rule
    reads the JSON body, so its messages are taken now and handed to the app as they came."""
    fields = ScopeFields(scope)
    if not client.governor.wants_body(
        rules, fields.header("content-type"), content_length(fields.header("content-length"))
    ):
        return client.governor.decide(rules, fields, raw, scope), receive
    taken: list[Message] = []
    parts = []
    while True:
        message = await receive()
        taken.append(message)
        if message["type"] != "http.request":
            break
        parts.append(bytes(message.get("body", b"")))
        if not message.get("more_body", False):
            break
    inner = receive

    async def replay() -> Message:
        return taken.pop(0) if taken else await inner()

    return client.governor.decide(rules, ScopeFields(scope, b"".join(parts)), raw, scope), replay


def _answer(decision: Decision, cap: int = 0) -> ASGIApp:
    """An ASGI app that answers as the blocking rule says, in place of the app. With ``cap``, a
    request body of a known length within it is read first, for the event (as a WSGI server reads
    what the app left unread)."""

    async def blocked(scope: Scope, receive: Receive, send: Send) -> None:
        length = None
        for name, value in scope.get("headers") or ():
            if name == b"content-length":
                length = content_length(value)
        if length and length <= cap:
            while True:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    break
        headers = [(n.lower().encode("latin-1"), v.encode("latin-1", "replace")) for n, v in decision.header_pairs()]
        await send({"type": "http.response.start", "status": decision.status, "headers": headers})
        await send({"type": "http.response.body", "body": decision.body})

    return blocked


async def _uncaptured(app: ASGIApp, decision: Decision, scope: Scope, receive: Receive, send: Send) -> None:
    """A call the rules govern but apimon does not capture (sampled out, skipped)."""
    if decision.blocked_by is not None:
        await _answer(decision)(scope, receive, send)
        return

    async def with_rule_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": with_headers_bytes(message.get("headers") or [], decision.headers)}
        await send(message)

    await app(scope, receive, with_rule_headers)


async def _flush_off_the_loop(client: Client) -> None:
    """Flushing waits on a thread and may do I/O: never on the event loop. Under asyncio the flush
    runs in a worker thread and is awaited; under another loop (trio, as anyio runs Starlette's
    test client), which apimon cannot await without its library, it is started on a thread of its
    own and the exit hook (``apimon.shutdown``) finishes what is left."""
    timeout = client.config.shutdown_timeout
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        threading.Thread(target=client.flush, args=(timeout,), name="apimon-lifespan-flush", daemon=True).start()
        return
    await asyncio.to_thread(client.flush, timeout)
