"""httpx, sync and async, against a real partner API on 127.0.0.1: what is recorded, and that
the app gets exactly what it gets without apimon."""

from __future__ import annotations

import asyncio
import gc

import orjson
import pytest

from tests.conftest import ListSink
from tests.integrations.outgoing.conftest import events, outgoing
from tests.integrations.outgoing.partner import Partner

httpx = pytest.importorskip("httpx")
from apimon.integrations.httpx import (  # noqa: E402
    ApimonTransport,
    AsyncApimonTransport,
    instrument,
    uninstrument,
)


def test_a_json_call_is_an_outgoing_event_and_the_app_gets_the_same_response(partner: Partner, sink: ListSink) -> None:
    body = {"amount": 100, "card_number": "4242424242424242"}
    headers = {"Authorization": "Bearer sk_live_payment_key"}
    with httpx.Client(transport=ApimonTransport()) as client:
        got = client.post(partner.url + "/charges?idempotent=1", json=body, headers=headers)
    with httpx.Client() as bare:
        want = bare.post(partner.url + "/charges?idempotent=1", json=body, headers=headers)
    assert (got.status_code, got.content) == (want.status_code, want.content)
    assert [(k, v) for k, v in got.headers.items() if k != "date"] == [
        (k, v) for k, v in want.headers.items() if k != "date"
    ]
    [event] = outgoing(sink)
    assert event["direction"] == "Outgoing"
    assert event["request"]["uri"] == partner.url + "/charges?idempotent=1"
    assert event["request"]["verb"] == "POST" and event["response"]["status"] == 201
    # Credentials towards the partner are redacted in both directions; never a user or session.
    assert event["request"]["headers"]["Authorization"] == "[REDACTED]"
    assert event["request"]["body"] == {"amount": 100, "card_number": "[REDACTED]"}
    assert event["response"]["body"] == {"amount": 100, "card_number": "[REDACTED]"}
    assert "sk_live_payment_key" not in orjson.dumps(event).decode()
    assert "user_id" not in event and "session_token" not in event and "ip_address" not in event["request"]
    assert event["request"]["headers"]["Content-Type"] == "application/json"


def test_a_stream_is_teed_as_read_and_never_read_ahead(partner: Partner, sink: ListSink) -> None:
    with httpx.Client(transport=ApimonTransport(), timeout=5) as client:
        with client.stream("GET", partner.url + "/stream") as response:
            parts = response.iter_raw()
            # The partner sends part 1 only after the test saw part 0: reading ahead would hang.
            assert next(parts) == b"part 0\n"
            assert events(sink) == []  # the call is not over
            partner.go_on.set()
            assert b"".join(parts) == b"part 1\npart 2\n"
    [event] = outgoing(sink)
    assert event["response"]["body"] == "part 0\npart 1\npart 2\n"
    assert "incomplete" not in event.get("metadata", {}).get("apimon", {})


def test_redirects_are_one_event_per_hop(partner: Partner, sink: ListSink) -> None:
    with httpx.Client(transport=ApimonTransport(), follow_redirects=True) as client:
        response = client.get(partner.url + "/redirect")
    assert response.json()["path"] == "/json?from=redirect"
    first, second = outgoing(sink)
    assert (first["response"]["status"], second["response"]["status"]) == (302, 200)
    assert second["request"]["uri"].endswith("/json?from=redirect")


def test_refused_and_timed_out_calls_are_events_without_a_response(partner: Partner, sink: ListSink) -> None:
    with httpx.Client(transport=ApimonTransport(), timeout=0.3) as client:
        with pytest.raises(httpx.ConnectError):
            client.get("http://127.0.0.1:1/nowhere")
        with pytest.raises(httpx.ReadTimeout):
            client.get(partner.url + "/slow")
    refused, timed_out = outgoing(sink)
    assert "response" not in refused and refused["metadata"]["apimon"]["error"] == "ConnectError"
    assert "response" not in timed_out and timed_out["metadata"]["apimon"]["error"] == "ReadTimeout"


def test_gzip_uploads_and_cookies(partner: Partner, sink: ListSink) -> None:
    with httpx.Client(transport=ApimonTransport()) as client:
        assert client.get(partner.url + "/gzip").json() == {"zipped": True}
        upload = client.post(partner.url + "/upload", content=iter([b"abc", b"def"]))
        assert upload.content == b"abcdef"
        client.get(partner.url + "/cookie")
    zipped, uploaded, cookie = outgoing(sink)
    assert zipped["response"]["body"] == {"zipped": True}
    assert zipped["response"]["headers"]["Content-Encoding"] == "gzip"
    # A streamed upload (no content type: text, docs/events.md#bodies), teed as httpx sent it.
    assert uploaded["request"]["body"] == "abcdef"
    assert uploaded["response"]["body"] == "YWJjZGVm"  # echoed as application/octet-stream: base64
    assert cookie["response"]["headers"]["Set-Cookie"] == "[REDACTED]"


def test_a_response_the_app_never_reads_ends_when_it_is_released(partner: Partner, sink: ListSink) -> None:
    client = httpx.Client(transport=ApimonTransport())
    response = client.send(client.build_request("GET", partner.url + "/json"), stream=True)
    assert response.status_code == 200
    del response
    gc.collect()
    [event] = outgoing(sink)
    assert event["response"]["status"] == 200 and event["metadata"]["apimon"]["incomplete"] == "released"
    client.close()


def test_async_client(partner: Partner, sink: ListSink) -> None:
    async def main() -> tuple[bytes, list[bytes]]:
        async with httpx.AsyncClient(transport=AsyncApimonTransport(), timeout=5) as client:
            got = await client.post(partner.url + "/echo", json={"n": 1})
            parts = []
            async with client.stream("GET", partner.url + "/stream") as response:
                async for chunk in response.aiter_raw():
                    parts.append(chunk)
                    partner.go_on.set()
            return got.content, parts

    content, parts = asyncio.run(main())
    assert content == b'{"n":1}' and b"".join(parts) == b"part 0\npart 1\npart 2\n"
    echo, stream = outgoing(sink)
    assert echo["request"]["body"] == {"n": 1} == echo["response"]["body"]
    assert stream["response"]["body"] == "part 0\npart 1\npart 2\n"


def test_instrument_records_every_client_once_and_uninstrument_undoes_it(partner: Partner, sink: ListSink) -> None:
    original = httpx.HTTPTransport.handle_request
    assert instrument() and instrument()  # twice changes nothing
    try:
        httpx.get(partner.url + "/json")
        # A wrapped client under the instrumentation still records each call once.
        with httpx.Client(transport=ApimonTransport()) as client:
            client.get(partner.url + "/json?wrapped=1")

        async def main() -> None:
            async with httpx.AsyncClient() as client:
                await client.get(partner.url + "/json?async=1")

        asyncio.run(main())
    finally:
        uninstrument()
    assert httpx.HTTPTransport.handle_request is original
    httpx.get(partner.url + "/json?after=1")
    uris = [e["request"]["uri"] for e in outgoing(sink)]
    assert uris == [partner.url + "/json", partner.url + "/json?wrapped=1", partner.url + "/json?async=1"]
