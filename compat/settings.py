"""Moesif's settings dict, read into apimon's options: the part the three middlewares share.

Each middleware passes its own hook wrappers (its hooks have their own arguments); the plain
settings, the event-model mask and the outgoing hooks are mapped here once. A key none of them
reads is accepted and logged once at debug level, never an error; a key that is an apimon option
name (``max_body_bytes``, ``redact_headers``, ...) is passed through as that option.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from apimon.compat.event_model import EventModel, unwrap
from apimon.compat.views import HookResponse, OutgoingRequest

import apimon
from apimon.config import Config

logger = logging.getLogger("apimon.compat")

Hook = Callable[..., Any]


def _same(value: Any) -> Any:
    # apimon's Config reads booleans and numbers as Moesif users write them (True, "false", 25).
    return value


#: Moesif settings with a plain apimon option of their own: (option, how the value is read).
_PLAIN: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "APPLICATION_ID": ("moesif_application_id", str),
    "BASE_URI": ("moesif_base_url", str),
    "LOCAL_MOESIF_BASEURL": ("moesif_base_url", str),
    "LOG_BODY": ("log_body", _same),
    "LOG_BODY_OUTGOING": ("log_body_outgoing", _same),
    "API_VERSION": ("api_version", _same),
    "AUTHORIZATION_HEADER_NAME": ("user_id_headers", str),
    "AUTHORIZATION_USER_ID_FIELD": ("user_id_claim", str),
    "DEBUG": ("debug", _same),
    "LOCAL_DEBUG": ("debug", _same),
    "BATCH_SIZE": ("batch_size", _same),
    "EVENT_QUEUE_SIZE": ("max_queue", lambda v: min(int(v), 10_000_000)),
    "EVENT_BATCH_TIMEOUT": ("flush_interval", _same),
    "CAPTURE_OUTGOING_REQUESTS": ("capture_outgoing", _same),
}
_OUTGOING_HOOKS = {
    "SKIP_OUTGOING": "skip_outgoing",
    "IDENTIFY_USER_OUTGOING": "identify_user_outgoing",
    "IDENTIFY_COMPANY_OUTGOING": "identify_company_outgoing",
    "GET_SESSION_TOKEN_OUTGOING": "get_session_token_outgoing",
    "GET_METADATA_OUTGOING": "get_metadata_outgoing",
}
#: The settings that are callables (moesifdjango also takes them as dotted paths).
HOOK_SETTINGS = (
    "IDENTIFY_USER",
    "IDENTIFY_COMPANY",
    "GET_SESSION_TOKEN",
    "GET_METADATA",
    "SKIP",
    "MASK_EVENT_MODEL",
    *_OUTGOING_HOOKS,
)
#: Read by the middleware that takes them (the hooks, the masks), or accepted and left to apimon's
#: own machinery (worker threads, the transaction-id flags handled below).
_HANDLED = {
    *HOOK_SETTINGS,
    "DISABLED_TRANSACTION_ID",
    "DISABLE_TRANSACTION_ID",
    "EVENT_WORKER_COUNT",
    "REQUEST_HEADER_MASKS",
    "RESPONSE_HEADER_MASKS",
    "REQUEST_BODY_MASKS",
    "RESPONSE_BODY_MASKS",
}
_APIMON_OPTIONS = frozenset(f.name for f in dataclasses.fields(Config))
_logged: set[str] = set()


def require_application_id(settings: Any) -> Mapping[str, Any]:
    """The settings dict, checked as Moesif's middlewares check it (they raise at construction)."""
    if settings is None or not isinstance(settings, Mapping):
        raise ValueError("Moesif settings must be a dict (the MoesifMiddleware settings argument)")
    if not settings.get("APPLICATION_ID"):
        raise ValueError("Moesif Application ID is required in settings (APPLICATION_ID)")
    return settings


PostMask = Callable[[dict[str, Any]], None]


