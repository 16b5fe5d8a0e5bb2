"""Moesif's governance rules, parsed once into an immutable :class:`RuleSet` that the request path
reads without a lock, and the :class:`Decision` a call gets from them.

Wire form, from ``GET /v1/rules`` (a list) and the app config's ``user_rules`` / ``company_rules``
(facts from Moesif's API reference and open-source middlewares)::

    {"_id": "r1", "type": "regex" | "user" | "company", "block": true,
     "applied_to": "matching" | "not_matching", "applied_to_unidentified": false,
     "regex_config": [...],                      # see apimon.governance.conditions
     "response": {"status": 429, "headers": {"X-Reason": "{{plan}}"}, "body": {"error": "..."}},
     "variables": [{"name": "plan", "path": "..."}]}

    config["user_rules"] = {"user-7": [{"rules": "r1", "values": {"plan": "free"}}]}

Regex rules apply to every call their conditions match. A user (company) rule applies, when its
conditions match, to the users in its cohort (those the config lists under the rule, with their
template values) if ``applied_to`` is ``matching``, to the others if it is ``not_matching``, and to
calls with no user at all if ``applied_to_unidentified``. Rules apply in Moesif's order: regex,
company, user; a later rule's headers replace an earlier one's, and the last blocking rule gives
the status and body. ``{{name}}`` in a rule's headers and body is filled with the entity's value,
``UNKNOWN`` when it has none.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson

from apimon.governance.compiled import Matcher, compile_matcher
from apimon.governance.conditions import Conditions, RuleError, parse_conditions
from apimon.governance.fields import Reader, readers

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_TEMPLATE = re.compile(r"\{\{([^{}]+)\}\}")
UNKNOWN = "UNKNOWN"
# Field content every server passes as it is (RFC 9110 5.5): visible ASCII, with spaces and tabs
# inside. obs-text (bytes 0x80-0xFF) is legal but read differently by each server, so it is not.
_FIELD_CONTENT = re.compile(r"[\x21-\x7e](?:[\x20-\x7e\t]*[\x21-\x7e])?")
# Percent-encoding keeps every visible ASCII character but "%" itself, so the encoding reads back.
_KEEP = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def field_value(value: str) -> tuple[str, bool]:
    """``value`` as a response header value every server accepts, and whether it had to change:
    a value that is not field content (non-ASCII, control characters such as NUL, CR or LF) is
    percent-encoded as UTF-8, after leading and trailing whitespace is cut."""
    if _FIELD_CONTENT.fullmatch(value) or not value:
        return value, False
    text = value.strip(" \t")
    if text and _FIELD_CONTENT.fullmatch(text):
        return text, True
    return quote(text, safe=_KEEP, errors="surrogateescape").strip(" "), True


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    kind: str  # "regex", "user" or "company"
    conditions: Conditions
    block: bool
    matching: bool  # applied_to is "matching" (the cohort), not "not_matching"
    unidentified: bool  # applied_to_unidentified
    status: int
    headers: tuple[tuple[str, Any], ...]
    body: Any
    variables: frozenset[str]  # the template names the rule declares


@dataclass(slots=True)
class Decision:
    """What the rules do to one call: headers to add to its response, and, when a rule blocks
    it, the response to answer with instead of calling the app."""

    headers: dict[str, str] = field(default_factory=dict)
    blocked_by: str | None = None
    status: int = 0
    body: bytes = b""
    rules: list[str] = field(default_factory=list)  # ids of the rules applied, in order
    #: Header values that were not valid field content and were percent-encoded.
    encoded: int = 0

    def apply(self, rule: Rule, values: Mapping[str, Any]) -> None:
        self.rules.append(rule.id)
        names = rule.variables
        for name, template in rule.headers:
            value, changed = field_value(str(_fill(template, values, names)))
            self.headers[name] = value
            self.encoded += changed
        if rule.block:
            self.blocked_by = rule.id
            self.status = rule.status
            body = _fill(rule.body, values, names)
            self.body = b"" if body is None else orjson.dumps(body)

    def header_pairs(self) -> list[tuple[str, str]]:
        """The headers of a blocked call's response (a JSON body says so unless a rule did)."""
        pairs = [(n, v) for n, v in self.headers.items() if n.lower() != "content-length"]
        if self.body and not any(n.lower() == "content-type" for n, _ in pairs):
            pairs.append(("Content-Type", "application/json"))
        pairs.append(("Content-Length", str(len(self.body))))
        return pairs


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The rules in force; build with :meth:`parse`, ask with :meth:`decide`."""

    regex: tuple[Rule, ...] = ()
    users: tuple[Rule, ...] = ()
    companies: tuple[Rule, ...] = ()
    # entity id -> {rule id: template values}: the cohorts from the app config.
    user_values: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    company_values: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    needs_body: bool = False  # some condition reads a request body field
    count: int = 0
    #: Every field path a condition reads: a call's values are read once for all rules.
    paths: tuple[str, ...] = ()
    #: The regex rules' conditions as one generated function (None: checked one by one).
    matcher: Matcher | None = None
    #: How a call's values for :attr:`paths` are read (``RequestFields.read_all``).
    readers: tuple[Reader, ...] = ()

    @property
    def needs_user(self) -> bool:
        return bool(self.users)

    @property
    def needs_company(self) -> bool:
        return bool(self.companies)

    @classmethod
    def parse(cls, rules: Any, config: Mapping[str, Any] | None) -> tuple[RuleSet, list[str]]:
        """The usable rules of a ``/v1/rules`` answer, and why each unusable one was skipped."""
        errors: list[str] = []
        if not isinstance(rules, list):
            return cls(), ["the rules are not a list"]
        parsed: dict[str, list[Rule]] = {"regex": [], "user": [], "company": []}
        for i, item in enumerate(rules):
            try:
                rule = _rule(item)
            except RuleError as exc:
                rid = item.get("_id") if isinstance(item, dict) else None
                errors.append(f"rule {rid or i}: {exc}")
                continue
            parsed[rule.kind].append(rule)
        config = config or {}
        paths = tuple(sorted({p for kind in parsed.values() for r in kind for p in r.conditions.paths}))
        ruleset = cls(
            regex=tuple(parsed["regex"]),
            users=tuple(parsed["user"]),
            companies=tuple(parsed["company"]),
            user_values=_cohorts(config.get("user_rules"), errors, "user_rules"),
            company_values=_cohorts(config.get("company_rules"), errors, "company_rules"),
            needs_body=any(p.startswith("request.body.") for p in paths),
            count=sum(len(kind) for kind in parsed.values()),
            paths=paths,
            matcher=compile_matcher([r.conditions for r in parsed["regex"]], paths),
            readers=readers(paths),
        )
        return ruleset, errors

    def decide(self, values: Sequence[str | None], user_id: str | None, company_id: str | None) -> Decision | None:
        """The rules' decision for a call with these field ``values`` (one for each of
        :attr:`paths`, in order), or None when no rule applies."""
        decision: Decision | None = None
        regex = self.regex
        if regex:
            matcher = self.matcher
            if matcher is not None:
                hits = matcher(values)
            else:
                named = dict(zip(self.paths, values, strict=True))
                hits = [i for i, rule in enumerate(regex) if rule.conditions.matches(named)]
            for i in hits:
                decision = decision or Decision()
                decision.apply(regex[i], {})
        if self.companies or self.users:
            named = dict(zip(self.paths, values, strict=True))
            for rules, entity, cohorts in (
                (self.companies, company_id, self.company_values),
                (self.users, user_id, self.user_values),
            ):
                for rule, template_values in _entity_rules(rules, entity, cohorts):
                    if rule.conditions.matches(named):
                        decision = decision or Decision()
                        decision.apply(rule, template_values)
        return decision


def _entity_rules(
    rules: tuple[Rule, ...], entity: str | None, cohorts: Mapping[str, Mapping[str, Mapping[str, Any]]]
) -> list[tuple[Rule, Mapping[str, Any]]]:
    if not rules:
        return []
    if entity is None:
        return [(rule, {}) for rule in rules if rule.unidentified]
    member_of = cohorts.get(entity, {})
    out: list[tuple[Rule, Mapping[str, Any]]] = []
    for rule in rules:
        values = member_of.get(rule.id)
        if rule.matching and values is not None:
            out.append((rule, values))
        elif not rule.matching and values is None:
            out.append((rule, {}))
    return out


def _rule(item: Any) -> Rule:
    if not isinstance(item, dict):
        raise RuleError("not an object")
    rid, kind = item.get("_id"), item.get("type")
    if not isinstance(rid, str) or not rid:
        raise RuleError("no _id")
    if kind not in ("regex", "user", "company"):
        raise RuleError(f"unknown type {kind!r}")
    response = item.get("response") or {}
    if not isinstance(response, dict):
        raise RuleError("response must be an object")
    headers = response.get("headers") or {}
    if not isinstance(headers, dict):
        raise RuleError("response.headers must be an object")
    for name in headers:
        if not isinstance(name, str) or not _TOKEN.match(name):
            raise RuleError(f"bad header name {name!r}")
    block = item.get("block") is True
    status = response.get("status")
    if block and not (isinstance(status, int) and not isinstance(status, bool) and 100 <= status <= 599):
        raise RuleError(f"a blocking rule needs a response status, got {status!r}")
    return Rule(
        id=rid,
        kind=kind,
        conditions=parse_conditions(item.get("regex_config")),
        block=block,
        matching=item.get("applied_to", "matching") != "not_matching",
        unidentified=item.get("applied_to_unidentified") is True,
        status=status if block and isinstance(status, int) else 0,
        headers=tuple(headers.items()),
        body=response.get("body"),
        variables=_variables(item.get("variables")),
    )


def _variables(raw: Any) -> frozenset[str]:
    if raw is None:
        return frozenset()
    if not isinstance(raw, list):
        raise RuleError("variables must be a list")
    return frozenset(v["name"] for v in raw if isinstance(v, dict) and isinstance(v.get("name"), str))


def _cohorts(raw: Any, errors: list[str], what: str) -> dict[str, dict[str, Mapping[str, Any]]]:
    """``{entity: [{"rules": id, "values": {...}}]}`` as ``{entity: {rule id: values}}``."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        errors.append(f"config {what} is not an object")
        return {}
    out: dict[str, dict[str, Mapping[str, Any]]] = {}
    for entity, entries in raw.items():
        if not isinstance(entries, list):
            errors.append(f"config {what}[{entity!r}] is not a list")
            continue
        member: dict[str, Mapping[str, Any]] = {}
        for entry in entries:
            if isinstance(entry, dict) and isinstance(entry.get("rules"), str):
                values = entry.get("values")
                member[entry["rules"]] = values if isinstance(values, dict) else {}
        out[str(entity)] = member
    return out


def _fill(template: Any, values: Mapping[str, Any], names: frozenset[str]) -> Any:
    """``{{name}}`` in strings (at any depth), for the ``names`` the rule declares, replaced by
    ``values[name]`` (``UNKNOWN`` when the entity has none); other text is left as it is."""
    if not names:
        return template
    if isinstance(template, str):
        if "{{" not in template:
            return template

        def one(m: re.Match[str]) -> str:
            name = m.group(1).strip()
            return str(values.get(name, UNKNOWN)) if name in names else m.group(0)

        return _TEMPLATE.sub(one, template)
    if isinstance(template, dict):
        return {k: _fill(v, values, names) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, values, names) for v in template]
    return template
