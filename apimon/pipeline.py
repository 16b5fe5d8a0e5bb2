"""What the flusher does with a batch: build each event, run ``mask_event``, encode, hand to sinks.

Every event that enters :meth:`Pipeline.handle` ends in exactly one counter per sink: delivered
(``stored``/``sent``) or one loss reason (docs/delivery.md#counters).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from apimon._guard import log_once, logger
from apimon.bodies import MAX_JSON_DEPTH, depth_exceeds
from apimon.config import Config
from apimon.counters import Counters
from apimon.event import build_event
from apimon.record import RawCall
from apimon.sinks import Item, Sink, count_outcome, sink_raised

# Moesif rejects events over 1 MB; bodies are the only part that can be dropped to fit.
MAX_EVENT_BYTES = 1_000_000


class Pipeline:
    """Turns raw calls into encoded :class:`~apimon.sinks.Item` batches for every sink."""

    def __init__(self, config: Config, counters: Counters, sinks: Sequence[Sink]) -> None:
        self.config = config
        self.counters = counters
        self.sinks = list(sinks)
        # Called after each batch reached the sinks (the durable outbox wakes its shippers).
        self.after_batch: list[Callable[[], None]] = []

    def prepare(self, entry: Any) -> Any:
        """The flusher's per-item step: a raw call becomes its encoded :class:`Item` (None when it
        is dropped, counted here); user and company updates pass through."""
        if isinstance(entry, RawCall):
            return self._prepare(entry)
        return entry

    def handle(self, batch: list[Any]) -> None:
        """Deliver a batch of prepared items (raw calls are prepared here first) to every sink."""
        items: list[Item] = []
        profiles: dict[str, list[dict[str, Any]]] = {}
        for entry in batch:
            if isinstance(entry, Item):
                items.append(entry)
            elif isinstance(entry, RawCall):
                item = self._prepare(entry)
                if item is not None:
                    items.append(item)
            else:
                kind, payload = entry
                profiles.setdefault(kind, []).append(payload)
        for kind, payloads in profiles.items():
            self._send_profiles(kind, payloads)
        if not items:
            return
        for sink in self.sinks:
            for chunk in _split_by_bytes(items, self.config.max_batch_bytes):
                try:
                    outcome = sink.send(chunk)
                except Exception:
                    sink_raised(self.counters, sink.name, len(chunk))
                    continue
                count_outcome(self.counters, sink.counter, outcome)
        for callback in self.after_batch:
            callback()
        if self.config.debug:
            logger.debug("apimon: handled %d events for %d sinks", len(items), len(self.sinks))

    def _send_profiles(self, kind: str, payloads: list[dict[str, Any]]) -> None:
        for sink in self.sinks:
            try:
                sink.send_profiles(kind, payloads)
            except Exception:
                self.counters.incr("internal_errors")
                log_once(
                    f"profiles-{sink.name}", "apimon: the %s sink failed on %s updates", sink.name, kind, exc_info=True
                )

    def _prepare(self, raw: RawCall) -> Item | None:
        event = self._event(raw, check_depth=False)
        if event is None:
            return None
        try:
            encoded = self._encode(event, retry_deep=True)
        except _TooDeep:
            # A JSON body nested deeper than orjson encodes (rare, and only built cheaply because
            # depth is not checked first): build again with the check, which keeps it as text.
            # mask_event then sees this call twice.
            event = self._event(raw, check_depth=True)
            if event is None:
                return None
            encoded = self._encode(event, retry_deep=False)
        if encoded is None:
            return None
        event, data = encoded
        user_id = event.get("user_id")
        company_id = event.get("company_id")
        # Positional, in field order: keyword arguments to a 13-field dataclass cost ~0.6 us more
        # per event (the names are matched one by one), and this runs for every call.
        return Item(
            # The parsed event is not kept: items wait for a full batch, and a hundred events' dicts
            # held that long survive the collector's young generations, so the host's own requests
            # pay for extra collections (Django /echo on gunicorn: 424 -> 127 young collections
            # per 25k requests, bare 104). No sink reads it on the live path: the remote sinks'
            # queue keeps JSON only, the store writes the JSON; ``Item.event`` parses it if asked.
            None,  # cached
            data,
            str(event.get("transaction_id", "")),
            raw.start,  # ts
            # duration_ms to the microsecond: round() to an int is ~0.15 us cheaper than round(x, 3).
            max(0, round((raw.end - raw.start) * 1_000_000)) / 1000,
            raw.method.upper(),  # verb
            raw.raw_path,  # path
            raw.route,
            raw.status or 500,
            user_id if isinstance(user_id, str) else None,
            company_id if isinstance(company_id, str) else None,
            raw.request_bytes,
            raw.response_bytes,
            event["request"].get("ip_address") if isinstance(event.get("request"), dict) else None,
            raw.direction,
        )

    def _event(self, raw: RawCall, check_depth: bool) -> dict[str, Any] | None:
        """The call's event after ``mask_event``; None when it is dropped (counted here)."""
        config = self.config
        try:
            raw.resolve()
            raw.settle_bodies(config.max_body_bytes)
            event = build_event(raw, config, check_depth)
        except Exception:
            self._lose("dropped_error", "build", "apimon: building an event failed; it was dropped")
            return None
        if config.mask_event is None:
            return event
        try:
            masked = config.mask_event(event)
        except Exception:
            self.counters.incr("hook_errors")
            self._lose("dropped_by_mask", "hook-mask_event", "apimon: mask_event raised; the event was dropped")
            return None
        if masked is None:
            self.counters.incr("dropped_by_mask")
            return None
        if not isinstance(masked, dict):
            self.counters.incr("hook_errors")
            self._lose(
                "dropped_by_mask",
                "hook-mask_event-type",
                "apimon: mask_event must return a dict or None; the event was dropped",
            )
            return None
        return masked

    def _encode(self, event: dict[str, Any], retry_deep: bool) -> tuple[dict[str, Any], bytes] | None:
        """The event and its JSON; sinks that transform the event see exactly what was encoded.
        Raises ``_TooDeep`` when ``retry_deep`` and a body is nested too deep to encode."""
        try:
            data = orjson.dumps(event)
        except (TypeError, orjson.JSONEncodeError):
            if retry_deep and _body_too_deep(event):
                raise _TooDeep from None
            # A hook put something orjson cannot encode; fall back to str() for it.
            try:
                data = orjson.dumps(event, default=str, option=orjson.OPT_NON_STR_KEYS)
                event = orjson.loads(data)
            except (TypeError, orjson.JSONEncodeError):
                self._lose("dropped_error", "encode", "apimon: an event could not be encoded as JSON; it was dropped")
                return None
        if len(data) <= MAX_EVENT_BYTES:
            return event, _exact(data)
        # Too large for the collectors: drop the bodies and say so, then give up if still too large.
        truncated: dict[str, Any] = {}
        for part in ("request", "response"):
            section = event.get(part)
            if isinstance(section, dict) and "body" in section:
                section.pop("body")
                section.pop("transfer_encoding", None)
                truncated[f"{part}.body"] = None
        if truncated:
            metadata = event.setdefault("metadata", {})
            if isinstance(metadata, dict):
                marker = metadata.setdefault("apimon", {})
                if isinstance(marker, dict):
                    marker.setdefault("truncated", {}).update(truncated)
            data = orjson.dumps(event, default=str, option=orjson.OPT_NON_STR_KEYS)
            if len(data) <= MAX_EVENT_BYTES:
                return event, _exact(data)
        self.counters.incr("dropped_too_large")
        log_once("too-large", "apimon: an event over %d bytes was dropped", MAX_EVENT_BYTES)
        return None

    def _lose(self, reason: str, kind: str, message: str) -> None:
        self.counters.incr(reason)
        if reason == "dropped_error":
            self.counters.incr("internal_errors")
        log_once(kind, message, exc_info=True, level=logging.ERROR if reason == "dropped_error" else logging.WARNING)


