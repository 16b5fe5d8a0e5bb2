"""Generic WSGI middleware: Flask, Django-WSGI, Falcon, Bottle, Pyramid or any WSGI app.

Usage::

    from apimon.integrations.wsgi import ApimonMiddleware
    app.wsgi_app = ApimonMiddleware(app.wsgi_app)          # Flask
    application = ApimonMiddleware(application, store="calls.db")

The request body is teed as the app reads ``wsgi.input``; the response iterable is wrapped,
never drained: each chunk goes to the server as soon as the app yields it, and the event is
finished when the iterable is exhausted or closed (``close()`` is always forwarded).
Wrapping a Flask app's ``wsgi_app`` also records each call's route template (``/items/<id>``).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import apimon
from apimon import outgoing
from apimon.client import Client
from apimon.environ import resolve_environ
from apimon.event import TRANSACTION_HEADER, response_transaction_id
from apimon.governance.fields import EnvironFields
from apimon.governance.gate import content_length, status_line, with_headers
from apimon.governance.rules import Decision, RuleSet
from apimon.record import RawCall
from apimon.tee import BodyTee, SizedTeeIterator, TeeIterator, TeeReader

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: A framework (or the app) may put the matched route template under this environ key.
ROUTE_KEY = "apimon.route"


class ApimonMiddleware:
    """Capture every request/response of a WSGI app as an API Call event.

    :param app: the WSGI application to wrap.
    :param options: apimon options (README.md#options); used to create the process-wide client if
        :func:`apimon.init` has not been called yet. A wrong option raises ``ValueError`` here.
    """

    def __init__(self, app: WSGIApplication, **options: Any) -> None:
        self.app = app
        apimon.ensure_client(options)
        self._resolve, self._route_at_start = _resolver_for(app)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        client = apimon._client
        if client is None or not client.config.enabled:
            return self.app(environ, start_response)
        try:
            source = environ.copy()
            # The copy waits in the queue until the flusher resolves it: it must not keep the
            # request's input stream alive (a server or test client that buffered the body in
            # it would have every queued call hold its body twice; the tee holds what is kept).
            source.pop("wsgi.input", None)
            raw = RawCall.deferred(source, self._resolve, time.time())
            # Moesif's governance rules, when there are any: decided before the app runs.
            rules = client.rules
            decision = None if rules is None else _govern(client, rules, raw, environ)
            # Without sampling or a skip hook every call is admitted: no call needed.
            admitted = client.admit_all or client.admit(raw, environ)
        except Exception:
            client.counters.incr("internal_errors")
            admitted, decision = False, None
        if not admitted:
            if decision is not None:
                return _uncaptured(self.app, decision, environ, start_response)
            return self.app(environ, start_response)
        client.started()

        config = client.config
        route_at_start = self._route_at_start
        with_tid = config.transaction_id_header
        reader: TeeReader | None = None
        cap: int | None = None
        if config.log_body:
            cap = config.max_body_bytes
            length = environ.get("CONTENT_LENGTH")
            chunked = "HTTP_TRANSFER_ENCODING" in environ and environ["HTTP_TRANSFER_ENCODING"].lower() == "chunked"
            if (length and length != "0") or chunked:
                raw.req_body = BodyTee(cap)
                try:
                    expected = int(length) if length and not chunked else None
                except ValueError:
                    expected = None
                original_input = environ["wsgi.input"]
                reader = TeeReader(original_input, raw.req_body, expected)
                environ["wsgi.input"] = reader

        def _start_response(status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None) -> Any:
            if decision is not None and decision.headers:
                headers = with_headers(headers, decision.headers)
            if with_tid:
                tid = response_transaction_id(raw)
                headers = [*headers, (TRANSACTION_HEADER, tid)]
            try:
                raw.status = int(status[:3])
            except ValueError:
                raw.status = 0
            raw.resp_headers = list(headers)
            if route_at_start is not None:
                raw.route = route_at_start(environ)
            write = start_response(status, headers, exc_info)
            if cap is None:
                return write
            body_cap = cap

            def _write(data: bytes) -> None:
                # The legacy write() callable: rare, so its chunks always go to a tee.
                tee = raw.resp_body
                if tee is None:
                    tee = raw.resp_body = BodyTee(body_cap)
                tee.feed(data)
                write(data)

            return _write

        def _on_end(complete: bool) -> None:
            if reader is not None:
                reader.finish(config.max_body_bytes)
                # Whoever keeps the environ after the call (a test client follows a redirect
                # with it) finds the input stream it put there, or one that replays what apimon
                # read of it for the event.
                after = reader.stream_after()
                if environ.get("wsgi.input") is reader:
                    environ["wsgi.input"] = after
            route = environ.get(ROUTE_KEY)
            if route is not None:
                raw.route = route
            client.complete(raw, environ)

        app = self.app if decision is None or decision.blocked_by is None else _answer(decision)
        # Outgoing calls the app makes meanwhile are linked to this one (apimon.outgoing).
        token = outgoing.incoming(raw) if outgoing.active else None
        try:
            inner = app(environ, _start_response)
        except BaseException as exc:
            raw.status = 500
            raw.error = type(exc).__name__
            raw.end = time.time()
            _on_end(False)
            raise
        finally:
            if token is not None:
                outgoing.leave(token)
        cls = SizedTeeIterator if isinstance(inner, (list, tuple)) else TeeIterator  # noqa: UP038
        return cls(inner, raw, _on_end, cap)


def _govern(client: Client, rules: RuleSet, raw: RawCall, environ: WSGIEnvironment) -> Decision | None:
    body = None
    length = content_length(environ.get("CONTENT_LENGTH"))
    if client.governor.wants_body(rules, environ.get("CONTENT_TYPE"), length) and length is not None:
        # A rule reads the JSON body: read it now and hand the app the same bytes.
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
    return client.governor.decide(rules, EnvironFields(environ, body), raw, environ)


def _answer(decision: Decision) -> WSGIApplication:
    """A WSGI app that answers as the blocking rule says, in place of the app."""

    def blocked(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response(status_line(decision.status), decision.header_pairs())
        return [decision.body]

    return blocked


def _uncaptured(
    app: WSGIApplication, decision: Decision, environ: WSGIEnvironment, start_response: StartResponse
) -> Iterable[bytes]:
    """A call the rules govern but apimon does not capture (sampled out, skipped)."""
    if decision.blocked_by is not None:
        return _answer(decision)(environ, start_response)

    def with_rule_headers(status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None) -> Any:
        return start_response(status, with_headers(headers, decision.headers), exc_info)

    return app(environ, with_rule_headers)


RouteAtStart = Callable[[dict[str, Any]], "str | None"]


def _resolver_for(app: object) -> tuple[Callable[[RawCall], None], RouteAtStart | None]:
    """How a call's request fields are read, off the request path (the environ, plus the
    framework's own route template when the glue knows the framework), and how the glue reads the
    route inside ``start_response``. Flask is detected by module name, so no framework is
    imported here, through middleware that keep the app they wrap as ``.app`` (ProxyFix, ...)."""
    owner = _framework_owner(app)
    if type(owner).__module__.partition(".")[0] == "flask":
        from apimon.integrations.flask import resolver_for, route_at_start

        framework = resolver_for(owner)
        if framework is not None:

            def resolve(raw: RawCall) -> None:
                resolve_environ(raw)
                framework(raw)

            return resolve, route_at_start
    # Behind a wrapper that hides the app (a closure), a Werkzeug app still leaves its request,
    # and the rule it matched, in the environ while it calls start_response.
    return resolve_environ, werkzeug_route


def _framework_owner(app: object) -> object:
    for _ in range(8):
        owner = getattr(app, "__self__", app)
        if type(owner).__module__.partition(".")[0] == "flask":
            return owner
        inner = getattr(owner, "app", None)
        if inner is None or inner is app:
            return owner
        app = inner
    return app


def werkzeug_route(environ: dict[str, Any]) -> str | None:
    """The URL rule a Werkzeug-based app matched, if it left its request in the environ."""
    request = environ.get("werkzeug.request")
    rule = getattr(request, "url_rule", None) if request is not None else None
    text = getattr(rule, "rule", None)
    return text if isinstance(text, str) else None
