"""requests (its adapter, and through urllib3) and urllib3 itself, against a real partner API on
127.0.0.1: what is recorded, each call once, and that the app gets exactly what it would get."""

from __future__ import annotations

import gc

import pytest

from tests.conftest import ListSink
from tests.integrations.outgoing.conftest import events, outgoing
from tests.integrations.outgoing.partner import Partner

requests = pytest.importorskip("requests")
urllib3 = pytest.importorskip("urllib3")
from apimon.integrations import urllib3 as apimon_urllib3  # noqa: E402
from apimon.integrations.requests import ApimonAdapter  # noqa: E402


def session() -> requests.Session:
    s = requests.Session()
    s.mount("http://", ApimonAdapter())
    return s


def test_the_adapter_records_a_call_and_the_app_gets_the_same_response(partner: Partner, sink: ListSink) -> None:
    kwargs = {"json": {"password": "hunter2", "n": 1}, "headers": {"X-Api-Key": "partner-key"}}
    got = session().post(partner.url + "/things?a=1", **kwargs)  # type: ignore[arg-type]
    want = requests.post(partner.url + "/things?a=1", **kwargs)  # type: ignore[arg-type]
    assert (got.status_code, got.content) == (want.status_code, want.content)
    [event] = outgoing(sink)
    assert event["request"]["uri"] == partner.url + "/things?a=1"
    assert event["request"]["headers"]["X-Api-Key"] == "[REDACTED]"
    assert event["request"]["body"] == {"password": "[REDACTED]", "n": 1}
    assert event["response"]["status"] == 201 and event["response"]["body"] == {"password": "[REDACTED]", "n": 1}


def test_stream_true_is_teed_as_read_never_ahead(partner: Partner, sink: ListSink) -> None:
    response = session().get(partner.url + "/stream", stream=True, timeout=5)
    chunks = response.iter_content(chunk_size=None)
    assert next(chunks) == b"part 0\n"  # part 1 is sent only after this: reading ahead would hang
    assert events(sink) == []
    partner.go_on.set()
    assert b"".join(chunks) == b"part 1\npart 2\n"
    response.close()
    [event] = outgoing(sink)
    assert event["response"]["body"] == "part 0\npart 1\npart 2\n"


def test_redirects_gzip_errors(partner: Partner, sink: ListSink) -> None:
    s = session()
    assert s.get(partner.url + "/redirect").json()["path"] == "/json?from=redirect"
    assert s.get(partner.url + "/gzip").json() == {"zipped": True}
    with pytest.raises(requests.ConnectionError):
        s.get("http://127.0.0.1:1/nowhere")
    with pytest.raises(requests.ReadTimeout):
        s.get(partner.url + "/slow", timeout=0.3)
    hop, landed, zipped, refused, slow = outgoing(sink)
    assert (hop["response"]["status"], landed["response"]["status"]) == (302, 200)
    assert zipped["response"]["body"] == {"zipped": True}  # what requests decoded, not base64
    assert "response" not in refused and refused["metadata"]["apimon"]["error"] == "ConnectionError"
    assert "response" not in slow and slow["metadata"]["apimon"]["error"] == "ReadTimeout"


def test_instrument_records_requests_through_urllib3_each_call_once(partner: Partner, sink: ListSink) -> None:
    original = urllib3.connectionpool.HTTPConnectionPool._make_request
    assert apimon_urllib3.instrument() and apimon_urllib3.instrument()
    try:
        assert requests.get(partner.url + "/json?plain=1").json()["path"] == "/json?plain=1"
        session().get(partner.url + "/json?adapter=1")  # the adapter and urllib3: one event
        pool = urllib3.PoolManager()
        assert pool.request("GET", partner.url + "/gzip").json() == {"zipped": True}  # preloaded
        lazy = pool.request("GET", partner.url + "/json?lazy=1", preload_content=False)
        assert lazy.read() and lazy.read() == b""
        lazy.release_conn()
        assert pool.request("GET", partner.url + "/redirect").json()["path"] == "/json?from=redirect"
    finally:
        apimon_urllib3.uninstrument()
    assert urllib3.connectionpool.HTTPConnectionPool._make_request is original
    requests.get(partner.url + "/json?after=1")
    uris = [e["request"]["uri"].removeprefix(partner.url) for e in outgoing(sink)]
    assert uris == ["/json?plain=1", "/json?adapter=1", "/gzip", "/json?lazy=1", "/redirect", "/json?from=redirect"]


def test_a_response_never_read_ends_when_released(partner: Partner, sink: ListSink) -> None:
    response = session().get(partner.url + "/json", stream=True)
    assert response.status_code == 200
    del response
    gc.collect()
    [event] = outgoing(sink)
    assert event["response"]["status"] == 200 and event["metadata"]["apimon"]["incomplete"] in ("released", "closed")
