"""The sample API on Django: same routes and bytes as the Flask, Starlette and FastAPI apps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from sample_apps.common import (
    BINARY,
    COOKIES,
    ETAG,
    GZIPPED,
    LARGE,
    SSE_EVENTS,
    Items,
    dumps,
    partner_url,
    user_from,
    work_report,
)

items = Items()


def _json(value: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(dumps(value), status=status, content_type="application/json")


def _body_json(request: HttpRequest) -> Any:
    try:
        return orjson.loads(request.body)
    except orjson.JSONDecodeError:
        return None


@require_http_methods(["GET", "HEAD"])
def ping(request: HttpRequest) -> HttpResponse:
    return _json({"ok": True})


@csrf_exempt
@require_http_methods(["POST"])
def echo(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.body, content_type=request.META.get("CONTENT_TYPE") or "application/octet-stream")


def large(request: HttpRequest) -> HttpResponse:
    return HttpResponse(LARGE, content_type="application/json")


def work(request: HttpRequest) -> HttpResponse:
    return HttpResponse(work_report(), content_type="application/json")


@csrf_exempt
def items_view(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        status, value = items.create(_body_json(request))
        return _json(value, status)
    return _json({"items": list(items.items.values())})


@csrf_exempt
def item_view(request: HttpRequest, item_id: int) -> HttpResponse:
    if request.method == "DELETE":
        items.items.pop(item_id, None)
        return HttpResponse(status=204)
    if request.method == "PUT":
        status, value = items.update(item_id, _body_json(request))
        return _json(value, status)
    status, value = items.get(item_id)
    return _json(value, status)


@csrf_exempt
def form(request: HttpRequest) -> HttpResponse:
    return _json({"fields": sorted(request.POST.keys())})


@csrf_exempt
def upload(request: HttpRequest) -> HttpResponse:
    files = {name: len(f.read()) for name, f in request.FILES.items()}
    return _json({"files": files, "fields": request.POST.dict()})


def download(request: HttpRequest) -> HttpResponse:
    return HttpResponse(BINARY, content_type="application/octet-stream")


def gzipped(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(GZIPPED, content_type="application/json")
    response["Content-Encoding"] = "gzip"
    return response


def stream(request: HttpRequest) -> StreamingHttpResponse:
    delay = float(request.GET.get("delay", "0.05"))
    parts = int(request.GET.get("parts", "5"))

    def generate() -> Iterator[bytes]:
        for i in range(parts):
            yield f"chunk {i}\n".encode()
            time.sleep(delay)

    async def agenerate() -> AsyncIterator[bytes]:
        for i in range(parts):
            yield f"chunk {i}\n".encode()
            await asyncio.sleep(delay)

    # Django buffers a sync iterator under ASGI and an async one under WSGI: use the native kind.
    if hasattr(request, "scope"):
        return StreamingHttpResponse(agenerate(), content_type="text/plain")
    return StreamingHttpResponse(generate(), content_type="text/plain")


def events(request: HttpRequest) -> StreamingHttpResponse:
    def generate() -> Iterator[str]:
        for event in SSE_EVENTS:
            yield event
            time.sleep(0.02)

    async def agenerate() -> AsyncIterator[str]:
        for event in SSE_EVENTS:
            yield event
            await asyncio.sleep(0.02)

    if hasattr(request, "scope"):
        return StreamingHttpResponse(agenerate(), content_type="text/event-stream")
    return StreamingHttpResponse(generate(), content_type="text/event-stream")


def cookies(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(b"ok", content_type="text/plain")
    for cookie in COOKIES:
        name, _, rest = cookie.partition("=")
        response.set_cookie(name, rest.split(";")[0])
    return response


def cached(request: HttpRequest) -> HttpResponse:
    if request.META.get("HTTP_IF_NONE_MATCH") == ETAG:
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(b"cached", content_type="text/plain")
    response["ETag"] = ETAG
    return response


def me(request: HttpRequest) -> HttpResponse:
    user = user_from(request.META.get("HTTP_AUTHORIZATION"))
    return _json({"user": user}) if user else _json({"error": "unauthorized"}, 401)


@csrf_exempt
def login(request: HttpRequest) -> HttpResponse:
    return _json({"token": "not-a-real-token", "ok": True})


def partner(request: HttpRequest) -> HttpResponse:
    # An outgoing call made while serving this one (the outgoing-call tests).
    import requests

    return _json(requests.get(partner_url("django"), timeout=10).json())


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("the sample app raised on purpose")
