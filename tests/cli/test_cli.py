"""The installed ``apimon`` console script, run as a user would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from apimon.client import Client
from apimon.config import Config
from tests.factories import make_raw

APIMON = shutil.which("apimon", path=os.path.dirname(sys.executable)) or shutil.which("apimon")


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    assert APIMON, "the apimon console script is not installed"
    env = {**os.environ, "COLUMNS": "160"}
    return subprocess.run([APIMON, *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = str(tmp_path / "cli.db")
    client = Client(Config.from_options(store=path))
    for i, (status, user) in enumerate([(200, "alice"), (201, None), (404, "bob"), (500, "alice"), (503, None)]):
        raw = make_raw(
            method="POST" if i == 1 else "GET",
            path=f"/items/{i}",
            status=status,
            resp_headers=[("Content-Type", "application/json")],
            resp_body=b'{"ok": true}',
        )
        raw.user_id = user
        raw.route = "/items/<id>"
        client.complete(raw, None)
    assert client.flush(5.0)
    client.shutdown(1.0)
    return path


def test_calls_table_and_json(db: str) -> None:
    out = run("calls", "--store", db)
    assert out.returncode == 0, out.stderr
    assert "/items/4" in out.stdout and "503" in out.stdout and "alice" in out.stdout
    lines = run("calls", "--store", db, "--json", "--status", "5xx").stdout.splitlines()
    rows = [orjson.loads(line) for line in lines]
    assert [(r["status"], r["path"]) for r in rows] == [(503, "/items/4"), (500, "/items/3")]
    glob = [
        orjson.loads(x)["path"] for x in run("calls", "--store", db, "--json", "--path", "/items/[12]").stdout.split()
    ]
    assert glob == ["/items/2", "/items/1"]
    assert [orjson.loads(x)["id"] for x in run("calls", "--store", db, "--json", "--last", "2").stdout.split()] == [
        5,
        4,
    ]


def test_show_by_id_and_transaction_id(db: str) -> None:
    shipped = run("show", "3", "--store", db, "--json").stdout
    event = orjson.loads(shipped)
    assert event["response"]["status"] == 404 and event["user_id"] == "bob"
    by_tx = run("show", event["transaction_id"], "--store", db, "--json").stdout
    assert by_tx == shipped
    pretty = run("show", "3", "--store", db)
    assert pretty.returncode == 0 and "GET https://api.example.com/items/2" in pretty.stdout
    missing = run("show", "999", "--store", db)
    assert missing.returncode == 1 and "no call '999'" in missing.stderr


def test_stats(db: str) -> None:
    summary = orjson.loads(run("stats", "--store", db, "--json").stdout)
    assert summary["total"] == 5
    assert summary["by_status_class"] == {"2xx": 2, "4xx": 1, "5xx": 2}
    assert summary["p50_ms"] == 250.0
    table = run("stats", "--store", db).stdout
    assert "/items/<id>" in table and "p99" in table


def test_bad_arguments_and_missing_store_are_clear(tmp_path: Path) -> None:
    bad = run("calls", "--status", "7xx")
    assert bad.returncode == 2 and "status class" in bad.stderr
    missing = run("calls", "--store", str(tmp_path / "none.db"))
    assert missing.returncode == 1 and "no apimon store" in missing.stderr


def test_hostile_captured_content_is_not_markup(tmp_path: Path) -> None:
    path = str(tmp_path / "hostile.db")
    client = Client(Config.from_options(store=path))
    raw = make_raw(
        path="/[bold red]x[/]",
        resp_headers=[("Content-Type", "text/plain")],
        resp_body=b"\x1b[31mred\x1b[0m [link=file:///etc]y[/link]",
    )
    raw.user_id = "[blink]eve[/blink]"
    client.complete(raw, None)
    assert client.flush(5.0)
    out = run("calls", "--store", path).stdout + run("show", "1", "--store", path).stdout
    assert "[blink]eve[/blink]" in out and "/[bold red]x[/]" in out
    assert "\x1b[31m" not in out


@pytest.mark.parametrize(
    "verb",
    ["[bold]GET[/bold]", "\x1b]0;pwned\x07GET\x1b[31m", "GET\u202e", "[/]", "\x9b31m"],
    ids=["markup", "osc-and-csi", "bidi", "closing-tag", "c1-csi"],
)
def test_a_hostile_verb_is_shown_as_text_in_every_command(tmp_path: Path, verb: str) -> None:
    path = str(tmp_path / "verb.db")
    client = Client(Config.from_options(store=path))
    raw = make_raw(method=verb, path="/x", resp_headers=[("X-Evil", "\x1b[2J")], resp_body=b"")
    raw.user_id = "\x1b]8;;http://evil/\x07eve"
    client.complete(raw, None)
    assert client.flush(5.0)
    client.shutdown(1.0)
    for command in (["calls"], ["stats"], ["show", "1"]):
        out = run(*command, "--store", path)
        assert out.returncode == 0, (command, out.stderr)  # rich's MarkupError crashed calls and stats
        assert not any(ch in out.stdout for ch in "\x1b\x07\x9b\u202e"), command
        visible = verb.upper().replace("\x1b", "\ufffd").replace("\x07", "\ufffd").replace("\x9b", "\ufffd")
        assert visible.replace("\u202e", "\ufffd")[:8] in out.stdout, (command, out.stdout)


@pytest.mark.slow
def test_demo_runs_end_to_end() -> None:
    out = run("demo", "--requests", "36", timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "37 of 37 calls captured" in out.stdout
    assert "user-42" in out.stdout and "/boom" in out.stdout


def test_ship_sends_unshipped_calls_once(db: str) -> None:
    from apimon.testing import FakeMoEngage, FakeMoesif

    with FakeMoesif() as moesif, FakeMoEngage() as moe:
        env_key = {"APIMON_MOENGAGE_API_KEY": moe.api_key}
        args = [
            "ship",
            "--store",
            db,
            "--moesif-application-id",
            moesif.application_id,
            "--moesif-base-url",
            moesif.url,
            "--moengage-workspace-id",
            moe.workspace_id,
            "--moengage-base-url",
            moe.url,
        ]
        out = subprocess.run(
            [APIMON, *args], capture_output=True, text=True, timeout=60, env={**os.environ, **env_key, "COLUMNS": "160"}
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert "Moesif: 5 delivered, 0 failed of 5 unshipped calls" in out.stdout
        # Three of the five stored calls have a user; MoEngage takes only those.
        assert "MoEngage: 3 delivered, 0 failed of 5 unshipped calls" in out.stdout
        assert len(moesif.events) == 5 and moesif.rejections == [] and len(moe.events) == 3
        again = subprocess.run(
            [APIMON, *args], capture_output=True, text=True, timeout=60, env={**os.environ, **env_key, "COLUMNS": "160"}
        )
        assert "Moesif: 0 delivered, 0 failed of 0 unshipped calls" in again.stdout
        assert len(moesif.events) == 5


def test_ship_without_destination_is_a_clear_error(db: str) -> None:
    out = run("ship", "--store", db)
    assert out.returncode == 2 and "no destination configured" in out.stdout


@pytest.fixture
def mixed(tmp_path: Path) -> str:
    """Two incoming calls and three the app made (two to one host, one refused)."""
    from apimon.outgoing import OutgoingCall

    path = str(tmp_path / "mixed.db")
    client = Client(Config.from_options(store=path))
    import apimon

    apimon._client = client
    try:
        for i in range(2):
            client.complete(make_raw(path=f"/in/{i}"), None)
        for url, status in (
            ("https://api.stripe.com/v1/charges", 200),
            ("https://api.stripe.com/v1/refunds", 502),
            ("https://llm.example/v1/chat", 0),
        ):
            call = OutgoingCall.start("POST", url, [])
            assert call is not None
            if status:
                call.response(status, [])
                call.finish()
            else:
                call.fail(ConnectionRefusedError())
        assert client.flush(5.0)
    finally:
        client.shutdown(1.0)
        apimon._client = None
    return path


def test_calls_by_direction_and_outgoing_stats_by_host(mixed: str) -> None:
    outgoing = [
        orjson.loads(x) for x in run("calls", "--store", mixed, "--json", "--direction", "outgoing").stdout.split()
    ]
    assert [(r["direction"], r["path"]) for r in outgoing] == [
        ("Outgoing", "/v1/chat"),
        ("Outgoing", "/v1/refunds"),
        ("Outgoing", "/v1/charges"),
    ]
    incoming = run("calls", "--store", mixed, "--json", "--direction", "incoming").stdout.split()
    assert [orjson.loads(x)["path"] for x in incoming] == ["/in/1", "/in/0"]
    table = run("calls", "--store", mixed).stdout
    assert "api.stripe.com/v1/charges" in table and " out " in table
    summary = orjson.loads(run("stats", "--store", mixed, "--json").stdout)
    assert summary["outgoing_by_host"] == [
        {"host": "api.stripe.com", "count": 2, "errors": 1, "avg_ms": summary["outgoing_by_host"][0]["avg_ms"]},
        {"host": "llm.example", "count": 1, "errors": 1, "avg_ms": summary["outgoing_by_host"][1]["avg_ms"]},
    ]
    assert "outgoing calls by host" in run("stats", "--store", mixed).stdout


def test_a_store_from_before_the_direction_column_is_read_and_migrated(tmp_path: Path) -> None:
    import sqlite3

    from apimon.store import Store

    path = str(tmp_path / "old.db")
    old_schema = (
        "CREATE TABLE calls (id INTEGER PRIMARY KEY AUTOINCREMENT, transaction_id TEXT NOT NULL, ts REAL NOT NULL,"
        " verb TEXT NOT NULL, path TEXT NOT NULL, route TEXT, status INTEGER NOT NULL, duration_ms REAL NOT NULL,"
        " user_id TEXT, company_id TEXT, size INTEGER NOT NULL, shipped INTEGER NOT NULL DEFAULT 0,"
        " event BLOB NOT NULL)"
    )
    event = b'{"request":{"time":"2026-01-01T00:00:00.000Z","uri":"http://h/x","verb":"GET","headers":{}}}'
    with sqlite3.connect(path) as conn:
        conn.execute(old_schema)
        conn.execute(
            "INSERT INTO calls (transaction_id, ts, verb, path, status, duration_ms, size, event)"
            " VALUES ('t', 1.0, 'GET', '/x', 200, 1.0, ?, ?)",
            (len(event), event),
        )
    readonly = Store(path, readonly=True)
    assert [c.direction for c in readonly.recent()] == ["Incoming"]
    assert readonly.recent(direction="Outgoing") == []
    writable = Store(path)
    writable.open()  # adds the column
    assert [c.direction for c in writable.recent(direction="Incoming")] == ["Incoming"]
    writable.close()
