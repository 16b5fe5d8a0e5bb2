"""A small, realistic Flask API used by `apimon demo`, the tests and the benchmarks.

Run it: ``gunicorn 'sample_apps.flask_app.app:app'`` from the repository root. With
``APIMON_SAMPLE_BARE=1`` it runs without apimon (to compare bytes and speed).
"""

from __future__ import annotations

import base64
import gzip
import os
import time
from collections.abc import Iterator
from typing import Any

import orjson
from flask import Flask, Response, abort, request, stream_with_context

ITEMS: dict[int, dict[str, Any]] = {}
LARGE = orjson.dumps({"rows": [{"id": i, "name": f"row-{i:06d}", "ok": True} for i in range(6400)]})[: 256 * 1024]


def _user() -> str | None:
    auth = request.headers.get("Authorization", "")
    scheme, _, cred = auth.partition(" ")
    if scheme.lower() == "bearer" and cred.count(".") == 2:
        payload = cred.split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims.get("sub"))
    if scheme.lower() == "basic":
        return base64.b64decode(cred).decode().partition(":")[0]
    return None


def create_app() -> Flask:
    app = Flask(__name__)

    @app.get("/ping")
    def ping() -> Any:
        return {"ok": True}

    @app.post("/echo")
    def echo() -> Any:
        return Response(request.get_data(), content_type=request.content_type or "application/octet-stream")

    @app.get("/large")
    def large() -> Any:
        return Response(LARGE, content_type="application/json")

    @app.get("/items")
    def list_items() -> Any:
        return {"items": list(ITEMS.values())}

    @app.post("/items")
    def create_item() -> Any:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or "name" not in body:
            return {"error": "name is required"}, 400
        item_id = len(ITEMS) + 1
        ITEMS[item_id] = {"id": item_id, **body}
        return ITEMS[item_id], 201

    @app.get("/items/<int:item_id>")
    def get_item(item_id: int) -> Any:
        if item_id not in ITEMS:
            abort(404)
        return ITEMS[item_id]

    @app.put("/items/<int:item_id>")
    def update_item(item_id: int) -> Any:
        if item_id not in ITEMS:
            abort(404)
        ITEMS[item_id].update(request.get_json(silent=True) or {})
        return ITEMS[item_id]

    @app.delete("/items/<int:item_id>")
    def delete_item(item_id: int) -> Any:
        ITEMS.pop(item_id, None)
        return "", 204

    @app.post("/form")
    def form() -> Any:
        return {"fields": sorted(request.form.keys())}

    @app.post("/upload")
    def upload() -> Any:
        files = {name: len(f.read()) for name, f in request.files.items()}
        return {"files": files, "fields": dict(request.form)}

    @app.get("/download")
    def download() -> Any:
        return Response(bytes(range(256)) * 4, content_type="application/octet-stream")

    @app.get("/gzip")
    def gzipped() -> Any:
        body = gzip.compress(orjson.dumps({"compressed": True, "n": list(range(50))}))
        return Response(body, content_type="application/json", headers={"Content-Encoding": "gzip"})

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
            for i in range(3):
                yield f'id: {i}\ndata: {{"tick": {i}}}\n\n'
                time.sleep(0.02)

        return Response(generate(), content_type="text/event-stream")

    @app.get("/cookies")
    def cookies() -> Any:
        response = Response("ok", content_type="text/plain")
        response.set_cookie("a", "1")
        response.set_cookie("b", "2")
        return response

    @app.get("/me")
    def me() -> Any:
        user = _user()
        if not user:
            return {"error": "unauthorized"}, 401
        return {"user": user}

    @app.post("/login")
    def login() -> Any:
        return {"token": "not-a-real-token", "ok": True}

    @app.get("/boom")
    def boom() -> Any:
        raise RuntimeError("the sample app raised on purpose")

    return app


app = create_app()
if os.environ.get("APIMON_SAMPLE_BARE") != "1":
    from apimon.integrations.wsgi import ApimonMiddleware

    app.wsgi_app = ApimonMiddleware(app.wsgi_app, flush_interval=0.2)  # type: ignore[method-assign]
