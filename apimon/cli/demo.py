"""``apimon demo``: the sample Flask app with apimon under gunicorn on 127.0.0.1, a mix of real
traffic through it, then what was captured, read back from the embedded store."""

from __future__ import annotations

import base64
import http.client
import importlib.util
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import orjson
from rich.console import Console
from rich.progress import Progress

from apimon.cli import output
from apimon.serverproc import ServerProcess, free_port, gunicorn_command
from apimon.store import Store
from apimon.summary import summarize

_JWT = "eyJhbGciOiJIUzI1NiJ9." + base64.urlsafe_b64encode(b'{"sub":"user-42"}').decode().rstrip("=") + ".c2ln"
_BASIC = "Basic " + base64.b64encode(b"alice:wonderland").decode()
_BOUNDARY = "apimondemo"
_MULTIPART = (
    (
        f'--{_BOUNDARY}\r\nContent-Disposition: form-data; name="title"\r\n\r\nholiday\r\n'
        f'--{_BOUNDARY}\r\nContent-Disposition: form-data; name="photo"; filename="beach.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    + bytes(range(256)) * 8
    + f"\r\n--{_BOUNDARY}--\r\n".encode()
)

Request = tuple[str, str, bytes | None, dict[str, str]]


def _traffic() -> Iterator[Request]:
    json_h = {"Content-Type": "application/json"}
    yield "POST", "/items", b'{"name": "apple", "price": 3}', {**json_h, "Authorization": f"Bearer {_JWT}"}
    yield "GET", "/items/1", None, {"Authorization": _BASIC}
    yield "PUT", "/items/1", b'{"price": 4}', {**json_h, "Authorization": f"Bearer {_JWT}"}
    yield "GET", "/items", None, {"X-Forwarded-For": "203.0.113.7, 10.0.0.2"}
    yield "POST", "/login", b'{"user": "alice", "password": "hunter2"}', json_h
    yield "POST", "/form", b"name=alice&password=hunter2", {"Content-Type": "application/x-www-form-urlencoded"}
    yield "POST", "/upload", _MULTIPART, {"Content-Type": f"multipart/form-data; boundary={_BOUNDARY}"}
    yield "GET", "/download", None, {}
    yield "GET", "/gzip", None, {"Accept-Encoding": "gzip"}
    yield "GET", "/stream?parts=3&delay=0.02", None, {}
    yield "GET", "/events", None, {"Accept": "text/event-stream"}
    yield "GET", "/cookies", None, {}
    yield "GET", "/me", None, {"Authorization": f"Bearer {_JWT}"}
    yield "GET", "/me", None, {}
    yield "GET", "/items/999", None, {}
    yield "GET", "/boom", None, {}
    yield "DELETE", "/items/1", None, {}
    yield "HEAD", "/ping", None, {}


def find_sample_apps() -> Path | None:
    """The repository folder holding ``sample_apps/`` (the demo runs from a checkout)."""
    candidates = [Path(__file__).resolve().parents[2], Path.cwd()]
    for root in candidates:
        if (root / "sample_apps" / "flask_app" / "app.py").is_file():
            return root
    return None


def run_demo(requests: int = 60, keep: str | None = None) -> int:
    console = Console(highlight=False)
    root = find_sample_apps()
    if root is None:
        console.print("apimon demo runs from a checkout of apimon: no sample_apps/ found here.")
        return 1
    missing = [m for m in ("flask", "gunicorn") if importlib.util.find_spec(m) is None]
    if missing:
        console.print(f"apimon demo needs {', '.join(missing)}: pip install 'apimon[flask]' gunicorn")
        return 1
    workdir = keep or tempfile.mkdtemp(prefix="apimon-demo-")
    os.makedirs(workdir, exist_ok=True)
    store_path = os.path.join(workdir, "demo.db")
    port = free_port()
    env = {"APIMON_STORE": store_path, "PYTHONPATH": str(root)}
    console.print(
        f"[bold]apimon demo[/]: the sample Flask app under gunicorn at http://127.0.0.1:{port}, "
        f"calls stored in {store_path}"
    )
    server = ServerProcess(
        gunicorn_command("sample_apps.flask_app.app:app", port),
        port,
        env=env,
        cwd=str(root),
        log_path=os.path.join(workdir, "server.log"),
    )
    sent = 0
    statuses: dict[int, int] = {}
    try:
        server.start()
        scenario = list(_traffic())
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("driving traffic", total=requests)
            for i in range(requests):
                method, path, body, headers = scenario[i % len(scenario)]
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                sent += 1
                progress.advance(task)
        conn.close()
    finally:
        # SIGTERM: gunicorn's worker exits cleanly and apimon's exit flush writes what is queued.
        server.stop()
    console.print(f"sent {sent} requests; the app answered {dict(sorted(statuses.items()))}")
    store = Store(store_path, readonly=True)
    output.print_calls(store.recent(limit=20), as_json=False)
    output.print_stats(summarize(store), as_json=False)
    errors = store.recent(limit=1, status_class=5)
    if errors:
        console.print("\n[bold]One call in full[/] (`apimon show ID --store ...`):")
        output.print_call(errors[0], as_json=False)
    stored = store.count()
    expected = sent + server.probes
    console.print(
        f"\n[bold]{stored} of {expected} calls captured[/] ({sent} driven, {server.probes} readiness"
        f" probe). Explore them:\n  apimon calls --store {store_path}\n  apimon stats --store {store_path}"
    )
    if stored != expected:
        sys.stderr.write(orjson.dumps({"expected": expected, "stored": stored}).decode() + "\n")
        return 1
    return 0
