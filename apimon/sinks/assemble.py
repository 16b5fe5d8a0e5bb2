"""Which sinks a configuration asks for, built and wired: the remote destinations behind their
senders, the embedded store, or, in durable mode, the store as the outbox with a shipper per
destination. The client only runs what this builds."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from apimon._guard import logger
from apimon.budget import Budget
from apimon.config import Config
from apimon.counters import Counters
from apimon.governance.rules import RuleSet
from apimon.outbox import OutboxShipper
from apimon.sinks import Sink
from apimon.sinks.moengage import MoEngageSink
from apimon.sinks.moesif import MoesifSink
from apimon.sinks.moesif_config import MoesifRemoteConfig
from apimon.sinks.store import StoreSink
from apimon.sinks.threaded import ThreadedSink
from apimon.store import SHIPPED_MOENGAGE, SHIPPED_MOESIF, Store


@dataclass
class Assembly:
    """What :func:`assemble` built: the sinks the flusher feeds, the outbox shippers, and the
    fetcher of Moesif's config and rules (sampling and governance) when Moesif is on."""

    sinks: list[Sink]
    shippers: list[OutboxShipper] = field(default_factory=list)
    remote: MoesifRemoteConfig | None = None


def assemble(
    config: Config,
    counters: Counters,
    budget: Budget,
    on_rules: Callable[[RuleSet | None], None] | None = None,
) -> Assembly:
    """The sinks for ``config``; raises ``ValueError`` when nothing would be recorded.
    ``on_rules`` gets each new snapshot of Moesif's governance rules (``governance``)."""
    remote = None
    if config.moesif_enabled:
        remote = MoesifRemoteConfig(config, counters, on_rules, governance=config.governs)
    if config.durable and config.remote_enabled:
        built = _outbox(config, counters, remote)
        built.remote = remote
        return built
    sinks: list[Sink] = []
    # Remote sinks run on senders of their own: one slow destination never holds up another.
    for make in _remotes(config, remote):
        sinks.append(
            ThreadedSink(
                make,
                counters,
                config.max_queue,
                budget=budget,
                max_in_flight=config.max_in_flight,
                max_batch_events=max(config.batch_size, config.max_batch_events),
                max_batch_bytes=config.max_batch_bytes,
            )
        )
    path = config.store_path
    if path is not None:
        live = SHIPPED_MOESIF if config.moesif_enabled else 0
        live |= SHIPPED_MOENGAGE if config.moengage_enabled else 0
        store = Store(path, max_rows=config.store_max_rows, max_bytes=config.store_max_bytes)
        sinks.append(StoreSink(store, shipped=live))
        if config.store_is_default:
            logger.warning(
                "apimon: no Moesif or MoEngage credentials; calls go to the SQLite store %s"
                " (read them with `apimon calls --store %s`)",
                path,
                path,
            )
    if not sinks:
        raise ValueError(
            "apimon: store='off' and no Moesif or MoEngage credentials: nothing would be recorded"
            " (use enabled=False to turn capture off)"
        )
    return Assembly(sinks, remote=remote)


def _remotes(config: Config, remote: MoesifRemoteConfig | None) -> list[Callable[[threading.Event], Sink]]:
    makers: list[Callable[[threading.Event], Sink]] = []
    if config.moesif_enabled:
        makers.append(lambda stop: MoesifSink(config, stop, remote))
    if config.moengage_enabled:
        makers.append(lambda stop: MoEngageSink(config, stop))
    return makers


def _outbox(config: Config, counters: Counters, remote: MoesifRemoteConfig | None) -> Assembly:
    """Durable: the store is the only sink the flusher feeds; each destination ships from it."""
    path = config.store_path
    assert path is not None
    # Failures are kept in the outbox for later, so one batch never retries for long.
    shipping = dataclasses.replace(config, retry_deadline=min(config.retry_deadline, 10.0))
    remotes: list[tuple[int, Callable[[threading.Event], Sink]]] = []
    if config.moesif_enabled:
        remotes.append((SHIPPED_MOESIF, lambda stop: MoesifSink(shipping, stop, remote)))
    if config.moengage_enabled:
        remotes.append((SHIPPED_MOENGAGE, lambda stop: MoEngageSink(shipping, stop)))
    shippers = []
    bits = 0
    for bit, make in remotes:
        stop = threading.Event()
        shippers.append(
            OutboxShipper(
                path,
                bit,
                make(stop),
                counters,
                config.flush_interval,
                config.batch_size,
                stop,
                max_in_flight=config.max_in_flight,
                max_batch_events=config.max_batch_events,
            )
        )
        bits |= bit
    store = Store(
        path,
        max_rows=config.store_max_rows,
        max_bytes=config.store_max_bytes,
        keep_bits=bits,
        outbox_max_bytes=config.outbox_max_bytes,
    )
    return Assembly([StoreSink(store)], shippers)
