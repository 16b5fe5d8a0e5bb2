"""``from apimon.compat.moesifasgi import MoesifMiddleware``: moesifasgi's middleware on apimon,
as pure ASGI.

Usage, as moesifasgi's README has it::

    app.add_middleware(MoesifMiddleware, settings=moesif_settings)

The hooks keep moesifasgi's ``(request, response)``: a Starlette ``Request`` and a response with
``status_code`` and case-insensitive ``headers``; an ``async def`` hook is awaited on the
request's loop. ``MoesifMiddleware(None, settings)`` (or with no app) makes an instance used only
for ``update_user`` and the other profile methods.
"""

from __future__ import annotations

from typing import Any

try:
    from starlette.requests import Request
except ImportError as exc:  # pragma: no cover - exercised only without Starlette
    raise ImportError("apimon.compat.moesifasgi needs Starlette: pip install 'apimon[starlette]'") from exc

from apimon.compat.profiles import ProfileMethods
from apimon.compat.settings import Hook, options_from, require_application_id
from apimon.compat.views import HookResponse
from apimon.integrations.starlette import ApimonMiddleware

from apimon.types import ASGIApp, Receive, Scope, Send


class MoesifMiddleware(ApimonMiddleware, ProfileMethods):
    """A pure-ASGI middleware taking moesifasgi's ``settings``; raises when ``APPLICATION_ID`` is
    missing, as moesifasgi does. Every instance shares the process-wide apimon client."""

    def __init__(self, app: ASGIApp | None = None, settings: Any = None, *args: Any, **kwargs: Any) -> None:
        settings = require_application_id(settings if settings is not None else kwargs.get("settings"))
        self.settings = settings
        super().__init__(app if app is not None else _no_app, **options_from(settings, _hooks(settings)))


async def _no_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("this MoesifMiddleware was made without an app: it is only for update_user and the like")


def _hooks(settings: Any) -> dict[str, Hook | None]:
    def wrapped(hook: Hook | None) -> Hook | None:
        if hook is None:
            return None

        # What the hook returns (an awaitable, for an async one) goes back as it is: apimon
        # awaits it on the request's loop.
        def call(request: Any, response: Any) -> Any:
            return hook(Request(request.native), HookResponse(response))

        return call

    return {
        "identify_user": wrapped(settings.get("IDENTIFY_USER")),
        "identify_company": wrapped(settings.get("IDENTIFY_COMPANY")),
        "get_session_token": wrapped(settings.get("GET_SESSION_TOKEN")),
        "get_metadata": wrapped(settings.get("GET_METADATA")),
        "skip_response": wrapped(settings.get("SKIP")),
    }
