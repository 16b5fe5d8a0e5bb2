"""Header maps as Moesif wants them: canonical ``Title-Case`` names, repeated names joined by ``,``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache

from apimon.native import speedups

REDACTED = "[REDACTED]"


# Names as given to their canonical form. A plain dict, so that merge() can look a name up
# inline (cheaper than an lru_cache, which also keys a bytes argument with a tuple). Bounded in
# count and name length, since clients choose header names; other names are computed each time.
_KNOWN: dict[str | bytes, str] = {}
_KNOWN_MAX = 1024
_KNOWN_NAME_MAX = 64


def canonical(name: str | bytes) -> str:
    """``content-type``, ``CONTENT_TYPE`` and ``Content-type`` all become ``Content-Type``;
    ASGI's ``bytes`` names are decoded as latin-1 (cached: the same few names recur)."""
    key = _KNOWN.get(name)
    if key is None:
        text = name if isinstance(name, str) else name.decode("latin-1")
        key = "-".join(part.capitalize() for part in text.replace("_", "-").split("-"))
        # Exact str and bytes names only: looking one up then runs no Python code (the compiled
        # merge relies on it), whatever a str subclass's __eq__ would do.
        if len(_KNOWN) < _KNOWN_MAX and len(name) <= _KNOWN_NAME_MAX and type(name) in (str, bytes):
            _KNOWN[name] = key
    return key


def merge_py(pairs: Iterable[tuple[str | bytes, str | bytes]]) -> dict[str, str]:
    """Canonicalise names and join the values of a repeated name with ``,``, in order.

    Pairs may be ``str`` (WSGI) or ``bytes`` (ASGI); bytes are decoded as latin-1, as HTTP allows.

    The comma without a space is what gunicorn and Werkzeug already do to repeated request
    headers, so every adapter under every common server produces the same string
    (docs/events.md#times-uri-verb-status-headers).
    """
    out: dict[str, str] = {}
    known = _KNOWN.get
    for name, value in pairs:
        key = known(name) or canonical(name)
        # ASGI's values are exactly bytes: the class check is a third of isinstance's cost.
        if value.__class__ is bytes or not isinstance(value, str):
            value = value.decode("latin-1")
        if key in out:
            out[key] = f"{out[key]},{value}"
        else:
            out[key] = value
    return out


HeaderMerge = Callable[[Iterable[tuple[str | bytes, str | bytes]]], dict[str, str]]
merge: HeaderMerge = merge_py
_native = speedups()
if _native is not None:
    # The compiled loop reads and fills the same name cache, and hands what it does not take
    # (str subclasses, bytearray values, other iterables) to merge_py.
    _native.configure_headers(_KNOWN, canonical, merge_py, REDACTED)
    merge = _native.merge


@lru_cache(maxsize=16)
def _canonical_names(names: frozenset[str]) -> frozenset[str]:
    return frozenset(canonical(n) for n in names)


def redact(headers: dict[str, str], names: frozenset[str]) -> dict[str, str]:
    """Replace the values of ``names`` (lower-case) in place; returns the same dict.

    ``headers`` come from :func:`merge`, so their names are canonical: compared with the
    canonical forms of ``names`` (computed once per set), no per-header lower-casing."""
    secret = _canonical_names(names)
    if secret.isdisjoint(headers):
        return headers
    for key in secret.intersection(headers):
        headers[key] = REDACTED
    return headers
