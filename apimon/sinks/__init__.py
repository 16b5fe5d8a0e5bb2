"""Destinations behind one small interface. The flusher hands every sink the same encoded batch.

A local sink (the store) is used only from the flusher thread (or the thread running a
synchronous flush), one batch at a time. A remote sink plans a batch into independent requests
(:meth:`Sink.plan`), which its sender (:mod:`apimon.sinks.threaded`) runs several at a time on
threads of its own: what a remote sink shares between requests must be safe across threads.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import orjson


@dataclass(slots=True)
class Item:
    """One encoded event plus the indexed columns the store wants.

    ``data`` is the event's JSON exactly as shipped; :attr:`event` is its parsed form, from
    ``cached`` when the item was made with one (a sink that re-encodes an event, as Moesif's
    sampling does), else parsed from ``data`` on demand. The pipeline makes items without it,
    and a sink that holds items for long calls :meth:`compact`: a backlog of 10,000 events
    then costs their JSON, not their JSON and their dicts.
    """

    cached: dict[str, Any] | None
    data: bytes
    transaction_id: str
    ts: float
    duration_ms: float
    verb: str
    path: str
    route: str | None
    status: int
    user_id: str | None
    company_id: str | None
    request_bytes: int = 0
    response_bytes: int = 0
    ip_address: str | None = None  # for Moesif's regex sampling rules
    direction: str = "Incoming"  # "Outgoing": a call the app made (apimon.outgoing)

    @property
    def event(self) -> dict[str, Any]:
        if self.cached is None:
            value: dict[str, Any] = orjson.loads(self.data)
            return value
        return self.cached

    def compact(self) -> None:
        self.cached = None


@dataclass(slots=True)
class Outcome:
    """What became of a batch: events ``delivered`` and events ``failed`` (not retried further)."""

    delivered: int = 0
    failed: int = 0
    retried: int = 0
    sampled: int = 0  # left out by the destination's own sampling rules
    no_user: int = 0  # MoEngage: calls without a user are not sent
    evicted: int = 0  # durable outbox: undelivered calls dropped past its size bound
    # For the sender's concurrency control: the longest answer time of the requests, and whether
    # the collector pushed back (429, 5xx, a timeout or a refused connection).
    rtt: float = 0.0
    pushed_back: bool = False

    def add(self, other: Outcome) -> Outcome:
        """Fold ``other`` into this outcome (counts add up, ``rtt`` is the longer one)."""
        for f in _COUNTS:
            setattr(self, f, getattr(self, f) + getattr(other, f))
        self.rtt = max(self.rtt, other.rtt)
        self.pushed_back = self.pushed_back or other.pushed_back
        return self


_COUNTS = tuple(f.name for f in fields(Outcome) if f.type in ("int", int))

#: One independent request a sink planned from a batch: call it to send, get what became of it.
Part = Callable[[], Outcome]


def send_parts(sink: Sink, batch: Sequence[Item]) -> Outcome:
    """A planned sink's :meth:`Sink.send`: its parts one after another on the calling thread."""
    outcome, parts = sink.plan(batch)
    for part in parts:
        outcome.add(part())
    return outcome


def count_outcome(counters: Any, counter: str, outcome: Outcome) -> None:
    """Add an outcome to the stats: deliveries under ``counter``, losses under their reasons."""
    for name, n in (
        (counter, outcome.delivered),
        ("failed", outcome.failed),
        ("retried", outcome.retried),
        ("dropped_by_sampling", outcome.sampled),
        ("dropped_no_user", outcome.no_user),
        ("dropped_outbox_full", outcome.evicted),
    ):
        if n:
            counters.incr(name, n)


def sink_raised(counters: Any, name: str, events: int) -> None:
    """A sink raised instead of reporting an outcome: count the batch as failed, log once."""
    from apimon._guard import log_once

    counters.incr("internal_errors")
    if events:
        counters.incr("failed", events)
    log_once(f"sink-{name}", "apimon: the %s sink raised; its batch is counted as failed", name, exc_info=True)


class Sink(abc.ABC):
    """A destination. ``counter`` names the stats counter its deliveries add to (``stored``/``sent``)."""

    name: str = "sink"
    counter: str = "sent"

    @abc.abstractmethod
    def send(self, batch: Sequence[Item]) -> Outcome:
        """Deliver ``batch``; never raise for a delivery failure, report it in the outcome."""

    def plan(self, batch: Sequence[Item]) -> tuple[Outcome, list[Part]]:
        """Split ``batch`` into requests that can be sent in any order, at the same time: what
        became of the events already decided (sampled out, no user), and the parts. A sink that
        sends one request per batch keeps this default."""
        return Outcome(), [lambda: self.send(batch)]

    def send_profiles(self, kind: str, payloads: Sequence[dict[str, Any]]) -> Outcome:
        """Deliver ``"user"`` or ``"company"`` updates; sinks that keep no profiles ignore them."""
        return Outcome()

    @property
    def pending(self) -> int:
        """Events accepted but not yet delivered or counted (a sink with a worker of its own)."""
        return 0

    def flush(self, timeout: float) -> bool:
        """Wait until nothing is pending; True unless ``timeout`` ran out."""
        return True

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; called at shutdown."""

    def after_fork(self) -> None:  # noqa: B027 - optional hook
        """Drop state inherited from the parent (connections, pools) without blocking."""
