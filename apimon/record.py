"""The raw snapshot of one request/response pair, taken on the request thread.

Adapters fill a :class:`RawCall` with cheap, already-owned values (strings, bytes, numbers) and
hand it to the flusher; everything expensive (header canonicalisation, body decoding, redaction,
JSON) happens later in :mod:`apimon.event`, off the request path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from apimon.budget import RAW_OVERHEAD
from apimon.tee import BodyTee

# Header pairs as the server gave them: ``str`` for WSGI, ``bytes`` for ASGI (decoded off the request path).
HeaderPairs = Sequence[tuple[str | bytes, str | bytes]]


class RawCall:
    """One HTTP exchange as seen by an adapter; the input of :func:`apimon.event.build_event`.

    Header lists keep names as the server gave them and values as latin-1 strings; the event
    builder canonicalises and joins them. ``raw_path`` is the path exactly as on the wire.

    Every field has a class-level default and only what a call sets lives on the instance:
    creating one on the request path costs a handful of stores, not two dozen.
    """

    source: Any = None
    resolver: Callable[[RawCall], None] | None = None
    end: float = 0.0
    status: int = 0
    resp_headers: HeaderPairs = ()
    req_body: BodyTee | None = None
    resp_body: BodyTee | None = None
    route: str | None = None
    user_id: str | None = None
    company_id: str | None = None
    session_token: str | None = None
    metadata: dict[str, Any] | None = None
    api_version: str | None = None
    framework_user: str | None = None
    session_cookie: str | None = None
    error: str | None = None
    # Why the response ended before its last byte (``apimon.tee.CLOSED``, ``RELEASED``, ``UNENDED``).
    incomplete: str | None = None
    # The id of the governance rule that answered this call instead of the app.
    blocked_by: str | None = None
    # Outgoing calls (apimon.outgoing): the direction, the incoming call they were made in, and,
    # on an incoming call, the finished outgoing calls it holds until it ends (see Client).
    direction: str = "Incoming"
    # The response body was kept as the app read it, decoded already (its Content-Encoding done).
    resp_decoded: bool = False
    parent: RawCall | None = None
    children: list[RawCall] | None = None
    ended: bool = False
    # Set by the event build, for the outgoing calls made inside this one (built right after it).
    transaction_id: str | None = None
    resolved_user: str | None = None
    resolved_company: str | None = None
    resolved_session: str | None = None
    weight: int | None = None
    # A body that arrived in one piece within the cap, kept as the app's own bytes object (no
    # copy, and no BodyTee on the request path or later: the event builder reads it as it is).
    req_whole: bytes | None = None
    resp_whole: bytes | None = None
    # The size of a one-piece response body over the cap: nothing of it is kept.
    resp_over: int = 0
    # The framework's own request object (an ASGI scope): the resolver reads what the framework
    # wrote into it during the call (the matched route) off the request path.
    native: Any = None

    def __init__(
        self,
        method: str,
        scheme: str,
        host: str,
        raw_path: str,
        query: str,
        req_headers: HeaderPairs,
        peer: str | None,
        start: float,
    ) -> None:
        self.method = method
        self.scheme = scheme
        self.host = host
        self.raw_path = raw_path
        self.query = query
        self.req_headers = req_headers
        self.peer = peer
        self.start = start
        self.end = start

    @classmethod
    def deferred(cls, source: Any, resolver: Callable[[RawCall], None], start: float) -> RawCall:
        """A call whose request fields are filled in later, off the request path, by
        ``resolver(raw)`` reading ``raw.source`` (a copy of the WSGI environ, an ASGI scope).

        Copying a dict costs a tenth of a microsecond; walking it for headers costs microseconds.
        """
        raw = cls.__new__(cls)
        raw.start = raw.end = start
        raw.source = source
        raw.resolver = resolver
        return raw

    # Request fields until the resolver fills them in.
    method: str = "GET"
    scheme: str = "http"
    host: str = ""
    raw_path: str = "/"
    query: str = ""
    req_headers: HeaderPairs = ()
    peer: str | None = None

    def resolve(self) -> None:
        """Fill in the deferred request fields (idempotent); drops the reference to the source."""
        resolver = self.resolver
        if resolver is not None:
            self.resolver = None
            resolver(self)
            self.source = None
            self.native = None

    def settle_bodies(self, cap: int) -> None:
        """Turn the size a one-piece response over the cap left into a :class:`BodyTee` (flusher
        thread). One-piece bodies within the cap stay as they are: the event builder reads them."""
        if self.resp_over and self.resp_body is None:
            tee = self.resp_body = BodyTee(cap)
            tee.size, tee.complete = self.resp_over, True

    def held_bytes(self) -> int:
        """What this call holds in memory while it waits for the flusher: the kept bodies plus a
        flat allowance for the object, its headers and the copied request data (the budget's
        charge; the same figure before and after it waits, so charge and release match)."""
        n = RAW_OVERHEAD
        whole = self.req_whole
        if whole is not None:
            n += len(whole)
        elif self.req_body is not None:
            n += self.req_body.held
        whole = self.resp_whole
        if whole is not None:
            n += len(whole)
        elif self.resp_body is not None:
            n += self.resp_body.held
        return n

    @property
    def request_bytes(self) -> int:
        """How many bytes of request body passed (all of it, kept or not)."""
        return _body_size(self.req_whole, self.req_body)

    @property
    def response_bytes(self) -> int:
        """How many bytes of response body passed (all of it, kept or not)."""
        return _body_size(self.resp_whole, self.resp_body)

    def keep_request(self, body: bytes, cap: int) -> None:
        """Record a request body read whole before the app ran (for governance rules)."""
        if len(body) <= cap:
            self.req_whole = bytes(body)
        else:
            tee = self.req_body = BodyTee(cap)
            tee.size, tee.complete = len(body), True

    def keep_response(self, body: bytes, cap: int) -> None:
        """Record a complete response body that came in one piece: the app's bytes object itself
        when within ``cap`` (no copy), only its size when over it (nothing is held)."""
        if len(body) <= cap:
            # A memoryview or bytearray (Starlette sends a memoryview body as it is) is copied:
            # the app may reuse its buffer, and the builder reads bytes.
            self.resp_whole = body if type(body) is bytes else bytes(body)
        else:
            self.resp_over = len(body)


def _body_size(whole: bytes | None, tee: BodyTee | None) -> int:
    if whole is not None:
        return len(whole)
    return tee.size if tee is not None else 0
