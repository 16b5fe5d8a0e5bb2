"""Outgoing calls: the HTTP requests the app itself makes (to payment providers, LLM APIs,
partners), recorded as API Call events with ``direction: "Outgoing"`` through the same builder,
redaction, flusher and sinks as incoming calls.

The client instrumentations in ``apimon.integrations`` (httpx, requests and urllib3, aiohttp) are
thin: each makes an :class:`OutgoingCall` when a request starts, feeds it the bodies as they pass,
and finishes it when the response body is consumed, closed, released or the request fails. This
module holds what they share:

- **The parent link.** Adapters run the app inside :func:`incoming`, a context variable holding the
  incoming call (threads started with ``contextvars.copy_context`` and asyncio tasks inherit it).
  An outgoing call made inside it waits, finished, until its parent ends, then is queued right
  after it: the parent's event is built first, so the child gets the parent's
  ``transaction_id`` (``metadata.apimon.parent``) and its user, company and session.
- **Never twice, never apimon's own.** A call made while another instrumentation of the same call
  is recording (requests over urllib3) is not recorded again; apimon's own requests to Moesif,
  MoEngage and their config are marked with :func:`internal` and never recorded; nor are calls to
  hosts in ``outgoing_skip_hosts``.
- **Fail-open.** Every step runs under a guard: an instrumentation error is counted and logged once,
  and the app's call goes on exactly as without apimon.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar, Token
from typing import Any
from urllib.parse import urlsplit

import apimon
from apimon._guard import log_once
from apimon.event import OUTGOING
from apimon.record import RawCall
from apimon.tee import BodyTee

#: The incoming call being served in this context, for the parent link.
_current: ContextVar[RawCall | None] = ContextVar("apimon_incoming_call", default=None)
#: Set while an outgoing call is being recorded: an instrumentation below it (urllib3 under
#: requests) then stays out of the way.
_recording: ContextVar[bool] = ContextVar("apimon_recording_outgoing", default=False)
#: apimon's own HTTP (its sender and config threads): never recorded.
_internal = threading.local()
#: A parent holds at most this many finished children until it ends; later ones are queued at once.
MAX_HELD_CHILDREN = 256


#: True once any client instrumentation exists: until then the adapters do not mark their calls
#: (a context variable set and reset a request, ~0.1 us, for nothing).
active = False


def activate() -> None:
    """Called by every instrumentation and wrapper when it is set up."""
    global active
    active = True


def incoming(raw: RawCall) -> Token[RawCall | None]:
    """Mark ``raw`` as the incoming call of this context (adapters, around the app)."""
    return _current.set(raw)


def leave(token: Token[RawCall | None]) -> None:
    with contextlib.suppress(ValueError):  # a token from another context: nothing to undo
        _current.reset(token)


@contextlib.contextmanager
def internal() -> Iterator[None]:
    """apimon's own requests (the remote sinks, the config fetch): never recorded."""
    previous = getattr(_internal, "active", False)
    _internal.active = True
    try:
        yield
    finally:
        _internal.active = previous


