"""A plain WSGI app (no framework) for the cases a framework would hide: raising before and
after the response starts, the legacy write() callable, close() tracking, Set-Cookie twice."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

CLOSED: list[str] = []


class Tracked:
    def __init__(self, chunks: list[bytes], name: str) -> None:
        self.chunks = chunks
        self.name = name

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)

    def close(self) -> None:
        CLOSED.append(self.name)
        marker = os.environ.get("RAWAPP_CLOSE_MARKER")
        if marker:
            with open(marker, "a") as f:
                f.write(self.name + "\n")


def raw_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/raise-before":
        raise RuntimeError("before start_response")
    if path == "/raise-mid":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def gen() -> Iterator[bytes]:
            yield b"first "
            raise RuntimeError("mid-stream")

        return gen()
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written, ")
        return [b"then returned"]
    if path == "/cookies":
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/")]
        )
        return Tracked([b"two cookies"], "cookies")
    if path == "/slow-stream":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def slow() -> Iterator[bytes]:
            for i in range(int(environ.get("QUERY_STRING") or "3")):
                yield f"part {i}\n".encode()
                time.sleep(0.5)

        return slow()
    if path == "/echo":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        data = environ["wsgi.input"].read(length)
        start_response("200 OK", [("Content-Type", environ.get("CONTENT_TYPE", "application/octet-stream"))])
        return [data]
    if path == "/ignore-body":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"did not read it"]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


app: Any = raw_app
if os.environ.get("APIMON_SAMPLE_BARE") != "1":
    from apimon.integrations.wsgi import ApimonMiddleware

    if os.environ.get("APIMON_SAMPLE_VALIDATE") == "1":
        # PEP 3333 checked on both sides of apimon: what the server hands it, what it hands the app.
        from wsgiref.validate import validator

        from sample_apps.common import sized_reads

        app = sized_reads(
            validator(ApimonMiddleware(validator(raw_app), flush_interval=0.1, redact_headers=["authorization"]))
        )
    else:
        app = ApimonMiddleware(raw_app, flush_interval=0.1, redact_headers=["authorization"])
elif os.environ.get("APIMON_SAMPLE_VALIDATE") == "1":
    from wsgiref.validate import validator

    from sample_apps.common import sized_reads

    app = sized_reads(validator(validator(raw_app)))
