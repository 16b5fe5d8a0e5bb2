"""The dashboard in a real browser: Playwright driving Debian's headless Chromium against
``apimon serve``, over a store that a real gunicorn app filled through apimon.

Screenshots of each page go to ``test-artifacts/dashboard/`` (linked from the README).
"""

from __future__ import annotations

import base64
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Dialog, Page, expect, sync_playwright

from apimon.serverproc import ServerProcess, free_port, gunicorn_command
from tests.conftest import REPO
from tests.dashboard.calls import HOSTILE
from tests.dashboard.server import dashboard
from tests.httpcheck import exchange

ARTIFACTS = REPO / "test-artifacts" / "dashboard"
CHROMIUM = os.environ.get("APIMON_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# What this machine's closed network needs (no background fetches), run as root (no sandbox).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def basic(user: str) -> tuple[str, str]:
    return ("Authorization", "Basic " + base64.b64encode(f"{user}:pw".encode()).decode())


def drive(port: int) -> None:
    """A mix of traffic through the sample app, hostile content included."""
    for i in range(12):
        exchange(port, "GET", "/ping", headers=[basic("alice" if i % 3 else "bob")])
    exchange(port, "POST", "/items", b'{"name": "pear"}', [("Content-Type", "application/json"), basic("alice")])
    exchange(port, "GET", "/items/1", headers=[basic("alice")])
    exchange(port, "GET", "/items/999")
    for _ in range(3):
        exchange(port, "GET", "/boom", headers=[basic("bob")])
    exchange(port, "GET", "/download")
    exchange(port, "POST", "/echo", HOSTILE.encode(), [("Content-Type", "text/html"), ("X-Evil", HOSTILE)])


class Traffic:
    """The Flask sample app under gunicorn with apimon storing to ``db``."""

    def __init__(self, tmp: Path) -> None:
        self.db = str(tmp / "browser.db")
        port = free_port()
        env = {"APIMON_STORE": self.db, "PYTHONPATH": str(REPO), "APIMON_FLUSH_INTERVAL": "0.2"}
        self.app = ServerProcess(
            gunicorn_command("sample_apps.flask_app.app:app", port),
            port,
            env=env,
            cwd=str(REPO),
            log_path=str(tmp / "app.log"),
        )


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traffic]:
    t = Traffic(tmp_path_factory.mktemp("browser"))
    with t.app:
        drive(t.app.port)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not stored(t.db, 20):
            time.sleep(0.1)
        yield t


def stored(db: str, n: int) -> bool:
    if not os.path.exists(db):
        return False
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0]) >= n
    except sqlite3.Error:
        return False
    finally:
        conn.close()


@pytest.fixture(scope="module")
def board(traffic: Traffic, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with dashboard(traffic.db, log_path=str(tmp_path_factory.mktemp("board") / "serve.log")) as proc:
        yield proc


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert os.path.exists(CHROMIUM), f"no Chromium at {CHROMIUM} (./dev test installs Debian's chromium)"
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@dataclass
class Watched:
    """What a page did besides rendering: uncaught script errors and dialogs (alert() etc.)."""

    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


@pytest.fixture
def watched() -> Watched:
    return Watched()


@pytest.fixture
def page(browser: Browser, watched: Watched) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    p.on("pageerror", lambda exc: watched.errors.append(str(exc)))

    def on_dialog(dialog: Dialog) -> None:
        watched.dialogs.append(dialog.message)
        dialog.dismiss()

    p.on("dialog", on_dialog)
    yield p
    context.close()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def pwned(page: Page) -> Any:
    return page.evaluate("window.__apimon_pwned")


def test_stream_filters_and_goes_live(page: Page, watched: Watched, board: ServerProcess, traffic: Traffic) -> None:
    page.goto(board.url + "/")
    rows = page.locator("#calls tbody tr")
    expect(rows.first).to_be_visible()
    assert rows.count() >= 20
    expect(page.locator("#live")).to_have_class("live on")
    shot(page, "stream")

    page.select_option("select[name=status]", "5xx")
    page.click("form#filters button[type=submit]")
    page.wait_for_url("**/?status=5xx")  # unset filters are left out of the URL
    expect(rows).to_have_count(3)
    assert set(rows.locator("td.status").all_inner_texts()) == {"500"}
    expect(page.locator("#live")).to_have_class("live on")

    # New calls appear without a reload, and only those that match the filter.
    exchange(traffic.app.port, "GET", "/ping")
    exchange(traffic.app.port, "GET", "/boom")
    expect(rows).to_have_count(4, timeout=10_000)
    expect(rows.first.locator("td.path")).to_have_text("/boom")
    expect(rows.first).to_have_class("s5 fresh")
    shot(page, "stream-filtered")
    assert watched.errors == []


def test_call_detail_shows_hostile_content_as_text(page: Page, watched: Watched, board: ServerProcess) -> None:
    page.goto(board.url + "/?path=/echo")
    page.click("#calls tbody tr >> td.path a")
    page.wait_for_url("**/calls/*")
    bodies = page.locator("pre.body-text")
    expect(bodies).to_have_count(2)
    assert bodies.nth(0).inner_text() == HOSTILE and bodies.nth(1).inner_text() == HOSTILE
    expect(page.locator("table.headers td", has_text="window.__apimon_pwned = 1").first).to_be_visible()
    # Nothing it captured became a live element, and nothing ran.
    assert page.locator("script").count() == 1 and page.locator("img").count() == 0
    assert pwned(page) is None and watched.dialogs == [] and watched.errors == []
    shot(page, "call-hostile")


def test_binary_body_is_a_hex_preview_with_a_download(page: Page, board: ServerProcess) -> None:
    page.goto(board.url + "/?path=/download")
    page.click("#calls tbody tr >> td.path a")
    preview = page.locator("#response pre.body-binary")
    expect(preview).to_contain_text("00000000  ")
    with page.expect_download() as info:
        page.click("#response a.download")
    download = info.value
    data = Path(download.path()).read_bytes()
    assert len(data) > 0 and download.suggested_filename.endswith("-response.bin")
    shot(page, "call-binary")


def test_overview_charts_render(page: Page, watched: Watched, board: ServerProcess) -> None:
    page.goto(board.url + "/overview")
    bars = page.locator("#chart-status rect.bar")
    expect(bars.first).to_be_visible()
    box = bars.first.bounding_box()
    assert box is not None and box["height"] > 1 and box["width"] > 1
    expect(page.locator("#chart-latency circle.dot").first).to_be_visible()
    assert page.locator("#chart-latency polyline.line").count() == 3  # p50, p95, p99
    assert int(page.locator("#total").inner_text()) >= 20
    users = page.locator(".tops section", has_text="Top users").locator("tbody tr td a").all_inner_texts()
    assert users[:2] == ["alice", "bob"]
    shot(page, "overview")
    # A top-route link opens the stream filtered to that route.
    page.locator(".tops section", has_text="Most errors").locator("a", has_text="/boom").click()
    page.wait_for_url("**/?verb=GET&route=*")
    assert set(page.locator("#calls tbody tr td.status").all_inner_texts()) == {"500"}
    assert pwned(page) is None and watched.errors == []
