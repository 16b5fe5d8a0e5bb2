"""The MoEngage sink (docs/delivery.md#moengage): API calls as ``API Call`` events of their user, one Create
Event request per customer per batch (or Bulk Import), Track User for ``update_user``, bodies
under 100 KB, paced under the per-minute limits."""

from __future__ import annotations

import base64
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import orjson

from apimon._guard import log_once
from apimon.config import Config
from apimon.sinks import Item, Outcome, Part, Sink, send_parts
from apimon.transport import Gate, Response, RetryPolicy, Transport, send_with_retries

MAX_BODY = 100 * 1024  # MoEngage's API reference allows 128 KB; its public docs say 100 KB
MAX_ATTRIBUTES = 100
MAX_VALUE_CHARS = 512
_CORE = (
    "direction",
    "verb",
    "uri",
    "path",
    "route",
    "status",
    "duration_ms",
    "ip_address",
    "api_version",
    "request_bytes",
    "response_bytes",
    "company_id",
    "session_token",
    "transaction_id",
)


def moengage_time(ts: float) -> str:
    """The seed's datetime format, ``YYYY-MM-DDTHH:mm:ssZ`` (seconds, no fraction)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(ts)))


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}_{k}" if prefix else str(k), v, out)
    elif isinstance(value, list):
        out[prefix] = orjson.dumps(value, default=str).decode()
    elif value is not None:
        out[prefix] = value


def attributes(item: Item) -> dict[str, Any]:
    """Flat event attributes: strings, numbers, booleans; no ``moe_`` keys; at most 100."""
    event = item.event
    request = event.get("request") or {}
    raw: dict[str, Any] = {
        "direction": item.direction,  # "Outgoing": a call the app made (apimon.outgoing)
        "verb": item.verb,
        "uri": request.get("uri"),
        "path": item.path,
        "route": item.route,
        "status": item.status,
        "duration_ms": item.duration_ms,
        "ip_address": request.get("ip_address"),
        "api_version": request.get("api_version"),
        "request_bytes": item.request_bytes,
        "response_bytes": item.response_bytes,
        "company_id": item.company_id,
        "session_token": event.get("session_token"),
        "transaction_id": item.transaction_id,
    }
    metadata = event.get("metadata")
    if isinstance(metadata, dict):
        extra: dict[str, Any] = {}
        _flatten("", {k: v for k, v in metadata.items() if k != "apimon"}, extra)
        for key, value in extra.items():
            raw.setdefault(key, value)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None or len(out) >= MAX_ATTRIBUTES:
            continue
        if key.startswith("moe_"):
            key = "attr_" + key  # the prefix is MoEngage's own
        if not isinstance(value, str | int | float | bool):
            value = str(value)
        if isinstance(value, str):
            value = value[:MAX_VALUE_CHARS]
        out[key] = value
    return out


class Pacer:
    """At most ``limit`` units in any ``window`` seconds (a sliding-window log, so MoEngage's fixed
    per-minute windows can never see more than the limit), waits interruptible by ``stop``.

    Also honours the collector's own ``x-ratelimit-remaining`` / ``x-ratelimit-reset``: when it
    says the window is spent, nothing is sent until it resets.
    """

    def __init__(self, limit: int, window: float, stop: threading.Event) -> None:
        self.limit = limit
        self.window = window
        self.stop = stop
        self.sent: deque[tuple[float, int]] = deque()
        self.total = 0
        self.remaining: int | None = None
        self.reset_at = 0.0
        # Several requests are in flight at once: the log is read and written under this lock,
        # and every wait happens outside it.
        self._lock = threading.Lock()

    def acquire(self, n: int) -> bool:
        """Wait until ``n`` units may be sent; False if shutdown interrupted the wait."""
        n = min(n, self.limit)
        while True:
            wait = self._try(n)
            if wait is None:
                return True
            if self.stop.wait(wait):
                return False

    def _try(self, n: int) -> float | None:
        """Take ``n`` units now (None), or say how long to wait before trying again."""
        with self._lock:
            now = time.monotonic()
            if self.remaining is not None and self.remaining < n:
                if now < self.reset_at:
                    return self.reset_at - now
                self.remaining = None
            while self.sent and self.sent[0][0] <= now - self.window:
                self.total -= self.sent.popleft()[1]
            if self.total + n <= self.limit:
                self.sent.append((now, n))
                self.total += n
                if self.remaining is not None:
                    self.remaining -= n
                return None
            return self.sent[0][0] + self.window - now

    def observe(self, response: Response) -> None:
        remaining, reset = response.headers.get("x-ratelimit-remaining"), response.headers.get("x-ratelimit-reset")
        try:
            if remaining is not None and reset is not None:
                self.remaining = int(remaining)
                self.reset_at = time.monotonic() + float(reset)
        except ValueError:
            pass


class MoEngageSink(Sink):
    """Delivers API calls and user profiles to MoEngage's Data API; its requests run on the
    sender's threads, several at a time, all paced by the same per-minute limits."""

    name = "moengage"
    counter = "sent"

    def __init__(self, config: Config, stop: threading.Event) -> None:
        assert config.moengage_workspace_id and config.moengage_api_key
        self.config = config
        self.stop = stop
        self.workspace = config.moengage_workspace_id
        token = base64.b64encode(f"{self.workspace}:{config.moengage_api_key}".encode()).decode()
        self.transport = Transport(
            config.moengage_url,
            {
                "Authorization": f"Basic {token}",
                "MOE-APPKEY": self.workspace,
                "Content-Type": "application/json",
            },
        )
        # The seed: "retry every 2 seconds for a maximum of 5 times".
        self.policy = RetryPolicy(attempts=5, fixed=2.0, deadline=min(60.0, config.retry_deadline))
        self.gate = Gate(stop)
        window = config.moengage_rate_window
        self.events_pacer = Pacer(config.moengage_events_per_minute, window, stop)
        self.users_pacer = Pacer(config.moengage_users_per_minute, window, stop)

    def send(self, batch: Sequence[Item]) -> Outcome:
        return send_parts(self, batch)

    def plan(self, batch: Sequence[Item]) -> tuple[Outcome, list[Part]]:
        """One Create Event request per customer (split under 100 KB), or Bulk Import requests
        of many customers; each an independent part. Calls without a user are left out (counted)."""
        outcome = Outcome()
        by_customer: dict[str, list[dict[str, Any]]] = {}
        for item in batch:
            if not item.user_id:
                outcome.no_user += 1
                continue
            by_customer.setdefault(item.user_id, []).append(
                {
                    "action": self.config.moengage_event_name,
                    "attributes": attributes(item),
                    "platform": "web",
                    "current_time": moengage_time(item.ts),
                    "user_timezone_offset": 0,
                }
            )
        limit = self.events_pacer.limit
        parts: list[Part] = []
        if self.config.moengage_bulk:
            elements = []
            for customer, actions in by_customer.items():
                for run in _split(actions, lambda acts, c=customer: _event_body(c, acts), limit):
                    elements.append(({"type": "event", "customer_id": customer, "actions": run}, len(run)))
            for group in _split(elements, lambda els: _bulk_body([e for e, _ in els])):
                body = _bulk_body([e for e, _ in group])
                parts.append(self._part(f"/v1/transition/{self.workspace}", body, sum(n for _, n in group)))
        else:
            for customer, actions in by_customer.items():
                for run in _split(actions, lambda acts, c=customer: _event_body(c, acts), limit):
                    parts.append(self._part(f"/v1/event/{self.workspace}", _event_body(customer, run), len(run)))
        return outcome, parts

    def _part(self, path: str, body: bytes, count: int) -> Part:
        return lambda: self._post(path, body, count, self.events_pacer)

    def _post(self, path: str, body: bytes, count: int, pacer: Pacer) -> Outcome:
        outcome = Outcome()
        if not pacer.acquire(count):
            outcome.failed += count
            return outcome

        def attempt() -> Response:
            response = self.transport.request("POST", path, body)
            pacer.observe(response)
            return response

        result = send_with_retries(attempt, self.policy, self.stop, self.gate)
        outcome.retried += result.retries
        outcome.rtt, outcome.pushed_back = result.rtt, result.pushed_back
        response = result.response
        failed_body = (
            response is not None and response.status < 300 and b'"fail"' in response.body and _is_fail(response.body)
        )
        if response is not None and response.status < 300 and not failed_body:
            outcome.delivered += count
            return outcome
        outcome.failed += count
        if response is None:
            detail = f"MoEngage could not be reached ({result.error})"
        elif response.status == 401:
            detail = "MoEngage rejected the workspace id or API key (401)"
        else:
            detail = f"MoEngage answered {response.status}: {response.body[:200].decode('utf-8', 'replace')}"
        log_once(
            f"moengage-{path.split('/')[2]}-{response.status if response else None}",
            "apimon: %s; not delivered and counted as failed",
            detail,
        )
        return outcome

    def send_profiles(self, kind: str, payloads: Sequence[dict[str, Any]]) -> Outcome:
        outcome = Outcome()
        if kind != "user":
            return outcome  # MoEngage has no company profiles
        for p in payloads:
            attrs: dict[str, Any] = {}
            _flatten("", p.get("metadata") or {}, attrs)
            for key in ("ip_address", "user_agent_string"):
                if p.get(key):
                    attrs[key] = p[key]
            attrs = {("attr_" + k if k.startswith("moe_") else k): v for k, v in attrs.items()}
            body = orjson.dumps({"type": "customer", "customer_id": p["user_id"], "attributes": attrs}, default=str)
            outcome.add(self._post(f"/v1/customer/{self.workspace}", body, 1, self.users_pacer))
        return outcome

    def close(self) -> None:
        self.transport.close()

    def after_fork(self) -> None:
        self.transport.after_fork()


def _is_fail(body: bytes) -> bool:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(parsed, dict) and parsed.get("status") == "fail"


def _event_body(customer: str, actions: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"type": "event", "customer_id": customer, "actions": actions})


def _bulk_body(elements: list[Any]) -> bytes:
    return orjson.dumps({"type": "transition", "elements": elements})


def _split(items: list[Any], encode: Any, max_count: int | None = None) -> list[list[Any]]:
    """Pack ``items`` greedily into runs of at most ``max_count`` whose encoded body stays under
    MAX_BODY. Each item is encoded once to measure it; a run's envelope is measured empty."""
    envelope = len(encode([]))
    runs: list[list[Any]] = []
    run: list[Any] = []
    size = envelope
    for item in items:
        n = len(encode([item])) - envelope + 1
        if run and (size + n > MAX_BODY or (max_count is not None and len(run) >= max_count)):
            runs.append(run)
            run, size = [], envelope
        run.append(item)
        size += n
    if run:
        runs.append(run)
    return runs
