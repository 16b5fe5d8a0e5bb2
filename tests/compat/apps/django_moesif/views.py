from __future__ import annotations

import json
import os
from types import SimpleNamespace
from typing import Any

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

if os.environ.get("MOESIF_IMPL") == "moesif":
    from moesifdjango.middleware import moesif_middleware  # type: ignore[import-not-found]
else:
    from apimon.compat.moesifdjango.middleware import moesif_middleware


def ping(request: Any) -> HttpResponse:
    return HttpResponse("pong", content_type="text/plain")


@csrf_exempt
def items(request: Any) -> HttpResponse:
    data = json.loads(request.body)
    response = JsonResponse({"id": 1, **data}, status=201)
    response["X-Company-Id"] = "acme"
    return response


def health(request: Any) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


def teapot(request: Any) -> HttpResponse:
    return HttpResponse("short and stout", status=418, content_type="text/plain")


def drop(request: Any) -> HttpResponse:
    return HttpResponse("dropped by the mask", content_type="text/plain")


def whoami(request: Any) -> HttpResponse:
    # What django.contrib.auth and sessions would have left on the request.
    request.user = SimpleNamespace(is_authenticated=True, username="django-user", pk=7)
    request.session = SimpleNamespace(session_key="sess-abc")
    return JsonResponse({"ok": True, "internal": {"x": 1}, "nested": [{"internal": 2, "keep": 3}]})


async def async_view(request: Any) -> HttpResponse:
    return JsonResponse({"async": True}, headers={"X-Company-Id": "async-co"})


@csrf_exempt
def profiles(request: Any) -> HttpResponse:
    data = json.loads(request.body)
    middleware = moesif_middleware(None)
    middleware.update_user(data["user"])
    middleware.update_company(data["company"])
    middleware.update_users_batch([{"user_id": "batch-user", "metadata": {"n": 1}}])
    middleware.update_companies_batch([{"company_id": "batch-co", "company_domain": "batch.example"}])
    middleware.update_subscription(
        {
            "subscription_id": "sub-1",
            "company_id": "67890",
            "current_period_start": "2026-12-01T00:00:00.000Z",
            "current_period_end": "2027-01-01T00:00:00.000Z",
            "status": "active",
            "metadata": {"plan": "pro"},
        }
    )
    return HttpResponse(status=204)
