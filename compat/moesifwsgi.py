"""``from apimon.compat.moesifwsgi import MoesifMiddleware``: moesifwsgi's middleware on apimon.

Usage, as moesifwsgi's README has it::

    app.wsgi_app = MoesifMiddleware(app.wsgi_app, moesif_settings)

The hooks keep moesifwsgi's arguments: ``IDENTIFY_USER(app, environ, response_headers)`` and
``IDENTIFY_COMPANY`` (the response headers as a dict, as the app set them),
``GET_SESSION_TOKEN(app, environ)``, ``GET_METADATA(app, environ)``, ``SKIP(app, environ)``
(decided when the call has ended; ``environ["moesif.response_headers"]`` holds the response's
headers, as moesifwsgi leaves them) and ``MASK_EVENT_MODEL(event_model)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from apimon.compat.profiles import ProfileMethods
from apimon.compat.settings import Hook, options_from, require_application_id
from apimon.integrations.wsgi import ApimonMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


class MoesifMiddleware(ApimonMiddleware, ProfileMethods):
    """A WSGI callable taking moesifwsgi's ``(app, settings)``; raises when ``APPLICATION_ID``
    is missing, as moesifwsgi does. Every instance shares the process-wide apimon client."""

    def __init__(self, app: WSGIApplication, settings: Any) -> None:
        settings = require_application_id(settings)
        self.settings = settings
        super().__init__(app, **options_from(settings, _hooks(app, settings)))


def _hooks(app: Any, settings: Any) -> dict[str, Hook | None]:
    def with_headers(hook: Hook | None) -> Hook | None:
        if hook is None:
            return None
        return lambda request, response: hook(app, request.native, dict(response.headers))

    def with_environ(hook: Hook | None) -> Hook | None:
        if hook is None:
            return None

        def call(request: Any, response: Any) -> Any:
            environ = request.native
            # moesifwsgi leaves the response headers there for these hooks (SKIP reads them).
            environ.setdefault("moesif.response_headers", dict(response.headers))
            return hook(app, environ)

        return call

    return {
        "identify_user": with_headers(settings.get("IDENTIFY_USER")),
        "identify_company": with_headers(settings.get("IDENTIFY_COMPANY")),
        "get_session_token": with_environ(settings.get("GET_SESSION_TOKEN")),
        "get_metadata": with_environ(settings.get("GET_METADATA")),
        "skip_response": with_environ(settings.get("SKIP")),
    }
