"""The benchmarked apps: the same three endpoints per framework (``GET /ping``, ``POST /echo``,
``GET /large``), as ``bare``, ``apimon``, ``moesif`` (Moesif's own middleware) or ``apimon-compat`` (the same
Moesif settings on ``apimon.compat``), all shipping
to the local collector at ``$BENCH_COLLECTOR``.

Two more variants stop apimon's work at a stage, to show where its cost goes:
``apimon-path`` (the request path alone: every event is dropped at the queue) and
``apimon-build`` (events are handed to the flusher, built and encoded as usual, then taken by a
sink that keeps nothing: everything but gzip, HTTP and the sender thread).

``BENCH_FRAMEWORK`` and ``BENCH_VARIANT`` pick the app when a server imports ``app``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

APP_ID = "bench-app-id"
# The sample modules wrap themselves with apimon at import unless told not to; here the variant decides.
os.environ["APIMON_SAMPLE_BARE"] = "1"


def collector() -> str:
    return os.environ.get("BENCH_COLLECTOR", "http://127.0.0.1:9")


def apimon_options() -> dict[str, Any]:
    import orjson

    extra = orjson.loads(os.environ.get("BENCH_APIMON_EXTRA", "{}"))
    return {"moesif_application_id": APP_ID, "moesif_base_url": collector(), "store": "off", **extra}


def moesif_settings() -> dict[str, Any]:
    return {"APPLICATION_ID": APP_ID, "BASE_URI": collector(), "LOG_BODY": True}


def compat_settings() -> dict[str, Any]:
    """Moesif's settings for apimon.compat (the ``apimon-compat`` variant): the same dict, plus the
    benchmark's apimon options (an apimon option name in the dict is taken as that option)."""
    import orjson

    return {**moesif_settings(), "store": "off", **orjson.loads(os.environ.get("BENCH_APIMON_EXTRA", "{}"))}


def _discarding_sink() -> Any:
    """A sink that takes every batch and keeps nothing (the ``apimon-build`` variant). Made on
    demand: the bare variant must not import apimon (its memory is the baseline)."""
    from apimon.sinks import Item, Outcome, Sink

    class Discard(Sink):
        name = "discard"
        counter = "sent"

        def send(self, batch: Sequence[Item]) -> Outcome:
            return Outcome(delivered=len(batch))

    return Discard()


def _apimon(variant: str) -> dict[str, Any]:
    options = apimon_options()
    if variant == "apimon-path":
        # The request path alone: every event is dropped at the queue, the flusher stays idle.
        options["max_queue"] = 1
        options["overload_sampling"] = False  # every call is dropped at the queue, on purpose
    elif variant == "apimon-build":
        # The process-wide client, made here with a sink that keeps nothing: the adapter (or
        # Django's middleware, from its settings) then finds it instead of making its own.
        import apimon
        from apimon.client import Client
        from apimon.config import Config

        apimon._client = Client(Config.from_options(options), sinks=[_discarding_sink()])
    return options


def flask_app(variant: str) -> Any:
    from sample_apps.flask_app.app import create_app

    app = create_app()
    if variant.startswith("apimon") and variant != "apimon-compat":
        from apimon.integrations.wsgi import ApimonMiddleware

        app.wsgi_app = ApimonMiddleware(app.wsgi_app, **_apimon(variant))  # type: ignore[method-assign]
    elif variant == "apimon-compat":
        from apimon.compat.moesifwsgi import MoesifMiddleware as CompatMiddleware

        app.wsgi_app = CompatMiddleware(app.wsgi_app, compat_settings())  # type: ignore[method-assign]
    elif variant == "moesif":
        from moesifwsgi import MoesifMiddleware

        app.wsgi_app = MoesifMiddleware(app.wsgi_app, moesif_settings())  # type: ignore[method-assign]
    return app


def starlette_app(variant: str) -> Any:
    from starlette.applications import Starlette

    from sample_apps.starlette_app.app import routes

    app = Starlette(routes=routes)
    if variant == "apimon-compat":
        from apimon.compat.moesifasgi import MoesifMiddleware as CompatMiddleware

        app.add_middleware(CompatMiddleware, settings=compat_settings())
    elif variant.startswith("apimon"):
        from apimon.integrations.starlette import ApimonMiddleware

        app.add_middleware(ApimonMiddleware, **_apimon(variant))
    elif variant == "moesif":
        from moesifasgi import MoesifMiddleware

        app.add_middleware(MoesifMiddleware, settings=moesif_settings())
    return app


def django_app(variant: str, asgi: bool = False) -> Any:
    os.environ["BENCH_VARIANT"] = variant
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.django_settings"
    if asgi:
        from django.core.asgi import get_asgi_application

        return get_asgi_application()
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def build(framework: str, variant: str) -> Any:
    if framework == "flask":
        return flask_app(variant)
    if framework == "starlette":
        return starlette_app(variant)
    return django_app(variant)


if "BENCH_FRAMEWORK" in os.environ:
    app = build(os.environ["BENCH_FRAMEWORK"], os.environ.get("BENCH_VARIANT", "bare"))
