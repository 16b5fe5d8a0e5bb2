"""Run a web server (gunicorn, uvicorn) as a child process on 127.0.0.1, for the demo, the tests
and the benchmarks. Usage::

    with ServerProcess(["gunicorn", "app:app"], env={...}) as server:
        urllib.request.urlopen(server.url + "/ping")

The server is started in its own process group and stopped by PID: SIGTERM, then SIGKILL after
``stop_timeout``, so nothing is left running.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from types import TracebackType


def free_port() -> int:
    """An unused TCP port on 127.0.0.1 (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def gunicorn_command(target: str, port: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "--graceful-timeout",
        "5",
        "--log-level",
        "warning",
        *extra,
        target,
    ]


def uvicorn_command(target: str, port: int, *extra: str) -> list[str]:
    # --no-proxy-headers: uvicorn would otherwise replace the peer address with X-Forwarded-For
    # (garbage included) before apimon sees it; apimon applies its own proxy rules (docs/events.md#client-ip).
    head = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port)]
    return [*head, "--log-level", "warning", "--no-proxy-headers", *extra, target]


class ServerProcess:
    """A server child process listening on ``127.0.0.1:port``; ``url`` is its base URL."""

    def __init__(
        self,
        command: Sequence[str],
        port: int,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        ready_path: str = "/ping",
        start_timeout: float = 20.0,
        stop_timeout: float = 10.0,
        log_path: str | None = None,
    ) -> None:
        self.command = list(command)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.ready_path = ready_path
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        # Requests the readiness probe got answered (they reach the app like any other).
        self.probes = 0
        self._log: object = None

    def start(self) -> ServerProcess:
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._log = log
        self.proc = subprocess.Popen(
            self.command,
            env=self.env,
            cwd=self.cwd,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode} before it was ready: {self.command}")
            if self._ready(max(1.0, deadline - time.monotonic())):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server not ready within {self.start_timeout}s: {self.command}")

    def _ready(self, wait: float) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1.0)
        try:
            conn.connect()
        except OSError:
            conn.close()
            return False  # not listening yet
        try:
            # Listening: the probe is now in the server's hands (a master may accept before its
            # workers run the app), so its answer is waited for, not abandoned: a probe given up
            # on and served later would be a call the tests do not count.
            if conn.sock is not None:
                conn.sock.settimeout(wait)
            conn.request("GET", self.ready_path)
            conn.getresponse().read()
            self.probes += 1
            return True
        except OSError:
            return False
        finally:
            conn.close()

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Stop the server by PID (its whole process group), waiting at most ``stop_timeout``."""
        proc = self.proc
        if proc is None:
            return self.returncode
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        # Workers of a killed master may linger in the group; make sure none survive.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        self.returncode = proc.returncode
        if hasattr(self._log, "close"):
            self._log.close()
        self.proc = None
        return self.returncode

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
