"""A request's fields as governance conditions name them, read before the app runs, straight
from what the server handed over (a WSGI environ or Django's ``META``, an ASGI scope): a rule set
reads a few fields, each once, with dictionary lookups, never the whole header walk the event
builder does later on the flusher.

========================  ==================================================================
``request.verb``          the method, upper case
``request.route``         the path as on the wire (no query; before the app runs no route
                          template is known)
``request.uri``           the full URI, as the event has it
``request.ip_address``    the client address (``request.ip`` too), proxy-aware as the event's
``request.headers.NAME``  a request header (any case; repeated ones joined with ``,``)
``request.query``         the raw query string; ``request.query.NAME`` one parameter's first value
``request.body.PATH``     a field of a JSON request body (a dotted path reaches nested objects),
                          when the body is JSON and within ``max_body_bytes``
========================  ==================================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs

import orjson

from apimon import headers as hdr
from apimon.environ import environ_headers, environ_host, wire_path
from apimon.event import build_uri
from apimon.governance.conditions import MAX_VALUE
from apimon.ipaddr import IP_HEADERS, TrustedClientIp, client_ip

# What a rule set reads of a call, decided once when the rules are parsed (:func:`readers`): a
# kind and, for headers, the key each reader looks the header up by.
VERB, ROUTE, HEADER, IP, QUERY, OTHER = range(6)
Reader = tuple[int, str, str, bytes]  # (kind, path, environ key, ASGI header name)


def readers(paths: Sequence[str]) -> tuple[Reader, ...]:
    """How to read each of ``paths`` (see :meth:`RequestFields.read_all`)."""
    out = []
    for path in paths:
        if path == "request.verb":
            out.append((VERB, path, "", b""))
        elif path == "request.route":
            out.append((ROUTE, path, "", b""))
        elif path == "request.ip_address":
            out.append((IP, path, "", b""))
        elif path.startswith("request.query."):
            out.append((QUERY, path, path[14:], b""))
        elif path.startswith("request.headers."):
            name = path[16:]
            key = name.upper().replace("-", "_")
            key = key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key
            out.append((HEADER, path, key, name.encode("latin-1")))
        else:
            out.append((OTHER, path, "", b""))
    return tuple(out)


class RequestFields:
    """What both readers share: the query, the body, the IP and the dispatch on the path."""

    __slots__ = ("_body", "_json", "_query")

    def __init__(self, body: bytes | None) -> None:
        self._body = body
        self._json: Any = None
        self._query: dict[str, list[str]] | None = None

    # Each reader gives these.
    def method(self) -> str:
        raise NotImplementedError

    def path(self) -> str:
        raise NotImplementedError

    def uri(self) -> str:
        raise NotImplementedError

    def query(self) -> str:
        raise NotImplementedError

    def header(self, lower_name: str) -> str | None:
        raise NotImplementedError

    def peer(self) -> str | None:
        raise NotImplementedError

    def headers(self) -> dict[str, str]:
        """Every request header, canonical names (for the built-in user detection)."""
        raise NotImplementedError

    def ip_header_values(self) -> tuple[str | None, ...]:
        """The values of :data:`~apimon.ipaddr.IP_HEADERS`, in order, for ``client_ip``."""
        return tuple(self.header(name.lower()) for name in IP_HEADERS)

    def value(self, path: str) -> str | None:
        if path == "request.verb":
            return self.method().upper()
        if path == "request.route":
            return self.path()
        if path.startswith("request.headers."):
            return self.header(path[16:])
        if path == "request.ip_address":
            return client_ip(self.ip_header_values(), self.peer())
        if path.startswith("request.body."):
            return _scalar(_walk(self._parsed(), path[13:]))
        if path == "request.query":
            return self.query()
        if path.startswith("request.query."):
            return self._param(path[14:], self.query())
        if path == "request.uri":
            return self.uri()
        return None

    def _param(self, name: str, query: str) -> str | None:
        if not query or name not in query:  # the common case, without parsing the query
            return None
        if self._query is None:
            self._query = parse_qs(query, keep_blank_values=True)
        found = self._query.get(name)
        return found[0] if found else None

    def read_all(self, wanted: Sequence[Reader], trusted: TrustedClientIp | None = None) -> tuple[str | None, ...]:
        """Every field a rule set reads, in order, each cut to ``MAX_VALUE`` characters: one call
        a request, the common fields (verb, path, a header, the IP) read inline. The IP is read
        as ``trusted`` says when the deployment configured it, as the event reads it."""
        raise NotImplementedError

    def trusted_ip(self, trusted: TrustedClientIp) -> str | None:
        return trusted(tuple(self.header(name.lower()) for name in trusted.headers), self.peer())

    def _parsed(self) -> Any:
        if self._json is None and self._body:
            try:
                self._json = orjson.loads(self._body)
            except orjson.JSONDecodeError:
                self._body = None
        return self._json


#: Header names (lower case) to their environ keys; bounded, since rules name the headers.
_ENVIRON_KEYS: dict[str, str] = {}
_IP_ENVIRON_KEYS = tuple("HTTP_" + name.upper().replace("-", "_") for name in IP_HEADERS)
_IP_ENVIRON_KEY_SET = frozenset(_IP_ENVIRON_KEYS)


class EnvironFields(RequestFields):
    """The fields of a WSGI environ (or Django's ``request.META``)."""

    __slots__ = ("_environ",)

    def __init__(self, environ: Mapping[str, Any], body: bytes | None = None) -> None:
        # Made for every governed call: the attributes set here, not through super().__init__.
        self._environ = environ
        self._body = body
        self._json = None
        self._query = None

    def method(self) -> str:
        return str(self._environ.get("REQUEST_METHOD", "GET"))

    def path(self) -> str:
        return wire_path(self._environ)

    def uri(self) -> str:
        environ = self._environ
        scheme = environ.get("wsgi.url_scheme", "http")
        return build_uri(scheme, environ_host(environ, scheme), self.path(), self.query())

    def query(self) -> str:
        return str(self._environ.get("QUERY_STRING", ""))

    def header(self, lower_name: str) -> str | None:
        key = _ENVIRON_KEYS.get(lower_name)
        if key is None:
            key = lower_name.upper().replace("-", "_")
            key = key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key
            if len(_ENVIRON_KEYS) < 1024:
                _ENVIRON_KEYS[lower_name] = key
        value = self._environ.get(key)
        return None if value is None else str(value)

    def ip_header_values(self) -> tuple[str | None, ...]:
        found = tuple(map(self._environ.get, _IP_ENVIRON_KEYS))
        return found if any(found) else _NO_IP_HEADERS

    def read_all(self, wanted: Sequence[Reader], trusted: TrustedClientIp | None = None) -> tuple[str | None, ...]:
        environ = self._environ
        get = environ.get
        out: list[str | None] = []
        for kind, path, key, _ in wanted:
            if kind == HEADER:
                value = get(key)
            elif kind == VERB:
                value = get("REQUEST_METHOD", "GET").upper()
            elif kind == ROUTE:
                raw_uri = get("RAW_URI")  # gunicorn's: the common case inline, else the full rule
                value = raw_uri.partition("?")[0] if raw_uri and raw_uri[:1] == "/" else wire_path(environ)
            elif kind == IP:
                # Most calls carry no proxy header: eight lookups in C say so.
                if trusted is not None:
                    value = self.trusted_ip(trusted)
                elif environ.keys().isdisjoint(_IP_ENVIRON_KEY_SET):
                    peer = get("REMOTE_ADDR")
                    value = _PEER_IPS[peer] if peer in _PEER_IPS else peer_ip(peer)
                else:
                    value = client_ip(tuple(map(get, _IP_ENVIRON_KEYS)), get("REMOTE_ADDR"))
            elif kind == QUERY:
                value = self._param(key, get("QUERY_STRING", ""))
            else:
                value = self.value(path)
            out.append(value if value is None or len(value) <= MAX_VALUE else value[:MAX_VALUE])
        return tuple(out)

    def peer(self) -> str | None:
        peer = self._environ.get("REMOTE_ADDR")
        return None if peer is None else str(peer)

    def headers(self) -> dict[str, str]:
        return hdr.merge(environ_headers(self._environ))


class ScopeFields(RequestFields):
    """The fields of an ASGI HTTP scope (header names are lower-case bytes, as ASGI says)."""

    __slots__ = ("_scope", "_by_name")

    def __init__(self, scope: Mapping[str, Any], body: bytes | None = None) -> None:
        self._scope = scope
        self._by_name: dict[bytes, bytes] | None = None
        self._body = body
        self._json = None
        self._query = None

    def method(self) -> str:
        return str(self._scope.get("method", "GET"))

    def path(self) -> str:
        raw = self._scope.get("raw_path")
        if raw:
            return str(raw.decode("latin-1").partition("?")[0] or "/")
        return str(self._scope.get("root_path", "") + self._scope.get("path", "/"))

    def uri(self) -> str:
        scheme = self._scope.get("scheme") or "http"
        return build_uri(scheme, self.header("host") or "localhost", self.path(), self.query())

    def query(self) -> str:
        return str((self._scope.get("query_string") or b"").decode("latin-1"))

    def _names(self) -> dict[bytes, bytes]:
        by_name = self._by_name
        if by_name is None:
            pairs = self._scope.get("headers") or ()
            by_name = dict(pairs)  # one C call; a repeated name is joined below
            if len(by_name) != len(pairs):
                by_name = {}
                for name, value in pairs:
                    by_name[name] = by_name[name] + b"," + value if name in by_name else value
            self._by_name = by_name
        return by_name

    def header(self, lower_name: str) -> str | None:
        value = self._names().get(lower_name.encode("latin-1"))
        return None if value is None else value.decode("latin-1")

    def ip_header_values(self) -> tuple[str | None, ...]:
        found = tuple(map(self._names().get, _IP_SCOPE_KEYS))
        if not any(found):
            return _NO_IP_HEADERS
        return tuple(None if v is None else v.decode("latin-1") for v in found)

    def read_all(self, wanted: Sequence[Reader], trusted: TrustedClientIp | None = None) -> tuple[str | None, ...]:
        out: list[str | None] = []
        for kind, path, _, name in wanted:
            if kind == HEADER:
                raw = self._names().get(name)
                value = None if raw is None else raw.decode("latin-1")
            elif kind == VERB:
                value = str(self._scope.get("method", "GET")).upper()
            elif kind == ROUTE:
                value = self.path()
            elif kind == IP:
                if trusted is not None:
                    value = self.trusted_ip(trusted)
                else:
                    value = client_ip(self.ip_header_values(), self.peer())
            elif kind == QUERY:
                value = self._param(path[14:], self.query())
            else:
                value = self.value(path)
            out.append(value if value is None or len(value) <= MAX_VALUE else value[:MAX_VALUE])
        return tuple(out)

    def peer(self) -> str | None:
        client = self._scope.get("client")
        return str(client[0]) if client else None

    def headers(self) -> dict[str, str]:
        return hdr.merge(self._scope.get("headers") or ())


_PEER_IPS: dict[str | None, str | None] = {}


def peer_ip(peer: str | None) -> str | None:
    """The client address of a call that carries no proxy header: its peer's, as ``client_ip``
    gives it (a plain dict, bounded: cheaper than the lru_cache's key for the common case)."""
    try:
        return _PEER_IPS[peer]
    except KeyError:
        ip = client_ip(_NO_IP_HEADERS, peer)
        if len(_PEER_IPS) < 4096 and (peer is None or len(peer) <= 64):
            _PEER_IPS[peer] = ip
        return ip


_IP_SCOPE_KEYS = tuple(name.lower().encode("latin-1") for name in IP_HEADERS)
_NO_IP_HEADERS: tuple[str | None, ...] = (None,) * len(IP_HEADERS)


def _walk(value: Any, dotted: str) -> Any:
    if isinstance(value, dict) and dotted in value:
        return value[dotted]
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _scalar(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)
