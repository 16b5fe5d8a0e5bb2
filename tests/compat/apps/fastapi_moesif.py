"""A FastAPI app configured the way moesifasgi's README does it; only the import differs.

``MOESIF_IMPL=moesif`` runs it on Moesif's own middleware instead (``./dev moesif-compare``).
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

if os.environ.get("MOESIF_IMPL") == "moesif":
    from moesifasgi import MoesifMiddleware  # type: ignore[import-not-found]
else:
    from apimon.compat.moesifasgi import MoesifMiddleware


async def identify_user(request: Any, response: Any) -> str | None:
    return request.headers.get("x-user-id")


def identify_company(request: Any, response: Any) -> str | None:
    return response.headers.get("x-company-id")


async def get_token(request: Any, response: Any) -> str | None:
    return request.headers.get("x-session")


def get_metadata(request: Any, response: Any) -> dict[str, Any]:
    return {"datacenter": "westus", "deployment_version": "v1.2.3"}


async def should_skip(request: Any, response: Any) -> bool:
    return "health" in request.url.path or response.status_code == 418


async def mask_event(eventmodel: Any) -> Any:
    if "x-secret" in eventmodel.request.headers:
        eventmodel.request.headers["x-secret"] = "****"
    body = eventmodel.request.body
    if isinstance(body, dict) and "card" in body:
        body["card"] = "****"
    if eventmodel.request.uri.endswith("/drop"):
        return None
    return eventmodel


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
    "CAPTURE_OUTGOING_REQUESTS": False,
    "BATCH_SIZE": 5,
    "EVENT_BATCH_TIMEOUT": 0.2,
}

app = FastAPI()
app.add_middleware(MoesifMiddleware, settings=moesif_settings)
# moesifasgi's README builds one more, only to update profiles.
profiles_client = MoesifMiddleware(None, settings=moesif_settings)


@app.get("/ping")
async def ping() -> PlainTextResponse:
    return PlainTextResponse("pong")


@app.post("/items")
async def create_item(request: Request) -> JSONResponse:
    data = await request.json()
    return JSONResponse({"id": 1, **data}, status_code=201, headers={"X-Company-Id": "acme"})


@app.get("/health")
async def health() -> PlainTextResponse:
    return PlainTextResponse("ok")


@app.get("/teapot")
async def teapot() -> PlainTextResponse:
    return PlainTextResponse("short and stout", status_code=418, headers={"X-Skip": "1"})


@app.get("/drop")
async def drop() -> PlainTextResponse:
    return PlainTextResponse("dropped by the mask")


@app.post("/profiles")
async def profiles(request: Request) -> Response:
    data = await request.json()
    profiles_client.update_user(data["user"])
    profiles_client.update_company(data["company"])
    profiles_client.update_users_batch([{"user_id": "batch-user", "metadata": {"n": 1}}])
    profiles_client.update_companies_batch([{"company_id": "batch-co", "company_domain": "batch.example"}])
    return Response(status_code=204)
