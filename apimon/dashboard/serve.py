"""``apimon serve``: check the bind address and the token, then run the dashboard under uvicorn.

Usage (what the CLI does)::

    check_bind("127.0.0.1", token=None, allow_remote=False)   # raises ServeError on an unsafe bind
    serve("apimon.db", "127.0.0.1", 8765, token=None)
"""

from __future__ import annotations

import ipaddress
import os
import sqlite3
import sys


class ServeError(Exception):
    """The dashboard cannot start as asked; the message says why and what to pass instead."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None, allow_remote: bool) -> None:
    """Captured traffic may hold personal data: off loopback, the dashboard needs both an explicit
    ``--allow-remote`` and an access token."""
    if is_loopback(host):
        return
    if not allow_remote:
        raise ServeError(
            f"refusing to bind to {host}: the dashboard shows captured traffic; bind to 127.0.0.1, or pass"
            " --allow-remote with --token (or $APIMON_UI_TOKEN)"
        )
    if not token or len(token) < 16:
        raise ServeError(
            f"binding to {host} needs an access token of at least 16 characters (--token or $APIMON_UI_TOKEN)"
        )


def check_store(path: str) -> None:
    if not os.path.exists(path):
        raise ServeError(f"no apimon store at {path} (run your app with apimon, or `apimon demo --keep DIR`)")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            conn.execute("SELECT id FROM calls LIMIT 1").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise ServeError(f"{path} is not an apimon store: {exc}") from exc


def serve(store: str, host: str, port: int, token: str | None = None, allow_remote: bool = False) -> int:
    check_bind(host, token, allow_remote)
    check_store(store)
    try:
        import uvicorn

        from apimon.dashboard.app import create_app
    except ImportError as exc:
        raise ServeError(f"apimon serve needs the ui extra: pip install 'apimon[ui]' ({exc})") from exc
    app = create_app(os.path.abspath(store), token=token, loopback=is_loopback(host))
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    print(f"apimon dashboard for {store} at {url}  (Ctrl-C to stop)", file=sys.stderr, flush=True)
    # Open event streams would hold a graceful shutdown forever; give them two seconds.
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2, proxy_headers=False
    )
    uvicorn.Server(config).run()
    return 0
