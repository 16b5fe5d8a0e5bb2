"""Moesif's ``regex_config``: an OR of groups, each an AND of regular expressions on request (and,
for sampling, response) fields. Governance rules and the sampling rules of ``/v1/config`` share it.

Wire form (facts from Moesif's API and middlewares)::

    [{"conditions": [{"path": "request.verb", "value": "^POST$"},
                     {"path": "request.route", "value": "/orders"}]},
     {"conditions": [{"path": "request.headers.x-plan", "value": "free"}]}]

A group with no conditions never matches; an empty ``regex_config`` matches every call (a rule
without conditions applies to all). A condition on a field the call does not have (a header it
did not send, a body that is not JSON) does not match. Values are searched, not anchored
(``re.search``), as Moesif does; at most :data:`MAX_VALUE` characters of a value are searched.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

#: Longest stretch of a field value a pattern is searched in: a client controls the values, and a
#: pattern is searched on the request path.
MAX_VALUE = 4096


class RuleError(ValueError):
    """A rule or condition apimon cannot use; the rule is skipped and counted."""


class Fields(Protocol):
    """What conditions read of a call: the value at a Moesif field path, or None."""

    def value(self, path: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Condition:
    path: str
    pattern: re.Pattern[str]

    def matches(self, fields: Fields) -> bool:
        value = fields.value(self.path)
        if value is None:
            return False
        return self.pattern.search(value[:MAX_VALUE]) is not None


@dataclass(frozen=True, slots=True)
class Conditions:
    """An OR of AND groups; :meth:`matches` is what a rule or sampling rule asks."""

    groups: tuple[tuple[Condition, ...], ...]

    def matches(self, fields: Fields) -> bool:
        if not self.groups:
            return True
        for group in self.groups:
            if group and all(c.matches(fields) for c in group):
                return True
        return False

    @property
    def paths(self) -> frozenset[str]:
        return frozenset(c.path for group in self.groups for c in group)


EVERYTHING = Conditions(())


def parse_conditions(regex_config: Any) -> Conditions:
    """Compile a ``regex_config`` (None or a list of groups); :class:`RuleError` when malformed."""
    if regex_config is None:
        return EVERYTHING
    if not isinstance(regex_config, Sequence) or isinstance(regex_config, str | bytes):
        raise RuleError("regex_config must be a list")
    groups = []
    for group in regex_config:
        if not isinstance(group, dict):
            raise RuleError("each regex_config entry must be an object")
        conditions = group.get("conditions") or []
        if not isinstance(conditions, list):
            raise RuleError("conditions must be a list")
        parsed = []
        for condition in conditions:
            if not isinstance(condition, dict):
                raise RuleError("each condition must be an object")
            path, value = condition.get("path"), condition.get("value")
            if not isinstance(path, str) or not path or not isinstance(value, str):
                raise RuleError("a condition needs a string path and a string value")
            try:
                pattern = re.compile(value)
            except re.error as exc:
                raise RuleError(f"bad regular expression {value!r}: {exc}") from None
            parsed.append(Condition(normalise_path(path), pattern))
        groups.append(tuple(parsed))
    return Conditions(tuple(groups))


def normalise_path(path: str) -> str:
    """One spelling per field: ``request.ip`` and ``request.ip_address`` are the same field, and
    header names compare without case."""
    if path == "request.ip":
        return "request.ip_address"
    if path.startswith("request.headers."):
        return "request.headers." + path[len("request.headers.") :].lower()
    return path
