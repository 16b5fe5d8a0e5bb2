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
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

#: Longest stretch of a field value a pattern is searched in: a client controls the values, and a
#: pattern is searched on the request path.
MAX_VALUE = 4096


class RuleError(ValueError):
    """A rule or condition apimon cannot use; the rule is skipped and counted."""


#: A call's field values by path, computed once per call for the paths a rule set uses.
Values = Mapping[str, "str | None"]


@dataclass(frozen=True, slots=True)
class Condition:
    path: str
    pattern: re.Pattern[str]
    #: ``test(value)``: the pattern's search, or for a pattern that is a plain string with
    #: optional ``^``/``$`` anchors (most of what Moesif's UI makes) the same answer from
    #: ``==``, ``startswith``, ``endswith`` or ``in``: ~40 ns instead of ~300.
    test: Callable[[str], bool]
    #: How ``test`` decides: ``equals``, ``prefix``, ``suffix`` or ``contains`` ``literal``, or
    #: ``search`` (the regular expression).
    kind: str = "search"
    literal: str = ""


@dataclass(frozen=True, slots=True)
class Conditions:
    """An OR of AND groups; :meth:`matches` is what a rule or sampling rule asks."""

    groups: tuple[tuple[Condition, ...], ...]

    def matches(self, values: Values) -> bool:
        """Whether the call with these field ``values`` (see :func:`field_values`) matches."""
        if not self.groups:
            return True
        for group in self.groups:
            if not group:
                continue
            for condition in group:
                value = values.get(condition.path)
                if value is None or not condition.test(value):
                    break
            else:
                return True
        return False

    @property
    def paths(self) -> frozenset[str]:
        return frozenset(c.path for group in self.groups for c in group)


EVERYTHING = Conditions(())


class Fields(Protocol):
    """What conditions read of a call: the value at a Moesif field path, or None."""

    def value(self, path: str) -> str | None: ...


def read_values(fields: Fields, paths: Iterable[str]) -> tuple[str | None, ...]:
    """Each of ``paths`` read once, in order (a rule set asks for few fields, many times), cut to
    :data:`MAX_VALUE` characters."""
    out = []
    for path in paths:
        value = fields.value(path)
        out.append(value[:MAX_VALUE] if value is not None else None)
    return tuple(out)


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
                with warnings.catch_warnings():
                    # A FutureWarning about a pattern Moesif sent is not for the host app's stderr.
                    warnings.simplefilter("ignore")
                    pattern = re.compile(value)
            except re.error as exc:
                raise RuleError(f"bad regular expression {value!r}: {exc}") from None
            kind, literal = _plain(value, pattern)
            parsed.append(Condition(normalise_path(path), pattern, _tester(kind, literal, pattern), kind, literal))
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


_META = frozenset(".^$*+?{}[]\\|()")


def _literal(text: str) -> str | None:
    """The string a pattern without metacharacters stands for (``\\.`` is a dot), else None."""
    out = []
    chars = iter(text)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            if not nxt or nxt.isalnum() or nxt == "_":
                return None  # \\d, \\b, \\A...: a class or an assertion, not a character
            out.append(nxt)
        elif ch in _META:
            return None
        else:
            out.append(ch)
    return "".join(out)


def _plain(text: str, pattern: re.Pattern[str]) -> tuple[str, str]:
    """How a pattern can be decided without the regex engine: ``(kind, literal)``."""
    if pattern.flags & ~re.UNICODE:  # (?i) and other inline flags
        return "search", ""
    body, start, end = text, False, False
    if body.startswith("^"):
        body, start = body[1:], True
    if body.endswith("$") and not body.endswith("\\$"):
        body, end = body[:-1], True
    literal = _literal(body)
    if literal is None or "\n" in literal:
        return "search", ""
    if start and end:
        return "equals", literal
    if start:
        return "prefix", literal
    if end:
        return "suffix", literal
    return "contains", literal


def _tester(kind: str, literal: str, pattern: re.Pattern[str]) -> Callable[[str], bool]:
    # ``$`` also matches before a final newline, as re does.
    with_nl = literal + "\n"
    if kind == "equals":
        return lambda v: v == literal or v == with_nl
    if kind == "prefix":
        return lambda v: v.startswith(literal)
    if kind == "suffix":
        return lambda v: v.endswith(literal) or v.endswith(with_nl)
    if kind == "contains":
        return lambda v: literal in v
    search = pattern.search
    return lambda v: search(v) is not None
