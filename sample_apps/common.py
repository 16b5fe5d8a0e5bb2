"""What the sample apps share, so every framework answers the same request with the same bytes
(the cross-adapter tests compare the events they produce)."""

from __future__ import annotations

import base64
import gzip
import sqlite3
import threading
from typing import Any

import orjson

LARGE = orjson.dumps({"rows": [{"id": i, "name": f"row-{i:06d}", "ok": True} for i in range(6400)]})[: 256 * 1024]
BINARY = bytes(range(256)) * 4
GZIPPED = gzip.compress(orjson.dumps({"compressed": True, "n": list(range(50))}), mtime=0)
COOKIES = ("a=1; Path=/", "b=2; Path=/")
ETAG = '"v1"'
SSE_EVENTS = [f'id: {i}\ndata: {{"tick": {i}}}\n\n' for i in range(3)]


_work_db = threading.local()
_STATUSES = ("paid", "open", "cancelled")


def work_report() -> bytes:
    """``GET /work``: about a millisecond of what a real endpoint does, a query over a small
    SQLite table (orders by customer) and JSON of the 50 top rows. Each thread its own
    in-memory database, filled at its first call."""
    db: sqlite3.Connection | None = getattr(_work_db, "db", None)
    if db is None:
        db = _work_db.db = sqlite3.connect(":memory:", check_same_thread=False)
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, amount REAL, status TEXT)")
        db.executemany(
            "INSERT INTO orders (customer, amount, status) VALUES (?, ?, ?)",
            [(f"customer-{i % 400:03d}", (i * 37 % 1000) / 10, _STATUSES[i % 3]) for i in range(4000)],
        )
    rows = db.execute(
        "SELECT customer, COUNT(*), SUM(amount), AVG(amount) FROM orders WHERE status != 'cancelled'"
        " GROUP BY customer ORDER BY 3 DESC, 1 LIMIT 50"
    ).fetchall()
    shaped = [{"customer": c, "orders": n, "total": round(t, 2), "average": round(a, 2)} for c, n, t, a in rows]
    return orjson.dumps({"customers": shaped})


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def user_from(authorization: str | None) -> str | None:
    """The sample apps' own (unverified) auth: Bearer JWT ``sub`` or Basic user."""
    scheme, _, cred = (authorization or "").partition(" ")
    try:
        if scheme.lower() == "bearer" and cred.count(".") == 2:
            payload = cred.split(".")[1]
            claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            return str(claims.get("sub"))
        if scheme.lower() == "basic":
            return base64.b64decode(cred).decode().partition(":")[0] or None
    except (ValueError, orjson.JSONDecodeError):
        return None
    return None


def partner_url(framework: str) -> str:
    """Where ``/partner`` calls: the partner API the outgoing-call tests run
    (``APIMON_SAMPLE_PARTNER``), asked which framework called."""
    import os

    return os.environ.get("APIMON_SAMPLE_PARTNER", "http://127.0.0.1:9") + f"/json?from={framework}"


def company_from_header(request: Any, response: Any) -> str | None:
    """An ``identify_company`` hook: the ``X-Company`` request header (the governance tests
    turn it on with ``APIMON_SAMPLE_COMPANY_HEADER=1``)."""
    value = request.headers.get("X-Company")
    return str(value) if value else None


def options_from_env() -> dict[str, Any]:
    """Options the tests ask for through the environment."""
    import os

    options: dict[str, Any] = {}
    if os.environ.get("APIMON_SAMPLE_COMPANY_HEADER") == "1":
        options["identify_company"] = company_from_header
    return options


class Items:
    """An in-memory collection with the CRUD semantics every sample app exposes."""

    def __init__(self) -> None:
        self.items: dict[int, dict[str, Any]] = {}
        self.next_id = 1

    def create(self, body: Any) -> tuple[int, dict[str, Any]]:
        if not isinstance(body, dict) or "name" not in body:
            return 400, {"error": "name is required"}
        item = {"id": self.next_id, **body}
        self.items[self.next_id] = item
        self.next_id += 1
        return 201, item

    def update(self, item_id: int, body: Any) -> tuple[int, dict[str, Any]]:
        if item_id not in self.items:
            return 404, {"error": "not found"}
        if isinstance(body, dict):
            self.items[item_id].update(body)
        return 200, self.items[item_id]

    def get(self, item_id: int) -> tuple[int, dict[str, Any]]:
        if item_id not in self.items:
            return 404, {"error": "not found"}
        return 200, self.items[item_id]


def spec_shaped(app: Any) -> Any:
    """With ``APIMON_SAMPLE_SCOPE=spec``, the ASGI server's scope as the spec allows it but servers
    seldom make it, before it reaches apimon and the app: ``server`` and ``client`` as lists,
    headers a tuple of ``[name, value]`` lists, and the optional keys whose default is what the
    server said left out. Otherwise ``app`` itself."""
    import os

    if os.environ.get("APIMON_SAMPLE_SCOPE") != "spec":
        return app

    async def shaped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = dict(scope)
            scope["headers"] = tuple([name, value] for name, value in scope.get("headers", ()))
            for key in ("server", "client"):
                if scope.get(key) is not None:
                    scope[key] = list(scope[key])
            for key, default in (("root_path", ""), ("scheme", "http")):
                if scope.get(key) == default:
                    del scope[key]
            if scope.get("raw_path") is not None and scope["raw_path"] == scope["path"].encode("latin-1", "replace"):
                del scope["raw_path"]
        await app(scope, receive, send)

    return shaped


def sized_reads(app: Any) -> Any:
    """A WSGI app without the ``wsgi.input_terminated`` extension gunicorn sets: Werkzeug then
    reads the body with a size, as PEP 3333 (and wsgiref's validator) asks, not with ``read()``."""

    def sized(environ: dict[str, Any], start_response: Any) -> Any:
        environ.pop("wsgi.input_terminated", None)
        return app(environ, start_response)

    return sized
