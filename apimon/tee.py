"""Tees: pass a body through untouched while keeping the first ``cap`` bytes of it.

:class:`BodyTee` is what a tee keeps; :class:`TeeReader` feeds it from the request body stream
the app reads, :class:`TeeIterator` (and its async twin) from the response iterable the server
iterates. Neither ever drains or buffers a whole body, so streaming and server-sent events keep
their timing.

A response tee ends its call exactly once: when the body is exhausted, when the server closes it,
or, when the server (a test client that never reads the body, a middleware that drops the
iterable) lets it go without either, when it is released: the call is then recorded with the body
as far as it was read and ``incomplete`` saying why, never lost.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from apimon.record import RawCall

#: ``RawCall.incomplete``: why a response ended before its last byte.
CLOSED = "closed"  # the server closed it early (client gone, or it stopped iterating)
RELEASED = "released"  # dropped unread and unclosed (a test client that never reads the body)
UNENDED = "unended"  # ASGI: the app returned without sending the last body message


class BodyTee:
    """Keeps a body that streams through while it stays within ``cap`` bytes, and counts all of it.

    ``feed`` is called with every chunk as the app or the server sees it; nothing is ever held
    beyond ``cap`` bytes, and once the body passes the cap nothing is held at all (such a body is
    left out of the event, only its size is reported), so a 2 GB upload costs no memory.
    ``complete`` says the whole body passed (its size is then the full size).
    """

    __slots__ = ("cap", "chunks", "held", "size", "complete")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.chunks: list[bytes] = []
        self.held = 0
        self.size = 0
        self.complete = False

    def feed(self, chunk: bytes) -> None:
        n = len(chunk)
        size = self.size + n
        self.size = size
        if size > self.cap:
            # Over the cap the body is left out of the event (docs/events.md#bodies): hold nothing more,
            # and let go of what was held, so a large body costs no copy at all.
            if self.chunks:
                self.chunks = []
                self.held = 0
            return
        if n:
            self.chunks.append(bytes(chunk))
            self.held += n

    @property
    def truncated(self) -> bool:
        return self.size > self.cap

    def data(self) -> bytes:
        return b"".join(self.chunks)


class _StreamWrapper:
    """What the request-stream wrappers share: iteration by lines, and every other attribute the
    wrapped stream's."""

    _stream: Any

    def readline(self, size: int | None = -1) -> bytes:
        raise NotImplementedError

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class TeeReader(_StreamWrapper):
    """Wraps a request body stream (``wsgi.input``, Django's ``request._stream``): the app reads
    exactly what it would read, and the tee keeps a copy of the first ``cap`` bytes."""

    def __init__(self, stream: Any, tee: BodyTee, expected: int | None) -> None:
        self._stream = stream
        self._tee = tee
        self._expected = expected
        #: What :meth:`finish` read of a stream that cannot seek back, for later readers.
        self.drained: bytes | None = None

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

    def finish(self, cap: int) -> None:
        """After the response: read what the app left unread of a known-length body, up to the cap.

        A server would read and discard these bytes anyway to keep the connection alive. A stream
        that can seek (a test client's ``BytesIO``, which Werkzeug's client reuses for a 307/308
        redirect) is put back where the app left it, so nobody can tell it was read.
        """
        tee = self._tee
        if tee.complete or self._expected is None:
            return
        remaining = self._expected - tee.size
        if remaining <= 0 or tee.size + remaining > cap:
            return
        stream = self._stream
        try:
            seekable = getattr(stream, "seekable", None)
            at = stream.tell() if seekable is not None and seekable() else None
            data = stream.read(remaining)
            self._seen(data)
            if at is not None:
                stream.seek(at)
            elif data:
                self.drained = data
        except Exception:
            return

    def stream_after(self) -> Any:
        """The stream to leave for whoever reads the request after the call (a deferred task, a
        test client): the original, or, when :meth:`finish` read from one that cannot seek back,
        a :class:`Replay` that serves those bytes first."""
        return self._stream if self.drained is None else Replay(self.drained, self._stream)


class Replay(_StreamWrapper):
    """A request stream's bytes that apimon read for the event, then the rest of the stream: a
    later reader gets what it would have got had apimon not read them."""

    def __init__(self, data: bytes, stream: Any) -> None:
        self._data = data
        self._at = 0
        self._stream = stream

    def read(self, size: int | None = -1) -> bytes:
        held = self._data[self._at :]
        if size is None or size < 0:
            self._at = len(self._data)
            rest: bytes = self._stream.read()
            return held + rest if rest else held
        part = held[:size]
        self._at += len(part)
        if len(part) == size:
            return part
        more: bytes = self._stream.read(size - len(part))
        return part + more if part else more

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        held = self._data[self._at :]
        unbounded = size is None or size < 0
        if not held:
            line: bytes = self._stream.readline() if unbounded else self._stream.readline(size)
            return line
        limit = len(held) if unbounded else min(size or 0, len(held))
        end = held.find(b"\n", 0, limit) + 1 or limit
        self._at += end
        part = held[:end]
        if part.endswith(b"\n") or end < len(held) or (not unbounded and end == size):
            return part
        # The bytes held ran out inside the line: it goes on in the stream.
        tail: bytes = self._stream.readline() if unbounded else self._stream.readline((size or 0) - end)
        return part + tail

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines


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

    def _end(self, complete: bool, why: str | None = None) -> None:
        if self._done:
            return
        self._done = True
        raw = self._raw
        raw.end = time.time()
        if not complete and why is not None and raw.error is None:
            raw.incomplete = why
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

    def __del__(self) -> None:
        # The normal case costs one attribute test. Otherwise the server let the response go
        # unfinished (never read to its end, never closed): the call still becomes an event.
        if not self._done:
            try:
                self._end(False, RELEASED)
            except Exception:
                pass  # a finalizer must not raise; the call then stays counted as unfinished


class TeeIterator(_Tee):
    """A response body iterable passed through chunk by chunk, never drained or buffered.

    ``on_end(complete)`` runs exactly once: with True when the iterable is exhausted, with False
    when it is closed early, raises (the error name is recorded on ``raw``) or is released
    without either. ``close()`` is always forwarded to the inner iterable.
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
            raise  # the server stopped early; its close() call (or the release) ends the event
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
            self._end(False, CLOSED)


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
            self._end(False, CLOSED)

    def close(self) -> None:
        # Django calls close() on a streaming response when the server is done with it, even
        # when the client left before the first chunk: the event still ends.
        self._end(False, CLOSED)
