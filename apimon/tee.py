"""Tees: pass a body through untouched while keeping the first ``cap`` bytes of it.

The request side wraps the body stream the app reads; the response side wraps the iterable the
server iterates. Neither ever drains or buffers a whole body, so streaming and server-sent events
keep their timing.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from typing import Any

from apimon.record import BodyTee, RawCall


class TeeReader:
    """Wraps a request body stream (``wsgi.input``, Django's ``request._stream``): the app reads
    exactly what it would read, and the tee keeps a copy of the first ``cap`` bytes."""

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

    def readinto(self, buffer: Any) -> int:
        # Werkzeug 3 reads through readinto whenever the stream has one (its dev server, waitress,
        # BytesIO); forwarding it untouched through __getattr__ would let the body bypass the tee.
        inner = getattr(self._stream, "readinto", None)
        if inner is None:
            data = self._stream.read(len(buffer))
            n = len(data)
            buffer[:n] = data
        else:
            n = inner(buffer) or 0
        with memoryview(buffer) as view:
            self._seen(bytes(view[:n]))
        return n

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


class _Tee:
    """What the sync and async response tees share: ending the event exactly once.

    With ``cap`` given, the response body is kept as it streams: a body of one chunk (the
    common case) is held as the app's own bytes object and handed to ``raw`` at the end, a
    :class:`BodyTee` is made only at a second chunk. Without it, only ``raw.resp_body`` (a tee
    the adapter made) is fed, if any.
    """

    __slots__ = ("_inner", "_raw", "_on_end", "_done", "_cap", "_first")

    def __init__(self, inner: Any, raw: RawCall, on_end: Callable[[bool], None], cap: int | None = None) -> None:
        self._inner = inner
        self._raw = raw
        self._on_end = on_end
        self._done = False
        self._cap = cap
        self._first: bytes | None = None

    def _feed(self, chunk: bytes) -> None:
        raw = self._raw
        tee = raw.resp_body
        if tee is not None:
            tee.feed(chunk)
        elif self._cap is None:
            return
        elif self._first is None:
            self._first = chunk if type(chunk) is bytes else bytes(chunk)
        else:
            tee = raw.resp_body = BodyTee(self._cap)
            tee.feed(self._first)
            self._first = None
            tee.feed(chunk)

    def _end(self, complete: bool) -> None:
        if self._done:
            return
        self._done = True
        raw = self._raw
        raw.end = time.time()
        first = self._first
        if first is not None and self._cap is not None:
            self._first = None
            if complete:
                raw.keep_response(first, self._cap)
            else:
                raw.resp_body = BodyTee(self._cap)
                raw.resp_body.feed(first)
        if raw.resp_body is not None:
            raw.resp_body.complete = complete
        self._on_end(complete)


class TeeIterator(_Tee):
    """A response body iterable passed through chunk by chunk, never drained or buffered.

    ``on_end(complete)`` runs exactly once: with True when the iterable is exhausted, with False
    when it is closed early or raises (the error name is recorded on ``raw``). ``close()`` is
    always forwarded to the inner iterable.
    """

    __slots__ = ()

    def __iter__(self) -> Iterator[bytes]:
        # A generator resumes in C: cheaper per chunk than a __next__ method raising StopIteration.
        return self._chunks()

    def _chunks(self) -> Iterator[bytes]:
        feed = self._feed
        try:
            for chunk in self._inner:
                feed(chunk)
                yield chunk
        except GeneratorExit:
            raise  # the server stopped early; its close() call ends the event
        except BaseException as exc:
            self._raw.error = type(exc).__name__
            self._end(False)
            raise
        self._end(True)

    def close(self) -> None:
        try:
            close = getattr(self._inner, "close", None)
            if close is not None:
                close()
        finally:
            self._end(False)


class SizedTeeIterator(TeeIterator):
    # Servers look at len() of a list/tuple response to set Content-Length; keep that visible.
    __slots__ = ()

    def __len__(self) -> int:
        return len(self._inner)


class AsyncTeeIterator(_Tee):
    """The async twin of :class:`TeeIterator`, for async streaming responses (Django ASGI)."""

    __slots__ = ("_iter",)

    def __init__(
        self, inner: AsyncIterable[bytes], raw: RawCall, on_end: Callable[[bool], None], cap: int | None = None
    ) -> None:
        super().__init__(inner, raw, on_end, cap)
        self._iter: AsyncIterator[bytes] | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self._iter is None:
            self._iter = aiter(self._inner)
        try:
            chunk = await anext(self._iter)
        except StopAsyncIteration:
            self._end(True)
            raise
        except BaseException as exc:
            self._raw.error = type(exc).__name__
            self._end(False)
            raise
        self._feed(chunk)
        return chunk

    async def aclose(self) -> None:
        try:
            aclose = getattr(self._inner, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            self._end(False)

    def close(self) -> None:
        # Django calls close() on a streaming response when the server is done with it, even
        # when the client left before the first chunk: the event still ends.
        self._end(False)
