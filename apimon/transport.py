"""HTTP for the remote sinks: one pooled urllib3 client per sink, and our own retry loop.

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

import urllib3

from apimon._version import __version__

USER_AGENT = f"apimon/{__version__}"
PERMANENT = frozenset({400, 401, 403, 404, 405, 406, 409, 410, 415})


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


class NetworkError(Exception):
    """The request never got an HTTP answer (refused, reset, timed out)."""


class Transport:
    """A keep-alive connection pool to one base URL. TLS is always verified: there is no switch.

    One urllib3 connection pool for the one host, not a PoolManager: a POST costs ~440 us of CPU
    instead of ~570 (100-event batches to a local collector), CPU the host app gets back.
    Used only from its sink's worker thread.
    """

    def __init__(
        self, base_url: str, headers: Mapping[str, str], connect_timeout: float = 5.0, read_timeout: float = 15.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"User-Agent": USER_AGENT, **headers}
        self._timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        self._prefix = (urllib3.util.parse_url(self.base_url).path or "").rstrip("/")
        self._pool = self._new_pool()

    def _new_pool(self) -> urllib3.HTTPConnectionPool:
        if self.base_url.lower().startswith("https:"):
            return urllib3.connection_from_url(
                self.base_url, maxsize=2, retries=False, timeout=self._timeout, cert_reqs="CERT_REQUIRED"
            )
        return urllib3.connection_from_url(self.base_url, maxsize=2, retries=False, timeout=self._timeout)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> Response:
        try:
            r = self._pool.urlopen(
                method,
                self._prefix + path,
                body=body,
                headers={**self.headers, **(headers or {})},
                preload_content=True,
                redirect=False,
                assert_same_host=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise NetworkError(type(exc).__name__) from exc
        return Response(r.status, {k.lower(): v for k, v in r.headers.items()}, r.data or b"")

    def after_fork(self) -> None:
        # Sockets inherited from the parent must not be shared: start a new pool, close nothing.
        self._pool = self._new_pool()

    def close(self) -> None:
        self._pool.close()


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
