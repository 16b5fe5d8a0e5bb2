"""The embedded-store sink: one SQLite transaction per batch."""

from __future__ import annotations

from collections.abc import Sequence

from apimon._guard import log_once
from apimon.sinks import Item, Outcome, Sink
from apimon.store import Store, StoredCall, StoreError


class StoreSink(Sink):
    """Writes every batch to a :class:`~apimon.store.Store`. A store that cannot be opened or
    written (read-only directory, full disk) logs one clear line and counts its events as failed."""

    name = "store"
    counter = "stored"

    def __init__(self, store: Store, shipped: int = 0) -> None:
        self.store = store
        # Bits of the remote destinations that receive these calls live: `apimon ship` skips them.
        self.shipped = shipped

    def send(self, batch: Sequence[Item]) -> Outcome:
        calls = [
            StoredCall(
                transaction_id=i.transaction_id,
                ts=i.ts,
                verb=i.verb,
                path=i.path,
                route=i.route,
                status=i.status,
                duration_ms=i.duration_ms,
                user_id=i.user_id,
                company_id=i.company_id,
                event_json=i.data,
                shipped=self.shipped,
                direction=i.direction,
            )
            for i in batch
        ]
        try:
            evicted = self.store.insert(calls)
        except StoreError as exc:
            log_once("store-write", "apimon: %s; calls are being dropped and counted as failed", exc)
            return Outcome(failed=len(batch))
        if evicted:
            log_once(
                "outbox-full",
                "apimon: the outbox is over its size bound; the oldest undelivered calls were dropped and counted",
            )
        return Outcome(delivered=len(batch), evicted=evicted)

    def close(self) -> None:
        self.store.close()

    def after_fork(self) -> None:
        # Store reconnects by itself when it sees a new pid.
        pass