def _exact(data: bytes) -> bytes:
    """A copy of orjson's output in a block of its own length. orjson (3.13) returns bytes in
    the buffer it grew while encoding, never shrunk: an 800-byte event keeps ~8 KB resident
    (100,000 of them: +780 MB RSS, against +83 MB for exact copies), and the encoded events are
    what waits in the batches and the senders' backlogs. Large ones too: glibc raises its mmap
    threshold as blocks are freed, and then a 10x buffer lives in the heap. The copy is a
    memcpy of what the encoder just wrote (~0.1 us a KB).
    """
    return bytes(memoryview(data))


class _TooDeep(Exception):
    """A body of the event is nested deeper than orjson encodes: build it again, checking depth."""


def _body_too_deep(event: dict[str, Any]) -> bool:
    for part in ("request", "response"):
        section = event.get(part)
        if isinstance(section, dict) and depth_exceeds(section.get("body"), MAX_JSON_DEPTH):
            return True
    return False


def _split_by_bytes(items: list[Item], max_bytes: int) -> list[list[Item]]:
    chunks: list[list[Item]] = []
    current: list[Item] = []
    size = 0
    for item in items:
        n = len(item.data) + 1
        if current and size + n > max_bytes:
            chunks.append(current)
            current, size = [], 0
        current.append(item)
        size += n
    if current:
        chunks.append(current)
    return chunks
