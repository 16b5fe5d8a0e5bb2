"""Body classification (docs/events.md#bodies): JSON as JSON, text as text, multipart as a summary,
gzip/deflate decoded within a bound, anything else as base64. Runs on the flusher thread.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import orjson

from apimon.compress import decode_content
from apimon.multipart import summarize_multipart
from apimon.native import speedups
from apimon.redact import redact_flat, redact_form, redact_json, redact_json_py, redact_json_text

# orjson refuses to serialise nesting deeper than 255. Checking every body first (counting its
# brackets) cost more than parsing it, so only the rebuild after a failed encoding checks the
# depth (``check_depth``), and there a body nested deeper than this is kept as text.
MAX_JSON_DEPTH = 200

_TEXT_SUBTYPES = (
    "x-www-form-urlencoded",
    "xml",
    "javascript",
    "ecmascript",
    "graphql",
    "x-ndjson",
    "ndjson",
    "jsonl",
    "x-yaml",
    "yaml",
    "csv",
)


class Body:
    """What the event gets for one body: ``value`` (JSON value or string) and its ``transfer_encoding``."""

    __slots__ = ("value", "transfer_encoding", "oversize")

    def __init__(self, value: Any, transfer_encoding: str | None = None, oversize: bool = False) -> None:
        self.value = value
        self.transfer_encoding = transfer_encoding
        # Decoding produced more than the cap: the body is left out and marked truncated.
        self.oversize = oversize


def media_type(content_type: str | None) -> str:
    """``"Application/JSON; charset=utf-8"`` -> ``"application/json"``; "" when absent."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def is_json(mtype: str) -> bool:
    return mtype == "application/json" or mtype.endswith("+json") or mtype == "text/json"


def is_text(mtype: str) -> bool:
    if not mtype or mtype.startswith("text/"):
        return True
    main, _, sub = mtype.partition("/")
    if main != "application":
        return False
    return sub in _TEXT_SUBTYPES or sub.endswith("+xml")


_JSON, _MULTIPART, _TEXT, _BINARY = range(4)


def _kind(content_type: str | None) -> tuple[int, str]:
    """What a Content-Type makes of a body, parsed once per distinct short header value (an app
    sends a handful; a cache bounded in count and value length holds out against a client
    sending a new one every time)."""
    if content_type is not None and len(content_type) > 128:
        return _parse_kind(content_type)
    return _kind_cached(content_type)


def _parse_kind(content_type: str | None) -> tuple[int, str]:
    mtype = media_type(content_type)
    if is_json(mtype):
        return _JSON, mtype
    if mtype == "multipart/form-data":
        return _MULTIPART, mtype
    return (_TEXT if is_text(mtype) else _BINARY), mtype


_kind_cached = lru_cache(maxsize=512)(_parse_kind)


def classify(
    data: bytes,
    content_type: str | None,
    content_encoding: str | None,
    cap: int,
    redact_fields: frozenset[str],
    check_depth: bool = False,
    verbatim: bool = False,
) -> Body | None:
    """Turn captured bytes into the event's body value; None when there is no body to send.

    ``verbatim``: a JSON body with no key to redact may be the app's bytes as they are (an
    ``orjson.Fragment``), not a parsed value; only where nothing reads the event before it is
    encoded (no ``mask_event`` hook)."""
    if content_encoding:
        decoded = decode_content(data, content_encoding, cap)
        if decoded is None:
            return _base64(data)
    else:
        decoded = data
    if len(decoded) > cap:
        return Body(None, oversize=True)
    if not decoded:
        return None
    kind, mtype = _kind(content_type)
    if kind == _JSON:
        if (
            verbatim
            and _json_plain is not None
            and type(decoded) is bytes
            and type(redact_fields) is frozenset
            and _json_plain(decoded, _field_table(redact_fields))
        ):
            # JSON with nothing to redact goes into the event as the app's own bytes: no parse,
            # no second encoding (orjson.Fragment). The compiled check is stricter than orjson;
            # what it does not pass takes the path below, which decides the same way.
            return Body(orjson.Fragment(decoded))
        parsed = _parse_json(decoded, check_depth)
        if parsed is not _INVALID:
            # Bytes json_plain passes are never redacted nor nested deeper than 128, so they are
            # kept as bytes here too: both paths give the same event. Deeper bodies stay values,
            # which the encoder refuses past 255 levels: such a body then goes as text.
            if _redact(parsed, decoded, redact_fields) or not verbatim or depth_exceeds(parsed, MAX_JSON_DEPTH):
                return Body(parsed)
            return Body(orjson.Fragment(decoded))
    elif kind == _MULTIPART:
        summary = summarize_multipart(decoded, content_type or "", redact_fields)
        if summary is not None:
            return Body(summary)
    if kind != _MULTIPART:
        # A body that is JSON whatever its type says, or JSON orjson refuses, is redacted too.
        redacted = redact_json_text(decoded, redact_fields)
        if redacted is not None:
            return Body(redacted)
    if kind == _JSON or kind == _TEXT:
        try:
            text = decoded.decode("utf-8")
        except UnicodeDecodeError:
            return _base64(decoded)
        if mtype == "application/x-www-form-urlencoded":
            text = redact_form(text, redact_fields)
        return Body(text)
    return _base64(decoded)


