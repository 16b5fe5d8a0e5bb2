"""Header maps as Moesif wants them: canonical ``Title-Case`` names, repeated names joined by ``,``."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

REDACTED = "[REDACTED]"


@lru_cache(maxsize=1024)
def canonical(name: str) -> str:
    """``content-type``, ``CONTENT_TYPE`` and ``Content-type`` all become ``Content-Type``."""
    return "-".join(part.capitalize() for part in name.replace("_", "-").split("-"))


def merge(pairs: Iterable[tuple[str | bytes, str | bytes]]) -> dict[str, str]:
    """Canonicalise names and join the values of a repeated name with ``,``, in order.

    Pairs may be ``str`` (WSGI) or ``bytes`` (ASGI); bytes are decoded as latin-1, as HTTP allows.

    The comma without a space is what gunicorn and Werkzeug already do to repeated request
    headers, so every adapter under every common server produces the same string (CONTRACT 2.2).
    """
    out: dict[str, str] = {}
    for name, value in pairs:
        key = canonical(name if isinstance(name, str) else name.decode("latin-1"))
        if not isinstance(value, str):
            value = value.decode("latin-1")
        if key in out:
            out[key] = f"{out[key]},{value}"
        else:
            out[key] = value
    return out


def redact(headers: dict[str, str], names: frozenset[str]) -> dict[str, str]:
    """Replace the values of ``names`` (lower-case) in place; returns the same dict."""
    for key in headers:
        if key.lower() in names:
            headers[key] = REDACTED
    return headers
