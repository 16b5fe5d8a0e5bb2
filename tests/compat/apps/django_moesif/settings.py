"""A Django project configured the way moesifdjango's README does it; only the MIDDLEWARE path
differs (``MOESIF_IMPL=moesif``: Moesif's own middleware, for ``./dev moesif-compare``)."""

from __future__ import annotations

import os
from typing import Any

SECRET_KEY = "compat-test-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.compat.apps.django_moesif.urls"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]
DATABASES: dict[str, Any] = {}
USE_TZ = True
_PREFIX = "" if os.environ.get("MOESIF_IMPL") == "moesif" else "apimon.compat."
MIDDLEWARE = [_PREFIX + "moesifdjango.middleware.moesif_middleware"]


def identify_user(req: Any, res: Any) -> str | None:
    return req.META.get("HTTP_X_USER_ID")


def identify_company(req: Any, res: Any) -> str | None:
    return res.get("X-Company-Id") if res is not None else None


def get_token(req: Any, res: Any) -> str | None:
    return req.META.get("HTTP_X_SESSION")


def get_metadata(req: Any, res: Any) -> dict[str, Any]:
    return {"datacenter": "westus", "deployment_version": "v1.2.3"}


def should_skip(req: Any, res: Any) -> bool:
    return "health" in req.path or res.status_code == 418


def mask_event(eventmodel: Any) -> Any:
    if "X-SECRET" in eventmodel.request.headers:
        eventmodel.request.headers["X-SECRET"] = "****"
    body = eventmodel.request.body
    if isinstance(body, dict) and "card" in body:
        body["card"] = "****"
    if eventmodel.request.uri.endswith("/drop"):
        return None
    return eventmodel


MOESIF_MIDDLEWARE = {
    "APPLICATION_ID": os.environ["MOESIF_APPLICATION_ID"],
    "BASE_URI": os.environ["MOESIF_BASE_URI"],
    "LOG_BODY": os.environ.get("MOESIF_LOG_BODY", "1") == "1",
    "LOCAL_DEBUG": False,
    "IDENTIFY_USER": identify_user,
    "IDENTIFY_COMPANY": identify_company,
    "GET_SESSION_TOKEN": get_token,
    "GET_METADATA": get_metadata,
    "SKIP": should_skip,
    "MASK_EVENT_MODEL": mask_event,
    "DISABLE_TRANSACTION_ID": os.environ.get("MOESIF_NO_TID") == "1",
    "REQUEST_HEADER_MASKS": ["X-Api-Token"],
    "RESPONSE_BODY_MASKS": ["internal"],
    "CAPTURE_OUTGOING_REQUESTS": False,
    "BATCH_SIZE": 5,
}
