"""Process-wide counters behind ``apimon.stats()`` (docs/delivery.md#counters)."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable

NAMES: tuple[str, ...] = (
    "started",
    "captured",
    "skipped",
    "sampled_out",
    "sampled_overload",
    "queued",
    "sent",
    "stored",
    "failed",
    "retried",
    "dropped_queue_full",
    "dropped_too_large",
    "dropped_by_mask",
    "dropped_no_user",
    "dropped_by_sampling",
    "dropped_outbox_full",
    "dropped_error",
    "hook_errors",
    "internal_errors",
    # ASGI scopes whose server, client or headers could not be read: passed to the app uncaptured.
    "scopes_unreadable",
    # Moesif's governance and sampling rules (apimon.governance, apimon.sinks.moesif_config).
    "governance_blocked",
    "governance_headers",
    "rules_skipped",
    "rule_headers_encoded",
    "rules_fetch_failed",
    "rules_refused_too_large",
)

# Reasons an event that was captured did not reach a sink; with ``queued`` (still in memory) and
# the deliveries they account for every captured event.
LOSS_REASONS: tuple[str, ...] = (
    "failed",
    "sampled_overload",
    "dropped_queue_full",
    "dropped_too_large",
    "dropped_by_mask",
    "dropped_by_sampling",
    "dropped_no_user",
    "dropped_outbox_full",
    "dropped_error",
)


class Counters:
    """Lock-free integer counters.

    Each counter is an ``itertools.count``: ``next()`` on it is one C call under the GIL, so
    increments from any thread are exact without a lock. A lock here would be shared by the
    request path and the flusher, and a flusher preempted while holding it would stall requests.
    """

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[str, itertools.count[int]] = {name: itertools.count() for name in NAMES}

    def incr(self, name: str, n: int = 1) -> None:
        counter = self._counts[name]
        if n == 1:
            next(counter)
        elif n > 1:
            # Advance n steps inside C: a zero-length deque consumes the slice.
            deque(itertools.islice(counter, n), maxlen=0)

    def incrementer(self, name: str) -> Callable[[], int]:
        """A bare ``next`` on one counter, for the request path (no method call, no lookup)."""
        return self._counts[name].__next__

    def get(self, name: str) -> int:
        return _value(self._counts[name])

    def snapshot(self) -> dict[str, int]:
        return {name: _value(counter) for name, counter in self._counts.items()}

    def reset_after_fork(self) -> None:
        self.__init__()  # type: ignore[misc]


def _value(counter: itertools.count[int]) -> int:
    # count's repr is "count(N)": the only way to read it without advancing it.
    return int(repr(counter)[6:-1])
