"""Who made the call (docs/events.md#who-made-the-call): user from a Bearer JWT claim (``sub`` by
default) or Basic auth, read from the ``Authorization`` header or the headers ``user_id_headers``
names, and a session token that is a keyed hash of the credential, so the raw secret never leaves
the process and no dictionary reverses the token without the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Mapping
from functools import lru_cache

import orjson

# A client sends the same credential on every call: its user and session are worked out once
# (decoding a JWT costs ~3 us, a lookup ~0.1). Bounded by count, and only credentials up to
# _CACHED_CHARS long are kept, so the caches hold at most ~1 MB whatever the clients send.
_CACHE_SIZE = 512
_CACHED_CHARS = 2048


# The key of a build given none (a Config made without a Client): good for this process only.
_PROCESS_KEY = os.urandom(32).hex()


def session_hash(value: str, key: str | None) -> str:
    """``sha256:`` + the first 32 hex digits of the HMAC-SHA-256 of ``value`` under ``key`` (the
    resolved ``session_secret``; None: a key of this process's own)."""
    key = key or _PROCESS_KEY
    if len(value) <= _CACHED_CHARS:
        return _session_hash_cached(value, key)
    return _session_hash(value, key)


def _session_hash(value: str, key: str) -> str:
    data = value.encode("utf-8", "surrogateescape")
    return "sha256:" + hmac.new(key.encode("utf-8", "surrogateescape"), data, hashlib.sha256).hexdigest()[:32]


_session_hash_cached = lru_cache(maxsize=_CACHE_SIZE)(_session_hash)


def user_from_headers(headers: Mapping[str, str], names: tuple[str, ...], claim: str = "sub") -> str | None:
    """The user of the first of ``names`` (canonical header names, in order) present in
    ``headers``: see :func:`user_from_credential`."""
    for name in names:
        value = headers.get(name)
        if value:
            return user_from_credential(value, claim)
    return None


def user_from_credential(value: str | None, claim: str = "sub") -> str | None:
    """The ``claim`` of a Bearer JWT (not verified; a dotted path such as ``user.id`` reaches into
    nested objects), else the Basic-auth user name; a header holding a bare JWT (no scheme, as
    some APIs send in ``X-Api-Key``) gives its claim too. Anything else: None."""
    if not value:
        return None
    if len(value) <= _CACHED_CHARS:
        return _user_cached(value, claim)
    return _user(value, claim)


def _user(value: str, claim: str) -> str | None:
    scheme, _, credentials = value.strip().partition(" ")
    lowered = scheme.lower()
    credentials = credentials.strip()
    if lowered == "bearer":
        return _jwt_claim(credentials, claim)
    if lowered == "basic":
        return _basic_user(credentials)
    if not credentials and scheme.count(".") == 2:
        return _jwt_claim(scheme, claim)
    return None


_user_cached = lru_cache(maxsize=_CACHE_SIZE)(_user)


def user_from_authorization(authorization: str | None) -> str | None:
    """The ``sub`` claim of a Bearer JWT (not verified), else the Basic-auth user name, else None."""
    return user_from_credential(authorization)


def _b64decode(text: str, urlsafe: bool) -> bytes | None:
    padded = text + "=" * (-len(text) % 4)
    try:
        if urlsafe:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None


def _jwt_claim(token: str, claim: str) -> str | None:
    parts = token.split(".")
    if len(parts) != 3 or len(parts[1]) > 8192:
        return None
    raw = _b64decode(parts[1], urlsafe=True)
    if raw is None:
        return None
    try:
        claims = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(claims, dict):
        return None
    if claim in claims:
        value = claims[claim]
    else:
        # A dotted path (``user.id``) into nested claims; a claim named with the dots wins.
        value = claims
        for key in claim.split("."):
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _basic_user(credentials: str) -> str | None:
    raw = _b64decode(credentials, urlsafe=False)
    if raw is None:
        return None
    user, sep, _ = raw.decode("utf-8", "replace").partition(":")
    return user if sep and user else None
