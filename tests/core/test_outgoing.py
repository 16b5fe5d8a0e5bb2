"""apimon.outgoing on its own terms: apimon's own HTTP is never recorded, skipped hosts, the
guard around every step, and the accounting of calls held by their parent."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import apimon
from apimon.client import Client
from apimon.config import Config
from apimon.outgoing import OutgoingCall, incoming, leave
from apimon.testing import FakeMoesif
from tests.conftest import ListSink
from tests.factories import make_raw
from tests.integrations.outgoing.partner import Partner

requests = pytest.importorskip("requests")


def test_apimons_own_requests_are_never_recorded() -> None:
    with FakeMoesif() as moesif, Partner() as partner:
        apimon.init(
            moesif_application_id=moesif.application_id,
            moesif_base_url=moesif.url,
            capture_outgoing=True,
            flush_interval=0.05,
        )
        try:
            for i in range(3):
                requests.get(partner.url + f"/json?n={i}")
            assert apimon.flush(10)
            # The batch POSTs, /v1/config and /v1/rules went through apimon's own transport.
            assert [e["request"]["uri"] for e in moesif.events] == [partner.url + f"/json?n={i}" for i in range(3)]
            assert {r.path for r in moesif.requests} >= {"/v1/events/batch", "/v1/config"}
        finally:
            from apimon.integrations import clients

            clients.uninstrument()


def test_skipped_hosts_and_a_switched_off_client() -> None:
    sink = ListSink()
    apimon._client = Client(Config.from_options(outgoing_skip_hosts="internal.example, LOCALHOST"), sinks=[sink])
    assert OutgoingCall.start("GET", "http://internal.example:8080/x", []) is None
    assert OutgoingCall.start("GET", "http://localhost/x", []) is None
    assert OutgoingCall.start("GET", "http://api.example.com/x", []) is not None
    apimon._client = Client(Config.from_options(enabled=False), sinks=[sink])
    assert OutgoingCall.start("GET", "http://api.example.com/x", []) is None


def test_an_error_inside_apimon_never_reaches_the_call(caplog: pytest.LogCaptureFixture) -> None:
    sink = ListSink()
    apimon._client = Client(Config.from_options({}), sinks=[sink])

    class Hostile:
        def __iter__(self) -> Any:
            raise RuntimeError("headers that cannot be read")

    with caplog.at_level(logging.WARNING, logger="apimon"):
        assert OutgoingCall.start("GET", "http://api.example.com/x", Hostile()) is None  # type: ignore[arg-type]
    assert apimon.stats()["internal_errors"] == 1
    assert "recording an outgoing call failed" in caplog.text
    # A header the event builder cannot read (on the flusher): that event is dropped and counted.
    call = OutgoingCall.start("GET", "http://api.example.com/y", [(object(), "v")])
    assert call is not None
    call.response(204, [])
    call.finish()
    # The next call is recorded as usual.
    call = OutgoingCall.start("GET", "http://api.example.com/z", [])
    assert call is not None
    call.response(204, [])
    call.finish()
    assert apimon.flush(5) and [e["request"]["uri"] for e in sink.events] == ["http://api.example.com/z"]
    stats = apimon.stats()
    assert (stats["dropped_error"], stats["internal_errors"], stats["sent"]) == (1, 2, 1)


def test_children_wait_for_their_parent_and_count_as_unfinished_meanwhile() -> None:
    sink = ListSink()
    client = apimon._client = Client(Config.from_options({}), sinks=[sink])
    parent = make_raw(path="/checkout", req_headers=[("Authorization", "Basic " + "YW5uOnB3")])
    client.started()
    token = incoming(parent)
    try:
        for i in range(2):
            call = OutgoingCall.start("POST", f"https://pay.example/charge/{i}", [])
            assert call is not None
            call.response(200, [("Content-Type", "application/json")])
            call.feed(b'{"ok": true}')
            call.finish()
    finally:
        leave(token)
    assert apimon.flush(5) and sink.events == []
    stats = apimon.stats()
    assert (stats["captured"], stats["unfinished"]) == (0, 3)
    client.complete(parent, None)
    assert apimon.flush(5)
    first, *children = sink.events
    assert first["direction"] == "Incoming" and first["user_id"] == "ann"
    assert [c["metadata"]["apimon"]["parent"] for c in children] == [first["transaction_id"]] * 2
    assert {c["user_id"] for c in children} == {"ann"}
    stats = apimon.stats()
    assert (stats["captured"], stats["unfinished"], stats["sent"]) == (3, 0, 3)


def test_a_library_version_apimon_does_not_know_is_left_alone(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import urllib3.connectionpool
    from apimon.integrations import urllib3 as apimon_urllib3

    def _make_request(self: Any, conn: Any, method: str, url: str, **kw: Any) -> Any:  # another signature
        raise AssertionError("never called here")

    monkeypatch.setattr(urllib3.connectionpool.HTTPConnectionPool, "_make_request", _make_request)
    with caplog.at_level(logging.WARNING, logger="apimon"):
        assert apimon_urllib3.instrument() is False
    assert urllib3.connectionpool.HTTPConnectionPool._make_request is _make_request
    assert "is not one apimon knows" in caplog.text
