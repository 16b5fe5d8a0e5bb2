"""Django middleware, sync and async capable (Django runs it natively under WSGI and ASGI).

Usage, in ``settings.py``::

    MIDDLEWARE = ["apimon.integrations.django.ApimonMiddleware", ...]   # first, to time everything
    APIMON = {"moesif_application_id": "...", "identify_company": "myapp.hooks.company"}

Hooks in ``APIMON`` may be callables or dotted import paths. They receive the ``HttpRequest`` and
``HttpResponse`` as ``.native``. The request body is teed as the view reads it (``request.body``,
``request.POST``, uploaded files, the raw stream all keep working); streaming and file responses
are teed as the server iterates them, never consumed here.
"""

from __future__ import annotations

import time
import weakref
from http.cookies import CookieError, SimpleCookie
from typing import Any

try:
    from asgiref.sync import iscoroutinefunction, markcoroutinefunction
    from django.apps import apps
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.http import HttpRequest, HttpResponse, HttpResponseBase
    from django.utils.functional import LazyObject, empty
    from django.utils.module_loading import import_string
except ImportError as exc:  # pragma: no cover - exercised only without Django
    raise ImportError("apimon.integrations.django needs Django: pip install 'apimon[django]'") from exc

import apimon
from apimon import outgoing
from apimon.client import Client
from apimon.environ import resolve_environ
from apimon.event import TRANSACTION_HEADER, response_transaction_id
from apimon.governance.fields import EnvironFields
from apimon.governance.gate import content_length
from apimon.governance.rules import Decision, RuleSet
from apimon.record import RawCall
from apimon.tee import AsyncTeeIterator, BodyTee, TeeIterator, TeeReader

_HOOKS = ("skip", "identify_user", "identify_company", "get_session_token", "get_metadata", "mask_event", "api_version")


def _options() -> dict[str, Any]:
    options = getattr(settings, "APIMON", None) or {}
    if not isinstance(options, dict):
        raise ImproperlyConfigured("settings.APIMON must be a dict of apimon options")
    resolved = dict(options)
    for name in _HOOKS:
        value = resolved.get(name)
        # A dotted path is a hook; api_version may also be a plain version string.
        if isinstance(value, str) and "." in value and (name != "api_version" or ":" not in value):
            try:
                resolved[name] = import_string(value)
            except ImportError:
                if name != "api_version":
                    raise ImproperlyConfigured(f"APIMON[{name!r}]: cannot import {value!r}") from None
    return resolved


def _header_pairs(response: HttpResponseBase) -> list[tuple[str | bytes, str | bytes]]:
    """The response's headers as (name, value) pairs, names in the app's case.

    Django's ``ResponseHeaders`` keeps exactly these pairs in ``_store`` (``{lower: (name,
    value)}``, since Django 3.2): reading them costs ~0.1 us, where the mapping interface
    (``items()``: a lookup and a ``lower()`` a name) costs ~0.85 us on every request. Any other
    shape falls back to ``items()``."""
    store = getattr(getattr(response, "headers", None), "_store", None)
    if type(store) is dict:
        return list(store.values())
    return list(response.items())


class _State:
    """One call's state between the middleware's two halves. ``raw`` is None for a call the rules
    govern that apimon does not capture."""

    __slots__ = ("client", "raw", "reader", "decision")

    def __init__(
        self, client: Client, raw: RawCall | None, reader: TeeReader | None, decision: Decision | None = None
    ) -> None:
        self.client = client
        self.raw = raw
        self.reader = reader
        self.decision = decision


