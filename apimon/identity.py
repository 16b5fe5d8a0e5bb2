"""Who made the call (CONTRACT 2.4): user from a Bearer JWT ``sub`` or Basic auth, and a session
token that is a hash of the credential, so the raw secret never leaves the process.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

import orjson


def session_hash(value: str) -> str:
    """``sha256:`` + the first 32 hex digits of the SHA-256 of ``value``."""
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def user_from_authorization(authorization: str | None) -> str | None:
    """The ``sub`` claim of a Bearer JWT (not verified), else the Basic-auth user name, else None."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    scheme = scheme.lower()
    credentials = credentials.strip()
    if scheme == "bearer":
        return _jwt_subject(credentials)
    if scheme == "basic":
        return _basic_user(credentials)
    return None


def _b64decode(text: str, urlsafe: bool) -> bytes | None:
    padded = text + "=" * (-len(text) % 4)
    try:
        if urlsafe:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None


def _jwt_subject(token: str) -> str | None:
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
    sub = claims.get("sub")
    if isinstance(sub, str) and sub:
        return sub
    if isinstance(sub, int) and not isinstance(sub, bool):
        return str(sub)
    return None


def _basic_user(credentials: str) -> str | None:
    raw = _b64decode(credentials, urlsafe=False)
    if raw is None:
        return None
    user, sep, _ = raw.decode("utf-8", "replace").partition(":")
    return user if sep and user else None
