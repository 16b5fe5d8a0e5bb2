"""A JSON summary of a ``multipart/form-data`` body: text fields with their values, files as
``{filename, content_type, size}``; file contents never leave the process (docs/events.md#bodies).
"""

from __future__ import annotations

from typing import Any

from apimon.headers import REDACTED
from apimon.redact import is_secret_name

_MAX_PARTS = 1000
_MAX_FIELD_CHARS = 10_000


def _param(header: str, name: str) -> str | None:
    for piece in header.split(";")[1:]:
        key, eq, value = piece.strip().partition("=")
        if eq and key.strip().lower() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value
    return None


def summarize_multipart(data: bytes, content_type: str, redact_fields: frozenset[str]) -> dict[str, Any] | None:
    """The summary, or None when the body is not well-formed multipart (it is then shipped as base64)."""
    boundary = _param(content_type, "boundary")
    if not boundary:
        return None
    delimiter = b"--" + boundary.encode("latin-1", "replace")
    pieces = data.split(delimiter)
    if len(pieces) < 3:
        return None
    summary: dict[str, Any] = {}
    for piece in pieces[1 : _MAX_PARTS + 1]:
        if piece.startswith(b"--"):
            break
        head, sep, content = piece.partition(b"\r\n\r\n")
        if not sep:
            continue
        if content.endswith(b"\r\n"):
            content = content[:-2]
        headers: dict[str, str] = {}
        for line in head.decode("latin-1").split("\r\n"):
            key, colon, value = line.partition(":")
            if colon:
                headers[key.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        name = _param(disposition, "name")
        if name is None:
            continue
        filename = _param(disposition, "filename")
        entry: Any
        if filename is not None:
            entry = {
                "filename": filename,
                "content_type": headers.get("content-type", "application/octet-stream"),
                "size": len(content),
            }
        elif is_secret_name(name, redact_fields):
            entry = REDACTED
        else:
            entry = content.decode("utf-8", "replace")[:_MAX_FIELD_CHARS]
        if name in summary:
            existing = summary[name]
            summary[name] = [*existing, entry] if isinstance(existing, list) else [existing, entry]
        else:
            summary[name] = entry
    return summary
