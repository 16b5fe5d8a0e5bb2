"""Governance on the request path: what an adapter asks before calling the app, and the small
pieces every adapter needs to act on the answer (a blocked call's status line, rule headers
merged into the app's). Fail-open: any error here lets the call through unchanged, counted."""

from __future__ import annotations

import http
from collections.abc import Callable, Sequence
from typing import Any

from apimon._guard import log_once
from apimon.config import Config
from apimon.counters import Counters
from apimon.governance.fields import RequestFields
from apimon.governance.rules import Decision, RuleSet
from apimon.record import RawCall

#: ``identify(raw, native, fields, want_user, want_company) -> (user_id, company_id)``
Identify = Callable[[RawCall, Any, RequestFields, bool, bool], "tuple[str | None, str | None]"]

JSON_TYPES = ("application/json", "+json")


class Governor:
    """Asks the rules in force about one call. Adapters read ``client.rules`` (None when there
    are none: the only cost then is that attribute read) and, when set::

        decision = client.governor.decide(rules, EnvironFields(environ, body), raw, environ)
        if decision is not None and decision.blocked_by: answer with decision.status / header_pairs() / body
        elif decision is not None: add decision.headers to the app's response

    ``fields`` reads the request as the server handed it over (:mod:`apimon.governance.fields`),
    with its body when ``rules.needs_body`` and the adapter could read it whole (JSON, within
    ``max_body_bytes``, see :meth:`wants_body`).
    """

    def __init__(self, config: Config, counters: Counters, identify: Identify) -> None:
        self.config = config
        self.counters = counters
        self._identify = identify
        self._trusted = config.client_ip

    def decide(self, rules: RuleSet, fields: RequestFields, raw: RawCall, native: Any) -> Decision | None:
        try:
            values = fields.read_all(rules.readers, self._trusted)
            user_id = company_id = None
            if rules.needs_user or rules.needs_company:
                user_id, company_id = self._identify(raw, native, fields, rules.needs_user, rules.needs_company)
            decision = rules.decide(values, user_id, company_id)
        except Exception:
            self.counters.incr("internal_errors")
            log_once("governance", "apimon: applying governance rules failed; the call goes through", exc_info=True)
            return None
        if decision is not None:
            if decision.encoded:
                self.counters.incr("rule_headers_encoded", decision.encoded)
            if decision.blocked_by is not None:
                raw.blocked_by = decision.blocked_by
                self.counters.incr("governance_blocked")
            else:
                self.counters.incr("governance_headers")
        return decision

    def wants_body(self, rules: RuleSet, content_type: str | None, length: int | None) -> bool:
        """Whether a rule needs this request's body and it is JSON of a known size within the cap."""
        if not rules.needs_body or length is None or not 0 < length <= self.config.max_body_bytes:
            return False
        kind = (content_type or "").partition(";")[0].strip().lower()
        return kind == JSON_TYPES[0] or kind.endswith(JSON_TYPES[1])


def status_line(status: int) -> str:
    """``429 Too Many Requests`` for a WSGI ``start_response``."""
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


def with_headers(pairs: Sequence[tuple[str, str]], add: dict[str, str]) -> list[tuple[str, str]]:
    """The app's header pairs with the rules' headers in place of any of the same name."""
    names = {name.lower() for name in add}
    return [(n, v) for n, v in pairs if n.lower() not in names] + list(add.items())


def with_headers_bytes(pairs: Sequence[tuple[bytes, bytes]], add: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """:func:`with_headers` for ASGI's lower-case bytes names."""
    names = {name.lower().encode("latin-1") for name in add}
    kept = [(n, v) for n, v in pairs if n.lower() not in names]
    return kept + [(n.lower().encode("latin-1"), v.encode("latin-1", "replace")) for n, v in add.items()]


def content_length(value: str | bytes | None) -> int | None:
    if not value:
        return None
    try:
        n = int(value)
    except ValueError:
        return None
    return n if n >= 0 else None
