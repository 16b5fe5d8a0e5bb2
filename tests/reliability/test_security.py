"""Security: default redaction on every adapter and destination (the store and `apimon show`
included), no credential in logs, errors or reprs, TLS verification that cannot be switched off."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import orjson
import pytest

import apimon
from apimon.config import DEFAULT_REDACT_BODY_FIELDS, DEFAULT_REDACT_HEADERS
from apimon.serverproc import ServerProcess, free_port
from apimon.store import Store
from apimon.testing import FakeMoEngage, FakeMoesif
from tests.conftest import REPO
from tests.factories import make_raw
from tests.httpcheck import exchange, wait_event
from tests.integrations.test_scenarios import FRAMEWORKS, Framework

SECRET = "s3cr3t-value-7"
MOESIF_ID = "moesif-app-id-SECRET"
MOE_KEY = "moengage-key-SECRET"


@pytest.mark.slow
@pytest.mark.parametrize("fw", FRAMEWORKS, ids=[f.name for f in FRAMEWORKS])
def test_default_redaction_on_every_adapter_and_destination(fw: Framework, tmp_path: Path) -> None:
    for module in fw.requires:
        pytest.importorskip(module)
    db = str(tmp_path / "secrets.db")
    with FakeMoesif(application_id=MOESIF_ID) as moesif, FakeMoEngage(api_key=MOE_KEY) as moe:
        port = free_port()
        env = {
            "PYTHONPATH": str(REPO),
            "APIMON_STORE": db,
            "APIMON_MOESIF_APPLICATION_ID": MOESIF_ID,
            "APIMON_MOESIF_BASE_URL": moesif.url,
            "APIMON_MOENGAGE_WORKSPACE_ID": moe.workspace_id,
            "APIMON_MOENGAGE_API_KEY": MOE_KEY,
            "APIMON_MOENGAGE_BASE_URL": moe.url,
        }
        server = ServerProcess(fw.command(port), port, env=env, cwd=str(REPO), log_path=str(tmp_path / "s.log"))
        headers = [(name, SECRET) for name in DEFAULT_REDACT_HEADERS if name != "authorization"]
        headers += [
            ("Authorization", f"Basic {__import__('base64').b64encode(f'eve:{SECRET}'.encode()).decode()}"),
            ("Content-Type", "application/json"),
        ]
        body = orjson.dumps({field: SECRET for field in DEFAULT_REDACT_BODY_FIELDS} | {"nested": {"Password": SECRET}})
        with server:
            reply = exchange(port, "POST", "/echo", body, headers, test_id="secrets")
            assert reply.body == body  # the app itself is untouched
            # JSON sent as text (with NaN, which Python's frameworks accept), a nested form name,
            # secrets in the query: redacted too.
            gaps = [
                ("/echo?api_key=" + SECRET, f'{{"password": "{SECRET}", "ratio": NaN}}', "text/plain"),
                ("/echo?access_token=" + SECRET, f"user[password]={SECRET}&n=1", "application/x-www-form-urlencoded"),
            ]
            for i, (path, data, ctype) in enumerate(gaps):
                auth = [h for h in headers if h[0] == "Authorization"]  # MoEngage ships calls with a user
                got = exchange(port, "POST", path, data.encode(), [("Content-Type", ctype), *auth], test_id=f"gap-{i}")
                assert got.body == data.encode()
            event = wait_event(db, "secrets")
            gap_events = [wait_event(db, f"gap-{i}") for i in range(len(gaps))]
            assert apimon_flushed(moesif, moe, 1 + len(gaps))
        row = next(c for c in Store(db).recent(limit=100) if c.event() == event)
        shipped = {"store": row.event_json, "moesif": orjson.dumps(moesif.events), "moengage": orjson.dumps(moe.events)}
        cli = shutil.which("apimon", path=os.path.dirname(sys.executable)) or "apimon"
        for flags in ([], ["--json"]):
            shown = subprocess.run(
                [cli, "show", str(row.id), "--store", db, *flags],
                capture_output=True,
                text=True,
                env={**os.environ, "COLUMNS": "200"},
                check=True,
            )
            shipped[f"apimon show {' '.join(flags)}"] = shown.stdout.encode()
        for where, data in shipped.items():
            assert SECRET.encode() not in data, f"the secret leaked into {where}"
        assert event["request"]["body"]["nested"]["Password"] == "[REDACTED]"
        assert gap_events[0]["request"]["uri"].endswith("/echo?api_key=[REDACTED]")
        assert gap_events[1]["request"]["body"] == "user[password]=[REDACTED]&n=1"
        assert all(
            v == "[REDACTED]" for k, v in event["request"]["headers"].items() if k.lower() in DEFAULT_REDACT_HEADERS
        )
        log = (tmp_path / "s.log").read_text()
        assert MOESIF_ID not in log and MOE_KEY not in log


def apimon_flushed(moesif: FakeMoesif, moe: FakeMoEngage, n: int = 1) -> bool:
    from tests.reliability.harness import wait_for

    return wait_for(lambda: len(moesif.events) >= n and len(moe.events) >= n, timeout=20)


def test_credentials_never_in_reprs_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    with FakeMoesif(application_id="right") as fake:
        client = apimon.init(
            moesif_application_id=MOESIF_ID,
            moesif_base_url=fake.url,
            moengage_workspace_id="ws",
            moengage_api_key=MOE_KEY,
            moengage_base_url=fake.url,
            store="off",
            flush_interval=0.05,
        )
        raw = make_raw()
        raw.user_id = "u"
        client.complete(raw, None)
        assert client.flush(10)
        text = repr(client) + repr(client.config) + caplog.text + str(client.stats())
        assert MOESIF_ID not in text and MOE_KEY not in text
        assert "Moesif rejected the application id (401)" in caplog.text


class _TLSHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self.do_POST()

    def log_message(self, format: str, *args: object) -> None:
        return


def test_tls_verification_cannot_be_disabled(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    server = HTTPServer(("127.0.0.1", 0), _TLSHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = apimon.init(
            moesif_application_id="x",
            moesif_base_url=f"https://127.0.0.1:{server.server_port}",
            store="off",
            flush_interval=0.05,
            retry_deadline=1.0,
        )
        client.complete(make_raw(), None)
        assert client.flush(15)
        stats = client.stats()
        # A self-signed certificate is refused: nothing is delivered to an unverified peer.
        assert stats["sent"] == 0 and stats["failed"] == 1
        # And there is no switch to turn verification off.
        assert not [n for n in apimon.Config.__dataclass_fields__ if "verify" in n or "insecure" in n or "ssl" in n]
    finally:
        server.shutdown()
        server.server_close()


def test_store_files_are_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "private.db"
    code = (
        "import apimon, sys; from tests.factories import make_raw; c = apimon.init(store=sys.argv[1]);"
        " c.complete(make_raw(), None); c.flush(5)"
    )
    subprocess.run([sys.executable, "-c", code, str(db)], check=True, cwd=REPO)
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        if path.exists():
            assert oct(path.stat().st_mode & 0o777) == oct(0o600), path
