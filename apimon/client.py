"""The process-wide client: configuration, counters, the sinks :mod:`apimon.sinks.assemble`
builds, and the one flusher; it runs their lifecycle (flush, shutdown, fork).

Adapters talk to it through three calls on the request path: :meth:`Client.admit` when a request
arrives (enabled, sampling, the ``skip`` hook), :meth:`Client.complete` when its response has
ended (user hooks, then a non-blocking enqueue), and nothing else.
"""

from __future__ import annotations

import gc
import inspect
import logging
import random
import threading
import time
from typing import Any

from apimon._guard import log_once, logger
from apimon.budget import Budget
from apimon.config import Config
from apimon.counters import Counters
from apimon.event import transaction_ids
from apimon.flusher import Flusher
from apimon.governance.fields import RequestFields
from apimon.governance.gate import Governor
from apimon.governance.rules import RuleSet
from apimon.hooks import HookRunner
from apimon.identity import user_from_headers
from apimon.outbox import OutboxShipper
from apimon.outgoing import MAX_HELD_CHILDREN
from apimon.overload import OverloadSampler
from apimon.pipeline import Pipeline
from apimon.record import RawCall
from apimon.session_key import with_session_key
from apimon.sinks import Sink
from apimon.sinks.assemble import Assembly, assemble
from apimon.sinks.threaded import ThreadedSink
from apimon.views import RequestView, ResponseView


