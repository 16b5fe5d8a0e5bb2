"""apimon.hooks: the hooks of a finished call, sync and async, incoming and outgoing."""

from __future__ import annotations

import asyncio
from typing import Any

from apimon.config import Config
from apimon.counters import Counters
from apimon.event import OUTGOING, build_event
from apimon.hooks import HookRunner
from apimon.record import RawCall
from tests.factories import make_raw


def runner(**options: Any) -> tuple[HookRunner, Counters]:
    counters = Counters()
    return HookRunner(Config.from_options(options), counters), counters


def test_sync_hooks_fill_the_call() -> None:
    hooks, counters = runner(
        identify_user=lambda req, resp: req.headers["X-User"],
        identify_company=lambda req, resp: resp.headers.get("X-Company"),
        get_session_token=lambda req, resp: 42,
        get_metadata=lambda req, resp: {"status": resp.status},
        api_version=lambda req, resp: "v2",
    )
    raw = make_raw(req_headers=[("X-User", "ann")], resp_headers=[("x-company", "acme")], status=201)
    assert hooks.at_finish and hooks.finish(raw, None, None) is True
    assert (raw.user_id, raw.company_id, raw.session_token, raw.api_version) == ("ann", "acme", "42", "v2")
    assert raw.metadata == {"status": 201} and counters.get("hook_errors") == 0


def test_async_hooks_are_awaited_on_the_loop() -> None:
    async def user(req: Any, resp: Any) -> str:
        await asyncio.sleep(0)
        return "async-ann"

    async def metadata(req: Any, resp: Any) -> dict[str, Any]:
        return {"loop": asyncio.get_running_loop() is not None}

    async def broken(req: Any, resp: Any) -> str:
        raise RuntimeError("hook bug")

    hooks, counters = runner(identify_user=user, get_metadata=metadata, identify_company=broken)
    raw = make_raw()
    assert asyncio.run(hooks.finish_async(raw, None, None)) is True
    assert raw.user_id == "async-ann" and raw.metadata == {"loop": True} and raw.company_id is None
    assert counters.get("hook_errors") == 1


def test_an_async_hook_where_no_loop_runs_is_closed_and_counted() -> None:
    awaited = []

    async def user(req: Any, resp: Any) -> str:
        awaited.append(True)
        return "never"

    hooks, counters = runner(identify_user=user, get_metadata=lambda req, resp: {"sync": True})
    raw = make_raw()
    assert hooks.finish(raw, None, None) is True
    assert raw.user_id is None and awaited == [] and raw.metadata == {"sync": True}
    assert counters.get("hook_errors") == 1


def test_skip_response_sees_the_response() -> None:
    hooks, _ = runner(skip_response=lambda req, resp: resp.status == 418, identify_user=lambda req, resp: "u")
    teapot, fine = make_raw(status=418), make_raw(status=200)
    assert hooks.finish(teapot, None, None) is False and teapot.user_id is None
    assert hooks.finish(fine, None, None) is True and fine.user_id == "u"


def test_a_skip_hook_that_raises_keeps_the_call() -> None:
    def skip(req: Any, resp: Any) -> bool:
        raise ValueError("bug")

    hooks, counters = runner(skip_response=skip)
    assert hooks.finish(make_raw(), None, None) is True and counters.get("hook_errors") == 1


def test_outgoing_hooks_win_over_what_the_call_inherits() -> None:
    hooks, _ = runner(
        skip_outgoing=lambda req, resp: "skip" in req.url,
        identify_user_outgoing=lambda req, resp: "svc-account",
        get_metadata_outgoing=lambda req, resp: {"status": resp.status},
    )
    parent = make_raw()
    parent.resolved_user, parent.resolved_session = "ann", "sess"
    child = make_raw(path="/charge", status=402)
    child.direction, child.parent = OUTGOING, parent
    assert hooks.at_outgoing and hooks.outgoing(child) is True
    event = build_event(child, Config())
    assert event["user_id"] == "svc-account" and event["session_token"] == "sess"
    assert event["metadata"]["status"] == 402
    skipped = make_raw(path="/skip-me")
    skipped.direction = OUTGOING
    assert hooks.outgoing(skipped) is False


def test_no_hooks_nothing_to_run() -> None:
    hooks, _ = runner()
    assert not hooks.at_finish and not hooks.at_outgoing


def test_session_from_credentials_off_means_no_token() -> None:
    raw = make_raw(req_headers=[("Authorization", "Bearer abc")])
    assert build_event(raw, Config.from_options({}))["session_token"].startswith("sha256:")
    raw = make_raw(req_headers=[("Authorization", "Bearer abc")])
    assert "session_token" not in build_event(raw, Config.from_options({"session_from_credentials": False}))


def test_transaction_id_header_shows_in_the_request_headers() -> None:
    from apimon.event import TRANSACTION_HEADER, response_transaction_id

    raw: RawCall = make_raw(req_headers=[("Accept", "*/*")])
    tid = response_transaction_id(raw)
    assert response_transaction_id(raw) == tid and len(tid) == 36
    event = build_event(raw, Config.from_options({"transaction_id_header": True}))
    assert event["transaction_id"] == tid and event["request"]["headers"][TRANSACTION_HEADER] == tid
    # A client's own id stays where it was sent, and is never the event's id.
    raw = make_raw(req_headers=[("X-Moesif-Transaction-Id", "dup-dup-dup")])
    tid = response_transaction_id(raw)
    event = build_event(raw, Config.from_options({"transaction_id_header": True}))
    assert tid != "dup-dup-dup" and event["transaction_id"] == tid
    assert event["request"]["headers"][TRANSACTION_HEADER] == "dup-dup-dup"
