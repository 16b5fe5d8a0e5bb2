"""HTTP for the remote sinks: keep-alive connections (one per batch in flight), and our own retry loop.

urllib3's ``Retry`` never retries a POST on a status, so the loop is ours (docs/delivery.md#failures):
exponential backoff with full jitter for 5xx and network errors, ``Retry-After`` or
``x-ratelimit-reset`` as the wait for a 429, an overall deadline, and every wait interruptible
by shutdown.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from http.client import HTTPException, RemoteDisconnected

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection

from apimon._version import __version__
from apimon.compress import decode_content
from apimon.outgoing import _internal

USER_AGENT = f"apimon/{__version__}"
PERMANENT = frozenset({400, 401, 403, 404, 405, 406, 409, 410, 415})
#: Seconds a connection may sit unused before it is checked for a close by the server.
IDLE_CHECK = 1.0


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes
    elapsed: float = 0.0  # seconds from sending the request to the last byte of the answer


class NetworkError(Exception):
    """The request never got an HTTP answer (refused, reset, timed out)."""


class TooLarge(NetworkError):
    """The answer's body (as sent, or once decoded) is longer than the caller allows."""


class _Stale(Exception):
    """A kept connection turned out closed before any answer: try a new one."""


# What a connection the server closed while it sat idle raises on its next use.
_STALE = (BrokenPipeError, ConnectionResetError, RemoteDisconnected, urllib3.exceptions.ProtocolError)


