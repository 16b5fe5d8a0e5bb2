"""In-process benchmark: call the WSGI/ASGI app object directly, bare and with a middleware,
alternating which goes first in each round. Prints one JSON line; run by ``benchmarks.run``::

    python -m benchmarks.inprocess FRAMEWORK VARIANT ENDPOINT ROUNDS PER_ROUND
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import orjson

ECHO = orjson.dumps({"pad": "x" * 2038})  # 2 KB of JSON


def _request(endpoint: str) -> tuple[str, str, bytes]:
    if endpoint == "/echo":
        return "POST", "/echo", ECHO
    return "GET", endpoint, b""


def wsgi_call(app: Any, method: str, path: str, body: bytes, headers: Sequence[tuple[str, str]] = ()) -> None:
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "RAW_URI": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "bench",
        "HTTP_ACCEPT": "*/*",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    if body:
        environ["CONTENT_TYPE"] = "application/json"
        environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in headers:
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    result = app(environ, lambda status, headers, exc_info=None: None)
    for _ in result:
        pass
    close = getattr(result, "close", None)
    if close is not None:
        close()


async def asgi_call(app: Any, method: str, path: str, body: bytes, headers: Sequence[tuple[str, str]] = ()) -> None:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench"), (b"accept", b"*/*")]
        + ([(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())] if body else [])
        + [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in headers],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        return None

    await app(scope, receive, send)


def bench_rules(n: int) -> list[dict[str, Any]]:
    """``n`` governance rules of the kinds Moesif's UI makes, none of which matches the benchmark's
    calls (the common case: every rule is checked, the app runs): a verb and a route, a header,
    the client IP, a query parameter, in turn."""
    kinds = [
        [("request.verb", "^DELETE$"), ("request.route", "^/api/v{i}/orders")],
        [("request.headers.x-api-version", "^{i}\\.0$")],
        [("request.ip_address", "^10\\.{i}\\.")],
        [("request.route", "/admin/{i}/"), ("request.query.debug", "^1$")],
    ]
    rules = []
    for i in range(n):
        conditions = [{"path": p, "value": v.format(i=i)} for p, v in kinds[i % len(kinds)]]
        rules.append(
            {
                "_id": f"rule-{i}",
                "type": "regex",
                "block": i % 2 == 0,
                "regex_config": [{"conditions": conditions}],
                "response": {"status": 403, "headers": {"X-Rule": str(i)}, "body": {"error": "blocked"}},
            }
        )
    return rules


def main() -> None:
    framework, variant, endpoint, rounds, per_round = sys.argv[1:6]
    from benchmarks.apps import build, django_app

    if variant.startswith("apimon"):
        # The flusher waits for the untimed gap between rounds (flush below): the in-process figure
        # is the request path; the flusher's CPU is measured on the loopback servers.
        extra: dict[str, Any] = {"batch_size": 10000, "flush_interval": 3600}
        if variant.startswith("apimon-rules"):
            # The rules are set below; the background fetch must not replace them.
            extra["governance"] = False
        os.environ["BENCH_APIMON_EXTRA"] = orjson.dumps(extra).decode()
    if framework == "django":
        from django.conf import settings

        bare = django_app("bare")
        if variant == "apimon-compat":
            from benchmarks.apps import compat_settings

            settings.MOESIF_MIDDLEWARE = compat_settings()
        settings.MIDDLEWARE = {
            "apimon": ["apimon.integrations.django.ApimonMiddleware"],
            "apimon-compat": ["apimon.compat.moesifdjango.middleware.moesif_middleware"],
            "moesif": ["moesifdjango.middleware.moesif_middleware"],
        }["apimon" if variant.startswith("apimon") and variant != "apimon-compat" else variant]
        from django.core.handlers.wsgi import WSGIHandler

        wrapped = WSGIHandler()
    else:
        bare, wrapped = build(framework, "bare"), build(framework, variant)
    method, path, body = _request(endpoint)
    loop = asyncio.new_event_loop()
    if variant.startswith("apimon-rules"):
        # ``apimon-rulesN``: N governance rules in force, as the background fetch would set them.
        import apimon
        from apimon.governance.rules import RuleSet

        client = apimon.ensure_client({})
        ruleset, errors = RuleSet.parse(bench_rules(int(variant[len("apimon-rules") :])), {})
        assert not errors, errors
        client.rules = ruleset if ruleset.count else None

    def run(app: Any, n: int) -> list[float]:
        samples = []
        if framework == "starlette":
            for _ in range(n):
                t0 = time.perf_counter_ns()
                loop.run_until_complete(asgi_call(app, method, path, body))
                samples.append((time.perf_counter_ns() - t0) / 1000)
        else:
            for _ in range(n):
                t0 = time.perf_counter_ns()
                wsgi_call(app, method, path, body)
                samples.append((time.perf_counter_ns() - t0) / 1000)
        return samples

    import apimon

    run(bare, 300)
    run(wrapped, 300)  # warm-up: imports, caches, the flusher thread started
    apimon.flush(30)
    client = apimon.get_client()
    if client is not None:
        # The flusher builds events 16 at a time as they arrive (apimon.flusher.BUILD_CHUNK); here it
        # must sleep through the timed rounds, which time the request path alone.
        client.flusher._chunk = 1_000_000
    results: dict[str, list[float]] = {"bare": [], "variant": []}
    requests = 0
    for r in range(int(rounds)):
        order = [("bare", bare), ("variant", wrapped)] if r % 2 == 0 else [("variant", wrapped), ("bare", bare)]
        for name, app in order:
            results[name] += run(app, int(per_round))
            if name == "variant":
                requests += int(per_round)
                # The flusher's work happens between rounds, untimed here: it is measured in the
                # loopback run's server CPU. Moesif's middleware has no flush to call.
                apimon.flush(30)
    print(
        orjson.dumps(
            {"bare": results["bare"], "variant": results["variant"], "requests": requests + 300, "pid": os.getpid()}
        ).decode(),
        flush=True,
    )


if __name__ == "__main__":
    main()
