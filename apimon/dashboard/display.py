"""How the call detail page shows one side (request or response) of a stored event.

Usage::

    side = body_view(event["response"], truncated=event_truncation(event).get("response"))
    side.kind         # "json" | "text" | "binary" | "none"
    side.shown        # pretty JSON, the text, or a hex dump of the first bytes (all still unescaped:
                      # the template escapes them)
    raw_body(event["response"])  # the body's bytes, for the download link

Bodies are shown as they were shipped (docs/events.md#bodies): JSON as JSON, text as text, base64 decoded.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson

HEX_PREVIEW_BYTES = 512
TEXT_PREVIEW_CHARS = 64 * 1024


@dataclass(frozen=True)
class BodyView:
    kind: str
    shown: str
    size: int  # bytes of the body as captured (decoded from base64)
    clipped: bool  # the page shows only the start
    truncated: bool  # apimon captured only the start (the body was over the cap)
    declared: int | None  # the full size apimon saw, when it knows it


def raw_body(section: dict[str, Any]) -> bytes | None:
    """The body's bytes: base64 decoded, text as UTF-8, JSON re-encoded; None when absent."""
    if "body" not in section:
        return None
    body = section["body"]
    if section.get("transfer_encoding") == "base64" and isinstance(body, str):
        try:
            return base64.b64decode(body, validate=False)
        except (binascii.Error, ValueError):
            return body.encode()
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass")
    return orjson.dumps(body)


def hexdump(data: bytes) -> str:
    """``offset  hex bytes  |ascii|`` lines, 16 bytes each (control and high bytes shown as ``.``)."""
    lines = []
    for offset in range(0, len(data), 16):
        chunk = data[offset : offset + 16]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:08x}  {hexes:<47}  |{text}|")
    return "\n".join(lines)


def event_truncation(event: dict[str, Any]) -> dict[str, int | None]:
    """``{"request": full size or None, ...}`` for the bodies apimon captured only in part."""
    meta = event.get("metadata")
    apimon_meta = meta.get("apimon") if isinstance(meta, dict) else None
    truncated = apimon_meta.get("truncated") if isinstance(apimon_meta, dict) else None
    return truncated if isinstance(truncated, dict) else {}


def body_view(section: dict[str, Any], truncated: bool = False, declared: int | None = None) -> BodyView:
    data = raw_body(section)
    if data is None:
        return BodyView("none", "", 0, False, truncated, declared)
    body = section["body"]
    if section.get("transfer_encoding") == "base64":
        return BodyView(
            "binary", hexdump(data[:HEX_PREVIEW_BYTES]), len(data), len(data) > HEX_PREVIEW_BYTES, truncated, declared
        )
    if isinstance(body, str):
        return BodyView(
            "text", body[:TEXT_PREVIEW_CHARS], len(data), len(body) > TEXT_PREVIEW_CHARS, truncated, declared
        )
    pretty = orjson.dumps(body, option=orjson.OPT_INDENT_2).decode()
    return BodyView(
        "json", pretty[:TEXT_PREVIEW_CHARS], len(data), len(pretty) > TEXT_PREVIEW_CHARS, truncated, declared
    )
