"""The key of the session tokens' HMAC (``session_secret``), resolved once per client so that
every worker and host that should agree does: the option itself; else the Moesif application id
(every deployment shipping to one Moesif app shares it); else the MoEngage API key; else a random
secret kept in the store; else, with nowhere to keep one, a random key for this process only."""

from __future__ import annotations

import dataclasses
import logging
import os

from apimon.config import Config
from apimon.store import Store, StoreError

logger = logging.getLogger("apimon")


def session_key(config: Config, use_store: bool = True) -> str:
    """The key the session tokens of ``config``'s calls are hashed with (``use_store``: whether
    the configured store is where the calls go, so a secret may be kept there)."""
    if config.session_secret:
        return config.session_secret
    if config.moesif_application_id:
        return config.moesif_application_id
    if config.moengage_enabled and config.moengage_api_key:
        return config.moengage_api_key
    path = config.store_path if use_store else None
    if path is not None:
        store = Store(path)
        try:
            return store.secret("session_secret")
        except StoreError:
            # The store sink reports why the store cannot be written; this says what follows.
            logger.warning("apimon: no secret can be kept at %s: session tokens are keyed for this process only", path)
        finally:
            store.close()
    return os.urandom(32).hex()


def with_session_key(config: Config, use_store: bool = True) -> Config:
    """``config`` with ``session_secret`` resolved."""
    if config.session_secret:
        return config
    return dataclasses.replace(config, session_secret=session_key(config, use_store))
