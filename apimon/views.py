"""Framework-neutral views of a request and a response, given to user hooks (README.md#options).

They are built only when a hook is configured, and compute each attribute on first use.
``.native`` is the framework's own object (a WSGI environ, an ASGI scope, a Django HttpRequest).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from apimon.event import build_uri
from apimon.record import HeaderPairs, RawCall


class Headers(Mapping[str, str]):
    """A read-only, case-insensitive header mapping; repeated names are joined with ``,``."""

    __slots__ = ("_items",)

    def __init__(self, pairs: HeaderPairs) -> None:
        items: dict[str, tuple[str, str]] = {}
        for raw_name, raw_value in pairs:
            name = raw_name if isinstance(raw_name, str) else raw_name.decode("latin-1")
            value = raw_value if isinstance(raw_value, str) else raw_value.decode("latin-1")
            key = name.lower().replace("_", "-")
            if key in items:
                items[key] = (items[key][0], f"{items[key][1]},{value}")
            else:
                items[key] = (name, value)
        self._items = items

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower().replace("_", "-")][1]

    def __iter__(self) -> Iterator[str]:
        return (original for original, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({len(self)} headers)"


class RequestView:
    """What a hook sees of the request: ``method``, ``url``, ``path``, ``query``, ``headers``,
    ``client`` (the peer address), ``route`` (template, when the framework knows it) and ``native``."""

    __slots__ = ("_raw", "native", "_headers")

    def __init__(self, raw: RawCall, native: Any) -> None:
        raw.resolve()
        self._raw = raw
        self.native = native
        self._headers: Headers | None = None

    @property
    def method(self) -> str:
        return self._raw.method.upper()

    @property
    def path(self) -> str:
        return self._raw.raw_path

    @property
    def query(self) -> str:
        return self._raw.query

    @property
    def url(self) -> str:
        raw = self._raw
        return build_uri(raw.scheme, raw.host, raw.raw_path, raw.query)

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(self._raw.req_headers)
        return self._headers

    @property
    def client(self) -> str | None:
        return self._raw.peer

    @property
    def route(self) -> str | None:
        return self._raw.route

    def __repr__(self) -> str:
        return f"<RequestView {self.method} {self.path}>"


class ResponseView:
    """What a hook sees of the response: ``status``, ``headers`` and ``native`` (may be None)."""

    __slots__ = ("_raw", "native", "_headers")

    def __init__(self, raw: RawCall, native: Any) -> None:
        self._raw = raw
        self.native = native
        self._headers: Headers | None = None

    @property
    def status(self) -> int:
        return self._raw.status

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(self._raw.resp_headers)
        return self._headers

    def __repr__(self) -> str:
        return f"<ResponseView {self.status}>"
