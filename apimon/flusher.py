"""The one background flusher per process.

The request path only calls :meth:`Flusher.put`: a pid check, a length check and a
``deque.append`` (atomic under the GIL), never a lock the flusher holds while it works. A daemon
thread, started lazily on the first ``put`` and again in a forked child, turns queued items into
prepared ones (``prepare``: building the event) in small chunks as they arrive, and hands them to
``handle`` in batches of ``batch_size``: when a batch is full, when its oldest item has waited
``flush_interval`` seconds, or at once while somebody waits in :meth:`Flusher.flush`.

Why chunks: under load the request threads queue behind whatever the flusher does while it holds
the GIL. Building 100 events at a go is ~6 ms that every request in flight waits for (loopback
p99: 2-3x the bare app's); building 16 at a go is ~1 ms (p99 1.1-1.6x bare, measured side by
side), and the sinks still get full batches.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from apimon._guard import log_once
from apimon.budget import Budget

#: Items prepared per stretch of work on the flusher thread (see the module docstring).
BUILD_CHUNK = 16
#: Seconds between two calls of the ``tick`` callback (the overload check).
TICK = 0.25


class Flusher:
    """Bounded queue plus worker thread. Usage::

    flusher = Flusher(handle=pipeline.handle, prepare=pipeline.prepare,
                      max_queue=10_000, batch_size=100, flush_interval=1.0,
                      budget=budget, size_of=RawCall.held_bytes, tick=overload.tick)
    if not flusher.put(item): count_the_drop()
    flusher.flush(timeout=5.0)      # True when everything put so far was handled
    flusher.shutdown(timeout=2.0)   # flush, then stop the thread

    ``prepare(item)`` returns what ``handle`` gets in its batches, or None for an item that is
    dropped (``prepare`` counts it); without ``prepare``, queued items are handed on as they are.
    With a ``budget``, each queued item is charged ``size_of(item)`` bytes until it is prepared.
    ``tick(now)`` runs on the worker every :data:`TICK` seconds while it runs; ``on_start()`` runs
    once its thread has started in this process (the first ``put``, again in a forked child).
    """

    def __init__(
        self,
        handle: Callable[[list[Any]], None],
        *,
        max_queue: int,
        batch_size: int,
        flush_interval: float,
        on_internal_error: Callable[[], None] | None = None,
        after_fork: Callable[[], None] | None = None,
        prepare: Callable[[Any], Any] | None = None,
        budget: Budget | None = None,
        size_of: Callable[[Any], int] | None = None,
        tick: Callable[[float], None] | None = None,
        on_start: Callable[[], None] | None = None,
    ) -> None:
        self._handle = handle
        self._prepare = prepare
        self._budget = budget
        self._size_of = size_of if budget is not None else None
        self._tick = tick
        self._next_tick = 0.0
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._chunk = min(batch_size, BUILD_CHUNK) if prepare is not None else batch_size
        self._interval = flush_interval
        self._on_internal_error = on_internal_error
        self._after_fork_hook = after_fork
        self._on_start = on_start
        self._reset()
        ref = weakref.WeakMethod(self._after_fork)
        os.register_at_fork(after_in_child=lambda: _call_ref(ref))

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._queue: deque[Any] = deque()
        # Prepared items waiting for a full batch, and when the oldest of them was prepared.
        self._ready: list[Any] = []
        # What each prepared item's raw call was charged to the budget: kept until the item is
        # handed on, so the events waiting for a full batch are inside the byte bound too.
        self._ready_sizes: list[int] = []
        self._ready_since = 0.0
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._start_lock = threading.Lock()
        # Serialises preparing and handling between the worker and a synchronous flush on another thread.
        self._work_lock = threading.Lock()
        # Guards the progress counters; the request path never takes it.
        self._progress = threading.Condition(threading.Lock())
        self._popped = 0
        self._handled = 0
        self._in_flight = 0
        self._hurry = 0
        self._closed = False

    def _after_fork(self) -> None:
        # Runs in the child right after fork: the parent's queue belongs to the parent (it ships
        # it), and its locks may have been held mid-operation, so replace everything, acquire nothing.
        self._reset()
        if self._after_fork_hook is not None:
            self._after_fork_hook()

    # -- request path -------------------------------------------------------------------------

    def put(self, item: Any) -> bool:
        """Queue ``item`` without blocking; False when the queue is full, by count or by the
        bytes it holds (the caller counts it)."""
        if self._pid != os.getpid():
            # uWSGI and other C-level forks skip os.register_at_fork hooks.
            self._after_fork()
        queue = self._queue
        if len(queue) >= self._max_queue:
            return False
        size_of = self._size_of
        if size_of is not None and not self._budget.charge(size_of(item)):  # type: ignore[union-attr]
            return False
        queue.append(item)
        if self._thread is None:
            self._start()
        elif len(queue) >= self._chunk and not self._wake.is_set():
            self._wake.set()
        return True

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None or self._closed:
                return
            thread = threading.Thread(target=self._run, name="apimon-flusher", daemon=True)
            try:
                thread.start()
            except RuntimeError:
                # Interpreter shutdown (3.12+ refuses new threads): the exit flush runs inline.
                return
            self._thread = thread
        if self._on_start is not None:
            self._on_start()

    # -- worker -------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Items in memory: queued, being prepared, or prepared and waiting for their batch."""
        return len(self._queue) + self._in_flight

    @property
    def fill(self) -> float:
        """How full the queue is by count, 0 to 1."""
        return len(self._queue) / self._max_queue

    def _maybe_tick(self) -> None:
        tick = self._tick
        if tick is not None:
            now = time.monotonic()
            if now >= self._next_tick:
                self._next_tick = now + TICK
                try:
                    tick(now)
                except Exception:
                    self._internal_error("flusher-tick", "apimon: the overload check failed internally")

    def _run(self) -> None:
        while True:
            self._wake.wait(min(TICK, self._next_wait()) if self._tick is not None else self._next_wait())
            self._wake.clear()
            self._maybe_tick()
            self._drain(deadline=None)
            if self._closed and not self._queue and not self._ready:
                return

    def _next_wait(self) -> float:
        if not self._ready:
            return self._interval
        return max(0.0, self._ready_since + self._interval - time.monotonic())

    def _take(self, n: int) -> list[Any]:
        queue = self._queue
        with self._progress:
            n = min(len(queue), n)
            batch = [queue.popleft() for _ in range(n)]
            self._popped += n
            self._in_flight += n
        return batch

    def _drain(self, deadline: float | None) -> bool:
        """Prepare what is queued, a chunk at a time, and hand on every full batch; the last,
        partial one too when it is due (its oldest waited ``flush_interval``) or somebody waits.
        True when nothing is left queued or prepared, False when ``deadline`` passed first."""
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            if self._tick is not None:
                self._maybe_tick()
            with self._work_lock:
                chunk = self._take(self._chunk)
                if chunk:
                    self._prepare_into_ready(chunk)
                ready = self._ready
                if not ready:
                    if self._queue:
                        continue
                    return True
                last = not self._queue
                if len(ready) >= self._batch_size or (last and self._due()):
                    batch, self._ready = ready[: self._batch_size], ready[self._batch_size :]
                    if self._budget is not None:
                        sizes = self._ready_sizes
                        # Let go before the sinks charge the batch again (their backlog holds it).
                        self._budget.release(sum(sizes[: self._batch_size]))
                        self._ready_sizes = sizes[self._batch_size :]
                    self._ready_since = time.monotonic()
                    self._hand_on(batch)
                elif last:
                    return False  # a partial batch waits for more items, at most flush_interval

    def _due(self) -> bool:
        return (
            self._prepare is None
            or self._hurry > 0
            or self._closed
            or time.monotonic() - self._ready_since >= self._interval
        )

    def _prepare_into_ready(self, chunk: list[Any]) -> None:
        if not self._ready:
            self._ready_since = time.monotonic()
        size_of = self._size_of
        # Measured before preparing: the same figure the request path charged.
        sizes = [size_of(entry) for entry in chunk] if size_of is not None else None
        prepare = self._prepare
        if prepare is None:
            self._ready.extend(chunk)
            if sizes is not None:
                self._ready_sizes.extend(sizes)
            return
        dropped = 0
        for i, entry in enumerate(chunk):
            try:
                prepared = prepare(entry)
            except Exception:
                prepared = None
                self._internal_error("flusher-prepare", "apimon: preparing an event failed internally")
            if prepared is None:
                dropped += 1
                if sizes is not None:
                    self._budget.release(sizes[i])  # type: ignore[union-attr]
            else:
                self._ready.append(prepared)
                if sizes is not None:
                    self._ready_sizes.append(sizes[i])
        if dropped:
            self._done(dropped)

    def _hand_on(self, batch: list[Any]) -> None:
        try:
            self._handle(batch)
        except Exception:
            self._internal_error("flusher-batch", f"apimon: a batch of {len(batch)} events failed internally")
        finally:
            self._done(len(batch))

    def _done(self, n: int) -> None:
        with self._progress:
            self._handled += n
            self._in_flight -= n
            self._progress.notify_all()

    def _internal_error(self, kind: str, message: str) -> None:
        if self._on_internal_error is not None:
            self._on_internal_error()
        log_once(kind, message, exc_info=True)

    # -- control ------------------------------------------------------------------------------

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything put so far has been handled; False if ``timeout`` ran out first.

        With no live worker (never started, or the interpreter is exiting) the calling thread
        does the work itself, still within ``timeout``.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        if self._pid != os.getpid():
            self._after_fork()
        with self._progress:
            self._hurry += 1
        try:
            thread = self._thread
            if thread is None or not thread.is_alive() or thread is threading.current_thread():
                return self._drain(deadline) and not self._queue and not self._ready
            with self._progress:
                target = self._popped + len(self._queue)
            self._wake.set()
            with self._progress:
                return self._progress.wait_for(lambda: self._handled >= target, max(0.0, deadline - time.monotonic()))
        finally:
            with self._progress:
                self._hurry -= 1

    def shutdown(self, timeout: float = 2.0) -> bool:
        """Flush within ``timeout``, then stop the worker; never hangs longer than ``timeout``."""
        deadline = time.monotonic() + max(0.0, timeout)
        done = self.flush(timeout)
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
        return done


def _call_ref(ref: weakref.WeakMethod[Callable[[], None]]) -> None:
    method = ref()
    if method is not None:
        method()
