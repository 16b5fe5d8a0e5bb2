"""The durable outbox (``durable=True``): remote destinations ship from the store
(docs/delivery.md#the-store-and-the-outbox).

Every captured call is committed to SQLite first (by the store sink); an :class:`OutboxShipper`
per destination sends what that destination has not acknowledged, oldest first, and marks it.
Processes sharing one store file take turns through a lease row per destination, so two
processes never send the same call at once; a process that dies loses its lease after
``LEASE_SECONDS`` and another takes over. Delivery is at-least-once: a crash between a send and
its acknowledgement repeats the call with the same ``transaction_id``.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time

from apimon._guard import log_once
from apimon.concurrency import AdaptiveConcurrency
from apimon.counters import Counters
from apimon.sinks import Item, Outcome, Sink, count_outcome
from apimon.store import Store, StoredCall, StoreError

LEASE_SECONDS = 30.0
MAX_BACKOFF = 30.0

LEASES = "CREATE TABLE IF NOT EXISTS leases (bit INTEGER PRIMARY KEY, owner TEXT NOT NULL, until REAL NOT NULL)"


def item_from_stored(call: StoredCall) -> Item:
    """A stored call as the sinks take it: its JSON exactly as first encoded, not re-encoded."""
    return Item(
        cached=None,
        data=call.event_json,
        transaction_id=call.transaction_id,
        ts=call.ts,
        duration_ms=call.duration_ms,
        verb=call.verb,
        path=call.path,
        route=call.route,
        status=call.status,
        user_id=call.user_id,
        company_id=call.company_id,
        direction=call.direction,
    )


class Lease:
    """Who ships destination ``bit`` from this store file right now (one row in ``leases``)."""

    def __init__(self, store: Store, bit: int) -> None:
        self.store = store
        self.bit = bit
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    def acquire(self) -> bool:
        """Take or renew the lease; False while another live owner holds it."""
        now = time.time()
        with self.store.transaction() as conn:
            conn.execute(LEASES)
            row = conn.execute("SELECT owner, until FROM leases WHERE bit = ?", (self.bit,)).fetchone()
            if row is not None and row[0] != self.owner and row[1] > now:
                return False
            conn.execute(
                "INSERT OR REPLACE INTO leases (bit, owner, until) VALUES (?, ?, ?)",
                (self.bit, self.owner, now + LEASE_SECONDS),
            )
            return True

    def release(self) -> None:
        try:
            with self.store.transaction() as conn:
                conn.execute(LEASES)
                conn.execute("DELETE FROM leases WHERE bit = ? AND owner = ?", (self.bit, self.owner))
        except StoreError:
            pass


class OutboxShipper:
    """Ships one destination's share of the outbox from sender threads of its own.

    Several batches are in flight at once (up to the :class:`~apimon.concurrency.AdaptiveConcurrency`
    limit, at most ``max_in_flight``): each sender claims the oldest unshipped rows that no other
    sender of this process holds (the lease keeps other processes out), sends them and marks them
    acknowledged, batch by batch. A batch that fails is released, unmarked, for a later attempt;
    rows are never in two requests at once.
    """

    def __init__(
        self,
        store_path: str,
        bit: int,
        sink: Sink,
        counters: Counters,
        interval: float,
        batch_size: int,
        stop: threading.Event,
        max_in_flight: int = 1,
        max_batch_events: int | None = None,
    ) -> None:
        self.store_path = store_path
        self.bit = bit
        self.sink = sink
        self.counters = counters
        self.interval = interval
        self.batch_size = batch_size
        self.max_batch_events = max(batch_size, max_batch_events or batch_size)
        self.max_in_flight = max(1, max_in_flight)
        self.stop = stop  # the sink's own stop event: setting it also interrupts the sink's waits
        self._reset()

    def _reset(self) -> None:
        self.store = Store(self.store_path)
        self.lease = Lease(self.store, self.bit)
        self.wake = threading.Event()
        self.idle = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pid = os.getpid()
        self._cond = threading.Condition(threading.Lock())
        self.limiter = AdaptiveConcurrency(self.max_in_flight)
        self._claimed: set[int] = set()
        self._backoff_until = 0.0

    def start(self) -> None:
        if self._pid != os.getpid():
            self.after_fork()
        with self._cond:
            if not self._threads and not self.stop.is_set():
                self._spawn_locked()

    def _spawn_locked(self) -> None:
        thread = threading.Thread(
            target=self._run, name=f"apimon-outbox-{self.sink.name}-{len(self._threads)}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def poke(self) -> None:
        """New calls were committed: look now rather than at the next interval."""
        self.start()
        self.wake.set()
        with self._cond:
            self._cond.notify_all()

    def _run(self) -> None:
        backoff = self.interval
        while not self.stop.is_set():
            try:
                delay = self._once()
            except StoreError as exc:
                log_once(f"outbox-{self.sink.name}", "apimon: the outbox cannot be read: %s", exc)
                delay = MAX_BACKOFF
            except Exception:
                self.counters.incr("internal_errors")
                log_once(f"outbox-{self.sink.name}-bug", "apimon: shipping the outbox failed", exc_info=True)
                delay = MAX_BACKOFF
            if delay is None:
                backoff = self.interval
                continue  # more to send: go on at once
            if delay > self.interval:
                backoff = min(MAX_BACKOFF, max(backoff * 2, delay))
                delay = backoff
            self.wake.wait(delay)
            self.wake.clear()
        with self._cond:
            last = all(t is threading.current_thread() or not t.is_alive() for t in self._threads)
        if last:
            self.lease.release()

    def _claim(self) -> list[StoredCall] | None:
        """The oldest rows no sender here holds, claimed (None: wait, no free slot)."""
        with self._cond:
            if not self.limiter.has_room or time.monotonic() < self._backoff_until:
                self.limiter.wanted()
                return None
            held = len(self._claimed)
            calls = [
                c
                for c in self.store.unshipped(self.bit, limit=self.max_batch_events + held)
                if c.id not in self._claimed
            ]
            # Behind (the last free slot, and more rows than one batch): a grown batch.
            size = self.max_batch_events if self.limiter.in_flight + 1 >= self.limiter.limit else self.batch_size
            calls = calls[:size]
            if not calls:
                return []
            self._claimed.update(c.id for c in calls if c.id is not None)
            self.limiter.start()
            if len(calls) == size and self.limiter.has_room and len(self._threads) < self.max_in_flight:
                self._spawn_locked()  # more rows wait, and a slot is free
            return calls

    def _once(self) -> float | None:
        """Ship one batch; None when there may be more, else how long to wait."""
        if not self.lease.acquire():
            self.idle.set()  # another process ships this outbox
            return LEASE_SECONDS / 3
        calls = self._claim()
        if calls is None:
            return self.interval / 4
        if not calls:
            with self._cond:
                if self.limiter.in_flight == 0:
                    self.idle.set()
            return self.interval
        self.idle.clear()
        ids = [c.id for c in calls if c.id is not None]
        started = time.monotonic()
        try:
            outcome = self.sink.send([item_from_stored(c) for c in calls])
            if not outcome.failed:
                self.store.mark_shipped(ids, self.bit)
        except Exception:
            outcome = Outcome(failed=len(calls))
            self.counters.incr("internal_errors")
            log_once(f"outbox-{self.sink.name}-send", "apimon: shipping an outbox batch failed", exc_info=True)
        with self._cond:
            # Released only after the mark: until then no other sender may pick these rows up.
            self._claimed.difference_update(ids)
            self.limiter.done(outcome.rtt or time.monotonic() - started, outcome.pushed_back or bool(outcome.failed))
            if outcome.failed:
                self._backoff_until = time.monotonic() + MAX_BACKOFF
            self._cond.notify_all()
        if outcome.failed:
            # Kept for later: the outbox is the retry queue. Count the attempt, not a loss.
            self.counters.incr("retried")
            return MAX_BACKOFF
        count_outcome(self.counters, self.sink.counter, outcome)
        return None

    def drain(self, timeout: float) -> bool:
        """Wait until this process has nothing left to ship (or another process holds the lease)."""
        self.poke()
        deadline = time.monotonic() + timeout
        self.idle.clear()
        while time.monotonic() < deadline:
            if self.idle.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
                return True
        return False

    def close(self) -> None:
        self.stop.set()
        self.wake.set()
        with self._cond:
            threads = list(self._threads)
            self._cond.notify_all()
        deadline = time.monotonic() + 2.0
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if not threads:
            self.lease.release()

    def after_fork(self) -> None:
        self._reset()
        self.sink.after_fork()
