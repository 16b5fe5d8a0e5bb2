"""Outgoing calls made with urllib3 (v2), which requests uses too: ``instrument()`` (what
``capture_outgoing=True`` does) records every request a connection pool of the process sends,
``uninstrument()`` undoes it. Each request urllib3 sends is one event: a redirect or a retry
urllib3 follows by itself is one more. A call requests already records (its adapter, or
``apimon.integrations.requests``) is not recorded again here.

The response is teed as the app reads it (``read``, ``read1``, ``stream``, ``read_chunked``): of a
preloaded response, urllib3's own reading, the body is its data; one with
``preload_content=False`` is never read ahead. The event ends when the body has been read, or the
response is closed, released or let go.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

try:
    import urllib3
    from urllib3.connectionpool import HTTPConnectionPool
    from urllib3.response import BaseHTTPResponse
except ImportError as exc:  # pragma: no cover - urllib3 is one of apimon's own dependencies
    raise ImportError("apimon.integrations.urllib3 needs urllib3 2") from exc

from apimon import outgoing
from apimon._guard import log_once
from apimon.event import build_uri
from apimon.outgoing import OutgoingCall

_ORIGINAL: dict[str, Any] = {}


def tee_response(response: BaseHTTPResponse, call: OutgoingCall) -> None:
    """Feed ``call`` what the app reads of ``response`` (the instance's own read methods are
    wrapped; the class is untouched) and end the call with the body or the response."""
    call.response(response.status, response.headers.items())
    encoded = bool(response.headers.get("content-encoding"))
    read, read1, read_chunked = response.read, response.read1, response.read_chunked

    def decoding(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        # What the app reads, and so the tee, is decoded when it asks for that (requests does).
        if encoded:
            decode = args[1] if len(args) > 1 else kwargs.get("decode_content")
            call.raw.resp_decoded = bool(response.decode_content if decode is None else decode)

    def ended() -> None:
        if getattr(response, "length_remaining", None) == 0 or response.closed:
            call.finish(complete=True)

    def tee_read(*args: Any, **kwargs: Any) -> bytes:
        decoding(args, kwargs)
        data = read(*args, **kwargs)
        call.feed(data)
        amt = args[0] if args else kwargs.get("amt")
        if not data or amt is None:
            call.finish(complete=True)
        else:
            ended()
        return data

    def tee_read1(*args: Any, **kwargs: Any) -> bytes:
        decoding(args, kwargs)
        data = read1(*args, **kwargs)
        call.feed(data)
        if not data:
            call.finish(complete=True)
        else:
            ended()
        return data

    def tee_read_chunked(*args: Any, **kwargs: Any) -> Iterator[bytes]:
        decoding(args, kwargs)
        for chunk in read_chunked(*args, **kwargs):
            call.feed(chunk)
            yield chunk
        call.finish(complete=True)

    close, release_conn = response.close, response.release_conn

    def tee_close() -> None:
        try:
            close()
        finally:
            call.finish(complete=False, why="closed")

    def tee_release_conn() -> None:
        try:
            release_conn()
        finally:
            ended()

    response.read = tee_read  # type: ignore[method-assign]
    response.read1 = tee_read1  # type: ignore[method-assign]
    response.read_chunked = tee_read_chunked  # type: ignore[method-assign]
    response.close = tee_close  # type: ignore[method-assign]
    response.release_conn = tee_release_conn  # type: ignore[method-assign]


def _recorded(
    original: Callable[..., Any],
    call: OutgoingCall,
    pool: HTTPConnectionPool,
    conn: Any,
    method: str,
    url: str,
    kwargs: dict[str, Any],
) -> Any:
    try:
        response = original(pool, conn, method, url, **kwargs)
    except BaseException as exc:
        call.fail(exc)
        raise
    try:
        if kwargs.get("preload_content", True):
            # urllib3 read the whole body itself: it is the response's data, already decoded
            # as asked; nothing to wrap.
            call.response(response.status, response.headers.items())
            if response.headers.get("content-encoding") and kwargs.get("decode_content", True):
                call.raw.resp_decoded = True
            call.feed(response.data)
            call.finish(complete=True)
        else:
            tee_response(response, call)
    except Exception:
        call.finish(complete=False)
    return response


def instrument() -> bool:
    """Record what every urllib3 connection pool sends. Twice changes nothing; False when this
    urllib3 is not one apimon knows (left as it is, with one log line)."""
    if _ORIGINAL:
        return True
    original = getattr(HTTPConnectionPool, "_make_request", None)
    names = set(inspect.signature(original).parameters) if original is not None else set()
    if not getattr(urllib3, "__version__", "?").startswith("2.") or not {"method", "url", "preload_content"} <= names:
        log_once(
            "urllib3-unknown",
            "apimon: urllib3 %s is not one apimon knows; its calls are not recorded",
            getattr(urllib3, "__version__", "?"),
        )
        return False
    assert original is not None

    def _make_request(self: HTTPConnectionPool, conn: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if args:  # urllib3 passes everything after the url by keyword; anything else: as it is
            return original(self, conn, method, url, *args, **kwargs)
        call = None
        try:
            full = url
            if not url.startswith(("http://", "https://")):
                port = self.port if self.port not in (None, 80 if self.scheme == "http" else 443) else None
                host = f"{self.host}:{port}" if port else str(self.host)
                path, _, query = url.partition("?")
                full = build_uri(self.scheme, host, path, query)
            headers = kwargs.get("headers") or {}
            call = OutgoingCall.start(method, full, headers.items())
            if call is not None:
                body = kwargs.get("body")
                if isinstance(body, bytes | bytearray | str):
                    call.request_body(body)
        except Exception:
            call = None
        if call is None:
            return original(self, conn, method, url, **kwargs)
        return _recorded(original, call, self, conn, method, url, kwargs)

    _ORIGINAL["_make_request"] = original
    HTTPConnectionPool._make_request = _make_request  # type: ignore[method-assign]
    outgoing.activate()
    return True


def uninstrument() -> None:
    """Undo :func:`instrument`."""
    original = _ORIGINAL.pop("_make_request", None)
    if original is not None:
        HTTPConnectionPool._make_request = original  # type: ignore[method-assign]