class Transport:
    """Keep-alive connections to one base URL, one per request in flight: a sink's sender threads
    each take an idle connection (or open one), use it for one request and put it back. TLS is
    always verified: there is no switch.

    urllib3's connection classes without its pool: a POST of a 100-event batch to a local
    collector costs ~164 us of CPU instead of ~197, and seven syscalls instead of nine (the pool
    polls the socket before every use); each syscall is a chance for the host's threads to take the
    GIL, which this thread must then wait to take back. The pool's check for a connection the
    server closed is made here only after the connection sat idle (:data:`IDLE_CHECK` seconds):
    servers close idle keep-alive connections, not busy ones. Idle connections are a list used as
    a stack (``pop``/``append`` are atomic under the GIL): the most recently used one is reused
    first, so a light load keeps one connection warm and lets the others idle out.
    """

    def __init__(
        self, base_url: str, headers: Mapping[str, str], connect_timeout: float = 5.0, read_timeout: float = 15.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"User-Agent": USER_AGENT, **headers}
        url = urllib3.util.parse_url(self.base_url)
        self._https = (url.scheme or "http").lower() == "https"
        self._host = url.host or "localhost"
        self._port = url.port or (443 if self._https else 80)
        self._prefix = (url.path or "").rstrip("/")
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        # (connection, time.monotonic() of its last answer), most recently used last.
        self._idle: list[tuple[HTTPConnection, float]] = []
        self._closed = False

    def _connection(self, reuse: bool) -> tuple[HTTPConnection, bool]:
        """A connection for one request, and whether it was kept from an earlier one."""
        idle = self._idle
        while reuse and idle:
            try:
                conn, used = idle.pop()
            except IndexError:  # another thread took the last one
                break
            if conn.sock is not None and (time.monotonic() - used < IDLE_CHECK or conn.is_connected):
                return conn, True
            conn.close()
        if self._https:
            conn = HTTPSConnection(self._host, self._port, timeout=self._connect_timeout, cert_reqs="CERT_REQUIRED")
        else:
            conn = HTTPConnection(self._host, self._port, timeout=self._connect_timeout)
        conn.connect()
        # From here on every send and receive waits at most the read timeout.
        conn.timeout = self._read_timeout
        return conn, False

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        max_body: int | None = None,
    ) -> Response:
        """One request; ``max_body``: the longest answer body read (sent and decoded), past which
        :class:`TooLarge` is raised and the connection dropped (a collector's answer that is read
        whole, such as the rules, cannot take the host's memory)."""
        # apimon's own HTTP is never recorded as an outgoing call (apimon.outgoing).
        mark = _internal.__dict__
        previous = mark.get("active", False)
        mark["active"] = True
        try:
            return self._request(method, path, body, headers, True, max_body)
        except _Stale:
            # A kept connection the server had closed (the race IDLE_CHECK leaves open): once
            # more on a new one, as urllib3's pool and OTel's exporter do.
            return self._request(method, path, body, headers, False, max_body)
        finally:
            mark["active"] = previous

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: Mapping[str, str] | None,
        reuse: bool,
        max_body: int | None,
    ) -> Response:
        conn: HTTPConnection | None = None
        reused = False
        started = time.monotonic()
        try:
            conn, reused = self._connection(reuse)
            bounded = max_body is not None
            conn.request(
                method,
                self._prefix + path,
                body=body,
                headers={**self.headers, **(headers or {})},
                preload_content=not bounded,
                decode_content=not bounded,
            )
            r = conn.getresponse()
            data = r.data if max_body is None else _read_bounded(r, max_body)
        except TooLarge:
            if conn is not None:
                conn.close()
            raise
        except (OSError, HTTPException, urllib3.exceptions.HTTPError) as exc:
            # Whatever state the connection is in, it is not reused.
            if conn is not None:
                conn.close()
            if reused and isinstance(exc, _STALE):
                raise _Stale from exc
            raise NetworkError(type(exc).__name__) from exc
        now = time.monotonic()
        if self._closed or r.headers.get("connection", "").lower() == "close":
            conn.close()
        else:
            self._idle.append((conn, now))
        return Response(r.status, {k.lower(): v for k, v in r.headers.items()}, data or b"", now - started)

    def after_fork(self) -> None:
        # The sockets inherited from the parent are the parent's: forget them, close nothing.
        self._idle = []

    def close(self) -> None:
        """Close the idle connections; one in use is closed when its request ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()


def _read_bounded(r: urllib3.BaseHTTPResponse, cap: int) -> bytes:
    """At most ``cap`` bytes of body, sent and decoded (gzip and deflate decoded here, bounded:
    a small compressed answer can decode to gigabytes)."""
    chunks, size = [], 0
    while size <= cap:
        chunk = r.read(min(65536, cap + 1 - size), decode_content=False)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > cap:
        raise TooLarge(f"an answer of more than {cap} bytes")
    data = b"".join(chunks)
    encoding = r.headers.get("content-encoding")
    if encoding:
        decoded = decode_content(data, encoding, cap)
        if decoded is None:
            raise NetworkError(f"an answer in an encoding that cannot be decoded ({encoding})")
        if len(decoded) > cap:
            raise TooLarge(f"an answer of more than {cap} bytes once decoded")
        data = decoded
    return data


def wait_seconds(response: Response, cap: float = 120.0) -> float | None:
    """How long a 429 asks us to wait: ``Retry-After`` (seconds or HTTP date) or ``x-ratelimit-reset``."""
    for name in ("retry-after", "x-ratelimit-reset"):
        value = response.headers.get(name)
        if not value:
            continue
        try:
            return min(cap, max(0.0, float(value)))
        except ValueError:
            pass
        try:
            return min(cap, max(0.0, parsedate_to_datetime(value).timestamp() - time.time()))
        except (TypeError, ValueError):
            continue
    return None


@dataclass
class RetryPolicy:
    """``fixed`` set: retry every ``fixed`` seconds (MoEngage's seed: every 2 s, 5 times)."""

    attempts: int = 5
    base: float = 0.5
    cap: float = 30.0
    deadline: float = 120.0
    fixed: float | None = None


@dataclass
class Attempted:
    response: Response | None
    error: str | None
    retries: int
    rtt: float = 0.0  # the longest answer time of the attempts
    pushed_back: bool = False  # a 429, a 5xx or a network error on the way


class Gate:
    """A pause shared by one sink's requests in flight: a 429's ``Retry-After`` holds them all,
    not only the request that got it (the others would only collect 429s of their own)."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.until = 0.0

    def hold(self, seconds: float) -> None:
        self.until = max(self.until, time.monotonic() + seconds)

    def wait(self, deadline: float) -> bool:
        """Wait out a hold; False when shutdown interrupted it or it ends after ``deadline``."""
        delay = self.until - time.monotonic()
        if delay <= 0:
            return True
        if time.monotonic() + delay > deadline:
            return False
        return not self.stop.wait(delay)


def send_with_retries(
    attempt: Callable[[], Response], policy: RetryPolicy, stop: threading.Event, gate: Gate | None = None
) -> Attempted:
    """Call ``attempt`` until it gets a final answer, retries run out, the deadline passes or
    ``stop`` is set. Final answers: 2xx, 413 (the caller splits) and the permanent 4xx codes."""
    deadline = time.monotonic() + policy.deadline
    retries = 0
    rtt = 0.0
    pushed_back = False
    last: Response | None = None
    error: str | None = None
    for n in range(policy.attempts + 1):
        if gate is not None and not gate.wait(deadline):
            break
        try:
            last, error = attempt(), None
            rtt = max(rtt, last.elapsed)
        except NetworkError as exc:
            last, error = None, str(exc)
        if last is not None and (last.status < 300 or last.status == 413 or last.status in PERMANENT):
            return Attempted(last, None, retries, rtt, pushed_back)
        pushed_back = True
        if n == policy.attempts:
            break
        if last is not None and last.status == 429:
            delay = wait_seconds(last)
            if delay is None:
                delay = policy.fixed or min(policy.cap, policy.base * 2**n)
            elif gate is not None:
                gate.hold(delay)
        elif policy.fixed is not None:
            delay = policy.fixed
        else:
            delay = random.uniform(0, min(policy.cap, policy.base * 2**n))  # full jitter
        if time.monotonic() + delay > deadline or stop.wait(delay):
            break
        retries += 1
    return Attempted(last, error, retries, rtt, pushed_back)
