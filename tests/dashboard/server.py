"""``apimon serve`` as a child process on 127.0.0.1, stopped by PID."""

from __future__ import annotations

import os
import shutil
import sys

from apimon.serverproc import ServerProcess, free_port

APIMON = shutil.which("apimon", path=os.path.dirname(sys.executable)) or shutil.which("apimon")


def dashboard(db: str, *extra: str, log_path: str | None = None) -> ServerProcess:
    assert APIMON, "the apimon console script is not installed"
    port = free_port()
    command = [APIMON, "serve", "--store", db, "--port", str(port), *extra]
    return ServerProcess(command, port, ready_path="/static/app.css", log_path=log_path)