_INVALID = object()
COMPILED_WALK = redact_json is not redact_json_py
_native = speedups()
_json_plain: Callable[[bytes, Any], bool] | None = None if _native is None else _native.json_plain
# The redacted names compiled once per configuration's set (a process has one or two).
_field_table: Callable[[frozenset[str]], Any] = (
    (lambda fields: None) if _native is None else lru_cache(maxsize=8)(_native.field_table)
)


def _redact(parsed: Any, data: bytes, fields: frozenset[str]) -> int:
    """Redact the parsed JSON ``data`` in place; how many values were replaced."""
    if not fields:
        return 0
    if COMPILED_WALK:
        # The compiled walk costs less than deciding whether to walk (flat objects: 0.23 us
        # against 0.63; nested: 0.27 against 0.88).
        return redact_json(parsed, fields)
    flat = redact_flat(parsed, fields)
    if flat is not None:
        return flat
    if not _may_hold_fields(data, fields):
        return 0
    return redact_json(parsed, fields)


def _parse_json(data: bytes, check_depth: bool) -> Any:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return _INVALID
    if check_depth and depth_exceeds(value, MAX_JSON_DEPTH):
        return _INVALID
    return value


@lru_cache(maxsize=8)
def _needles(fields: frozenset[str]) -> tuple[bytes, ...] | None:
    # A name that contains another name needs no search of its own ("client_secret" holds
    # "secret"): the default 16 names are 12 needles. None when a name is not ASCII: lower-casing
    # bytes only folds ASCII, so "PÄSSWORD" would hide "pässword" from the search.
    if not all(f.isascii() for f in fields):
        return None
    return tuple(f.encode() for f in fields if not any(g != f and g in f for g in fields))


# Measured on CPython 3.11 (x86_64), in units of ~0.6 ns: the walk costs ~0.5 us plus ~0.17 us a
# key (300 units), the search ~6 us whatever the size (10,000 units) plus one unit a byte per needle.
_KEY_COST = 300
_SEARCH_FIXED_COST = 10_000


def _may_hold_fields(data: bytes, fields: frozenset[str]) -> bool:
    """False only when no key of the JSON ``data`` can be one of ``fields``: then the redaction
    walk is skipped. Whichever is cheaper for this body decides: walking it (cost by the number of
    keys, which the count of ``:`` bounds) or a C-speed search for the names in its bytes."""
    needles = _needles(fields)
    if needles is None:
        return True
    if _estimated_keys(data) * _KEY_COST <= _SEARCH_FIXED_COST + len(data) * len(needles):
        return True  # small, or few keys for its size (long strings, blobs): walking is cheaper
    if b"\\u" in data:
        return True  # an escaped key ("pass\\u0077ord") could hide a name: walk to be sure
    lowered = data.lower()
    for name in needles:
        if name in lowered:
            return True
    return False


# Counting ``:`` in a whole body costs a third of parsing it; three windows of it estimate the
# density. A body that hides its keys between the windows is walked: slower, never wrong.
_WINDOW = 256


def _estimated_keys(data: bytes) -> int:
    n = len(data)
    if n <= 3 * _WINDOW:
        return data.count(b":")
    middle = (n - _WINDOW) // 2
    seen = data.count(b":", 0, _WINDOW) + data.count(b":", middle, middle + _WINDOW) + data.count(b":", n - _WINDOW)
    return seen * n // (3 * _WINDOW)


_CONTAINERS = (dict, list)


def depth_exceeds(value: Any, limit: int) -> bool:
    """True when the JSON value ``value`` nests containers more than ``limit`` deep."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if type(v) in _CONTAINERS)
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if type(v) in _CONTAINERS)
    return False


def _base64(data: bytes) -> Body:
    return Body(base64.b64encode(data).decode("ascii"), "base64")
