"""A Flask app configured the way moesifwsgi's README does it; only the import differs.

``MOESIF_IMPL=moesif`` runs it on Moesif's own middleware instead (``./dev moesif-compare``).
"""

from __future__ import annotations

import os
from typing import Any

import requests
from flask import Flask, Response, jsonify, request

if os.environ.get("MOESIF_IMPL") == "moesif":
    from moesifwsgi import MoesifMiddleware  # type: ignore[import-not-found]
else:
    from apimon.compat.moesifwsgi import MoesifMiddleware


def identify_user(app: Any, environ: dict[str, Any], response_headers: dict[str, str] = {}) -> str | None:  # noqa: B006
    return environ.get("HTTP_X_USER_ID")


def identify_company(app: Any, environ: dict[str, Any], response_headers: dict[str, str] = {}) -> str | None:  # noqa: B006
    return response_headers.get("X-Company-Id")


def get_token(app: Any, environ: dict[str, Any]) -> str | None:
    return environ.get("HTTP_X_SESSION")


def get_metadata(app: Any, environ: dict[str, Any]) -> dict[str, Any]:
    return {"datacenter": "westus", "deployment_version": "v1.2.3"}


def should_skip(app: Any, environ: dict[str, Any]) -> bool:
    # moesifwsgi leaves the response headers in the environ before it asks.
    headers = environ.get("moesif.response_headers") or {}
    return "health" in environ.get("PATH_INFO", "") or headers.get("X-Skip") == "1"


def mask_event(eventmodel: Any) -> Any:
    if "X-Secret" in eventmodel.request.headers:
        eventmodel.request.headers["X-Secret"] = "****"
    body = eventmodel.request.body
    if isinstance(body, dict) and "card" in body:
        body["card"] = "****"
    if eventmodel.request.uri.endswith("/drop"):
        return None
    return eventmodel


def identify_user_outgoing(req: Any, res: Any) -> str:
    return "outgoing-user"


def get_metadata_outgoing(req: Any, res: Any) -> dict[str, Any]:
    return {"target": req.url.split("?")[0], "status": res.status_code}


def skip_outgoing(req: Any, res: Any) -> bool:
    return "skip-out" in req.url


moesif_settings = {
    "APPLICATION_ID": os.environ["MOESIF_APPLICATION_ID"],
    "BASE_URI": os.environ["MOESIF_BASE_URI"],
    "LOG_BODY": os.environ.get("MOESIF_LOG_BODY", "1") == "1",
    "DEBUG": False,
    "IDENTIFY_USER": identify_user,
    "IDENTIFY_COMPANY": identify_company,
    "GET_SESSION_TOKEN": get_token,
    "GET_METADATA": get_metadata,
    "SKIP": should_skip,
    "MASK_EVENT_MODEL": mask_event,
    "DISABLED_TRANSACTION_ID": os.environ.get("MOESIF_NO_TID") == "1",
    "CAPTURE_OUTGOING_REQUESTS": True,
    "IDENTIFY_USER_OUTGOING": identify_user_outgoing,
    "GET_METADATA_OUTGOING": get_metadata_outgoing,
    "SKIP_OUTGOING": skip_outgoing,
    "BATCH_SIZE": 5,
    "EVENT_BATCH_TIMEOUT": 0.2,
    "SOME_FUTURE_SETTING": "ignored",
}

app = Flask(__name__)


@app.get("/ping")
def ping() -> Any:
    return "pong"


@app.post("/items")
def create_item() -> Any:
    data = request.get_json()
    response = jsonify({"id": 1, **data})
    response.status_code = 201
    response.headers["X-Company-Id"] = "acme"
    return response


@app.get("/health")
def health() -> Any:
    return "ok"


@app.get("/teapot")
def teapot() -> Any:
    return Response("short and stout", status=418, headers={"X-Skip": "1"})


@app.get("/drop")
def drop() -> Any:
    return "dropped by the mask"


@app.get("/call-out")
def call_out() -> Any:
    base = os.environ["MOESIF_BASE_URI"]
    kept = requests.get(f"{base}/outgoing-probe?q=1", timeout=5).status_code
    requests.get(f"{base}/skip-out", timeout=5)
    return jsonify({"status": kept})


@app.post("/profiles")
def profiles() -> Any:
    middleware.update_user(request.get_json()["user"])
    middleware.update_company(request.get_json()["company"])
    middleware.update_users_batch([{"user_id": "batch-user", "metadata": {"n": 1}}])
    middleware.update_companies_batch([{"company_id": "batch-co", "company_domain": "batch.example"}])
    return "", 204


middleware = MoesifMiddleware(app.wsgi_app, moesif_settings)
app.wsgi_app = middleware  # type: ignore[method-assign]