class ApimonMiddleware:
    """Capture every request/response Django serves as an API Call event."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)
        apimon.ensure_client(self.options())
        self.auth_installed = apps.is_installed("django.contrib.auth")
        session_cookie = getattr(settings, "SESSION_COOKIE_NAME", "sessionid")

        def resolve(raw: RawCall) -> None:
            # Off the request path: the META copy, then the session cookie from its Cookie header.
            resolve_environ(raw)
            header = raw.source.get("HTTP_COOKIE")
            if header:
                cookie = SimpleCookie()
                try:
                    cookie.load(header)
                except CookieError:
                    return
                if session_cookie in cookie:
                    raw.session_cookie = cookie[session_cookie].value

        self._resolve = resolve

    def options(self) -> dict[str, Any]:
        """apimon's options, from ``settings.APIMON`` (a subclass may read other settings)."""
        return _options()

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        state = self._begin(request)
        if state is None:
            return self.get_response(request)
        decision = state.decision
        if decision is not None and decision.blocked_by is not None:
            return self._answer(state, request, decision)
        token = outgoing.incoming(state.raw) if outgoing.active and state.raw is not None else None
        try:
            response = self.get_response(request)
        except BaseException as exc:
            self._failed(state, request, exc)
            raise
        finally:
            if token is not None:
                outgoing.leave(token)
        return self._responded(state, request, response)

    async def __acall__(self, request: HttpRequest) -> Any:
        state = self._begin(request)
        if state is None:
            return await self.get_response(request)
        decision = state.decision
        if decision is not None and decision.blocked_by is not None:
            return self._answer(state, request, decision)
        token = outgoing.incoming(state.raw) if outgoing.active and state.raw is not None else None
        try:
            response = await self.get_response(request)
        except BaseException as exc:
            self._failed(state, request, exc)
            raise
        finally:
            if token is not None:
                outgoing.leave(token)
        return self._responded(state, request, response)

    def _answer(self, state: _State, request: HttpRequest, decision: Decision) -> HttpResponse:
        """The blocking rule's response, in place of the app's (captured as any response)."""
        response = HttpResponse(decision.body, status=decision.status)
        for name, value in decision.header_pairs():
            response[name] = value
        return self._responded(state, request, response) if state.raw is not None else response

    def _begin(self, request: HttpRequest) -> _State | None:
        client = apimon._client
        if client is None or not client.config.enabled:
            return None
        try:
            source = dict(request.META)
            scope = getattr(request, "scope", None)
            if scope is not None:
                # ASGI: the wire path and scheme come from the scope, not the rebuilt META.
                raw_path = scope.get("raw_path")
                if raw_path:
                    source["RAW_URI"] = raw_path.decode("latin-1")
                source["wsgi.url_scheme"] = scope.get("scheme") or "http"
            raw = RawCall.deferred(source, self._resolve, time.time())
            # Moesif's governance rules, when there are any: decided before the view runs.
            rules = client.rules
            decision = None if rules is None else self._govern(client, rules, raw, request)
            if not (client.admit_all or client.admit(raw, request)):
                # Governed but not captured (sampled out, skipped): no event, the rules still apply.
                return None if decision is None else _State(client, None, None, decision)
            reader = None
            config = client.config
            if config.log_body:
                reader = self._tee_request(request, raw, config.max_body_bytes)
                if reader is None and rules is not None and getattr(request, "_body", None) is not None:
                    raw.keep_request(request._body, config.max_body_bytes)  # read for the rules
            client.started()
            return _State(client, raw, reader, decision)
        except Exception:
            client.counters.incr("internal_errors")
            return None

    @staticmethod
    def _tee_request(request: HttpRequest, raw: RawCall, cap: int) -> TeeReader | None:
        length = request.META.get("CONTENT_LENGTH")
        chunked = request.META.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
        stream = getattr(request, "_stream", None)
        if stream is None or getattr(request, "_read_started", False) or not ((length and length != "0") or chunked):
            return None
        raw.req_body = BodyTee(cap)
        try:
            expected = int(length) if length and not chunked else None
        except ValueError:
            expected = None
        reader = TeeReader(stream, raw.req_body, expected)
        # Django reads request.body, request.POST and uploads through request._stream.
        request._stream = reader
        return reader

    def _failed(self, state: _State, request: HttpRequest, exc: BaseException) -> None:
        raw = state.raw
        if raw is None:
            return
        raw.status = 500
        raw.error = type(exc).__name__
        raw.end = time.time()
        self._finish(state, request, None)

    @staticmethod
    def _govern(client: Client, rules: RuleSet, raw: RawCall, request: HttpRequest) -> Decision | None:
        body = None
        meta = request.META
        length = content_length(meta.get("CONTENT_LENGTH"))
        if client.governor.wants_body(rules, meta.get("CONTENT_TYPE"), length):
            try:
                body = request.body  # Django keeps it: the view reads the same bytes
            except Exception:
                body = None
        return client.governor.decide(rules, EnvironFields(meta, body), raw, request)

    def _responded(self, state: _State, request: HttpRequest, response: HttpResponseBase) -> Any:
        decision = state.decision
        if decision is not None and decision.headers and decision.blocked_by is None:
            try:
                for name, value in decision.headers.items():
                    response[name] = value
            except Exception:
                state.client.counters.incr("internal_errors")
        raw = state.raw
        if raw is None:
            return response
        try:
            if state.client.config.transaction_id_header:
                response[TRANSACTION_HEADER] = response_transaction_id(raw)
            raw.status = response.status_code
            headers = _header_pairs(response)
            headers += [("Set-Cookie", morsel.OutputString()) for morsel in response.cookies.values()]
            raw.resp_headers = headers
            config = state.client.config
            cap = config.max_body_bytes if config.log_body else None
            if not response.streaming:
                if cap is not None:
                    raw.keep_response(response.content, cap)
                raw.end = time.time()
                self._finish(state, request, response)
                return response

            # The response holds the tee and the tee holds this callback: a weak reference keeps
            # that from being a cycle, so a response dropped unread is released (and its call
            # recorded) at once rather than at the next full garbage collection.
            response_ref = weakref.ref(response)

            def on_end(complete: bool) -> None:
                self._finish(state, request, response_ref())

            streaming: Any = response
            if getattr(response, "is_async", False):
                streaming.streaming_content = AsyncTeeIterator(streaming.streaming_content, raw, on_end, cap)
            else:
                streaming.streaming_content = TeeIterator(streaming.streaming_content, raw, on_end, cap)
        except Exception:
            state.client.counters.incr("internal_errors")
        return response

    def _finish(self, state: _State, request: HttpRequest, response: HttpResponseBase | None) -> None:
        raw = state.raw
        if raw is None:
            return
        try:
            reader = state.reader
            if reader is not None:
                reader.finish(state.client.config.max_body_bytes)
                after = reader.stream_after()
                if getattr(request, "_stream", None) is reader:
                    request._stream = after
            match = getattr(request, "resolver_match", None)
            route = getattr(match, "route", None)
            if route:
                raw.route = "/" + route.lstrip("^").lstrip("/")
            raw.framework_user = self.framework_user(request)
            session = self.framework_session(request)
            if session is not None:
                raw.session_token = session
        except Exception:
            state.client.counters.incr("internal_errors")
        state.client.complete(raw, request, response)

    def framework_user(self, request: HttpRequest) -> str | None:
        """The user id when no hook gave one: the authenticated user's pk."""
        user = self.loaded_user(request)
        pk = getattr(user, "pk", None) if user is not None else None
        return None if pk is None else str(pk)

    def framework_session(self, request: HttpRequest) -> str | None:
        """A session token the framework gives without a hook (None: the session cookie's hash,
        in the event builder). A ``get_session_token`` hook still has the last word."""
        return None

    def loaded_user(self, request: HttpRequest) -> Any:
        """The authenticated user, only if auth is installed and ``request.user`` was already
        loaded by the app: evaluating a lazy user here could hit the database (and, under ASGI,
        raise SynchronousOnlyOperation)."""
        if not self.auth_installed:
            return None
        user = request.__dict__.get("user")
        if isinstance(user, LazyObject):
            user = user._wrapped
            if user is empty:
                return None
        if user is None or not getattr(user, "is_authenticated", False):
            return None
        return user
