"""Outgoing calls made with aiohttp's client.

Patch-free, per session: aiohttp's own tracing hooks::

    from apimon.integrations.aiohttp import apimon_trace_config
    async with aiohttp.ClientSession(trace_configs=[apimon_trace_config()]) as session: ...

Or every session made from now on: ``instrument()`` (what ``capture_outgoing=True`` does), undone by
``uninstrument()``. Each request aiohttp sends is one event: a followed redirect is one per hop.
The response body is teed as the app reads it (``read``, ``text``, ``json``,
``content.iter_chunked``, ``content.read``...; the response's own reading methods are wrapped, the
classes untouched), and the event ends when it has been read to its end or the response is
released or closed.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

try:
    import aiohttp
    from aiohttp.streams import AsyncStreamIterator, ChunkTupleAsyncStreamIterator
    from yarl import URL
except ImportError as exc:  # pragma: no cover - exercised only without aiohttp
    raise ImportError("apimon.integrations.aiohttp needs aiohttp: pip install aiohttp") from exc

from apimon import outgoing
from apimon.outgoing import OutgoingCall, _failed_anywhere

_ORIGINAL: dict[str, Any] = {}
Hook = Callable[[Any, SimpleNamespace, Any], Awaitable[None]]


def _guarded(hook: Hook) -> Hook:
    """A trace hook that never lets an error of apimon's reach the app's request."""

    @functools.wraps(hook)
    async def guarded(session: Any, ctx: SimpleNamespace, params: Any) -> None:
        try:
            await hook(session, ctx, params)
        except Exception:
            _failed_anywhere("aiohttp")

    return guarded


def _call(ctx: SimpleNamespace) -> OutgoingCall | None:
    call: OutgoingCall | None = getattr(ctx, "apimon_call", None)
    return call


async def _on_start(session: Any, ctx: SimpleNamespace, params: Any) -> None:
    ctx.apimon_call = OutgoingCall.start(params.method, str(params.url), params.headers.items())


async def _on_chunk_sent(session: Any, ctx: SimpleNamespace, params: Any) -> None:
    call = _call(ctx)
    if call is not None:
        call.feed_request(params.chunk)


async def _on_redirect(session: Any, ctx: SimpleNamespace, params: Any) -> None:
    call = _call(ctx)
    if call is None:
        return
    response = params.response
    call.response(response.status, response.raw_headers)
    call.finish(complete=True)  # aiohttp reads and lets go of a redirect's body itself
    # The next hop: aiohttp sends it without a hook of its own; its URL is set at the end.
    location = response.headers.get("Location", "")
    method = "GET" if response.status in (301, 302, 303) and params.method != "HEAD" else params.method
    ctx.apimon_call = OutgoingCall.start(method, str(response.url.join(URL(location))), ())


async def _on_end(session: Any, ctx: SimpleNamespace, params: Any) -> None:
    call = _call(ctx)
    if call is None:
        return
    ctx.apimon_call = None
    response = params.response
    raw = call.raw
    raw.source = str(response.url)  # the URL the last hop went to: split on the flusher
    raw.req_headers = list(response.request_info.headers.items())
    call.response(response.status, response.raw_headers)
    if response.headers.get("Content-Encoding"):
        raw.resp_decoded = True  # aiohttp decompresses what the app reads
    _tee(response, call)


async def _on_exception(session: Any, ctx: SimpleNamespace, params: Any) -> None:
    call = _call(ctx)
    if call is not None:
        ctx.apimon_call = None
        call.fail(params.exception)


class _TeedContent:
    """``response.content`` for the app: the response's ``StreamReader`` (which the connection
    keeps feeding) behind the same reading methods, each feeding ``call`` what it returns."""

    def __init__(self, inner: Any, call: OutgoingCall) -> None:
        self._inner = inner
        self._call = call

    def _seen(self, data: bytes) -> None:
        if data:
            self._call.feed(data)
        if self._inner.at_eof():
            self._call.finish(complete=True)

    async def read(self, n: int = -1) -> bytes:
        data: bytes = await self._inner.read(n)
        self._seen(data)
        return data

    async def readany(self) -> bytes:
        data: bytes = await self._inner.readany()
        self._seen(data)
        return data

    async def readchunk(self) -> tuple[bytes, bool]:
        data: tuple[bytes, bool] = await self._inner.readchunk()
        self._seen(data[0])
        return data

    async def readexactly(self, n: int) -> bytes:
        data: bytes = await self._inner.readexactly(n)
        self._seen(data)
        return data

    async def readline(self) -> bytes:
        data: bytes = await self._inner.readline()
        self._seen(data)
        return data

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        data: bytes = await self._inner.readuntil(separator)
        self._seen(data)
        return data

    def iter_chunked(self, n: int) -> AsyncStreamIterator[bytes]:
        return AsyncStreamIterator(lambda: self.read(n))

    def iter_any(self) -> AsyncStreamIterator[bytes]:
        return AsyncStreamIterator(self.readany)

    def iter_chunks(self) -> ChunkTupleAsyncStreamIterator:
        return ChunkTupleAsyncStreamIterator(self)  # type: ignore[arg-type]

    def __aiter__(self) -> AsyncStreamIterator[bytes]:
        return AsyncStreamIterator(self.readline)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _tee(response: aiohttp.ClientResponse, call: OutgoingCall) -> None:
    """Feed ``call`` what the app reads of ``response`` and end it at the end of the body, or
    when the response is released or closed."""
    content = response.content
    response.content = _TeedContent(content, call)  # type: ignore[assignment]
    release, close = response.release, response.close

    @functools.wraps(release)
    def tee_release() -> Any:
        try:
            return release()
        finally:
            call.finish(complete=content.at_eof(), why="closed")

    @functools.wraps(close)
    def tee_close() -> None:
        try:
            close()
        finally:
            call.finish(complete=content.at_eof(), why="closed")

    response.release = tee_release  # type: ignore[method-assign]
    response.close = tee_close  # type: ignore[method-assign]


def apimon_trace_config() -> aiohttp.TraceConfig:
    """A ``TraceConfig`` that records every request of the session it is given to."""
    config = aiohttp.TraceConfig()
    config.on_request_start.append(_guarded(_on_start))
    config.on_request_chunk_sent.append(_guarded(_on_chunk_sent))
    config.on_request_redirect.append(_guarded(_on_redirect))
    config.on_request_end.append(_guarded(_on_end))
    config.on_request_exception.append(_guarded(_on_exception))
    config.apimon = True  # type: ignore[attr-defined]
    outgoing.activate()
    return config


def instrument() -> bool:
    """Give every ``aiohttp.ClientSession`` made from now on apimon's trace config. Twice
    changes nothing."""
    if _ORIGINAL:
        return True
    original = aiohttp.ClientSession.__init__
    _ORIGINAL["__init__"] = original

    @functools.wraps(original)
    def __init__(self: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> None:
        configs = list(kwargs.get("trace_configs") or [])
        if not any(getattr(c, "apimon", False) for c in configs):
            configs.append(apimon_trace_config())
        kwargs["trace_configs"] = configs
        original(self, *args, **kwargs)

    aiohttp.ClientSession.__init__ = __init__  # type: ignore[method-assign]
    outgoing.activate()
    return True


def uninstrument() -> None:
    """Undo :func:`instrument` (sessions made meanwhile keep recording)."""
    original = _ORIGINAL.pop("__init__", None)
    if original is not None:
        aiohttp.ClientSession.__init__ = original  # type: ignore[method-assign]
