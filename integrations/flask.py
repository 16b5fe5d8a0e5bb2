"""Flask glue: records each call's route template (``/items/<int:item_id>``) and uses Flask's
session cookie for the session token.

Turned on by wrapping the app's ``wsgi_app`` with the generic WSGI middleware; nothing else to do::

    from apimon.integrations.wsgi import ApimonMiddleware
    app.wsgi_app = ApimonMiddleware(app.wsgi_app, **options)

The route costs the request path one dict lookup: Flask calls ``start_response`` while its request
context is alive, and the middleware reads the matched rule there (:func:`route_at_start`). Only
when none was read (a 404) is the path matched against the URL map, on the flusher thread. Hooks
receive the WSGI environ as ``request.native``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:
    from flask import Flask
    from werkzeug.exceptions import HTTPException
    from werkzeug.http import parse_cookie
    from werkzeug.routing import RequestRedirect
except ImportError as exc:  # pragma: no cover - exercised only without Flask
    raise ImportError("apimon.integrations.flask needs Flask: pip install 'apimon[flask]'") from exc

from apimon.record import RawCall


def route_at_start(environ: dict[str, Any]) -> str | None:
    """The rule Flask matched, read from within ``start_response``: Flask keeps its request in
    ``environ["werkzeug.request"]`` until its context pops, which is after ``start_response``."""
    rule = getattr(environ.get("werkzeug.request"), "url_rule", None)
    return rule.rule if rule is not None else None


def resolver_for(app: Any) -> Callable[[RawCall], None] | None:
    """A function that fills a resolved call's route and session cookie from ``app``; None when
    ``app`` is not a Flask app."""
    if not isinstance(app, Flask):
        return None
    url_map = app.url_map
    cookie_name = app.config.get("SESSION_COOKIE_NAME", "session")

    def resolve(raw: RawCall) -> None:
        environ = raw.source
        if raw.route is None:
            # One MapAdapter per call: matching never mutates the shared map, so this is thread-safe.
            adapter = url_map.bind(raw.host or "localhost", script_name=environ.get("SCRIPT_NAME") or None)
            try:
                rule, _ = adapter.match(environ.get("PATH_INFO") or "/", raw.method, return_rule=True)
                raw.route = rule.rule
            except (HTTPException, RequestRedirect):
                raw.route = None
        cookie_header = environ.get("HTTP_COOKIE")
        if cookie_header and raw.session_cookie is None:
            raw.session_cookie = parse_cookie(cookie_header).get(cookie_name)

    return resolve
