"""The process-wide client: configuration, counters, sinks and the one flusher.

Adapters talk to it through three calls on the request path: :meth:`Client.admit` when a request
arrives (enabled, sampling, the ``skip`` hook), :meth:`Client.complete` when its response has
ended (user hooks, then a non-blocking enqueue), and nothing else.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from apimon._guard import log_once, logger
from apimon.config import Config
from apimon.counters import Counters
from apimon.event import transaction_ids
from apimon.flusher import Flusher
from apimon.outbox import OutboxShipper
from apimon.pipeline import Pipeline
from apimon.record import RawCall
from apimon.sinks import Sink
from apimon.sinks.moengage import MoEngageSink
from apimon.sinks.moesif import MoesifSink
from apimon.sinks.store import StoreSink
from apimon.sinks.threaded import ThreadedSink
from apimon.store import SHIPPED_MOENGAGE, SHIPPED_MOESIF, Store
from apimon.views import RequestView, ResponseView

_FINISH_HOOKS = ("identify_user", "identify_company", "get_session_token", "get_metadata")


class Client:
    """Create one with :func:`apimon.init`; adapters find it with :func:`apimon.get_client`."""

    def __init__(self, config: Config, sinks: list[Sink] | None = None) -> None:
        self.config = config
        self.counters = Counters()
        self.shippers: list[OutboxShipper] = []
        # ``sinks`` replaces the configured ones (custom destinations, tests).
        self.sinks: list[Sink] = self._build_sinks(config) if sinks is None else list(sinks)
        self.pipeline = Pipeline(config, self.counters, self.sinks)
        for shipper in self.shippers:
            self.pipeline.after_batch.append(shipper.poke)
            # Ship what an earlier run left in the outbox now, not at the first new call.
            shipper.start()
        self.flusher = Flusher(
            self.pipeline.handle,
            prepare=self.pipeline.prepare,
            max_queue=config.max_queue,
            batch_size=config.batch_size,
            flush_interval=config.flush_interval,
            on_internal_error=lambda: self.counters.incr("internal_errors"),
            after_fork=self._after_fork,
        )
        self._sample_rate = config.sample_rate
        #: True when admit() would admit every call (no sampling, no skip hook): adapters skip it.
        self.admit_all = config.sample_rate >= 1.0 and config.skip is None
        self._weight = round(1 / config.sample_rate) if 0 < config.sample_rate < 1 else None
        self._has_finish_hooks = any(getattr(config, h) is not None for h in _FINISH_HOOKS) or callable(
            config.api_version
        )
        self._captured = self.counters.incrementer("captured")
        if config.debug:
            logger.setLevel(logging.DEBUG)

    def _build_sinks(self, config: Config) -> list[Sink]:
        if config.durable and config.remote_enabled:
            return self._build_outbox(config)
        sinks: list[Sink] = []
        # Remote sinks run on workers of their own: one slow destination never holds up another.
        if config.moesif_enabled:
            sinks.append(ThreadedSink(lambda stop: MoesifSink(config, stop), self.counters, config.max_queue))
        if config.moengage_enabled:
            sinks.append(ThreadedSink(lambda stop: MoEngageSink(config, stop), self.counters, config.max_queue))
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
        return sinks

    def _build_outbox(self, config: Config) -> list[Sink]:
        """Durable: the store is the only sink the flusher feeds; each destination ships from it."""
        path = config.store_path
        assert path is not None
        # Failures are kept in the outbox for later, so one batch never retries for long.
        shipping = dataclasses.replace(config, retry_deadline=min(config.retry_deadline, 10.0))
        remotes: list[tuple[int, Callable[[threading.Event], Sink]]] = []
        if config.moesif_enabled:
            remotes.append((SHIPPED_MOESIF, lambda stop: MoesifSink(shipping, stop)))
        if config.moengage_enabled:
            remotes.append((SHIPPED_MOENGAGE, lambda stop: MoEngageSink(shipping, stop)))
        bits = 0
        for bit, make in remotes:
            stop = threading.Event()
            self.shippers.append(
                OutboxShipper(path, bit, make(stop), self.counters, config.flush_interval, config.batch_size, stop)
            )
            bits |= bit
        store = Store(
            path,
            max_rows=config.store_max_rows,
            max_bytes=config.store_max_bytes,
            keep_bits=bits,
            outbox_max_bytes=config.outbox_max_bytes,
        )
        return [StoreSink(store)]

    def drain_outbox(self, timeout: float = 10.0) -> bool:
        """Durable mode: wait until this process has shipped everything it can (tests, shutdown)."""
        deadline = time.monotonic() + max(0.0, timeout)
        done = self.flush(timeout)
        for shipper in self.shippers:
            done = shipper.drain(max(0.0, deadline - time.monotonic())) and done
        return done

    def _after_fork(self) -> None:
        # Also reached after a C-level fork (uWSGI) that skipped os.register_at_fork hooks.
        transaction_ids.reset()
        self.counters.reset_after_fork()
        self._captured = self.counters.incrementer("captured")
        for sink in self.sinks:
            sink.after_fork()
        for shipper in self.shippers:
            shipper.after_fork()

    # -- request path -------------------------------------------------------------------------

    def admit(self, raw: RawCall, native: Any) -> bool:
        """Decide whether to capture this call: sampling, then the ``skip`` hook. Never raises."""
        rate = self._sample_rate
        if rate < 1.0:
            if random.random() >= rate:
                self.counters.incr("sampled_out")
                return False
            raw.weight = self._weight
        skip = self.config.skip
        if skip is not None:
            raw.resolve()
            try:
                skipped = bool(skip(RequestView(raw, native)))
            except Exception:
                self._hook_failed("skip")
                skipped = False
            if skipped:
                self.counters.incr("skipped")
                return False
        return True

    def complete(self, raw: RawCall, native_request: Any, native_response: Any = None) -> None:
        """Run the user hooks for a finished call and queue it. Never raises, never blocks."""
        try:
            if self._has_finish_hooks:
                self._run_hooks(raw, native_request, native_response)
            self._captured()
            if not self.flusher.put(raw):
                self.counters.incr("dropped_queue_full")
                log_once(
                    "queue-full",
                    "apimon: the event queue is full (%d); new events are dropped and counted",
                    self.config.max_queue,
                )
        except Exception:
            self.counters.incr("internal_errors")
            log_once("complete", "apimon: recording a call failed", exc_info=True)

    def _run_hooks(self, raw: RawCall, native_request: Any, native_response: Any) -> None:
        config = self.config
        raw.resolve()
        request = RequestView(raw, native_request)
        response = ResponseView(raw, native_response)
        if config.identify_user is not None:
            raw.user_id = self._call_str("identify_user", config.identify_user, request, response)
        if config.identify_company is not None:
            raw.company_id = self._call_str("identify_company", config.identify_company, request, response)
        if config.get_session_token is not None:
            raw.session_token = self._call_str("get_session_token", config.get_session_token, request, response)
        if callable(config.api_version):
            raw.api_version = self._call_str("api_version", config.api_version, request, response)
        elif config.api_version:
            raw.api_version = config.api_version
        if config.get_metadata is not None:
            try:
                metadata = config.get_metadata(request, response)
            except Exception:
                self._hook_failed("get_metadata")
                metadata = None
            if metadata is not None and not isinstance(metadata, dict):
                self._hook_failed("get_metadata", "returned a non-dict")
                metadata = None
            raw.metadata = metadata

    def _call_str(self, name: str, hook: Any, request: RequestView, response: ResponseView) -> str | None:
        try:
            value = hook(request, response)
        except Exception:
            self._hook_failed(name)
            return None
        if value is None or value == "":
            return None
        return value if isinstance(value, str) else str(value)

    def _hook_failed(self, name: str, why: str = "raised") -> None:
        self.counters.incr("hook_errors")
        log_once(
            f"hook-{name}",
            "apimon: the %s hook %s; the call is captured without it",
            name,
            why,
            exc_info=why == "raised",
        )

    # -- control ------------------------------------------------------------------------------

    def enqueue_profile(self, kind: str, payload: dict[str, Any]) -> bool:
        """Queue a user or company update for the sinks that take them."""
        return self.flusher.put((kind, payload))

    def flush(self, timeout: float = 5.0) -> bool:
        """Everything queued so far was handed to its sinks, and the sinks with workers of their
        own delivered it (or counted it), within ``timeout``."""
        deadline = time.monotonic() + max(0.0, timeout)
        done = self.flusher.flush(timeout)
        for sink in self.sinks:
            done = sink.flush(max(0.0, deadline - time.monotonic())) and done
        return done

    def shutdown(self, timeout: float | None = None) -> bool:
        timeout = self.config.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + max(0.0, timeout)
        done = self.flush(timeout)
        self.flusher.shutdown(max(0.0, deadline - time.monotonic()))
        for shipper in self.shippers:
            # Durable: what is not shipped in time stays in the outbox for the next start.
            shipper.drain(max(0.0, deadline - time.monotonic()))
            shipper.close()
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:
                log_once(f"close-{sink.name}", "apimon: closing the %s sink failed", sink.name, exc_info=True)
        return done

    def stats(self) -> dict[str, int]:
        values = self.counters.snapshot()
        values["queued"] = self.flusher.pending + sum(sink.pending for sink in self.sinks)
        return values

    def __repr__(self) -> str:
        return f"<apimon.Client sinks={[s.name for s in self.sinks]} {self.config!r}>"
