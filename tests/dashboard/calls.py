"""Stores of calls for the dashboard tests, written through apimon's own capture pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field

from apimon.client import Client
from apimon.config import Config
from tests.factories import T0, make_raw

HOSTILE = '<script>window.__apimon_pwned = 1</script><img src=x onerror="window.__apimon_pwned = 2">'


@dataclass
class Spec:
    """One call to capture: ``at`` seconds after T0, lasting ``ms``."""

    path: str = "/items"
    method: str = "GET"
    status: int = 200
    at: float = 0.0
    ms: float = 10.0
    route: str | None = None
    user: str | None = None
    resp_body: bytes = b'{"ok": true}'
    resp_type: str = "application/json"
    req_body: bytes | None = None
    req_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)


def fill(path: str, specs: list[Spec]) -> None:
    client = Client(Config.from_options(store=path, store_max_rows=1_000_000))
    for spec in specs:
        req_headers = [*spec.headers]
        if spec.req_type:
            req_headers.append(("Content-Type", spec.req_type))
        raw = make_raw(
            method=spec.method,
            path=spec.path,
            status=spec.status,
            req_headers=req_headers,
            resp_headers=[("Content-Type", spec.resp_type)],
            req_body=spec.req_body,
            resp_body=spec.resp_body,
        )
        raw.start = T0 + spec.at
        raw.end = raw.start + spec.ms / 1000
        raw.user_id = spec.user
        raw.route = spec.route
        client.complete(raw, None)
    assert client.flush(10.0)
    client.shutdown(2.0)
