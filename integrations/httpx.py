"""Outgoing calls made with httpx, sync and async.

Patch-free, per client::

    from apimon.integrations.httpx import ApimonTransport, AsyncApimonTransport
    client = httpx.Client(transport=ApimonTransport())                  # wraps httpx.HTTPTransport()
    client = httpx.AsyncClient(transport=AsyncApimonTransport(inner))   # or any transport you had

Or every client of the process: ``instrument()`` (what ``capture_outgoing=True`` does), undone by
``uninstrument()``. A call is recorded at the transport, so each request httpx sends is one event
(a followed redirect is two). The response body is teed as the app reads it: ``client.stream()``
still streams, nothing is read ahead, and the event ends when the body is read, closed or let go.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

try:
    import httpx
except ImportError as exc:  # pragma: no cover - exercised only without httpx
    raise ImportError("apimon.integrations.httpx needs httpx: pip install httpx") from exc

from apimon import outgoing
from apimon.outgoing import OutgoingCall

_ORIGINAL: dict[str, Any] = {}


def _begin(request: httpx.Request) -> OutgoingCall | None:
    call = OutgoingCall.start(request.method, str(request.url), request.headers.raw)
    if call is None:
        return None
    try:
        content = request.content
        if content:
            call.request_body(content)
    except httpx.RequestNotRead:
        # A streamed upload: its chunks are teed as httpx sends them.
        request.stream = _TeedUpload(request.stream, call)
    return call


def _record_response(call: OutgoingCall, response: httpx.Response) -> None:
    call.response(response.status_code, response.headers.raw)


def _answered(call: OutgoingCall, response: Any, stream_class: type[Any], tee: Callable[..., Any]) -> httpx.Response:
    """The response's status and headers recorded, and its body teed as the app reads it."""
    _record_response(call, response)
    if _already_read(response, call):
        pass
    elif isinstance(response.stream, stream_class):
        response.stream = tee(response.stream, call)
    else:
        call.finish(complete=False)
    return response  # type: ignore[no-any-return]


def _already_read(response: httpx.Response, call: OutgoingCall) -> bool:
    """A response a transport made with its content in memory (``MockTransport``, a test
    double): httpx never streams it, so its body is the content, and the call is over."""
    # httpx keeps a body it has read in ``_content`` (``response.content`` raises until then: an
    # exception a call costs ~5 us, for nothing, on the common path).
    content = getattr(response, "_content", None)
    if content is None:
        return False
    call.feed(content)
    call.finish(complete=True)
    return True


class _TeedUpload(httpx.SyncByteStream, httpx.AsyncByteStream):
    def __init__(self, inner: Any, call: OutgoingCall) -> None:
        self._inner = inner
        self._call = call

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._call.feed_request(chunk)
            yield chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            self._call.feed_request(chunk)
            yield chunk


class _TeedBody(httpx.SyncByteStream):
    """A response body stream passed through chunk by chunk; the call ends when it is read to its
    end or closed (or released unread: the call's own finalizer)."""

    def __init__(self, inner: httpx.SyncByteStream, call: OutgoingCall) -> None:
        self._inner = inner
        self._call = call

    def __iter__(self) -> Iterator[bytes]:
        call = self._call
        try:
            for chunk in self._inner:
                call.feed(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            call.broke(exc)
            raise
        call.finish(complete=True)

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._call.finish(complete=False, why="closed")


class _AsyncTeedBody(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, call: OutgoingCall) -> None:
        self._inner = inner
        self._call = call

    async def __aiter__(self) -> AsyncIterator[bytes]:
        call = self._call
        try:
            async for chunk in self._inner:
                call.feed(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            call.broke(exc)
            raise
        call.finish(complete=True)

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._call.finish(complete=False, why="closed")


def _send(handle: Any, transport: Any, request: httpx.Request) -> httpx.Response:
    call = _begin(request)
    if call is None:
        return handle(transport, request)  # type: ignore[no-any-return]
    try:
        response = handle(transport, request)
    except BaseException as exc:
        call.fail(exc)
        raise
    return _answered(call, response, httpx.SyncByteStream, _TeedBody)


async def _send_async(handle: Any, transport: Any, request: httpx.Request) -> httpx.Response:
    call = _begin(request)
    if call is None:
        return await handle(transport, request)  # type: ignore[no-any-return]
    try:
        response = await handle(transport, request)
    except BaseException as exc:
        call.fail(exc)
        raise
    return _answered(call, response, httpx.AsyncByteStream, _AsyncTeedBody)


class ApimonTransport(httpx.BaseTransport):
    """An httpx transport that records every request it sends, then hands it to ``inner``
    (by default ``httpx.HTTPTransport()``, what ``httpx.Client`` uses)."""

    def __init__(self, inner: httpx.BaseTransport | None = None) -> None:
        self.inner = inner if inner is not None else httpx.HTTPTransport()
        outgoing.activate()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return _send(type(self.inner).handle_request, self.inner, request)

    def close(self) -> None:
        self.inner.close()


class AsyncApimonTransport(httpx.AsyncBaseTransport):
    """The async twin of :class:`ApimonTransport`, for ``httpx.AsyncClient``."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.inner = inner if inner is not None else httpx.AsyncHTTPTransport()
        outgoing.activate()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await _send_async(type(self.inner).handle_async_request, self.inner, request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def instrument() -> bool:
    """Record the calls of every httpx client of the process (its default transports). Twice
    changes nothing; False when this httpx is not one apimon knows (left as it is)."""
    if _ORIGINAL:
        return True
    sync = getattr(httpx.HTTPTransport, "handle_request", None)
    asyncf = getattr(httpx.AsyncHTTPTransport, "handle_async_request", None)
    if sync is None or asyncf is None:
        return False
    _ORIGINAL["sync"], _ORIGINAL["async"] = sync, asyncf

    def handle_request(self: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        return _send(sync, self, request)

    async def handle_async_request(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        return await _send_async(asyncf, self, request)

    httpx.HTTPTransport.handle_request = handle_request  # type: ignore[method-assign]
    httpx.AsyncHTTPTransport.handle_async_request = handle_async_request  # type: ignore[method-assign]
    outgoing.activate()
    return True


def uninstrument() -> None:
    """Undo :func:`instrument`."""
    if not _ORIGINAL:
        return
    httpx.HTTPTransport.handle_request = _ORIGINAL.pop("sync")  # type: ignore[method-assign]
    httpx.AsyncHTTPTransport.handle_async_request = _ORIGINAL.pop("async")  # type: ignore[method-assign]
