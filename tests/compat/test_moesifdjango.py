"""apimon.compat.moesifdjango: a Django project configured as moesifdjango's README has it, under
gunicorn (WSGI) and uvicorn (ASGI, sync and async views)."""

from __future__ import annotations

from pathlib import Path

import pytest

from apimon.testing import FakeMoesif
from tests.compat.expect import check, check_plain, drive, send_plain
from tests.compat.harness import events_by_test_id, header, server, wait_for
from tests.httpcheck import exchange

pytest.importorskip("django")

SETTINGS = {"DJANGO_SETTINGS_MODULE": "tests.compat.apps.django_moesif.settings"}
TARGETS = {
    "gunicorn": "tests.compat.apps.django_moesif.wsgi:application",
    "uvicorn": "tests.compat.apps.django_moesif.asgi:application",
}


@pytest.mark.parametrize("kind", ["gunicorn", "uvicorn"])
def test_django_project_written_for_moesifdjango(kind: str, tmp_path: Path) -> None:
    with FakeMoesif() as moesif:
        with server(kind, TARGETS[kind], tmp_path, moesif, SETTINGS) as srv:
            replies = drive(srv.port)
            who = exchange(srv.port, "GET", "/whoami", None, [("X-Api-Token", "t0k")], test_id="whoami")
            again = exchange(srv.port, "GET", "/whoami", None, [], test_id="whoami-again")
            in_async = exchange(srv.port, "GET", "/async", None, [("X-User-Id", "a-1")], test_id="async")
            wait_for(moesif, "events", 7)
            wait_for(moesif, "subscriptions", 1)
        # /ping (the readiness probe), hooked, builtin, profiles, whoami twice, async.
        by_id = check(moesif, replies, events_expected=7)
    assert who.status == 200 and again.status == 200 and in_async.status == 200
    event = by_id["whoami"]
    # No IDENTIFY_USER result: the authenticated user's username (moesifdjango's fallback).
    assert event["user_id"] == "django-user"
    # The session's key, as its HMAC; the same key, the same token.
    token = event["session_token"]
    assert token.startswith("sha256:") and "sess-abc" not in token
    assert by_id["whoami-again"]["session_token"] == token
    # REQUEST_HEADER_MASKS and RESPONSE_BODY_MASKS delete (at any depth).
    assert header(event["request"], "X-Api-Token") is None
    assert event["response"]["body"] == {"ok": True, "nested": [{"keep": 3}]}
    assert by_id["async"]["user_id"] == "a-1" and by_id["async"]["company_id"] == "async-co"
    assert moesif.subscriptions == [
        {
            "subscription_id": "sub-1",
            "company_id": "67890",
            "current_period_start": "2026-12-01T00:00:00.000Z",
            "current_period_end": "2027-01-01T00:00:00.000Z",
            "status": "active",
            "metadata": {"plan": "pro"},
        }
    ]


def test_log_body_off_and_no_transaction_id(tmp_path: Path) -> None:
    with FakeMoesif() as moesif:
        env = {**SETTINGS, "MOESIF_LOG_BODY": "0", "MOESIF_NO_TID": "1"}
        with server("gunicorn", TARGETS["gunicorn"], tmp_path, moesif, env) as srv:
            reply = send_plain(srv.port)
            wait_for(moesif, "events", 2)
        assert "plain" in events_by_test_id(moesif)
        check_plain(moesif, reply)
