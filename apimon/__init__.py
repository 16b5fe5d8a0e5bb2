"""apimon: capture every HTTP request/response of a Python web app as an API Call event.

Quick start::

    import apimon
    apimon.init(moesif_application_id="...")     # or no options: calls go to ./apimon.db
    app.wsgi_app = apimon.integrations.wsgi.ApimonMiddleware(app.wsgi_app)

See docs/options.md for the options and README.md for the public functions.
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
    "update_subscription",
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
    """The counters (docs/delivery.md#counters); all zero before :func:`init`."""
    from apimon.counters import NAMES

    client = _client
    return client.stats() if client is not None else dict.fromkeys(NAMES, 0)


def update_user(
    user_id: str,
    metadata: dict[str, Any] | None = None,
    session_token: str | None = None,
    ip_address: str | None = None,
    user_agent_string: str | None = None,
    modified_time: float | str | None = None,
    company_id: str | None = None,
    campaign: dict[str, Any] | None = None,
) -> bool:
    """Queue a user profile update for Moesif (``/v1/users``) and MoEngage; False when dropped
    (queue full or no client). ``company_id`` links the user to a company; ``campaign`` is
    Moesif's attribution object (``utm_source``, ``referrer``, ``gclid``, ...)."""
    if not user_id:
        raise ValueError("apimon.update_user: user_id is required")
    return _profile(
        "user",
        {
            "user_id": str(user_id),
            "company_id": None if company_id is None else str(company_id),
            "modified_time": modified_time or time.time(),
            "metadata": metadata,
            "session_token": session_token,
            "ip_address": ip_address,
            "user_agent_string": user_agent_string,
            "campaign": campaign,
        },
    )


def update_company(
    company_id: str,
    metadata: dict[str, Any] | None = None,
    company_domain: str | None = None,
    campaign: dict[str, Any] | None = None,
    session_token: str | None = None,
    ip_address: str | None = None,
    modified_time: float | str | None = None,
) -> bool:
    """Queue a company profile update for Moesif (``/v1/companies``); False when dropped (queue
    full or no client)."""
    if not company_id:
        raise ValueError("apimon.update_company: company_id is required")
    return _profile(
        "company",
        {
            "company_id": str(company_id),
            "company_domain": company_domain,
            "modified_time": modified_time or time.time(),
            "metadata": metadata,
            "campaign": campaign,
            "session_token": session_token,
            "ip_address": ip_address,
        },
    )


def update_subscription(
    subscription_id: str,
    company_id: str,
    status: str | None = None,
    current_period_start: str | None = None,
    current_period_end: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> bool:
    """Queue a subscription update for Moesif (``/v1/subscriptions``: a company's plan and its
    billing period); False when dropped (queue full or no client)."""
    if not subscription_id or not company_id:
        raise ValueError("apimon.update_subscription: subscription_id and company_id are required")
    return _profile(
        "subscription",
        {
            "subscription_id": str(subscription_id),
            "company_id": str(company_id),
            "status": status,
            "current_period_start": current_period_start,
            "current_period_end": current_period_end,
            "metadata": metadata,
        },
    )


def _profile(kind: str, fields: dict[str, Any]) -> bool:
    client = _client
    payload = {k: v for k, v in fields.items() if v is not None}
    return client.enqueue_profile(kind, payload) if client is not None else False


@atexit.register
def _exit_flush() -> None:
    client = _client
    if client is not None:
        client.shutdown(client.config.shutdown_timeout)
