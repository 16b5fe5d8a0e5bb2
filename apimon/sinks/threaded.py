"""The sender: runs a remote sink on threads of its own, several requests in flight, so one slow
or distant destination never holds up the flusher, the store or the other destination."""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from apimon._guard import log_once, logger
from apimon.budget import ITEM_OVERHEAD, Budget
from apimon.concurrency import AdaptiveConcurrency
from apimon.counters import Counters
from apimon.sinks import Item, Outcome, Part, Sink, count_outcome, sink_raised


class _Batch:
    """Events taken from the backlog together, until the last of their requests is answered."""

    __slots__ = ("events", "charged", "parts_left")

    def __init__(self, events: int, charged: int) -> None:
        self.events = events
        self.charged = charged
        self.parts_left = 0


#: What a sender takes: a planned part of a batch (or a profile update, with no batch), or a
#: batch's items still to be planned.
_Work = tuple[_Batch | None, Part | None, list[Item] | None]


class ThreadedSink(Sink):
    """Wraps the sink ``make(stop)`` builds (``stop`` is set at shutdown to interrupt its waits).

    :meth:`send` (the flusher thread) queues the batch and returns at once; past ``max_pending``
    events, or when the batch's bytes do not fit in ``budget``, it is dropped and counted. Sender
    threads (started lazily, again in a forked child, at most ``max_in_flight``) take batches off
    the backlog, let the sink plan them into requests and send those, as many at once as the
    :class:`~apimon.concurrency.AdaptiveConcurrency` limit allows. While the backlog is behind
    (every slot busy), a sender takes several queued batches at once, up to ``max_batch_events``
    and ``max_batch_bytes``: batches grow with the backlog, so fewer requests carry more events.
    """

    def __init__(
        self,
        make: Callable[[threading.Event], Sink],
        counters: Counters,
        max_pending: int,
        budget: Budget | None = None,
        max_in_flight: int = 16,
        max_batch_events: int = 1_000,
        max_batch_bytes: int = 5_000_000,
    ) -> None:
        self.stop = threading.Event()
        inner = make(self.stop)
        self.inner = inner
        self.name = inner.name
        self.counter = inner.counter
        self.counters = counters
        self.max_pending = max_pending
        self.budget = budget if budget is not None else Budget(1 << 40)
        self.max_in_flight = max_in_flight
        self.max_batch_events = max_batch_events
        self.max_batch_bytes = max_batch_bytes
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        # Batches waiting: (items, bytes charged); profile updates: (kind, payloads) as a part.
        self._backlog: deque[tuple[list[Item], int]] = deque()
        self._parts: deque[tuple[_Batch | None, Part]] = deque()
        self._pending = 0
        self._cond = threading.Condition(threading.Lock())
        self.limiter = AdaptiveConcurrency(self.max_in_flight)
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._closed = False

    @property
    def pending(self) -> int:
        return self._pending

    @property
    def pending_bytes(self) -> int:
        return sum(charged for _, charged in self._backlog)

    # -- the flusher's side -------------------------------------------------------------------

    def send(self, batch: Sequence[Item]) -> Outcome:
        if self._pid != os.getpid():
            self.after_fork()
        items = list(batch)
        size = 0
        for item in items:
            item.compact()  # a backlog holds JSON bytes, not dicts too
            size += len(item.data) + ITEM_OVERHEAD
        with self._cond:
            fits = self._pending + len(items) <= self.max_pending and self.budget.charge(size)
            if fits:
                self._backlog.append((items, size))
                self._pending += len(items)
                self._wake_locked()
        if not fits:
            self.counters.incr("dropped_queue_full", len(items))
            log_once(
                f"{self.name}-backlog",
                "apimon: the %s sink is behind (%d events, %d bytes waiting); new events are dropped and counted",
                self.name,
                self._pending,
                self.budget.used,
            )
        return Outcome()

    def send_profiles(self, kind: str, payloads: Sequence[dict[str, Any]]) -> Outcome:
        if self._pid != os.getpid():
            self.after_fork()
        listed = list(payloads)
        with self._cond:
            self._parts.append((None, lambda: _uncounted(self.inner.send_profiles(kind, listed))))
            self._wake_locked()
        return Outcome()

    def _wake_locked(self) -> None:
        if self._idle == 0 and len(self._threads) < min(self.limiter.limit, self.max_in_flight) and not self._closed:
            thread = threading.Thread(target=self._run, name=f"apimon-{self.name}-{len(self._threads)}", daemon=True)
            self._threads.append(thread)
            thread.start()
        else:
            self._cond.notify()

    # -- sender threads -----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                work = self._next_locked()
                while work is None:
                    if self._closed:
                        return
                    self._idle += 1
                    self._cond.wait()
                    self._idle -= 1
                    work = self._next_locked()
                self.limiter.start()
                if (self._parts or self._backlog) and self.limiter.has_room and self._idle == 0:
                    self._wake_locked()  # more is waiting and a slot is free: another sender
            batch, part, items = work
            started = time.monotonic()
            if items is not None:
                outcome = self._plan_and_send(batch, items)
            else:
                outcome = self._send(part, 0)
            with self._cond:
                self.limiter.done(outcome.rtt or (time.monotonic() - started), outcome.pushed_back)
                if batch is not None:
                    batch.parts_left -= 1
                    if batch.parts_left == 0:
                        self._finish_locked(batch)
                self._cond.notify_all()

    def _next_locked(self) -> _Work | None:
        """The next request to send, if a slot is free: a planned part first (it is older), else
        the backlog's head, to be planned (grown while the backlog is behind)."""
        if not self.limiter.has_room:
            if self._parts or self._backlog:
                self.limiter.wanted()
            return None
        if self._parts:
            batch, part = self._parts.popleft()
            return batch, part, None
        if not self._backlog:
            return None
        items, charged = self._backlog.popleft()
        # Behind: this is the last free slot and more batches wait. Take them along, up to the
        # grown batch's bounds, instead of leaving them for a slot that is not there.
        if self.limiter.in_flight + 1 >= self.limiter.limit:
            while self._backlog:
                more, more_charged = self._backlog[0]
                if len(items) + len(more) > self.max_batch_events or charged + more_charged > self.max_batch_bytes:
                    break
                self._backlog.popleft()
                items = items + more
                charged += more_charged
        batch = _Batch(len(items), charged)
        batch.parts_left = 1
        return batch, None, items

    def _plan_and_send(self, batch: _Batch | None, items: list[Item]) -> Outcome:
        """Plan the batch (sampling, splitting) outside the lock and send its first request here;
        the other requests queue up for other senders."""
        assert batch is not None
        try:
            decided, parts = self.inner.plan(items)
        except Exception:
            sink_raised(self.counters, self.name, len(items))
            return Outcome()
        count_outcome(self.counters, self.counter, decided)
        if not parts:
            return Outcome()
        if len(parts) > 1:
            with self._cond:
                batch.parts_left += len(parts) - 1
                self._parts.extend((batch, p) for p in parts[1:])
                self._wake_locked()
        return self._send(parts[0], len(items) if len(parts) == 1 else 0)

    def _send(self, part: Part | None, events: int) -> Outcome:
        assert part is not None
        try:
            outcome = part()
        except Exception:
            sink_raised(self.counters, self.name, events)
            return Outcome()
        count_outcome(self.counters, self.counter, outcome)
        return outcome

    def _finish_locked(self, batch: _Batch) -> None:
        self._pending -= batch.events
        self.budget.release(batch.charged)

    # -- control ------------------------------------------------------------------------------

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._backlog and not self._parts and self.limiter.in_flight == 0,
                max(0.0, deadline - time.monotonic()),
            )

    def close(self) -> None:
        # Interrupts backoff and pacing waits: what has not been delivered by now is counted failed.
        self.stop.set()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.inner.close()
        if logger.isEnabledFor(10):
            logger.debug(
                "apimon: %s sender: limit %d (grew %d, shrank %d times)",
                self.name,
                self.limiter.limit,
                self.limiter.grown,
                self.limiter.shrunk,
            )

    def after_fork(self) -> None:
        # The parent's backlog is the parent's to send: the child starts empty, with fresh locks
        # (the client resets the shared budget).
        self._reset()
        self.inner.after_fork()


def _uncounted(outcome: Outcome) -> Outcome:
    # Profile updates are not events: what became of them is not in the event counters.
    return Outcome(rtt=outcome.rtt, pushed_back=outcome.pushed_back)
