"""Runs a remote sink on a thread of its own, so one slow or failing destination never holds up
the flusher, the store or the other destination."""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from apimon._guard import log_once
from apimon.counters import Counters
from apimon.sinks import Item, Outcome, Sink, count_outcome, sink_raised


class ThreadedSink(Sink):
    """Wraps the sink ``make(stop)`` builds (``stop`` is set at shutdown to interrupt its waits):
    :meth:`send` queues the batch (at most ``max_pending`` events wait; past
    that the batch is dropped and counted) and returns at once; a worker thread delivers it and
    counts the outcome. The worker starts lazily, again in a forked child."""

    def __init__(self, make: Callable[[threading.Event], Sink], counters: Counters, max_pending: int) -> None:
        self.stop = threading.Event()
        inner = make(self.stop)
        self.inner = inner
        self.name = inner.name
        self.counter = inner.counter
        self.counters = counters
        self.max_pending = max_pending
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._queue: deque[tuple[str, Any, Any]] = deque()
        self._pending = 0
        self._busy = 0
        self._working = False
        self._cond = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None

    @property
    def pending(self) -> int:
        return self._pending

    def _put(self, entry: tuple[str, Any, Any], size: int) -> bool:
        if self._pid != os.getpid():
            self.after_fork()
        with self._cond:
            if self._pending + size > self.max_pending:
                return False
            self._queue.append(entry)
            self._pending += size
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"apimon-{self.name}", daemon=True)
                self._thread.start()
            self._cond.notify()
        return True

    def send(self, batch: Sequence[Item]) -> Outcome:
        queued = list(batch)
        for item in queued:
            item.compact()  # a backlog holds JSON bytes, not dicts too
        if not self._put(("events", queued, None), len(batch)):
            self.counters.incr("dropped_queue_full", len(batch))
            log_once(
                f"{self.name}-backlog",
                "apimon: the %s sink is behind (%d events waiting); new events are dropped and counted",
                self.name,
                self._pending,
            )
        return Outcome()

    def send_profiles(self, kind: str, payloads: Sequence[dict[str, Any]]) -> Outcome:
        self._put(("profiles", kind, list(payloads)), 0)
        return Outcome()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                what, a, b = self._queue.popleft()
                self._busy = len(a) if what == "events" else 0
                self._working = True
            try:
                if what == "events":
                    count_outcome(self.counters, self.counter, self.inner.send(a))
                else:
                    self.inner.send_profiles(a, b)
            except Exception:
                sink_raised(self.counters, self.name, len(a) if what == "events" else 0)
            finally:
                with self._cond:
                    self._pending -= self._busy
                    self._busy = 0
                    self._working = False
                    self._cond.notify_all()

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._queue and not self._working, max(0.0, deadline - time.monotonic())
            )

    def close(self) -> None:
        # Interrupts backoff and pacing waits: what has not been delivered by now is counted failed.
        self.stop.set()
        self.inner.close()

    def after_fork(self) -> None:
        self._reset()
        self.inner.after_fork()
