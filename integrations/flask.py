"""Flask glue: records each call's route template (``/items/<int:item_id>``).

Turned on by wrapping the app's ``wsgi_app`` with the generic WSGI middleware; nothing else to do::

    from apimon.integrations.wsgi import ApimonMiddleware
    app.wsgi_app = ApimonMiddleware(app.wsgi_app, **options)

Hooks receive the WSGI environ as ``request.native`` (Flask's request context has ended by the
time the response is finished); ``environ["werkzeug.request"]`` is the Flask request.
"""

from __future__ import annotations

from typing import Any

try:
    from flask import Flask, current_app, request
except ImportError as exc:  # pragma: no cover - exercised only without Flask
    raise ImportError("apimon.integrations.flask needs Flask: pip install 'apimon[flask]'") from exc

from apimon.integrations.wsgi import ROUTE_KEY, SESSION_KEY

_MARK = "apimon"


def install(app: Any) -> None:
    """Register the route recorder on the Flask ``app`` once."""
    if not isinstance(app, Flask):
        return
    if _MARK in app.extensions:
        return
    app.extensions[_MARK] = True
    # url_value_preprocessor runs for every matched request before any before_request function,
    # so another hook that short-circuits the request cannot hide the route.
    app.url_value_preprocessor(_record_route)


def _record_route(endpoint: str | None, values: dict[str, Any] | None) -> None:
    rule = request.url_rule
    environ = request.environ
    if rule is not None:
        environ[ROUTE_KEY] = rule.rule
    session = request.cookies.get(current_app.config["SESSION_COOKIE_NAME"])
    if session:
        environ[SESSION_KEY] = session