class OutgoingCall:
    """One outgoing call while it happens. Usage (an instrumentation)::

        call = OutgoingCall.start("POST", url, headers)        # None: not recorded
        if call is not None:
            call.request_body(body)                              # bytes, when known
            ... send ...
            call.response(status, headers)
            call.feed(chunk) for each body chunk the app reads
            call.finish(complete=True)                           # or call.fail(exc)

    Every method is safe to call in any order and never raises.
    """

    __slots__ = ("raw", "_client", "_done", "_token", "_cap")

    def __init__(self, client: Any, raw: RawCall, token: Token[bool]) -> None:
        self._client = client
        self.raw = raw
        self._done = False
        self._token: Token[bool] | None = token
        config = client.config
        self._cap = config.max_body_bytes if config.log_body and config.log_body_outgoing else -1

    @classmethod
    def start(cls, method: str, url: str, headers: Iterable[tuple[Any, Any]]) -> OutgoingCall | None:
        """A new call to record, or None when this one is not recorded (no client, capture of
        outgoing calls off, apimon's own request, a skipped host, sampled out, already recorded
        by an instrumentation above this one)."""
        client = apimon._client
        if client is None or not client.config.enabled or _recording.get() or getattr(_internal, "active", False):
            return None
        try:
            skip = client.config.outgoing_skip_hosts
            if skip and urlsplit(url).hostname in skip:
                return None
            rate = client.config.sample_rate
            # The URL is split and the headers read on the flusher (the pairs are kept as the
            # library gave them: str or bytes, as the event builder takes them).
            raw = RawCall.deferred(url, _resolve_url, time.time())
            raw.method = method.upper()
            raw.req_headers = list(headers)
            if rate < 1.0:
                if random.random() >= rate:
                    client.counters.incr("sampled_out")
                    return None
                raw.weight = round(1 / rate)
            raw.direction = OUTGOING
            raw.parent = _current.get()
            client.started()
            return cls(client, raw, _recording.set(True))
        except Exception:
            _failed(client, "start")
            return None

    def done_recording(self) -> None:
        """The request has been sent (the response headers are in): instrumentations below this
        one may record again, e.g. the redirect a client follows with a new request."""
        token, self._token = self._token, None
        if token is not None:
            with contextlib.suppress(ValueError):
                _recording.reset(token)

    def request_body(self, body: bytes | bytearray | memoryview | str | None) -> None:
        if body is None or self._cap < 0:
            return
        try:
            data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
            self.raw.keep_request(data, self._cap)
        except Exception:
            _failed(self._client, "request body")

    def feed_request(self, chunk: bytes) -> None:
        """A chunk of a streamed request body, as it is sent."""
        if self._cap < 0:
            return
        raw = self.raw
        tee = raw.req_body
        if tee is None:
            tee = raw.req_body = BodyTee(self._cap)
        tee.feed(chunk)

    def response(self, status: int, headers: Iterable[tuple[Any, Any]]) -> None:
        try:
            self.raw.status = int(status)
            self.raw.resp_headers = list(headers)
        except Exception:
            _failed(self._client, "response")
        self.done_recording()

    def feed(self, chunk: bytes) -> None:
        """A chunk of the response body, as the app reads it."""
        if self._cap < 0 or not chunk:
            return
        raw = self.raw
        tee = raw.resp_body
        if tee is None:
            tee = raw.resp_body = BodyTee(self._cap)
        tee.feed(chunk)

    def finish(self, complete: bool = True, why: str | None = None) -> None:
        """The call is over: the body was read to its end (``complete``), or closed or released
        before (``why``: ``closed``, ``released``)."""
        if self._done:
            return
        self._done = True
        self.done_recording()
        raw = self.raw
        raw.end = time.time()
        if raw.resp_body is not None:
            raw.resp_body.complete = complete
        if not complete and why and raw.error is None:
            raw.incomplete = why
        try:
            self._client.complete_outgoing(raw)
        except Exception:
            _failed(self._client, "finish")

    def broke(self, error: BaseException) -> None:
        """Reading the response body failed part-way: the event keeps its status and what was read."""
        self.raw.error = type(error).__name__
        self.finish(complete=False)

    def fail(self, error: BaseException) -> None:
        """The request failed (refused, timed out, reset): an event with no response."""
        if self._done:
            return
        self.raw.error = type(error).__name__
        self.raw.status = 0
        self.finish(complete=False)

    @property
    def done(self) -> bool:
        return self._done

    def __del__(self) -> None:
        # A response the app let go of without reading or closing it: the call still ends.
        if not self._done:
            with contextlib.suppress(Exception):
                self.finish(complete=False, why="released")


def _resolve_url(raw: RawCall) -> None:
    """Split an outgoing call's URL into the event's parts (on the flusher)."""
    parts = urlsplit(raw.source)
    raw.scheme = parts.scheme or "http"
    raw.host = parts.netloc.rpartition("@")[2]  # never the credentials of a user:pass@ URL
    raw.raw_path = parts.path or "/"
    raw.query = parts.query


def _failed(client: Any, what: str) -> None:
    client.counters.incr("internal_errors")
    log_once(
        f"outgoing-{what}", "apimon: recording an outgoing call failed (%s); the call goes on", what, exc_info=True
    )


def _failed_anywhere(what: str) -> None:
    """An instrumentation's own error, wherever it happened: counted, logged once, swallowed."""
    client = apimon._client
    if client is not None:
        _failed(client, what)
