"""Moesif's ``regex_config``: an OR of groups, each an AND of regular expressions on request (and,
for sampling, response) fields. Governance rules and the sampling rules of ``/v1/config`` share it.

Wire form (facts from Moesif's API and middlewares)::

    [{"conditions": [{"path": "request.verb", "value": "^POST$"},
                     {"path": "request.route", "value": "/orders"}]},
     {"conditions": [{"path": "request.headers.x-plan", "value": "free"}]}]

A group with no conditions never matches; an empty ``regex_config`` matches every call (a rule
without conditions applies to all). A condition on a field the call does not have (a header it
did not send, a body that is not JSON) does not match. Values are searched, not anchored, as
Moesif does; at most :data:`MAX_VALUE` characters of a value are searched.

Patterns come from a remote config and values from the client, and a condition runs before the
app: a backtracking engine (Python's ``re``) takes seconds to minutes on one hostile header against
an ordinary pattern (``.*@.*\\..*$``), holding the GIL all the while. Patterns therefore run on
RE2 (``google-re2``), whose searches take time linear in the value; a pattern RE2 cannot compile
(backreferences, lookaround) is skipped as a :class:`RuleError`, never handed to ``re``. Without
RE2 installed only the plain-string patterns are usable. RE2's ``$`` matches at the very end only,
and its ``\\d``/``\\w`` are ASCII: see docs/governance.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

try:
    import re2
except ImportError:  # no wheel for this platform: plain-string conditions only
    re2 = None

#: Longest stretch of a field value a condition reads: a client controls the values, and every
#: condition runs on the request path, so each costs at most linear time in this.
MAX_VALUE = 1024


class Pattern(Protocol):
    """What a condition needs of a compiled pattern (RE2's)."""

    def search(self, text: str) -> object | None: ...


def _re2_options() -> Any:
    options = re2.Options()
    # RE2 otherwise writes a line to the host app's stderr for each pattern it refuses.
    options.log_errors = False
    return options


_OPTIONS = _re2_options() if re2 is not None else None


class RuleError(ValueError):
    """A rule or condition apimon cannot use; the rule is skipped and counted."""


#: A call's field values by path, computed once per call for the paths a rule set uses.
Values = Mapping[str, "str | None"]


@dataclass(frozen=True, slots=True)
class Condition:
    path: str
    pattern: Pattern | None  # None: a plain string, decided by ``kind`` and ``literal``
    #: ``test(value)``: the pattern's search, or for a pattern that is a plain string with
    #: optional ``^``/``$`` anchors (most of what Moesif's UI makes) the same answer from
    #: ``==``, ``startswith``, ``endswith`` or ``in``, with no regex engine call.
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
            kind, literal = plain(value)
            pattern = None if kind != "search" else compile_pattern(value)
            parsed.append(Condition(normalise_path(path), pattern, _tester(kind, literal, pattern), kind, literal))
        groups.append(tuple(parsed))
    return Conditions(tuple(groups))


def compile_pattern(text: str) -> Pattern:
    """``text`` compiled by RE2; :class:`RuleError` when RE2 refuses it or is not installed."""
    if re2 is None:
        raise RuleError(f"regular expression {text!r} needs google-re2, which is not installed")
    try:
        pattern: Pattern = re2.compile(text, options=_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else exc
        raise RuleError(f"regular expression {text!r} cannot run in linear time or is invalid: {reason}") from None
    return pattern


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


def plain(text: str) -> tuple[str, str]:
    """How a pattern can be decided without the regex engine: ``(kind, literal)``; ``kind`` is
    ``search`` when it cannot (inline flags such as ``(?i)`` hold a metacharacter too)."""
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


def _tester(kind: str, literal: str, pattern: Pattern | None) -> Callable[[str], bool]:
    # RE2's ``$`` matches at the very end of the value only.
    if kind == "equals":
        return lambda v: v == literal
    if kind == "prefix":
        return lambda v: v.startswith(literal)
    if kind == "suffix":
        return lambda v: v.endswith(literal)
    if kind == "contains":
        return lambda v: literal in v
    assert pattern is not None
    search = pattern.search
    return lambda v: search(v) is not None
