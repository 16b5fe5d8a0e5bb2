"""apimon.compat.moesifwsgi: a Flask app configured as moesifwsgi's README has it, under gunicorn."""

from __future__ import annotations

from pathlib import Path

import pytest

from apimon.testing import FakeMoesif
from tests.compat.expect import check, check_plain, drive, send_plain
from tests.compat.harness import events_by_test_id, server, wait_for

pytest.importorskip("flask")
pytest.importorskip("requests")

APP = "tests.compat.apps.flask_moesif:app"


def test_flask_app_written_for_moesifwsgi(tmp_path: Path) -> None:
    with FakeMoesif() as moesif:
        with server("gunicorn", APP, tmp_path, moesif) as srv:
            replies = drive(srv.port, outgoing=True)
            wait_for(moesif, "events", 5)
        # /ping (the readiness probe), hooked, builtin, profiles, call-out and its one outgoing call.
        by_id = check(moesif, replies, events_expected=6)
    assert replies["call-out"].status == 200
    outgoing = [e for e in moesif.events if e["direction"] == "Outgoing"]
    assert len(outgoing) == 1  # SKIP_OUTGOING left /skip-out out
    call = outgoing[0]
    assert call["request"]["uri"] == f"{moesif.url}/outgoing-probe?q=1" and call["response"]["status"] == 401
    assert call["user_id"] == "outgoing-user"  # IDENTIFY_USER_OUTGOING
    meta = {k: v for k, v in call["metadata"].items() if k != "apimon"}
    assert meta == {"target": f"{moesif.url}/outgoing-probe", "status": 401}  # GET_METADATA_OUTGOING
    assert call["metadata"]["apimon"]["parent"] == by_id["call-out"]["transaction_id"]


def test_log_body_off_and_no_transaction_id(tmp_path: Path) -> None:
    with FakeMoesif() as moesif:
        env = {"MOESIF_LOG_BODY": "0", "MOESIF_NO_TID": "1"}
        with server("gunicorn", APP, tmp_path, moesif, env) as srv:
            reply = send_plain(srv.port)
            wait_for(moesif, "events", 2)
        assert "plain" in events_by_test_id(moesif)
        check_plain(moesif, reply)
