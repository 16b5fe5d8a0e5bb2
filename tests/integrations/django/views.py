from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from typing import Any

from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt


def company_hook(request: Any, response: Any) -> str | None:
    value = request.headers.get("x-company")
    return str(value) if value else None


@csrf_exempt
def read_body(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.body[::-1], content_type="text/plain")


@csrf_exempt
def read_post(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"post": request.POST.dict()})


@csrf_exempt
def upload(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {"files": {k: f.read().decode() for k, f in request.FILES.items()}, "post": request.POST.dict()}
    )


@csrf_exempt
def stream_read(request: HttpRequest) -> HttpResponse:
    chunks = []
    while chunk := request.read(3):
        chunks.append(chunk)
    return HttpResponse(b"|".join(chunks), content_type="text/plain")


@csrf_exempt
def ignore(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"ignored", content_type="text/plain")


def streaming(request: HttpRequest) -> StreamingHttpResponse:
    def gen() -> Iterator[bytes]:
        yield b"one,"
        yield b"two"

    return StreamingHttpResponse(gen(), content_type="text/plain")


def async_streaming(request: HttpRequest) -> StreamingHttpResponse:
    async def gen() -> AsyncIterator[bytes]:
        yield b"async-one,"
        yield b"async-two"

    return StreamingHttpResponse(gen(), content_type="text/plain")


def file_response(request: HttpRequest) -> FileResponse:
    return FileResponse(io.BytesIO(b"file contents" * 3), content_type="application/octet-stream")


def whoami(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"authenticated": request.user.is_authenticated})


def item(request: HttpRequest, pk: int) -> JsonResponse:
    return JsonResponse({"pk": pk})


async def async_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"async": True})


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("view failed")
