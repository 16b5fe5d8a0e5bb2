"""A rule set's regex conditions as one generated Python function, for the request path.

Checking rules one condition at a time costs a call and a loop step per condition (~0.3 us a
rule); a generated function with every condition written out as an expression costs a few
bytecodes per condition (``v3.startswith(L7)``), so ten rules are checked in well under a
microsecond. The source holds no text of the rules: literals and patterns are bound by name in
the function's namespace (``L7``, ``S2``), so a rule cannot inject code. The interpreted
:meth:`~apimon.governance.conditions.Conditions.matches` stays the reference; a differential test
checks that both agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from apimon.governance.conditions import Condition, Conditions

Matcher = Callable[[Sequence["str | None"]], list[int]]

#: Past this many rules the function is not generated (the interpreted loop is used).
MAX_RULES = 2_000


def compile_matcher(rules: Sequence[Conditions], paths: Sequence[str]) -> Matcher | None:
    """A function of a call's values (in ``paths`` order) that returns the indices of the
    ``rules`` whose conditions match it; None when there are too many rules to generate one."""
    if len(rules) > MAX_RULES:
        return None
    slot = {path: i for i, path in enumerate(paths)}
    namespace: dict[str, Any] = {}
    lines = ["def match(values):"]
    if paths:
        lines.append(f"    {', '.join(f'v{i}' for i in range(len(paths)))}{',' if len(paths) == 1 else ''} = values")
    lines.append("    hit = []")
    for index, conditions in enumerate(rules):
        if not conditions.groups:
            lines.append(f"    hit.append({index})")
            continue
        groups = [g for g in conditions.groups if g]
        if not groups:
            continue  # only empty groups: never matches
        ored = " or ".join("(" + " and ".join(_expr(c, slot, namespace) for c in g) + ")" for g in groups)
        lines.append(f"    if {ored}:")
        lines.append(f"        hit.append({index})")
    lines.append("    return hit")
    code = compile("\n".join(lines), "<apimon governance rules>", "exec")
    exec(code, namespace)  # noqa: S102 - generated from names only; see the module docstring
    matcher: Matcher = namespace["match"]
    return matcher


def _expr(condition: Condition, slot: dict[str, int], namespace: dict[str, Any]) -> str:
    v = f"v{slot[condition.path]}"
    n = len(namespace)
    literal = f"L{n}"
    namespace[literal] = condition.literal
    kind = condition.kind
    if kind == "equals":
        test = f"{v} == {literal}"
    elif kind == "prefix":
        test = f"{v}.startswith({literal})"
    elif kind == "suffix":
        test = f"{v}.endswith({literal})"
    elif kind == "contains":
        test = f"{literal} in {v}"
    else:
        search = f"S{n}"
        assert condition.pattern is not None
        namespace[search] = condition.pattern.search
        test = f"{search}({v}) is not None"
    return f"{v} is not None and {test}"
