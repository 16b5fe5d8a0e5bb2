"""``apimon ship``: send the stored calls a destination has not acknowledged yet, with a progress bar."""

from __future__ import annotations

import threading
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from apimon.config import Config
from apimon.outbox import Lease, item_from_stored
from apimon.sinks import Sink
from apimon.sinks.moengage import MoEngageSink
from apimon.sinks.moesif import MoesifSink
from apimon.store import SHIPPED_MOENGAGE, SHIPPED_MOESIF, Store


def ship(store_path: str, options: dict[str, Any], console: Console | None = None) -> int:
    """Ship every unacknowledged call to each configured destination; the exit code (0 when all
    were delivered)."""
    console = console or Console(highlight=False)
    config = Config.from_options(options)
    stop = threading.Event()
    targets: list[tuple[str, int, Sink]] = []
    if config.moesif_enabled:
        targets.append(("Moesif", SHIPPED_MOESIF, MoesifSink(config, stop)))
    if config.moengage_enabled:
        targets.append(("MoEngage", SHIPPED_MOENGAGE, MoEngageSink(config, stop)))
    if not targets:
        console.print(
            "apimon ship: no destination configured (set APIMON_MOESIF_APPLICATION_ID, or"
            " APIMON_MOENGAGE_WORKSPACE_ID and APIMON_MOENGAGE_API_KEY, or pass the options)"
        )
        return 2
    store = Store(store_path)
    failed_total = 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        for label, bit, sink in targets:
            lease = Lease(store, bit)
            if not lease.acquire():
                progress.console.print(f"{label}: a running process is shipping this outbox; skipped")
                continue
            total = store.count_unshipped(bit)
            task = progress.add_task(f"to {label}", total=total)
            after = 0
            delivered = failed = 0
            while True:
                calls = store.unshipped(bit, after_id=after, limit=config.batch_size)
                if not calls:
                    break
                after = calls[-1].id or after
                outcome = sink.send([item_from_stored(c) for c in calls])
                # All or nothing per batch: a partly failed batch is sent again next time (Moesif
                # deduplicates by transaction_id), never marked as acknowledged.
                if outcome.failed == 0:
                    store.mark_shipped([c.id for c in calls if c.id is not None], bit)
                delivered += outcome.delivered
                failed += outcome.failed
                progress.advance(task, len(calls))
            lease.release()
            failed_total += failed
            progress.console.print(f"{label}: {delivered} delivered, {failed} failed of {total} unshipped calls")
        for _, _, sink in targets:
            sink.close()
    return 0 if failed_total == 0 else 1
