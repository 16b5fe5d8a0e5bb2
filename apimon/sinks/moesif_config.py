"""What Moesif tells the middleware: ``GET /v1/config`` (sampling rates, regex sampling rules, the
governance cohorts) and ``GET /v1/rules`` (governance rules), fetched on a thread of its own.

Never on the request path and never blocking start-up: the first fetch starts in the background
when the client is made (and again in a forked child), then every :data:`REFRESH` seconds, sooner
when an events batch answers with a new ``X-Moesif-Config-ETag``, and after a failure every
:data:`RETRY` seconds. A failed or garbled answer keeps the rules in force and is counted
(``rules_fetch_failed``); an unusable rule or sampling rule is skipped and counted
(``rules_skipped``) with one log line. The request path reads the governance :class:`RuleSet`
through ``on_rules``, which gets a new immutable snapshot (None when there are no rules).
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable
from typing import Any

import orjson

from apimon._guard import log_once
from apimon.config import Config
from apimon.counters import Counters
from apimon.governance.conditions import Conditions, RuleError, parse_conditions
from apimon.governance.rules import RuleSet
from apimon.sinks import Item
from apimon.transport import NetworkError, TooLarge, Transport

REFRESH = 300.0
RETRY = 30.0
#: The longest config or rules answer read, sent or decoded: more is refused, counted, and the
#: rules in force are kept (a hostile or broken collector cannot take the host's memory).
MAX_ANSWER_BYTES = 8 * 1024 * 1024


class Sampling:
    """Moesif's dynamic sampling rules from ``/v1/config``, as percentages."""

    def __init__(self) -> None:
        self.rate = 100.0
        self.users: dict[str, float] = {}
        self.companies: dict[str, float] = {}
        self.regex: tuple[tuple[Conditions, float], ...] = ()
        self.paths: frozenset[str] = frozenset()

    def update(self, config: dict[str, Any]) -> list[str]:
        """Take the rates of a config answer; returns why each unusable regex rule was skipped."""
        rate = config.get("sample_rate", 100)
        self.rate = float(rate) if isinstance(rate, int | float) else 100.0
        users, companies = config.get("user_sample_rate"), config.get("company_sample_rate")
        self.users = {str(k): float(v) for k, v in users.items()} if isinstance(users, dict) else {}
        self.companies = {str(k): float(v) for k, v in companies.items()} if isinstance(companies, dict) else {}
        errors: list[str] = []
        regex: list[tuple[Conditions, float]] = []
        for i, entry in enumerate(config.get("regex_config") or []):
            try:
                if not isinstance(entry, dict):
                    raise RuleError("not an object")
                rate = entry.get("sample_rate")
                if not isinstance(rate, int | float) or isinstance(rate, bool) or not 0 <= rate <= 100:
                    raise RuleError(f"sample_rate must be 0-100, got {rate!r}")
                regex.append((parse_conditions([entry]), float(rate)))
            except RuleError as exc:
                errors.append(f"regex_config[{i}]: {exc}")
        self.regex = tuple(regex)
        self.paths = frozenset(p for conditions, _ in regex for p in conditions.paths)
        return errors

    @property
    def keeps_everything(self) -> bool:
        return self.rate >= 100 and not self.users and not self.companies and not self.regex

    def percent_for(self, item: Item) -> float:
        # Moesif's precedence: the regex rules (first match), the user, the company, the app rate.
        if self.regex:
            values = _item_values(item, self.paths)
            for conditions, rate in self.regex:
                if conditions.matches(values):
                    return rate
        if item.user_id is not None and item.user_id in self.users:
            return self.users[item.user_id]
        if item.company_id is not None and item.company_id in self.companies:
            return self.companies[item.company_id]
        return self.rate


def _item_values(item: Item, paths: frozenset[str]) -> dict[str, str | None]:
    """A built event's fields, as sampling conditions name them."""
    values: dict[str, str | None] = {
        "request.verb": item.verb,
        "request.route": item.path,
        "response.status": str(item.status),
    }
    if "request.ip_address" in paths:
        ip = item.ip_address
        if ip is None:  # an item read back from the outbox: from its JSON
            request = item.event.get("request")
            ip = request.get("ip_address") if isinstance(request, dict) else None
        values["request.ip_address"] = ip
    return values


