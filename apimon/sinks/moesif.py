"""The Moesif sink (docs/delivery.md#moesif): gzip JSON arrays to ``/v1/events/batch``, users and companies
batches, and Moesif's dynamic sampling (the rates :mod:`apimon.sinks.moesif_config` fetches)."""

from __future__ import annotations

import functools
import random
import threading
from collections.abc import Sequence
from typing import Any

import orjson

from apimon._guard import log_once
from apimon.compress import gzip_compress
from apimon.config import Config
from apimon.event import iso_ms
from apimon.sinks import Item, Outcome, Part, Sink, send_parts
from apimon.sinks.moesif_config import MoesifRemoteConfig, Sampling
from apimon.transport import Gate, RetryPolicy, Transport, send_with_retries

MAX_REQUEST_BYTES = 12 * 1024 * 1024  # Moesif's limit for one batch, uncompressed
#: Longest wait of a sender's first batch for Moesif's sampling rates.
FIRST_CONFIG_WAIT = 5.0


class MoesifSink(Sink):
    """Delivers events, users and companies to Moesif; its requests run on the sender's threads,
    several at a time (a shared connection pool, rules refreshed by one thread at a time)."""

    name = "moesif"
    counter = "sent"

    def __init__(self, config: Config, stop: threading.Event, remote: MoesifRemoteConfig | None = None) -> None:
        assert config.moesif_application_id
        self.config = config
        self.stop = stop
        self.transport = Transport(
            config.moesif_base_url,
            {
                "X-Moesif-Application-Id": config.moesif_application_id,
                "Content-Type": "application/json",
            },
        )
        self.policy = RetryPolicy(deadline=config.retry_deadline)
        self.gate = Gate(stop)
        # Moesif's config (sampling) and rules, fetched on a thread of their own; shared with the
        # request path's governance when the client made it, else this sink's own.
        self._owns_remote = remote is None
        self.remote = remote or MoesifRemoteConfig(config)
        self._first_plan = True

    @property
    def sampling(self) -> Sampling:
        return self.remote.sampling

    # -- events -------------------------------------------------------------------------------

    def send(self, batch: Sequence[Item]) -> Outcome:
        return send_parts(self, batch)

    def plan(self, batch: Sequence[Item]) -> tuple[Outcome, list[Part]]:
        """Sampling, then one ``/v1/events/batch`` request per run of at most
        ``max_batch_events`` events and ``max_batch_bytes`` (and Moesif's 12 MB)."""
        self.remote.start()
        if self._first_plan:
            # The first batch waits (off the request path) for Moesif's sampling rates.
            self._first_plan = False
            self.remote.wait_first(FIRST_CONFIG_WAIT)
        outcome = Outcome()
        kept = self._sample(batch, outcome)
        max_events = max(self.config.batch_size, self.config.max_batch_events)
        max_bytes = min(MAX_REQUEST_BYTES, self.config.max_batch_bytes)
        parts: list[Part] = []
        chunk: list[Item] = []
        size = 2
        for item in kept:
            n = len(item.data) + 1
            if chunk and (len(chunk) >= max_events or size + n > max_bytes):
                parts.append(functools.partial(self._post_events, chunk))
                chunk, size = [], 2
            chunk.append(item)
            size += n
        if chunk:
            parts.append(functools.partial(self._post_events, chunk))
        return outcome, parts

    def _sample(self, batch: Sequence[Item], outcome: Outcome) -> list[Item]:
        sampling = self.sampling
        if sampling.keeps_everything:
            return list(batch)
        kept = []
        for item in batch:
            percent = sampling.percent_for(item)
            if percent >= 100:
                kept.append(item)
            elif percent > 0 and random.random() * 100 < percent:
                event = dict(item.event)
                event["weight"] = max(1, int(event.get("weight", 1) * 100 // percent))
                kept.append(Item(**{**_fields(item), "cached": event, "data": orjson.dumps(event)}))
            else:
                outcome.sampled += 1
        return kept

    def _post_events(self, items: list[Item]) -> Outcome:
        outcome = Outcome()
        # Compressed once, before the first attempt: retries resend the same bytes, and the
        # uncompressed array is let go of while the request is in flight.
        body = gzip_compress(_json_array(items))
        result = send_with_retries(lambda: self._post("/v1/events/batch", body), self.policy, self.stop, self.gate)
        outcome.retried += result.retries
        outcome.rtt, outcome.pushed_back = result.rtt, result.pushed_back
        response = result.response
        if response is not None and response.status < 300:
            outcome.delivered += len(items)
            self.remote.etag_seen(response.headers.get("x-moesif-config-etag"))
            return outcome
        if response is not None and response.status == 413 and len(items) > 1:
            half = len(items) // 2
            del body
            outcome.add(self._post_events(items[:half]))
            outcome.add(self._post_events(items[half:]))
            return outcome
        outcome.failed += len(items)
        self._log_failure(
            "events", response.status if response else None, result.error, response.body if response else b""
        )
        return outcome

    def _post(self, path: str, compressed: bytes) -> Any:
        return self.transport.request("POST", path, compressed, {"Content-Encoding": "gzip"})

    # -- users and companies ------------------------------------------------------------------

    def send_profiles(self, kind: str, payloads: Sequence[dict[str, Any]]) -> Outcome:
        path = _PROFILE_PATHS.get(kind)
        if path is None:
            return Outcome()
        items = []
        for p in payloads:
            item = {k: v for k, v in p.items() if v is not None}
            if isinstance(item.get("modified_time"), int | float):
                item["modified_time"] = iso_ms(item["modified_time"])
            items.append(item)
        body = gzip_compress(orjson.dumps(items))
        result = send_with_retries(lambda: self._post(path, body), self.policy, self.stop, self.gate)
        response = result.response
        if response is not None and response.status < 300:
            return Outcome(delivered=len(items), retried=result.retries)
        self._log_failure(
            f"{kind}s", response.status if response else None, result.error, response.body if response else b""
        )
        return Outcome(failed=len(items), retried=result.retries)

    # -- shared -------------------------------------------------------------------------------

    def _log_failure(self, what: str, status: int | None, error: str | None, body: bytes) -> None:
        if status == 401:
            detail = "Moesif rejected the application id (401)"
        elif status is None:
            detail = f"Moesif could not be reached ({error})"
        else:
            detail = f"Moesif answered {status}: {body[:200].decode('utf-8', 'replace')}"
        log_once(f"moesif-{what}-{status}", "apimon: %s; %s not delivered and counted as failed", detail, what)

    def close(self) -> None:
        self.transport.close()
        if self._owns_remote:
            self.remote.close()

    def after_fork(self) -> None:
        self.transport.after_fork()


_PROFILE_PATHS = {
    "user": "/v1/users/batch",
    "company": "/v1/companies/batch",
    "subscription": "/v1/subscriptions/batch",
}


def _json_array(items: list[Item]) -> bytes:
    """The events are already JSON: the batch is their concatenation, not a re-encoding. One
    join of all the pieces, brackets and commas included, copies the ~500 KB of a batch once;
    ``b"[" + b",".join(...) + b"]"`` copied it three times (264 us against 16, 100 5-KB events)."""
    if not items:
        return b"[]"
    parts = [b"["]
    for item in items:
        parts.append(item.data)
        parts.append(b",")
    parts[-1] = b"]"  # in place of the last comma
    return b"".join(parts)


def _fields(item: Item) -> dict[str, Any]:
    return {name: getattr(item, name) for name in Item.__dataclass_fields__}
