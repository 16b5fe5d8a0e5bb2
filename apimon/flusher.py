"""The one background flusher per process.

The request path only calls :meth:`Flusher.put`: a pid check, a length check and a
``deque.append`` (atomic under the GIL), never a lock the flusher holds while it works. A daemon
thread, started lazily on the first ``put`` and again in a forked child, drains the queue in
batches of ``batch_size`` every ``flush_interval`` seconds (sooner when a full batch is waiting)
and hands each batch to ``handle``.
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


class Flusher:
    """Bounded queue plus worker thread. Usage::

    flusher = Flusher(handle=pipeline.handle, max_queue=10_000, batch_size=100, flush_interval=1.0)
    if not flusher.put(item): count_the_drop()
    flusher.flush(timeout=5.0)      # True when everything put so far was handled
    flusher.shutdown(timeout=2.0)   # flush, then stop the thread
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
    ) -> None:
        self._handle = handle
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._interval = flush_interval
        self._on_internal_error = on_internal_error
        self._after_fork_hook = after_fork
        self._reset()
        ref = weakref.WeakMethod(self._after_fork)
        os.register_at_fork(after_in_child=lambda: _call_ref(ref))

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._queue: deque[Any] = deque()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._start_lock = threading.Lock()
        # Serialises batch handling between the worker and a synchronous flush on another thread.
        self._work_lock = threading.Lock()
        # Guards the progress counters; the request path never takes it.
        self._progress = threading.Condition(threading.Lock())
        self._popped = 0
        self._handled = 0
        self._in_flight = 0
        self._closed = False

    def _after_fork(self) -> None:
        # Runs in the child right after fork: the parent's queue belongs to the parent (it ships
        # it), and its locks may have been held mid-operation, so replace everything, acquire nothing.
        self._reset()
        if self._after_fork_hook is not None:
            self._after_fork_hook()

    # -- request path -------------------------------------------------------------------------

    def put(self, item: Any) -> bool:
        """Queue ``item`` without blocking; False when the queue is full (the caller counts it)."""
        if self._pid != os.getpid():
            # uWSGI and other C-level forks skip os.register_at_fork hooks.
            self._after_fork()
        queue = self._queue
        if len(queue) >= self._max_queue:
            return False
        queue.append(item)
        if self._thread is None:
            self._start()
        elif len(queue) >= self._batch_size and not self._wake.is_set():
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

    # -- worker -------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Items in memory: queued plus the batch being handled."""
        return len(self._queue) + self._in_flight

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._drain(deadline=None)
            if self._closed and not self._queue:
                return

    def _take(self) -> list[Any]:
        queue = self._queue
        with self._progress:
            n = min(len(queue), self._batch_size)
            batch = [queue.popleft() for _ in range(n)]
            self._popped += n
            self._in_flight = n
        return batch

    def _drain(self, deadline: float | None) -> bool:
        """Handle batches until the queue is empty (True) or ``deadline`` passes (False)."""
        while self._queue:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            with self._work_lock:
                batch = self._take()
                if not batch:
                    break
                try:
                    self._handle(batch)
                except Exception:
                    if self._on_internal_error is not None:
                        self._on_internal_error()
                    log_once(
                        "flusher-batch", "apimon: a batch of %d events failed internally", len(batch), exc_info=True
                    )
                finally:
                    with self._progress:
                        self._handled += len(batch)
                        self._in_flight = 0
                        self._progress.notify_all()
        return True

    # -- control ------------------------------------------------------------------------------

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything put so far has been handled; False if ``timeout`` ran out first.

        With no live worker (never started, or the interpreter is exiting) the calling thread
        does the work itself, still within ``timeout``.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        if self._pid != os.getpid():
            self._after_fork()
        thread = self._thread
        if thread is None or not thread.is_alive() or thread is threading.current_thread():
            return self._drain(deadline) and not self._queue
        with self._progress:
            target = self._popped + len(self._queue)
        self._wake.set()
        with self._progress:
            return self._progress.wait_for(lambda: self._handled >= target, max(0.0, deadline - time.monotonic()))

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
