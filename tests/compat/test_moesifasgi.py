"""apimon.compat.moesifasgi: a FastAPI app configured as moesifasgi's README has it, under uvicorn
(async hooks awaited, ``add_middleware(MoesifMiddleware, settings=...)``, a second instance made
only for profile updates)."""

from __future__ import annotations

from pathlib import Path

import pytest

from apimon.testing import FakeMoesif
from tests.compat.expect import check, check_plain, drive, send_plain
from tests.compat.harness import server, wait_for

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

APP = "tests.compat.apps.fastapi_moesif:app"


def test_fastapi_app_written_for_moesifasgi(tmp_path: Path) -> None:
    with FakeMoesif() as moesif:
        with server("uvicorn", APP, tmp_path, moesif) as srv:
            replies = drive(srv.port)
            wait_for(moesif, "events", 4)
        # /ping (the readiness probe), hooked, builtin, profiles.
        check(moesif, replies, events_expected=4)


def test_log_body_off_and_no_transaction_id(tmp_path: Path) -> None:
    with FakeMoesif() as moesif:
        env = {"MOESIF_LOG_BODY": "0", "MOESIF_NO_TID": "1"}
        with server("uvicorn", APP, tmp_path, moesif, env) as srv:
            reply = send_plain(srv.port)
            wait_for(moesif, "events", 2)
        check_plain(moesif, reply)
