"""apimon: capture every HTTP request/response of a Python web app as an API Call event.

Quick start::

    import apimon
    apimon.init(moesif_application_id="...")     # or no options: calls go to ./apimon.db
    app.wsgi_app = apimon.integrations.wsgi.ApimonMiddleware(app.wsgi_app)

See CONTRACT 1.1 for the whole public surface.
"""

from __future__ import annotations

import atexit
import threading
import time
from typing import Any

from apimon._guard import logger
from apimon._version import __version__
from apimon.client import Client
from apimon.config import Config

__all__ = [
    "Client",
    "Config",
    "__version__",
    "flush",
    "get_client",
    "init",
    "shutdown",
    "stats",
    "update_company",
    "update_user",
]

_client: Client | None = None
_lock = threading.Lock()


def init(**options: Any) -> Client:
    """Create (or replace) the process-wide client; returns it.

    Called again with other options, it flushes the old client, replaces it and logs that.
    A clearly wrong option raises :class:`ValueError` here.
    """
    global _client
    config = Config.from_options(options)
    with _lock:
        old, _client = _client, Client(config)
        new = _client
    if old is not None:
        logger.info("apimon: init() called again; the previous client was flushed and replaced")
        old.shutdown(old.config.shutdown_timeout)
    _outgoing(config)
    return new


def get_client() -> Client | None:
    """The process-wide client, or None before :func:`init`."""
    return _client


def ensure_client(options: dict[str, Any] | None = None) -> Client:
    """The client adapters use: the existing one, else one made from ``options``."""
    global _client
    client = _client
    if client is not None:
        if options:
            logger.debug("apimon: a client already exists; adapter options were not applied")
        return client
    config = Config.from_options(options or {})
    with _lock:
        if _client is None:
            _client = Client(config)
            _outgoing(config)
        return _client


def _outgoing(config: Config) -> None:
    """``capture_outgoing``: instrument the HTTP clients installed (imported only then)."""
    if config.capture_outgoing:
        from apimon.integrations import clients

        clients.instrument()


def flush(timeout: float = 5.0) -> bool:
    """True when everything queued so far was handed to its sinks within ``timeout`` seconds."""
    client = _client
    return client.flush(timeout) if client is not None else True


def shutdown(timeout: float = 2.0) -> bool:
    """Flush, then stop the flusher (this also runs at interpreter exit)."""
    client = _client
    return client.shutdown(timeout) if client is not None else True


def stats() -> dict[str, int]:
    """The counters of CONTRACT 1.4; all zero before :func:`init`."""
    from apimon.counters import NAMES

    client = _client
    return client.stats() if client is not None else dict.fromkeys(NAMES, 0)


def update_user(
    user_id: str,
    metadata: dict[str, Any] | None = None,
    session_token: str | None = None,
    ip_address: str | None = None,
    user_agent_string: str | None = None,
    modified_time: float | None = None,
) -> bool:
    """Queue a user profile update for Moesif and MoEngage; False when dropped (queue full or no client)."""
    if not user_id:
        raise ValueError("apimon.update_user: user_id is required")
    payload: dict[str, Any] = {"user_id": str(user_id), "modified_time": modified_time or time.time()}
    for key, value in (
        ("metadata", metadata),
        ("session_token", session_token),
        ("ip_address", ip_address),
        ("user_agent_string", user_agent_string),
    ):
        if value is not None:
            payload[key] = value
    client = _client
    return client.enqueue_profile("user", payload) if client is not None else False


def update_company(company_id: str, metadata: dict[str, Any] | None = None) -> bool:
    """Queue a company profile update for Moesif; False when dropped (queue full or no client)."""
    if not company_id:
        raise ValueError("apimon.update_company: company_id is required")
    payload: dict[str, Any] = {"company_id": str(company_id), "modified_time": time.time()}
    if metadata is not None:
        payload["metadata"] = metadata
    client = _client
    return client.enqueue_profile("company", payload) if client is not None else False


@atexit.register
def _exit_flush() -> None:
    client = _client
    if client is not None:
        client.shutdown(client.config.shutdown_timeout)
