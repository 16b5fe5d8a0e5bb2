"""Redaction of secret body fields and query parameters (docs/events.md#redaction), at any depth,
matched case-insensitively."""

from __future__ import annotations

import json
import re
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
    # The marker is handed over by apimon.headers (imported above); the reference here.
    _native.configure_redact(redact_json_py)
    redact_json = _native.redact_json


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


def is_secret_name(name: str, fields: frozenset[str]) -> bool:
    """Whether a form or query parameter ``name`` (decoded) is one of ``fields``: the whole name, or
    for the nested names frameworks read (``user[password]``, ``tokens[0][token]``, ``key[]``)
    its last bracketed part or the part before the first bracket."""
    lowered = name.lower()
    if lowered in fields:
        return True
    if not lowered.endswith("]"):
        return False
    base, _, rest = lowered.partition("[")
    last = rest[:-1].rpartition("[")[2]
    return (bool(last) and last in fields) or base in fields


def redact_form(text: str, fields: frozenset[str]) -> str:
    """Redact ``name=value`` pairs of a form-urlencoded string (or a query string), leaving every
    other byte as sent."""
    if not fields or "=" not in text:
        return text
    parts = text.split("&")
    changed = False
    for i, part in enumerate(parts):
        name, eq, _ = part.partition("=")
        if eq and is_secret_name(unquote_plus(name), fields):
            parts[i] = f"{name}={REDACTED}"
            changed = True
    return "&".join(parts) if changed else text


def redact_query(query: str, names: frozenset[str]) -> str:
    """A query string with the values of the parameters in ``names`` replaced (the event's
    ``uri``; the app gets the real one). Most queries hold none: found by one search each."""
    if not query or not names:
        return query
    lowered = query.lower()
    if not any(name in lowered for name in names) and "%" not in query:
        return query
    return redact_form(query, names)


_JSON_START = re.compile(rb"[ \t\r\n]*[\[{]")


def looks_like_json(data: bytes) -> bool:
    """Whether ``data`` starts as a JSON object or array would (after whitespace)."""
    return _JSON_START.match(data) is not None


def redact_json_text(data: bytes, fields: frozenset[str]) -> str | None:
    """JSON that is not a JSON body as the event has them (sent as ``text/plain`` or with no
    type, or holding ``NaN``/``Infinity``, which Python's frameworks accept and orjson refuses),
    as text with its secret fields redacted; None when it is not such JSON or holds none."""
    if not fields or not looks_like_json(data):
        return None
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not redact_json(value, fields):
        return None
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (ValueError, RecursionError):
        return None
