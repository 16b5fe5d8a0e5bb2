"""The requests every compat app is sent, and what must reach Moesif for each, field by field."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from apimon.testing import FakeMoesif
from tests.compat.harness import COMPANY, USER, events_by_test_id, header, wait_for
from tests.httpcheck import Reply, exchange

JWT = "eyJhbGciOiJub25lIn0." + base64.urlsafe_b64encode(b'{"sub":"jwt-user"}').decode().rstrip("=") + ".sig"
ITEM = {"name": "kiwi", "card": "4111111111111111", "password": "hunter2"}
# A client's own transaction id: kept among the request headers, never made the event's id.
CLIENT_TID = "0" * 8 + "-0000-4000-8000-" + "0" * 12
METADATA = {"datacenter": "westus", "deployment_version": "v1.2.3"}


def drive(port: int, outgoing: bool = False) -> dict[str, Reply]:
    json = [("Content-Type", "application/json")]
    replies = {
        "hooked": exchange(
            port,
            "POST",
            "/items?src=compat",
            orjson.dumps(ITEM),
            [*json, ("X-User-Id", "u-1"), ("X-Session", "s-1"), ("X-Secret", "hush")],
            test_id="hooked",
        ),
        "builtin": exchange(
            port,
            "POST",
            "/items",
            orjson.dumps({"name": "fig"}),
            [*json, ("Authorization", f"Bearer {JWT}"), ("X-Moesif-Transaction-Id", CLIENT_TID)],
            test_id="builtin",
        ),
        "health": exchange(port, "GET", "/health", test_id="health"),
        "teapot": exchange(port, "GET", "/teapot", test_id="teapot"),
        "drop": exchange(port, "GET", "/drop", test_id="drop"),
        "profiles": exchange(
            port, "POST", "/profiles", orjson.dumps({"user": USER, "company": COMPANY}), json, test_id="profiles"
        ),
    }
    if outgoing:
        replies["call-out"] = exchange(port, "GET", "/call-out", test_id="call-out")
    return replies


def check(moesif: FakeMoesif, replies: dict[str, Reply], events_expected: int) -> dict[str, dict[str, Any]]:
    """What every compat middleware must send for ``drive``'s requests; returns the events."""
    assert moesif.rejections == []
    by_id = events_by_test_id(moesif)
    # SKIP on the path, SKIP reading the response (418 and its X-Skip header), the mask's None.
    assert replies["teapot"].status == 418 and replies["teapot"].body == b"short and stout"
    assert replies["drop"].status == 200 and replies["health"].status == 200
    assert {"health", "teapot", "drop"}.isdisjoint(by_id)
    assert {"hooked", "builtin", "profiles"} <= set(by_id), sorted(by_id)

    hooked, reply = by_id["hooked"], replies["hooked"]
    assert reply.status == 201 and orjson.loads(reply.body) == {"id": 1, **ITEM}
    request, response = hooked["request"], hooked["response"]
    assert request["verb"] == "POST" and request["uri"].endswith("/items?src=compat")
    assert request["uri"].startswith("http://127.0.0.1:") and request["ip_address"] == "127.0.0.1"
    assert hooked["user_id"] == "u-1"  # IDENTIFY_USER
    assert hooked["company_id"] == "acme"  # IDENTIFY_COMPANY, from the response's header
    assert hooked["session_token"] == "s-1"  # GET_SESSION_TOKEN
    assert {k: v for k, v in hooked["metadata"].items() if k != "apimon"} == METADATA  # GET_METADATA
    # MASK_EVENT_MODEL's changes, with apimon's own redaction on top.
    assert header(request, "X-Secret") == "****"
    assert request["body"] == {"name": "kiwi", "card": "****", "password": "[REDACTED]"}
    assert response["status"] == 201 and header(response, "X-Company-Id") == "acme"
    assert response["body"] == {"id": 1, "name": "kiwi", "card": "4111111111111111", "password": "[REDACTED]"}
    # The transaction id: the response carries it, and so does the event, both sides.
    tid = dict((k.lower(), v) for k, v in reply.headers)["x-moesif-transaction-id"]
    assert len(tid) == 36 and hooked["transaction_id"] == tid
    assert header(request, "X-Moesif-Transaction-Id") == tid and header(response, "X-Moesif-Transaction-Id") == tid

    builtin = by_id["builtin"]
    assert builtin["user_id"] == "jwt-user"  # AUTHORIZATION_HEADER_NAME / _USER_ID_FIELD defaults
    assert "session_token" not in builtin  # no GET_SESSION_TOKEN result: no token (as Moesif)
    assert "company_id" in builtin and header(builtin["request"], "Authorization") == "[REDACTED]"
    own = dict((k.lower(), v) for k, v in replies["builtin"].headers)["x-moesif-transaction-id"]
    assert own != CLIENT_TID and builtin["transaction_id"] == own
    assert header(builtin["request"], "X-Moesif-Transaction-Id") == CLIENT_TID

    wait_for(moesif, "users", 2)
    wait_for(moesif, "companies", 2)
    users = {u["user_id"]: u for u in moesif.users}
    companies = {c["company_id"]: c for c in moesif.companies}
    assert users["12345"] == USER  # every field, as given
    assert companies["67890"] == COMPANY
    assert users["batch-user"]["metadata"] == {"n": 1}
    assert companies["batch-co"]["company_domain"] == "batch.example"
    assert len(moesif.events) == events_expected, [(e["direction"], e["request"]["uri"]) for e in moesif.events]
    return by_id


def check_plain(moesif: FakeMoesif, reply: Reply) -> None:
    """LOG_BODY False and the transaction id disabled: no bodies, no header."""
    assert moesif.rejections == []
    event = events_by_test_id(moesif)["plain"]
    assert reply.status == 201
    assert "body" not in event["request"] and "body" not in event["response"]
    assert "x-moesif-transaction-id" not in {k.lower() for k, _ in reply.headers}
    assert header(event["request"], "X-Moesif-Transaction-Id") is None
    assert event["user_id"] == "u-1" and event["company_id"] == "acme"


def send_plain(port: int) -> Reply:
    headers = [("Content-Type", "application/json"), ("X-User-Id", "u-1")]
    return exchange(port, "POST", "/items", orjson.dumps(ITEM), headers, test_id="plain")
