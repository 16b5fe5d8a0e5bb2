"""FastAPI glue: FastAPI's routes are Starlette routes, so the Starlette glue serves as is.

Usage::

    from apimon.integrations.fastapi import ApimonMiddleware
    app.add_middleware(ApimonMiddleware, **options)
"""

from __future__ import annotations

try:
    import fastapi  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without FastAPI
    raise ImportError("apimon.integrations.fastapi needs FastAPI: pip install 'apimon[fastapi]'") from exc

from apimon.integrations.starlette import ApimonMiddleware, route_template

__all__ = ["ApimonMiddleware", "route_template"]
