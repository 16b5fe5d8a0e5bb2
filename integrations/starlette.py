"""Starlette glue: the generic ASGI middleware plus each call's route template (``/items/{id}``).

Usage::

    from apimon.integrations.starlette import ApimonMiddleware
    app.add_middleware(ApimonMiddleware, **options)
"""

from __future__ import annotations

try:
    import starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without Starlette
    raise ImportError("apimon.integrations.starlette needs Starlette: pip install 'apimon[starlette]'") from exc

from apimon.integrations import asgi

from apimon.types import Scope


def route_template(scope: Scope) -> str | None:
    """The matched route's path template, with the prefix of any ``Mount`` it sits under.

    Starlette's router stores the matched route in ``scope["route"]`` of the same scope dict
    the middleware holds; a mount adds its matched prefix to ``root_path``.
    """
    path = getattr(scope.get("route"), "path", None)
    if not isinstance(path, str):
        return None
    root = scope.get("root_path", "")
    app_root = scope.get("app_root_path", "")
    prefix = root[len(app_root) :] if root.startswith(app_root) else ""
    return prefix + path


class ApimonMiddleware(asgi.ApimonMiddleware):
    """:class:`apimon.integrations.asgi.ApimonMiddleware` that also records route templates."""

    route_resolver = staticmethod(route_template)
