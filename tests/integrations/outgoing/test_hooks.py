"""An outgoing call's own hooks and ``log_body_outgoing``, through httpx against a real partner
API on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import apimon
from apimon.client import Client
from apimon.config import Config
from tests.conftest import ListSink
from tests.integrations.outgoing.conftest import outgoing
from tests.integrations.outgoing.partner import Partner

httpx = pytest.importorskip("httpx")
from apimon.integrations.httpx import ApimonTransport  # noqa: E402


@pytest.fixture()
def hooked() -> Iterator[ListSink]:
    sink = ListSink()
    seen: list[Any] = []

    def skip(request: Any, response: Any) -> bool:
        seen.append((request.method, request.url, response.status))
        return "/skip" in request.url

    options = {
        "flush_interval": 0.05,
        "log_body_outgoing": False,
        "skip_outgoing": skip,
        "identify_user_outgoing": lambda request, response: "svc-payments",
        "identify_company_outgoing": lambda request, response: request.headers.get("X-Tenant"),
        "get_session_token_outgoing": lambda request, response: None,
        "get_metadata_outgoing": lambda request, response: {"partner_status": response.status},
    }
    apimon._client = Client(Config.from_options(options), sinks=[sink])
    sink.seen = seen  # type: ignore[attr-defined]
    yield sink


def test_outgoing_hooks_and_no_bodies(partner: Partner, hooked: ListSink) -> None:
    with httpx.Client(transport=ApimonTransport()) as client:
        got = client.post(partner.url + "/charges", json={"amount": 1}, headers={"X-Tenant": "acme"})
        skipped = client.get(partner.url + "/skip-me")
    assert got.status_code == 201 and skipped.status_code in (200, 404)
    [event] = outgoing(hooked)
    assert event["request"]["uri"] == partner.url + "/charges"
    assert event["user_id"] == "svc-payments" and event["company_id"] == "acme"
    assert event["metadata"]["partner_status"] == 201 and "session_token" not in event
    # log_body_outgoing=False: the call is recorded, its bodies are not.
    assert "body" not in event["request"] and "body" not in event["response"]
    assert apimon.stats()["skipped"] == 1
    assert [s[0] for s in hooked.seen] == ["POST", "GET"]  # type: ignore[attr-defined]