def options_from(
    settings: Mapping[str, Any], hooks: dict[str, Hook | None], post_mask: PostMask | None = None
) -> dict[str, Any]:
    """apimon's options for ``settings``: the plain ones, the given (already wrapped) hooks, the
    event-model mask (after ``post_mask``, a middleware's own deletions), the outgoing hooks."""
    options: dict[str, Any] = {
        # Moesif sends no session token unless a hook gives one.
        "session_from_credentials": False,
        "transaction_id_header": not (
            settings.get("DISABLED_TRANSACTION_ID", False) or settings.get("DISABLE_TRANSACTION_ID", False)
        ),
    }
    for key, value in settings.items():
        if key in _PLAIN:
            if value is None:
                continue
            option, read = _PLAIN[key]
            options[option] = read(value)
        elif key in _OUTGOING_HOOKS:
            if value is not None:
                options[_OUTGOING_HOOKS[key]] = _outgoing_hook(value)
        elif key in _HANDLED:
            continue
        elif isinstance(key, str) and key in _APIMON_OPTIONS:
            options[key] = value
        else:
            _log_unknown(key)
    # BASE_URI wins over the deprecated LOCAL_MOESIF_BASEURL whatever their order.
    if settings.get("BASE_URI"):
        options["moesif_base_url"] = str(settings["BASE_URI"])
    options.update({name: hook for name, hook in hooks.items() if hook is not None})
    mask = settings.get("MASK_EVENT_MODEL")
    if mask is not None or post_mask is not None:
        options["mask_event"] = _event_mask(mask, post_mask)
    return options


def _log_unknown(key: Any) -> None:
    if key not in _logged:
        _logged.add(key)
        logger.debug("apimon.compat: the Moesif setting %r is not used by apimon; it is ignored", key)


def _outgoing_hook(hook: Hook) -> Hook:
    """Moesif's outgoing hooks take requests' ``(request, response)``: they get objects with
    the attributes those hooks read (``url``, ``method``, ``headers``; ``status_code``)."""

    def call(request: Any, response: Any) -> Any:
        return hook(OutgoingRequest(request), HookResponse(response))

    return call


def _event_mask(mask: Hook | None, post_mask: PostMask | None) -> Hook:
    """``MASK_EVENT_MODEL`` on apimon's event (flusher thread). As in Moesif, a mask that raises
    leaves the event as it is (counted in ``hook_errors``); returning None drops it."""

    def mask_event(event: dict[str, Any]) -> dict[str, Any] | None:
        if post_mask is not None:
            post_mask(event)
        if mask is None:
            return event
        try:
            result = mask(EventModel(event))
            if inspect.isawaitable(result):
                result = _run(result)
        except Exception:
            client = apimon.get_client()
            if client is not None:
                client.hooks.failed("MASK_EVENT_MODEL")
            return unwrap(event, event)
        return unwrap(result, event)

    return mask_event


_loops = threading.local()


def _run(awaitable: Any) -> Any:
    """An ``async`` mask, run to its end on a loop of the flusher thread's own."""
    loop = getattr(_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = _loops.loop = asyncio.new_event_loop()

    async def wait() -> Any:
        return await awaitable

    return loop.run_until_complete(wait())


def delete_headers(headers: Any, names: Iterable[str] | None) -> None:
    """Remove the named headers (any case) from an event's header dict, as Django's
    ``*_HEADER_MASKS`` do."""
    if not names or not isinstance(headers, dict):
        return
    lowered = {str(n).lower() for n in names}
    for key in [k for k in headers if k.lower() in lowered]:
        del headers[key]


def delete_keys(body: Any, names: Iterable[str] | None) -> None:
    """Remove the named keys at any depth of a JSON body, as Django's ``*_BODY_MASKS`` do."""
    if not names:
        return
    wanted = set(names)
    stack = [body]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key in wanted & set(node):
                del node[key]
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
