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
