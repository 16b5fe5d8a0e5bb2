"""Generic WSGI middleware: Flask, Django-WSGI, Falcon, Bottle, Pyramid or any WSGI app.

Usage::

    from apimon.integrations.wsgi import ApimonMiddleware
    app.wsgi_app = ApimonMiddleware(app.wsgi_app)          # Flask
    application = ApimonMiddleware(application, store="calls.db")

The request body is teed as the app reads ``wsgi.input``; the response iterable is wrapped,
never drained: each chunk goes to the server as soon as the app yields it, and the event is
finished when the iterable is exhausted or closed (``close()`` is always forwarded).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import apimon
from apimon.record import BodyTee, RawCall

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from apimon.client import Client

_PATH_SAFE = "/;=,:@!$&'()*+~"


def resolve_environ(raw: RawCall) -> None:
    """Fill ``raw``'s request fields from its copy of the environ (runs on the flusher thread)."""
    environ: WSGIEnvironment = raw.source
    headers = [(key[5:], value) for key, value in environ.items() if key[:5] == "HTTP_"]
    content_type = environ.get("CONTENT_TYPE")
    if content_type:
        headers.append(("Content-Type", content_type))
    content_length = environ.get("CONTENT_LENGTH")
    if content_length:
        headers.append(("Content-Length", content_length))
    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST")
    if not host:
        port = environ.get("SERVER_PORT", "")
        host = environ.get("SERVER_NAME", "localhost")
        if port and port != ("443" if scheme == "https" else "80"):
            host = f"{host}:{port}"
    # The path exactly as on the wire: gunicorn gives RAW_URI, uWSGI and Werkzeug REQUEST_URI;
    # PATH_INFO is already percent-decoded (%2F lost), so it is only the fallback.
    raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw_uri:
        if raw_uri[:1] != "/" and "://" in raw_uri:
            raw_uri = "/" + raw_uri.split("://", 1)[1].partition("/")[2]
        raw_path = raw_uri.partition("?")[0] or "/"
    else:
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        raw_path = quote(path.encode("latin-1", "replace"), safe=_PATH_SAFE) or "/"
    raw.method = environ.get("REQUEST_METHOD", "GET")
    raw.scheme = scheme
    raw.host = host
    raw.raw_path = raw_path
    raw.query = environ.get("QUERY_STRING", "")
    raw.req_headers = headers
    raw.peer = environ.get("REMOTE_ADDR")


def snapshot(environ: WSGIEnvironment, start: float) -> RawCall:
    """The request as the server handed it over, for the request path: a shallow copy of the
    environ (before the app or inner middlewares change it), parsed later by :func:`resolve_environ`.
    """
    return RawCall.deferred(environ.copy(), resolve_environ, start)


class _TeeInput:
    """Wraps ``wsgi.input``: the app reads exactly what it would read, and the tee keeps a copy."""

    def __init__(self, stream: Any, tee: BodyTee, expected: int | None) -> None:
        self._stream = stream
        self._tee = tee
        self._expected = expected

    def _seen(self, data: bytes) -> bytes:
        if data:
            self._tee.feed(data)
            if self._expected is not None and self._tee.size >= self._expected:
                self._tee.complete = True
        else:
            self._tee.complete = True
        return data

    def read(self, *args: Any) -> bytes:
        data: bytes = self._stream.read(*args)
        if not args or args[0] is None or args[0] < 0:
            self._tee.complete = True
        return self._seen(data)

    def readline(self, *args: Any) -> bytes:
        return self._seen(self._stream.readline(*args))

    def readlines(self, *args: Any) -> list[bytes]:
        lines: list[bytes] = self._stream.readlines(*args)
        for line in lines:
            self._seen(line)
        return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def finish(self, cap: int) -> None:
        """After the response: read what the app left unread of a known-length body, up to the cap.

        The server would read and discard these bytes anyway to keep the connection alive.
        """
        tee = self._tee
        if tee.complete or self._expected is None:
            return
        remaining = self._expected - tee.size
        if remaining <= 0 or tee.size + remaining > cap:
            return
        try:
            self._seen(self._stream.read(remaining))
        except Exception:
            return


