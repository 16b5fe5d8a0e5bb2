"""A request's fields as governance conditions name them, read before the app runs.

Each field is computed the first time a condition asks for it: a rule set that only looks at
the verb and the path never merges the headers or parses the body.

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

from typing import Any
from urllib.parse import parse_qs

import orjson

from apimon import headers as hdr
from apimon.event import build_uri
from apimon.ipaddr import client_ip, header_values
from apimon.record import RawCall


class RequestFields:
    """The fields of ``raw`` (resolved) and its JSON ``body`` (None: not read or not JSON)."""

    __slots__ = ("_raw", "_body", "_json", "_headers", "_lower", "_query")

    def __init__(self, raw: RawCall, body: bytes | None = None) -> None:
        self._raw = raw
        self._body = body
        self._json: Any = None
        self._headers: dict[str, str] | None = None
        self._lower: dict[str, str] | None = None
        self._query: dict[str, list[str]] | None = None

    def headers(self) -> dict[str, str]:
        """The request headers, canonical names (as the event builder merges them)."""
        if self._headers is None:
            self._headers = hdr.merge(self._raw.req_headers)
        return self._headers

    def value(self, path: str) -> str | None:
        raw = self._raw
        if path == "request.verb":
            return raw.method.upper()
        if path == "request.route":
            return raw.raw_path
        if path == "request.ip_address":
            return client_ip(header_values(self.headers()), raw.peer)
        if path.startswith("request.headers."):
            if self._lower is None:
                self._lower = {k.lower(): v for k, v in self.headers().items()}
            return self._lower.get(path[16:])
        if path.startswith("request.body."):
            return _scalar(_walk(self._parsed(), path[13:]))
        if path == "request.uri":
            return build_uri(raw.scheme, raw.host, raw.raw_path, raw.query)
        if path == "request.query":
            return raw.query
        if path.startswith("request.query."):
            if self._query is None:
                self._query = parse_qs(raw.query, keep_blank_values=True)
            found = self._query.get(path[14:])
            return found[0] if found else None
        return None

    def _parsed(self) -> Any:
        if self._json is None and self._body:
            try:
                self._json = orjson.loads(self._body)
            except orjson.JSONDecodeError:
                self._body = None
        return self._json


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