class Client:
    """Create one with :func:`apimon.init`; adapters find it with :func:`apimon.get_client`."""

    def __init__(self, config: Config, sinks: list[Sink] | None = None) -> None:
        config = with_session_key(config, use_store=sinks is None)
        self.config = config
        self.counters = Counters()
        #: Bytes held by the queue and the senders' backlogs (``max_queue_bytes``).
        self.budget = Budget(config.max_queue_bytes)
        # ``sinks`` replaces the configured ones (custom destinations, tests).
        #: Moesif's governance rules in force (an immutable snapshot the request path reads
        #: without a lock); None when there are none, which is all an adapter then checks.
        self.rules: RuleSet | None = None
        self.governor = Governor(config, self.counters, self._identify_early)
        built = (
            assemble(config, self.counters, self.budget, on_rules=self._set_rules)
            if sinks is None
            else Assembly(list(sinks))
        )
        self.sinks: list[Sink] = built.sinks
        self.shippers: list[OutboxShipper] = built.shippers
        self.remote = built.remote
        self.pipeline = Pipeline(config, self.counters, self.sinks)
        self.overload = OverloadSampler(self._pressure, enabled=config.samples_overload)
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
            budget=self.budget,
            size_of=_held_bytes,
            tick=self.overload.tick,
            on_start=self._background_started,
        )
        self._sample_rate = config.sample_rate
        #: True when admit() would admit every call (no sampling, no skip hook): adapters skip it.
        self.admit_all = config.sample_rate >= 1.0 and config.skip is None
        self._weight = round(1 / config.sample_rate) if 0 < config.sample_rate < 1 else None
        #: The user's hooks for a finished call (``hooks.is_async``: the ASGI adapter awaits them).
        self.hooks = HookRunner(config, self.counters)
        self._captured = self.counters.incrementer("captured")
        self._sampled_overload = self.counters.incrementer("sampled_overload")
        #: Adapters call this once a call is admitted; ``complete`` counts it ``captured`` when its
        #: response ends, so ``stats()["unfinished"]`` is the calls still between the two.
        self.started = self.counters.incrementer("started")
        self._children_lock = threading.Lock()
        if config.debug:
            logger.setLevel(logging.DEBUG)

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
        self.budget.reset()
        self._captured = self.counters.incrementer("captured")
        self._sampled_overload = self.counters.incrementer("sampled_overload")
        self.started = self.counters.incrementer("started")
        self._children_lock = threading.Lock()
        for sink in self.sinks:
            sink.after_fork()
        for shipper in self.shippers:
            shipper.after_fork()

    def _background_started(self) -> None:
        # Moesif's config and rules are fetched by a thread of their own, started with the
        # flusher's at the first call of each process, never at import or construction: a thread
        # running in a pre-fork master (gunicorn --preload) while it forks its workers can leave a
        # worker a lock it never gets back (an import, a connection).
        if self.remote is not None:
            self.remote.start()

    def _set_rules(self, rules: RuleSet | None) -> None:
        self.rules = rules if self.config.governs else None

    def _identify_early(
        self, raw: RawCall, native: Any, fields: RequestFields, want_user: bool, want_company: bool
    ) -> tuple[str | None, str | None]:
        """The user and company before the app runs, for user and company rules: the hooks (with
        a response view that has no status or headers yet), then the built-in detection."""
        config = self.config
        user = company = None
        user_hook = config.identify_user if want_user else None
        company_hook = config.identify_company if want_company else None
        if user_hook is not None or company_hook is not None:
            request, response = RequestView(raw, native), ResponseView(raw, None)
            if user_hook is not None:
                user = self._call_str("identify_user", user_hook, request, response)
            if company_hook is not None:
                company = self._call_str("identify_company", company_hook, request, response)
        if want_user and user is None:
            user = user_from_headers(fields.headers(), config.user_id_headers, config.user_id_claim)
        return user, company

    def _pressure(self) -> float:
        """How far behind the pipeline is, 0 to 1: the fullest of the queue (by count), the byte
        budget and each sender's backlog (by count)."""
        fill = max(self.flusher.fill, self.budget.fill)
        for sink in self.sinks:
            if isinstance(sink, ThreadedSink):
                fill = max(fill, sink.pending / sink.max_pending)
        return fill

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
            keep = self._sampled_in(raw)
            if keep and self.hooks.at_finish and not self.hooks.finish(raw, native_request, native_response):
                keep = self._skipped()
            self._finished(raw, keep)
        except Exception:
            self.counters.incr("internal_errors")
            log_once("complete", "apimon: recording a call failed", exc_info=True)

    async def complete_async(self, raw: RawCall, native_request: Any, native_response: Any = None) -> None:
        """:meth:`complete` with ``async`` hooks awaited (the ASGI adapter, on the request's loop)."""
        try:
            keep = self._sampled_in(raw)
            if (
                keep
                and self.hooks.at_finish
                and not await self.hooks.finish_async(raw, native_request, native_response)
            ):
                keep = self._skipped()
            self._finished(raw, keep)
        except Exception:
            self.counters.incr("internal_errors")
            log_once("complete", "apimon: recording a call failed", exc_info=True)

    def _sampled_in(self, raw: RawCall) -> bool:
        overload = self.overload
        if overload.n > 1 and not overload.keep(raw):
            self._captured()
            self._sampled_overload()
            return False
        return True

    def _skipped(self) -> bool:
        """A skip hook left a finished call out: it counts as captured and skipped (as the calls
        overload sampling leaves out), so ``unfinished`` stays the calls still running."""
        self._captured()
        self.counters.incr("skipped")
        return False

    def _finished(self, raw: RawCall, keep: bool) -> None:
        if keep:
            self._enqueue(raw)
        # The outgoing calls made inside this call, held until now, go right after it.
        raw.ended = True
        if raw.children is not None:
            self._release_children(raw)

    def complete_outgoing(self, raw: RawCall) -> None:
        """Queue a finished outgoing call; one made inside an incoming call that is still going
        waits for it (its event then follows the parent's, and inherits its user)."""
        if self.hooks.at_outgoing and not self.hooks.outgoing(raw):
            self._skipped()
            return
        parent = raw.parent
        if parent is not None and not parent.ended:
            held = False
            with self._children_lock:
                if not parent.ended:
                    children = parent.children
                    if children is None:
                        children = parent.children = []
                    if len(children) < MAX_HELD_CHILDREN:
                        children.append(raw)
                        held = True
            if held:
                if parent.ended:  # it ended while this one was being attached
                    self._release_children(parent)
                return
        if self._sampled_in(raw):
            self._enqueue(raw)

    def _release_children(self, parent: RawCall) -> None:
        with self._children_lock:
            children, parent.children = parent.children, None
        for child in children or ():
            self._enqueue(child)

    def _enqueue(self, raw: RawCall) -> None:
        self._captured()
        if not self.flusher.put(raw):
            self.counters.incr("dropped_queue_full")
            self.overload.overflowed(time.monotonic())
            log_once(
                "queue-full",
                "apimon: the event queue is full (%d events or %d bytes); new events are dropped and counted",
                self.config.max_queue,
                self.config.max_queue_bytes,
            )

    def _call_str(self, name: str, hook: Any, request: RequestView, response: ResponseView) -> str | None:
        try:
            value = hook(request, response)
        except Exception:
            self._hook_failed(name)
            return None
        if inspect.isawaitable(value):
            # Before the app runs, under a sync governor: an async hook cannot be awaited here;
            # the built-in detection decides (the hook still runs, awaited, when the call ends).
            getattr(value, "close", lambda: None)()
            return None
        if value is None or value == "":
            return None
        return value if isinstance(value, str) else str(value)

    def _hook_failed(self, name: str, why: str = "raised") -> None:
        self.hooks.failed(name, why)

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
        if self._unfinished():
            # A response a server dropped unfinished inside a reference cycle is recorded when the
            # collector frees it: collect once so such calls are events, not "unfinished".
            gc.collect()
        done = self.flush(timeout)
        unfinished = self._unfinished()
        if unfinished:
            logger.warning(
                "apimon: %d calls were still unfinished at shutdown (their responses never ended); "
                "counted as 'unfinished'",
                unfinished,
            )
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
        if self.remote is not None:
            self.remote.close()
        return done

    def _unfinished(self) -> int:
        return max(0, self.counters.get("started") - self.counters.get("captured"))

    def stats(self) -> dict[str, int]:
        values = self.counters.snapshot()
        # Admitted calls whose response has not ended: in flight, or held by a server that has
        # neither finished nor released them. ``captured + unfinished`` is every admitted call.
        values["unfinished"] = max(0, values.pop("started") - values["captured"])
        values["queued"] = self.flusher.pending + sum(sink.pending for sink in self.sinks)
        values["queued_bytes"] = max(0, self.budget.used)
        values["overload_n"] = self.overload.n
        return values

    def __repr__(self) -> str:
        return f"<apimon.Client sinks={[s.name for s in self.sinks]} {self.config!r}>"


def _held_bytes(entry: Any) -> int:
    # Raw calls hold bodies; user and company updates are small and bounded by the count.
    return entry.held_bytes() if isinstance(entry, RawCall) else 0