class _ResponseTee:
    """The response iterable, passed through chunk by chunk; finishes the event exactly once."""

    def __init__(
        self,
        inner: Iterable[bytes],
        client: Client,
        raw: RawCall,
        environ: WSGIEnvironment,
        tee_input: _TeeInput | None,
    ) -> None:
        self._inner = inner
        self._iter: Iterator[bytes] | None = None
        self._client = client
        self._raw = raw
        self._environ = environ
        self._tee_input = tee_input
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._iter is None:
            self._iter = iter(self._inner)
        try:
            chunk = next(self._iter)
        except StopIteration:
            self._finish(complete=True)
            raise
        except BaseException as exc:
            self._raw.error = type(exc).__name__
            self._finish(complete=False)
            raise
        tee = self._raw.resp_body
        if tee is not None:
            tee.feed(chunk)
        return chunk

    def close(self) -> None:
        try:
            close = getattr(self._inner, "close", None)
            if close is not None:
                close()
        finally:
            self._finish(complete=False)

    def _finish(self, complete: bool) -> None:
        if self._done:
            return
        self._done = True
        raw = self._raw
        raw.end = time.time()
        if raw.resp_body is not None:
            raw.resp_body.complete = complete
        if self._tee_input is not None:
            self._tee_input.finish(self._client.config.max_body_bytes)
        self._client.complete(raw, self._environ)


class _SizedResponseTee(_ResponseTee):
    # Servers look at len() of a list/tuple response to set Content-Length; keep that visible.
    def __len__(self) -> int:
        return len(self._inner)  # type: ignore[arg-type]


class ApimonMiddleware:
    """Capture every request/response of a WSGI app as an API Call event.

    :param app: the WSGI application to wrap.
    :param options: apimon options (CONTRACT 1.2); used to create the process-wide client if
        :func:`apimon.init` has not been called yet. A wrong option raises ``ValueError`` here.
    """

    def __init__(self, app: WSGIApplication, **options: Any) -> None:
        self.app = app
        apimon.ensure_client(options)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        client = apimon._client
        if client is None or not client.config.enabled:
            return self.app(environ, start_response)
        try:
            raw = snapshot(environ, time.time())
            admitted = client.admit(raw, environ)
        except Exception:
            client.counters.incr("internal_errors")
            admitted = False
        if not admitted:
            return self.app(environ, start_response)

        config = client.config
        tee_input: _TeeInput | None = None
        if config.log_body:
            cap = config.max_body_bytes
            raw.resp_body = BodyTee(cap)
            length = environ.get("CONTENT_LENGTH")
            chunked = environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
            if (length and length != "0") or chunked:
                raw.req_body = BodyTee(cap)
                try:
                    expected = int(length) if length and not chunked else None
                except ValueError:
                    expected = None
                tee_input = _TeeInput(environ["wsgi.input"], raw.req_body, expected)
                environ["wsgi.input"] = tee_input

        def _start_response(status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None) -> Any:
            try:
                raw.status = int(status[:3])
            except ValueError:
                raw.status = 0
            raw.resp_headers = list(headers)
            write = start_response(status, headers, exc_info)
            tee = raw.resp_body
            if tee is None:
                return write

            def _write(data: bytes) -> None:
                tee.feed(data)
                write(data)

            return _write

        try:
            inner = self.app(environ, _start_response)
        except BaseException as exc:
            raw.status = 500
            raw.error = type(exc).__name__
            raw.end = time.time()
            client.complete(raw, environ)
            raise
        cls = _SizedResponseTee if isinstance(inner, list | tuple) else _ResponseTee
        return cls(inner, client, raw, environ, tee_input)
