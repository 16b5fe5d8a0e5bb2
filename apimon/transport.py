"""HTTP for the remote sinks: one urllib3 keep-alive connection per sink, and our own retry loop.

urllib3's ``Retry`` never retries a POST on a status, so the loop is ours (CONTRACT 3.3):
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
from http.client import HTTPException

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection

from apimon._version import __version__

USER_AGENT = f"apimon/{__version__}"
PERMANENT = frozenset({400, 401, 403, 404, 405, 406, 409, 410, 415})
#: Seconds a connection may sit unused before it is checked for a close by the server.
IDLE_CHECK = 1.0


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


class NetworkError(Exception):
    """The request never got an HTTP answer (refused, reset, timed out)."""


class Transport:
    """One keep-alive connection to one base URL, for one sink's worker thread. TLS is always
    verified: there is no switch.

    urllib3's connection classes without its pool: a POST of a 100-event batch to a local
    collector costs ~164 us of CPU instead of ~197, and seven syscalls instead of nine (the pool
    polls the socket before every use); each syscall is a chance for the host's threads to take
    the GIL, which this thread must then wait to take back. The pool's check for a connection the
    server closed is made here only after the connection sat idle (:data:`IDLE_CHECK` seconds):
    servers close idle keep-alive connections, not busy ones.
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
        self._conn: HTTPConnection | None = None
        self._used = 0.0  # time.monotonic() of the last answer on the connection

    def _connection(self) -> HTTPConnection:
        conn = self._conn
        if conn is not None and conn.sock is not None:
            if time.monotonic() - self._used < IDLE_CHECK or conn.is_connected:
                return conn
        self._drop()
        if self._https:
            conn = HTTPSConnection(self._host, self._port, timeout=self._connect_timeout, cert_reqs="CERT_REQUIRED")
        else:
            conn = HTTPConnection(self._host, self._port, timeout=self._connect_timeout)
        conn.connect()
        # From here on every send and receive waits at most the read timeout.
        conn.timeout = self._read_timeout
        self._conn = conn
        return conn

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> Response:
        try:
            conn = self._connection()
            conn.request(method, self._prefix + path, body=body, headers={**self.headers, **(headers or {})})
            r = conn.getresponse()
            data = r.data
        except (OSError, HTTPException, urllib3.exceptions.HTTPError) as exc:
            # Whatever state the connection is in, it is not reused.
            self._drop()
            raise NetworkError(type(exc).__name__) from exc
        self._used = time.monotonic()
        return Response(r.status, {k.lower(): v for k, v in r.headers.items()}, data or b"")

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def after_fork(self) -> None:
        # The socket inherited from the parent is the parent's: forget it, close nothing.
        self._conn = None

    def close(self) -> None:
        self._drop()


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


def send_with_retries(attempt: Callable[[], Response], policy: RetryPolicy, stop: threading.Event) -> Attempted:
    """Call ``attempt`` until it gets a final answer, retries run out, the deadline passes or
    ``stop`` is set. Final answers: 2xx, 413 (the caller splits) and the permanent 4xx codes."""
    deadline = time.monotonic() + policy.deadline
    retries = 0
    last: Response | None = None
    error: str | None = None
    for n in range(policy.attempts + 1):
        try:
            last, error = attempt(), None
        except NetworkError as exc:
            last, error = None, str(exc)
        if last is not None and (last.status < 300 or last.status == 413 or last.status in PERMANENT):
            return Attempted(last, None, retries)
        if n == policy.attempts:
            break
        if last is not None and last.status == 429:
            delay = wait_seconds(last)
            if delay is None:
                delay = policy.fixed or min(policy.cap, policy.base * 2**n)
        elif policy.fixed is not None:
            delay = policy.fixed
        else:
            delay = random.uniform(0, min(policy.cap, policy.base * 2**n))  # full jitter
        if time.monotonic() + delay > deadline or stop.wait(delay):
            break
        retries += 1
    return Attempted(last, error, retries)