class MoesifRemoteConfig:
    """Fetches and holds Moesif's config and governance rules. Usage::

    remote = MoesifRemoteConfig(config, counters, on_rules=set_rules)
    remote.start()                  # background; returns at once
    remote.sampling.percent_for(item)
    remote.etag_seen(etag)          # an events answer's X-Moesif-Config-ETag
    remote.close()
    """

    def __init__(
        self,
        config: Config,
        counters: Counters | None = None,
        on_rules: Callable[[RuleSet | None], None] | None = None,
        governance: bool = False,
    ) -> None:
        assert config.moesif_application_id
        self.transport = Transport(
            config.moesif_base_url,
            {"X-Moesif-Application-Id": config.moesif_application_id},
        )
        self.counters = counters or Counters()
        self.on_rules = on_rules
        self.governance = governance
        self.sampling = Sampling()
        self.config: dict[str, Any] = {}
        self.ruleset: RuleSet | None = None
        self._etag: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._fetched = threading.Event()  # the first fetch was tried
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Make sure the fetching thread runs in this process (cheap when it does)."""
        if self._pid == os.getpid() or self._stop.is_set():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            if self._pid:
                # A forked child: the parent's thread and connections are not ours.
                self.transport.after_fork()
                self._fetched.clear()
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="apimon-moesif-config", daemon=True)
            self._thread.start()

    def wait_first(self, timeout: float) -> bool:
        """Wait until the first fetch was tried (off the request path: the sender's first batch
        is sampled by Moesif's rates, not before them)."""
        return self._fetched.wait(timeout)

    def etag_seen(self, etag: str | None) -> None:
        if etag and self._etag is not None and etag != self._etag:
            self._wake.set()

    def close(self) -> None:
        # Not joined: a fetch in flight to a slow Moesif must not lengthen shutdown (the thread
        # is a daemon and ends at its next wait).
        self._stop.set()
        self._wake.set()
        self.transport.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            ok = False
            try:
                ok = self.refresh()
            except Exception:
                self.counters.incr("internal_errors")
                log_once("moesif-config", "apimon: reading Moesif's config or rules failed", exc_info=True)
            finally:
                self._fetched.set()
            # Jitter, so a fleet of workers does not ask at the same instant.
            self._wake.wait((REFRESH if ok else RETRY) * random.uniform(0.9, 1.1))
            self._wake.clear()

    # -- fetching -----------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Fetch the config, then the rules; True when both answered usably."""
        config = self._get("/v1/config", "config")
        if isinstance(config, dict):
            self.config = config
            self._skipped(self.sampling.update(config))
        ok = isinstance(config, dict)
        if self.governance:
            rules = self._get("/v1/rules", "rules")
            if rules is not None:
                ruleset, errors = RuleSet.parse(rules, self.config)
                self._skipped(errors)
                self.ruleset = ruleset if ruleset.count else None
                if self.on_rules is not None:
                    self.on_rules(self.ruleset)
            ok = ok and rules is not None
        return ok

    def _get(self, path: str, what: str) -> Any:
        try:
            response = self.transport.request("GET", path, max_body=MAX_ANSWER_BYTES)
        except TooLarge as exc:
            self.counters.incr("rules_refused_too_large")
            return self._failed(what, f"sent {exc}, refused")
        except NetworkError as exc:
            return self._failed(what, f"could not be reached ({exc})")
        if response.status != 200:
            return self._failed(what, f"answered {response.status}")
        try:
            value = orjson.loads(response.body)
        except orjson.JSONDecodeError:
            return self._failed(what, "answered with something that is not JSON")
        if path == "/v1/config":
            self._etag = response.headers.get("x-moesif-config-etag") or self._etag
        if (path == "/v1/config" and not isinstance(value, dict)) or (
            path == "/v1/rules" and not isinstance(value, list)
        ):
            return self._failed(what, "answered with JSON of the wrong shape")
        return value

    def _failed(self, what: str, why: str) -> None:
        self.counters.incr("rules_fetch_failed")
        log_once(f"moesif-{what}-fetch", "apimon: Moesif's %s %s; the rules in force are kept", what, why)
        return None

    def _skipped(self, errors: list[str]) -> None:
        if errors:
            self.counters.incr("rules_skipped", len(errors))
            log_once("rules-skipped", "apimon: skipped unusable Moesif rules: %s", "; ".join(errors[:5]))
