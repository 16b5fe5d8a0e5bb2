"""Fail-open helpers: apimon's own errors are logged once per kind, counted and swallowed."""

from __future__ import annotations

import logging
import threading
import time

logger = logging.getLogger("apimon")

_seen: dict[str, float] = {}
_seen_lock = threading.Lock()
REPEAT_AFTER = 600.0


def log_once(kind: str, message: str, *args: object, level: int = logging.WARNING, exc_info: bool = False) -> None:
    """Log ``message`` the first time ``kind`` happens, then at most once every 10 minutes."""
    now = time.monotonic()
    with _seen_lock:
        last = _seen.get(kind)
        if last is not None and now - last < REPEAT_AFTER:
            return
        _seen[kind] = now
    # Logging happens outside the lock: a handler may be slow or re-enter apimon.
    logger.log(level, message, *args, exc_info=exc_info)


def forget_logged() -> None:
    """Tests: let every kind log again."""
    with _seen_lock:
        _seen.clear()
