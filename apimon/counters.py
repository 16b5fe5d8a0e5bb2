"""Process-wide counters behind ``apimon.stats()`` (CONTRACT 1.4)."""

from __future__ import annotations

import threading

NAMES: tuple[str, ...] = (
    "captured",
    "skipped",
    "sampled_out",
    "queued",
    "sent",
    "stored",
    "failed",
    "retried",
    "dropped_queue_full",
    "dropped_too_large",
    "dropped_by_mask",
    "dropped_no_user",
    "dropped_error",
    "hook_errors",
    "internal_errors",
)

# Reasons an event that was captured did not reach a sink; with ``queued`` (still in memory) and
# the deliveries they account for every captured event.
LOSS_REASONS: tuple[str, ...] = (
    "failed",
    "dropped_queue_full",
    "dropped_too_large",
    "dropped_by_mask",
    "dropped_error",
)


class Counters:
    """Thread-safe integer counters. Increments take a private lock that nothing else holds,
    and nobody logs or does I/O under it, so the request path never waits on the flusher."""

    __slots__ = ("_lock", "_values")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(NAMES, 0)

    def incr(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._values[name] = self._values.get(name, 0) + n

    def get(self, name: str) -> int:
        return self._values.get(name, 0)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)

    def reset_after_fork(self) -> None:
        # The parent may have held the lock at fork time: replace it, never acquire it.
        self._lock = threading.Lock()
        self._values = dict.fromkeys(NAMES, 0)
