"""A pytest plugin that puts apimon into another project's own test suite without touching it.

Loaded with ``-p apimon_shim`` (its folder on ``PYTHONPATH``; a top-level name, because the
projects under test have ``tests`` packages of their own). Environment:

- ``APIMON_SHIM_MODE``: ``bare`` records each test's outcome only; ``apimon`` also turns apimon
  on the way a user would: every Flask app's ``wsgi_app`` wrapped, every Bottle app wrapped, every ASGI 3 app handed to
  Starlette's ``TestClient`` wrapped, the Django middleware first in ``settings.MIDDLEWARE``.
- ``APIMON_SHIM_STORE``: the SQLite store the events go to; ``APIMON_SHIM_LOG``: a file for
  apimon's log lines.
- ``APIMON_SHIM_REPORT``: where the JSON report goes: outcomes by test id, and in ``apimon``
  mode how many requests reached the middleware (counted here, independently of apimon's own
  counters), apimon's counters after shutdown and the number of stored events.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sqlite3
from typing import Any

import pytest

MODE = os.environ.get("APIMON_SHIM_MODE", "bare")
REACHED = {"wsgi": 0, "asgi": 0, "django": 0}
OUTCOMES: dict[str, str] = {}


def _wrap_flask() -> None:
    try:
        import flask
    except ImportError:
        return
    from apimon.integrations.wsgi import ApimonMiddleware

    class Counting(ApimonMiddleware):
        def __call__(self, environ: Any, start_response: Any) -> Any:
            REACHED["wsgi"] += 1
            return super().__call__(environ, start_response)

    original = flask.Flask.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.wsgi_app = Counting(self.wsgi_app)

    flask.Flask.__init__ = __init__  # type: ignore[method-assign]


def _wrap_bottle() -> None:
    try:
        import bottle
    except ImportError:
        return
    from apimon.integrations.wsgi import ApimonMiddleware

    class Counting(ApimonMiddleware):
        def __call__(self, environ: Any, start_response: Any) -> Any:
            REACHED["wsgi"] += 1
            return super().__call__(environ, start_response)

    original = bottle.Bottle.__call__

    def __call__(self: Any, environ: Any, start_response: Any) -> Any:
        # Every Bottle app is a WSGI app: each gets apimon in front, made at its first call
        # (its tests wrap it in wsgiref's validator, which then checks apimon too).
        wrapped = self.__dict__.get("_apimon_shim")
        if wrapped is None:
            wrapped = self.__dict__["_apimon_shim"] = Counting(functools.partial(original, self))
        return wrapped(environ, start_response)

    bottle.Bottle.__call__ = __call__


def _wrap_starlette_test_client() -> None:
    try:
        from starlette import testclient
    except ImportError:
        return
    from apimon.integrations.asgi import ApimonMiddleware

    class Counting(ApimonMiddleware):
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                REACHED["asgi"] += 1
            await super().__call__(scope, receive, send)

    original = testclient.TestClient.__init__
    is_asgi3 = getattr(testclient, "_is_asgi3", None)

    def __init__(self: Any, app: Any, *args: Any, **kwargs: Any) -> None:
        # An ASGI 2 app (a class the client instantiates per scope) stays as it is: the
        # middleware is ASGI 3, as the user would use it.
        if is_asgi3 is None or is_asgi3(app):
            app = Counting(app)
        original(self, app, *args, **kwargs)

    testclient.TestClient.__init__ = __init__  # type: ignore[method-assign]


class CountingDjangoMiddleware:
    """apimon's Django middleware behind a counter (built lazily: Django is set up by then)."""

    def __new__(cls, get_response: Any) -> Any:
        from apimon.integrations.django import ApimonMiddleware

        class Counting(ApimonMiddleware):
            def __call__(self, request: Any) -> Any:
                REACHED["django"] += 1
                return super().__call__(request)

        return Counting(get_response)


def _add_django_middleware() -> None:
    try:
        from django.conf import settings
    except ImportError:
        return
    if not settings.configured:
        return
    settings.MIDDLEWARE = ["apimon_shim.CountingDjangoMiddleware", *settings.MIDDLEWARE]


def pytest_configure(config: pytest.Config) -> None:
    if MODE != "apimon":
        return
    import apimon

    # apimon's own log lines (it logs each kind of trouble once) go to a file for the report.
    log = os.environ.get("APIMON_SHIM_LOG")
    if log:
        handler = logging.FileHandler(log)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        logging.getLogger("apimon").addHandler(handler)
    apimon.init(
        store=os.environ["APIMON_SHIM_STORE"],
        store_max_rows=10_000_000,
        store_max_bytes=1 << 34,
        flush_interval=0.2,
    )
    _wrap_flask()
    _wrap_bottle()
    _wrap_starlette_test_client()


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    # After the project's own pytest_configure, which is where Django projects configure settings.
    if MODE == "apimon":
        _add_django_middleware()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or report.outcome != "passed":
        previous = OUTCOMES.get(report.nodeid)
        if previous is None or previous == "passed":
            OUTCOMES[report.nodeid] = report.outcome


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    report: dict[str, Any] = {"mode": MODE, "outcomes": OUTCOMES, "exitstatus": int(exitstatus)}
    if MODE == "apimon":
        import apimon

        client = apimon.get_client()
        assert client is not None
        client.shutdown(30.0)
        report["reached"] = sum(REACHED.values())
        report["reached_by_layer"] = dict(REACHED)
        report["stats"] = client.stats()
        with sqlite3.connect(os.environ["APIMON_SHIM_STORE"]) as conn:
            report["stored_events"] = conn.execute("SELECT count(*) FROM calls").fetchone()[0]
    with open(os.environ["APIMON_SHIM_REPORT"], "w") as out:
        json.dump(report, out)
