"""What Moesif's hooks are given where Moesif gave an object apimon does not have.

moesifpythonrequest calls the outgoing hooks (``SKIP_OUTGOING``, ``IDENTIFY_USER_OUTGOING``, ...)
with requests' ``PreparedRequest`` and ``Response``; apimon records outgoing calls below requests
(urllib3, httpx, aiohttp), so they get objects with the attributes such hooks read, whichever
client made the call. moesifasgi's hooks get its response object: :class:`HookResponse` too.
"""

from __future__ import annotations

from typing import Any


class OutgoingRequest:
    """``url``, ``method``, ``headers`` (case-insensitive), ``path_url``."""

    __slots__ = ("_view",)

    def __init__(self, view: Any) -> None:
        self._view = view

    @property
    def url(self) -> str:
        return str(self._view.url)

    @property
    def method(self) -> str:
        return str(self._view.method)

    @property
    def headers(self) -> Any:
        return self._view.headers

    @property
    def path_url(self) -> str:
        view = self._view
        return f"{view.path}?{view.query}" if view.query else str(view.path)

    def __repr__(self) -> str:
        return f"<OutgoingRequest {self.method} {self.url}>"


class HookResponse:
    """``status_code``, ``headers`` (case-insensitive), ``ok``."""

    __slots__ = ("_view",)

    def __init__(self, view: Any) -> None:
        self._view = view

    @property
    def status_code(self) -> int:
        return int(self._view.status)

    @property
    def headers(self) -> Any:
        return self._view.headers

    @property
    def ok(self) -> bool:
        return 0 < self.status_code < 400

    def __repr__(self) -> str:
        return f"<HookResponse {self.status_code}>"
