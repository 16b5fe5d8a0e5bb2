"""aiohttp's client, through its trace config and through instrument(), against a real partner
API on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.conftest import ListSink
from tests.integrations.outgoing.conftest import events, outgoing
from tests.integrations.outgoing.partner import Partner

aiohttp = pytest.importorskip("aiohttp")
from apimon.integrations.aiohttp import apimon_trace_config, instrument, uninstrument  # noqa: E402


def run(work: Callable[[Any], Awaitable[Any]], **session: Any) -> Any:
    async def main() -> Any:
        async with aiohttp.ClientSession(trace_configs=[apimon_trace_config()], **session) as s:
            return await work(s)

    return asyncio.run(main())


def test_json_calls_and_the_same_bytes(partner: Partner, sink: ListSink) -> None:
    async def work(s: Any) -> tuple[int, bytes]:
        async with s.post(partner.url + "/echo?x=1", json={"secret": "s", "n": 2}) as r:
            return r.status, await r.read()

    status, body = run(work)
    assert (status, body) == (201, b'{"secret": "s", "n": 2}')
    [event] = outgoing(sink)
    assert event["request"]["uri"] == partner.url + "/echo?x=1" and event["request"]["verb"] == "POST"
    assert event["request"]["body"] == {"secret": "[REDACTED]", "n": 2} == event["response"]["body"]


def test_iter_chunked_is_teed_as_read_never_ahead(partner: Partner, sink: ListSink) -> None:
    async def work(s: Any) -> list[bytes]:
        chunks = []
        async with s.get(partner.url + "/stream", timeout=aiohttp.ClientTimeout(total=10)) as r:
            async for chunk in r.content.iter_chunked(7):
                chunks.append(chunk)
                if len(chunks) == 1:
                    assert apimon.flush(2) and sink.events == []  # not over yet
                    partner.go_on.set()  # part 1 only now: reading ahead would hang
        return chunks

    import apimon

    assert b"".join(run(work)) == b"part 0\npart 1\npart 2\n"
    [event] = outgoing(sink)
    assert event["response"]["body"] == "part 0\npart 1\npart 2\n"


def test_redirects_gzip_text_and_errors(partner: Partner, sink: ListSink) -> None:
    async def work(s: Any) -> list[Any]:
        out = []
        async with s.get(partner.url + "/redirect") as r:
            out.append((await r.json())["path"])
        async with s.get(partner.url + "/gzip") as r:
            out.append(await r.json())
        with pytest.raises(aiohttp.ClientConnectionError):
            await s.get("http://127.0.0.1:1/nowhere")
        with pytest.raises(asyncio.TimeoutError):
            await s.get(partner.url + "/slow", timeout=aiohttp.ClientTimeout(total=0.3))
        return out

    assert run(work) == ["/json?from=redirect", {"zipped": True}]
    hop, landed, zipped, refused, slow = outgoing(sink)
    assert (hop["response"]["status"], landed["response"]["status"]) == (302, 200)
    assert landed["request"]["uri"] == partner.url + "/json?from=redirect"
    assert zipped["response"]["body"] == {"zipped": True}
    assert "response" not in refused and refused["metadata"]["apimon"]["error"] == "ClientConnectorError"
    assert "response" not in slow and "error" in slow["metadata"]["apimon"]


def test_instrument_gives_new_sessions_the_trace_config(partner: Partner, sink: ListSink) -> None:
    original = aiohttp.ClientSession.__init__
    assert instrument() and instrument()

    async def main(tag: str) -> None:
        async with aiohttp.ClientSession() as s, s.get(partner.url + f"/json?{tag}") as r:
            await r.read()

    try:
        asyncio.run(main("on"))
        run(lambda s: asyncio.sleep(0))  # a session given the config itself: not doubled
    finally:
        uninstrument()
    assert aiohttp.ClientSession.__init__ is original
    asyncio.run(main("off"))
    assert [e["request"]["uri"] for e in outgoing(sink)] == [partner.url + "/json?on"]
    assert events(sink)  # and nothing else
