"""Reading a WSGI environ (PEP 3333) into a :class:`~apimon.record.RawCall`. Used by the WSGI
middleware and by Django (whose ``request.META`` is an environ under WSGI and ASGI alike)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from apimon.native import speedups
from apimon.record import RawCall

_PATH_SAFE = "/;=,:@!$&'()*+~"


def environ_headers_py(environ: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The ``HTTP_*`` entries of an environ as (name without the prefix, value), in its order."""
    # Most keys are not headers; testing the first character before slicing out five (a new
    # string for every key) takes a quarter off the walk of a gunicorn environ (2.0 -> 1.4 us).
    return [(key[5:], value) for key, value in environ.items() if key and key[0] == "H" and key[:5] == "HTTP_"]


environ_headers: Callable[[Mapping[str, Any]], list[tuple[str, Any]]] = environ_headers_py
_native = speedups()
if _native is not None:
    # The compiled walk takes an exact dict with str keys (the environ copy always is) and hands
    # anything else to environ_headers_py.
    _native.configure_environ(environ_headers_py)
    environ_headers = _native.environ_headers


def resolve_environ(raw: RawCall) -> None:
    """Fill ``raw``'s request fields from its copy of the environ (runs on the flusher thread)."""
    environ: Mapping[str, Any] = raw.source
    headers = environ_headers(environ)
    content_type = environ.get("CONTENT_TYPE")
    if content_type:
        headers.append(("Content-Type", content_type))
    content_length = environ.get("CONTENT_LENGTH")
    if content_length:
        headers.append(("Content-Length", content_length))
    scheme = environ.get("wsgi.url_scheme", "http")
    raw.method = environ.get("REQUEST_METHOD", "GET")
    raw.scheme = scheme
    raw.host = environ_host(environ, scheme)
    raw.raw_path = wire_path(environ)
    raw.query = environ.get("QUERY_STRING", "")
    raw.req_headers = headers
    raw.peer = environ.get("REMOTE_ADDR")


def environ_host(environ: Mapping[str, Any], scheme: str) -> str:
    """The Host header, else the server's name and port (the port left out when default)."""
    host = environ.get("HTTP_HOST")
    if host:
        return str(host)
    port = environ.get("SERVER_PORT", "")
    name = environ.get("SERVER_NAME", "localhost")
    if port and port != ("443" if scheme == "https" else "80"):
        return f"{name}:{port}"
    return str(name)


def wire_path(environ: Mapping[str, Any]) -> str:
    """The path exactly as on the wire: gunicorn gives RAW_URI, uWSGI and Werkzeug REQUEST_URI;
    PATH_INFO is already percent-decoded (%2F lost), so it is only the fallback."""
    raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw_uri:
        if raw_uri[:1] != "/" and "://" in raw_uri:
            raw_uri = "/" + raw_uri.split("://", 1)[1].partition("/")[2]
        return str(raw_uri.partition("?")[0] or "/")
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    return quote(path.encode("latin-1", "replace"), safe=_PATH_SAFE) or "/"


def snapshot(environ: Mapping[str, Any], start: float) -> RawCall:
    """The request as the server handed it over, for the request path: a shallow copy of the
    environ (before the app or inner middlewares change it), parsed later by :func:`resolve_environ`.
    """
    return RawCall.deferred(dict(environ), resolve_environ, start)
