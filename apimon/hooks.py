"""The user's hooks, run for a finished call: ``skip_response``, ``identify_user``,
``identify_company``, ``get_session_token``, ``api_version`` and ``get_metadata`` for an incoming
call, and their ``*_outgoing`` counterparts for an outgoing one.

A hook may be a plain function or ``async``. The steps are written once, as a generator that
yields each awaitable a hook returns; :meth:`HookRunner.finish` drives it on the request thread
(an awaitable there is closed and counted: there is no loop to run it on) and
:meth:`HookRunner.finish_async` drives it inside the ASGI adapter's coroutine, awaiting each one
on the request's own loop. A hook that raises, or returns what it should not, is counted in
``hook_errors`` and the call is recorded without it.
"""

from __future__ import annotations

import inspect
from collections.abc import Generator
from typing import Any

from apimon._guard import log_once
from apimon.config import Config
from apimon.counters import Counters
from apimon.record import RawCall
from apimon.views import RequestView, ResponseView

#: What a step yields (an awaitable a hook returned) and is sent back (its result).
Steps = Generator[Any, Any, bool]

_INCOMING = ("skip_response", "identify_user", "identify_company", "get_session_token", "get_metadata")
_OUTGOING = (
    "skip_outgoing",
    "identify_user_outgoing",
    "identify_company_outgoing",
    "get_session_token_outgoing",
    "get_metadata_outgoing",
)
_FAILED = object()


class NoLoopError(RuntimeError):
    """An ``async`` hook was called where no event loop runs (a WSGI or Django-WSGI request)."""


class HookRunner:
    """Runs the configured hooks on a finished :class:`RawCall`; made once by the Client.

    ``at_finish`` / ``at_outgoing`` say whether there is anything to run (adapters then skip the
    call entirely); ``finish`` / ``finish_async`` / ``outgoing`` return False when a skip hook
    left the call out."""

    def __init__(self, config: Config, counters: Counters) -> None:
        self.config = config
        self.counters = counters
        self.at_finish = any(getattr(config, h) is not None for h in _INCOMING) or callable(config.api_version)
        self.at_outgoing = any(getattr(config, h) is not None for h in _OUTGOING)

    # -- drivers ------------------------------------------------------------------------------

    def finish(self, raw: RawCall, native_request: Any, native_response: Any) -> bool:
        return self._drive(self._incoming(raw, native_request, native_response))

    async def finish_async(self, raw: RawCall, native_request: Any, native_response: Any) -> bool:
        steps = self._incoming(raw, native_request, native_response)
        try:
            awaitable = steps.send(None)
            while True:
                try:
                    result = await awaitable
                except Exception as exc:
                    awaitable = steps.throw(exc)
                else:
                    awaitable = steps.send(result)
        except StopIteration as stop:
            return bool(stop.value)

    def outgoing(self, raw: RawCall) -> bool:
        return self._drive(self._outgoing(raw))

    def _drive(self, steps: Steps) -> bool:
        """Run the steps where no loop runs: an awaitable is closed, and the hook counts as failed."""
        try:
            awaitable = steps.send(None)
            while True:
                close = getattr(awaitable, "close", None)
                if close is not None:
                    close()  # never awaited: no "coroutine was never awaited" warning either
                awaitable = steps.throw(NoLoopError("an async hook needs an event loop (ASGI)"))
        except StopIteration as stop:
            return bool(stop.value)

    # -- the steps ----------------------------------------------------------------------------

    def _incoming(self, raw: RawCall, native_request: Any, native_response: Any) -> Steps:
        raw.resolve()
        return self._steps(_INCOMING, raw, RequestView(raw, native_request), ResponseView(raw, native_response))

    def _outgoing(self, raw: RawCall) -> Steps:
        """An outgoing call's own hooks (what they set wins over what it inherits from its
        parent). The views' ``.native`` is None: the call is seen through its URL, headers and
        status, whatever HTTP client made it."""
        raw.resolve()
        return self._steps(_OUTGOING, raw, RequestView(raw, None), ResponseView(raw, None))

    def _steps(self, names: tuple[str, ...], raw: RawCall, request: RequestView, response: ResponseView) -> Steps:
        """The hooks named (skip, user, company, session token, metadata), in that order;
        ``api_version`` between the last two for an incoming call."""
        config = self.config
        skip_name, user_name, company_name, session_name, metadata_name = names
        hook = getattr(config, skip_name)
        if hook is not None:
            skipped = yield from self._call(skip_name, hook, request, response)
            if skipped is not _FAILED and skipped:
                return False
        for name, field in ((user_name, "user_id"), (company_name, "company_id"), (session_name, "session_token")):
            hook = getattr(config, name)
            if hook is not None:
                setattr(raw, field, _text((yield from self._call(name, hook, request, response))))
        if names is _INCOMING:
            if callable(config.api_version):
                raw.api_version = _text((yield from self._call("api_version", config.api_version, request, response)))
            elif config.api_version:
                raw.api_version = config.api_version
        hook = getattr(config, metadata_name)
        if hook is not None:
            metadata = yield from self._call(metadata_name, hook, request, response)
            raw.metadata = self._metadata(metadata_name, metadata)
        return True

    def _call(self, name: str, hook: Any, request: RequestView, response: ResponseView) -> Generator[Any, Any, Any]:
        try:
            value = hook(request, response)
            if inspect.isawaitable(value):
                value = yield value
        except Exception:
            self.failed(name)
            return _FAILED
        return value

    def _metadata(self, name: str, value: Any) -> dict[str, Any] | None:
        if value is _FAILED or value is None:
            return None
        if not isinstance(value, dict):
            self.failed(name, "returned a non-dict")
            return None
        return value

    def failed(self, name: str, why: str = "raised") -> None:
        self.counters.incr("hook_errors")
        log_once(
            f"hook-{name}",
            "apimon: the %s hook %s; the call is captured without it",
            name,
            why,
            exc_info=why == "raised",
        )


def _text(value: Any) -> str | None:
    """A hook's id as the event carries it: None for nothing (or a failed hook), else a string."""
    if value is None or value is _FAILED or value == "":
        return None
    return value if isinstance(value, str) else str(value)
