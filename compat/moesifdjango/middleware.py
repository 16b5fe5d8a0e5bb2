"""``'apimon.compat.moesifdjango.middleware.moesif_middleware'`` in ``MIDDLEWARE``: moesifdjango's
middleware on apimon, for sync and async views alike. It reads ``settings.MOESIF_MIDDLEWARE`` when
Django builds it (not at import: the settings module may import this one).

The hooks keep moesifdjango's ``(request, response)`` with Django's own objects. As moesifdjango
does, the user is ``IDENTIFY_USER``'s, else the authenticated user's ``username``, else the
``Authorization`` header's; the session token is the session's key (sent as its HMAC: the key is
a live credential), else ``GET_SESSION_TOKEN``'s; ``REQUEST_HEADER_MASKS`` and
``RESPONSE_HEADER_MASKS`` remove those headers and ``REQUEST_BODY_MASKS`` / ``RESPONSE_BODY_MASKS``
those keys at any depth, before ``MASK_EVENT_MODEL`` runs. ``moesif_middleware(None)`` makes an
instance for ``update_user``, ``update_company``, ``update_subscription`` and their batches.
"""

from __future__ import annotations

from typing import Any

try:
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.http import HttpRequest
    from django.utils.module_loading import import_string
except ImportError as exc:  # pragma: no cover - exercised only without Django
    raise ImportError("apimon.compat.moesifdjango needs Django: pip install 'apimon[django]'") from exc

from apimon.compat.profiles import ProfileMethods, SubscriptionMethods
from apimon.compat.settings import (
    HOOK_SETTINGS,
    Hook,
    delete_headers,
    delete_keys,
    options_from,
    require_application_id,
)
from apimon.integrations.django import ApimonMiddleware

import apimon
from apimon.identity import session_hash


class moesif_middleware(ApimonMiddleware, ProfileMethods, SubscriptionMethods):  # noqa: N801 - moesifdjango's name
    """Django middleware configured by ``settings.MOESIF_MIDDLEWARE`` (moesifdjango's dict)."""

    def options(self) -> dict[str, Any]:
        try:
            raw = getattr(settings, "MOESIF_MIDDLEWARE", None)
            moesif = dict(require_application_id(raw))
        except ValueError as exc:
            raise ImproperlyConfigured(f"settings.MOESIF_MIDDLEWARE: {exc}") from None
        for name in HOOK_SETTINGS:
            value = moesif.get(name)
            if isinstance(value, str) and "." in value:
                moesif[name] = import_string(value)
        self.settings = moesif
        return options_from(moesif, _hooks(moesif), _masks(moesif))

    def framework_user(self, request: HttpRequest) -> str | None:
        """The authenticated user's ``username``, as moesifdjango takes it. A user the app did
        not load is loaded here under WSGI (as moesifdjango does), never under ASGI (that would
        be a database query on the event loop)."""
        user = self.loaded_user(request)
        if user is None and self.auth_installed and not self.async_mode and "user" in request.__dict__:
            try:
                candidate = request.user
                user = candidate if getattr(candidate, "is_authenticated", False) else None
            except Exception:
                user = None
        name = getattr(user, "username", None) if user is not None else None
        return str(name) if name else None

    def framework_session(self, request: HttpRequest) -> str | None:
        return _session_key(request)


#: moesifdjango's README writes ``MoesifMiddleware(None)``.
MoesifMiddleware = moesif_middleware


def _hooks(moesif: dict[str, Any]) -> dict[str, Hook | None]:
    def wrapped(hook: Hook | None) -> Hook | None:
        if hook is None:
            return None
        return lambda request, response: hook(request.native, response.native)

    session_hook = moesif.get("GET_SESSION_TOKEN")

    def session_token(request: Any, response: Any) -> Any:
        # moesifdjango's order: the session's key, else the hook.
        key = _session_key(request.native)
        if key is not None:
            return key
        return session_hook(request.native, response.native) if session_hook is not None else None

    return {
        "identify_user": wrapped(moesif.get("IDENTIFY_USER")),
        "identify_company": wrapped(moesif.get("IDENTIFY_COMPANY")),
        # Without GET_SESSION_TOKEN the session key comes from framework_session: no hook to run.
        "get_session_token": session_token if session_hook is not None else None,
        "get_metadata": wrapped(moesif.get("GET_METADATA")),
        "skip_response": wrapped(moesif.get("SKIP")),
    }


def _session_key(request: Any) -> str | None:
    """The session's key as the event carries it: its HMAC (the key itself is a credential)."""
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None) if session is not None else None
    if not key:
        return None
    client = apimon.get_client()
    return session_hash(str(key), client.config.session_secret if client is not None else None)


def _masks(moesif: dict[str, Any]) -> Any:
    masks = {
        key: moesif.get(key)
        for key in ("REQUEST_HEADER_MASKS", "RESPONSE_HEADER_MASKS", "REQUEST_BODY_MASKS", "RESPONSE_BODY_MASKS")
    }
    if not any(masks.values()):
        return None

    def delete(event: dict[str, Any]) -> None:
        request = event.get("request") or {}
        response = event.get("response") or {}
        delete_headers(request.get("headers"), masks["REQUEST_HEADER_MASKS"])
        delete_headers(response.get("headers"), masks["RESPONSE_HEADER_MASKS"])
        delete_keys(request.get("body"), masks["REQUEST_BODY_MASKS"])
        delete_keys(response.get("body"), masks["RESPONSE_BODY_MASKS"])

    return delete
