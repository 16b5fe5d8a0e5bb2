"""Redaction of secret body fields (CONTRACT 2.5), at any depth, matched case-insensitively."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

from apimon.headers import REDACTED


def redact_json(value: Any, fields: frozenset[str]) -> Any:
    """Replace, in place, the value of every object key in ``fields`` (lower-case); returns ``value``.

    Iterative, so a deeply nested body cannot exhaust the interpreter's recursion limit.
    """
    if not fields:
        return value
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and key.lower() in fields:
                    item[key] = REDACTED
                elif isinstance(child, dict | list):
                    stack.append(child)
        elif isinstance(item, list):
            stack.extend(child for child in item if isinstance(child, dict | list))
    return value


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
