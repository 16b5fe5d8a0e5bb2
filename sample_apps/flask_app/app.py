"""The sample API on Flask, used by `apimon demo`, the tests and the benchmarks.

Run it: ``gunicorn 'sample_apps.flask_app.app:app'`` from the repository root. With
``APIMON_SAMPLE_BARE=1`` it runs without apimon (to compare bytes and speed).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import orjson
from flask import Flask, Response, request, stream_with_context

from sample_apps.common import (
    BINARY,
    COOKIES,
    ETAG,
    GZIPPED,
    LARGE,
    SSE_EVENTS,
    Items,
    dumps,
    options_from_env,
    partner_url,
    user_from,
    work_report,
)


def _json(value: Any, status: int = 200) -> Response:
    return Response(dumps(value), status=status, content_type="application/json")


def create_app() -> Flask:
    app = Flask(__name__)
    items = Items()

    @app.get("/ping")
    def ping() -> Any:
        return _json({"ok": True})

    @app.post("/echo")
    def echo() -> Any:
        return Response(request.get_data(), content_type=request.content_type or "application/octet-stream")

    @app.get("/large")
    def large() -> Any:
        return Response(LARGE, content_type="application/json")

    @app.get("/work")
    def work() -> Any:
        return Response(work_report(), content_type="application/json")

    @app.get("/items")
    def list_items() -> Any:
        return _json({"items": list(items.items.values())})

    @app.post("/items")
    def create_item() -> Any:
        try:
            body = orjson.loads(request.get_data())
        except orjson.JSONDecodeError:
            body = None
        status, value = items.create(body)
        return _json(value, status)

    @app.get("/items/<int:item_id>")
    def get_item(item_id: int) -> Any:
        status, value = items.get(item_id)
        return _json(value, status)

    @app.put("/items/<int:item_id>")
    def update_item(item_id: int) -> Any:
        status, value = items.update(item_id, request.get_json(silent=True))
        return _json(value, status)

    @app.delete("/items/<int:item_id>")
    def delete_item(item_id: int) -> Any:
        items.items.pop(item_id, None)
        return Response(status=204)

    @app.post("/form")
    def form() -> Any:
        return _json({"fields": sorted(request.form.keys())})

    @app.post("/upload")
    def upload() -> Any:
        files = {name: len(f.read()) for name, f in request.files.items()}
        return _json({"files": files, "fields": dict(request.form)})

    @app.get("/download")
    def download() -> Any:
        return Response(BINARY, content_type="application/octet-stream")

    @app.get("/gzip")
    def gzipped() -> Any:
        return Response(GZIPPED, content_type="application/json", headers={"Content-Encoding": "gzip"})

    @app.get("/stream")
    def stream() -> Any:
        delay = float(request.args.get("delay", "0.05"))
        parts = int(request.args.get("parts", "5"))

        def generate() -> Iterator[bytes]:
            for i in range(parts):
                yield f"chunk {i}\n".encode()
                time.sleep(delay)

        return Response(stream_with_context(generate()), content_type="text/plain")

    @app.get("/events")
    def events() -> Any:
        def generate() -> Iterator[str]:
            for event in SSE_EVENTS:
                yield event
                time.sleep(0.02)

        return Response(generate(), content_type="text/event-stream")

    @app.get("/cookies")
    def cookies() -> Any:
        response = Response(b"ok", content_type="text/plain")
        for cookie in COOKIES:
            response.headers.add("Set-Cookie", cookie)
        return response

    @app.get("/cached")
    def cached() -> Any:
        if request.headers.get("If-None-Match") == ETAG:
            return Response(status=304, headers={"ETag": ETAG})
        return Response(b"cached", content_type="text/plain", headers={"ETag": ETAG})

    @app.get("/me")
    def me() -> Any:
        user = user_from(request.headers.get("Authorization"))
        return _json({"user": user}) if user else _json({"error": "unauthorized"}, 401)

    @app.post("/login")
    def login() -> Any:
        return _json({"token": "not-a-real-token", "ok": True})

    @app.get("/partner")
    def partner() -> Any:
        # An outgoing call made while serving this one (the outgoing-call tests).
        import requests

        return _json(requests.get(partner_url("flask"), timeout=10).json())

    @app.get("/_apimon/stats")
    def apimon_stats() -> Any:
        import apimon

        return _json({**apimon.stats(), "pid": os.getpid()})

    @app.get("/boom")
    def boom() -> Any:
        raise RuntimeError("the sample app raised on purpose")

    return app


app = create_app()
if os.environ.get("APIMON_SAMPLE_VALIDATE") == "1":
    # Under wsgiref's validator the app must keep PEP 3333 too: Flask gives 204 and 304 a type.
    @app.after_request
    def _no_type_without_content(response: Response) -> Response:
        if response.status_code in (204, 304):
            response.headers.pop("Content-Type", None)
        return response


if os.environ.get("APIMON_SAMPLE_BARE") != "1":
    from apimon.integrations.wsgi import ApimonMiddleware

    # Tests and benchmarks pass extra options as JSON (e.g. a retry deadline).
    options = {
        "flush_interval": 0.2,
        # The stats endpoint is for the tests and benchmarks that watch apimon: not an API call.
        "skip": lambda request: request.path.startswith("/_apimon/"),
        **orjson.loads(os.environ.get("APIMON_SAMPLE_OPTIONS", "{}")),
        **options_from_env(),
    }
    if os.environ.get("APIMON_SAMPLE_FAULTY_HOOKS") == "1":
        # The fail-open tests: every hook raises; mask_event raises on some calls.
        def _broken(*args: Any) -> Any:
            raise RuntimeError("a hook with a bug")

        def _mask(event: dict[str, Any]) -> dict[str, Any]:
            if "/echo" in event["request"]["uri"]:
                raise RuntimeError("a mask_event with a bug")
            return event

        options.update(
            identify_user=_broken,
            identify_company=_broken,
            get_session_token=_broken,
            get_metadata=_broken,
            api_version=_broken,
            mask_event=_mask,
        )
    if os.environ.get("APIMON_SAMPLE_WORKER_PID") == "1":
        # Which worker served each call, for the multi-worker reliability tests.
        options["get_metadata"] = lambda request, response: {"worker_pid": os.getpid()}
    if os.environ.get("APIMON_SAMPLE_VALIDATE") == "1":
        # PEP 3333 checked on both sides of apimon: what the server hands it, what it hands the app.
        from wsgiref.validate import validator

        from sample_apps.common import sized_reads

        app.wsgi_app = sized_reads(validator(ApimonMiddleware(validator(app.wsgi_app), **options)))  # type: ignore[method-assign]
    else:
        app.wsgi_app = ApimonMiddleware(app.wsgi_app, **options)  # type: ignore[method-assign]
elif os.environ.get("APIMON_SAMPLE_VALIDATE") == "1":
    from wsgiref.validate import validator

    from sample_apps.common import sized_reads

    app.wsgi_app = sized_reads(validator(validator(app.wsgi_app)))  # type: ignore[method-assign]
