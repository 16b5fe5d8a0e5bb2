"""Redaction of secret body fields (CONTRACT 2.5), at any depth, matched case-insensitively."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

from apimon.headers import REDACTED
from apimon.native import speedups


def redact_json_py(value: Any, fields: frozenset[str]) -> int:
    """Replace, in place, the value of every object key in ``fields`` (lower-case); returns how
    many were replaced.

    ``value`` comes from ``orjson.loads``: containers are exactly ``dict`` and ``list`` and keys
    are ``str``, so exact type checks replace ``isinstance`` (a third of the cost per key).
    Iterative, so a deeply nested body cannot exhaust the interpreter's recursion limit.
    """
    if not fields:
        return 0
    count = 0
    stack: list[Any] = [value]
    pop, push = stack.pop, stack.append
    while stack:
        item = pop()
        if type(item) is dict:
            for key, child in item.items():
                if key.lower() in fields:
                    item[key] = REDACTED
                    count += 1
                elif type(child) is dict or type(child) is list:
                    push(child)
        elif type(item) is list:
            for child in item:
                if type(child) is dict or type(child) is list:
                    push(child)
    return count


redact_json: Callable[[Any, frozenset[str]], int] = redact_json_py
_native = speedups()
if _native is not None:
    redact_json = _native.redact_json  # configured by apimon.headers (imported above)


# A flat object with more keys than this is left to the walk or the search of bodies.py, which
# pick the cheaper way for large bodies.
FLAT_KEYS = 32


def redact_flat(value: Any, fields: frozenset[str]) -> int | None:
    """Redact ``value`` in place when that needs no walk: for a scalar (0), or for an object of at
    most :data:`FLAT_KEYS` keys whose values are all scalars (its keys are checked here), how many
    values were replaced. None for anything else, which is left as it is for :func:`redact_json`.

    Most request and response objects are small and flat; for them this costs a fraction of
    deciding whether to walk or search (a third of a microsecond against a microsecond).
    """
    if type(value) is not dict:
        return None if type(value) is list else 0
    if len(value) > FLAT_KEYS:
        return None
    for child in value.values():
        if type(child) is dict or type(child) is list:
            return None
    count = 0
    for key in value:
        if key.lower() in fields:
            value[key] = REDACTED  # an existing key: the dict's size does not change
            count += 1
    return count


def redact_form(text: str, fields: frozenset[str]) -> str:
    """Redact ``name=value`` pairs of a form-urlencoded string, leaving every other byte as sent."""
    if not fields or "=" not in text:
        return text
    parts = text.split("&")
    changed = False
    for i, part in enumerate(parts):
        name, eq, _ = part.partition("=")
        if eq and unquote_plus(name).lower() in fields:
            parts[i] = f"{name}={REDACTED}"
            changed = True
    return "&".join(parts) if changed else text
