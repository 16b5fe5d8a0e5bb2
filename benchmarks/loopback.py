"""Loopback benchmark: a real server (gunicorn sync, 1 worker; uvicorn, 1 worker) pinned to CPU 0,
wrk pinned to CPU 1, the collector beside wrk. Requests/s, latency, server CPU per 10,000
requests (the flusher's cost shows here), peak resident memory, events delivered."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from apimon.serverproc import ServerProcess, free_port, gunicorn_command, uvicorn_command

REPO = Path(__file__).resolve().parents[1]
WRK = shutil.which("wrk")
# Variants that ship nothing to the collector (see benchmarks.apps).
NOT_SHIPPED = ("bare", "apimon-path", "apimon-build")
ECHO_LUA = """wrk.method = "POST"
wrk.body = '{"pad": "' .. string.rep("x", 2038) .. '"}'
wrk.headers["Content-Type"] = "application/json"
"""


def _proc_tree(pid: int) -> list[int]:
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        for child in children.read_text().split():
            pids += _proc_tree(int(child))
    return pids


def _ticks(stat: Path) -> int:
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime
    except (FileNotFoundError, IndexError):
        return 0


def cpu_seconds(pid: int) -> float:
    """CPU seconds of the server's processes, all their threads (finished ones too)."""
    return sum(_ticks(Path(f"/proc/{p}/stat")) for p in _proc_tree(pid)) / os.sysconf("SC_CLK_TCK")


def main_thread_cpu_seconds(pid: int) -> float:
    """CPU seconds of the processes' main threads alone: the threads that serve requests under
    gunicorn's sync worker and uvicorn. The rest of :func:`cpu_seconds` is background threads
    (apimon's flusher and sender, Moesif's workers)."""
    return sum(_ticks(Path(f"/proc/{p}/task/{p}/stat")) for p in _proc_tree(pid)) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    best = 0
    for p in _proc_tree(pid)[1:] or [pid]:  # the worker, not the master
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    best = max(best, int(line.split()[1]))
        except FileNotFoundError:
            continue
    return best / 1024


def wrk(port: int, path: str, seconds: int, connections: int = 8) -> dict[str, float]:
    assert WRK, "wrk is not installed (./dev bench installs it)"
    args = ["taskset", "-c", "1", WRK, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(ECHO_LUA)
    if path == "/echo":
        args += ["-s", script.name]
    out = subprocess.run([*args, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True).stdout
    os.unlink(script.name)

    def latency(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
        return float(m.group(1)) * scale

    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests": requests,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "non2xx": int(errors.group(1)) if errors else 0,
    }


def server_for(framework: str, variant: str, port: int, collector: str) -> ServerProcess:
    env = {
        "PYTHONPATH": str(REPO),
        "BENCH_FRAMEWORK": framework,
        "BENCH_VARIANT": variant,
        "BENCH_COLLECTOR": collector,
    }
    if framework == "starlette":
        command = uvicorn_command("benchmarks.apps:app", port)
    else:
        command = gunicorn_command("benchmarks.apps:app", port, "--worker-class", "sync")
    return ServerProcess(
        ["taskset", "-c", "0", *command],
        port,
        env=env,
        cwd=str(REPO),
        ready_path="/ping",
        log_path=str(Path(tempfile.gettempdir()) / f"bench-{framework}-{variant}.log"),
    )


def run(framework: str, variant: str, endpoints: list[str], seconds: int, collector: Any) -> dict[str, Any]:
    port = free_port()
    server = server_for(framework, variant, port, collector.url)
    results: dict[str, Any] = {}
    before_events = collector.count()
    with server:
        pid = server.proc.pid  # type: ignore[union-attr]
        served = int(wrk(port, "/ping", 2)["requests"])  # warm-up
        for endpoint in endpoints:
            cpu0, main0 = cpu_seconds(pid), main_thread_cpu_seconds(pid)
            r = wrk(port, endpoint, seconds)
            cpu, main = cpu_seconds(pid) - cpu0, main_thread_cpu_seconds(pid) - main0
            r["cpu_s_per_10k"] = cpu / r["requests"] * 10_000
            r["main_us"] = main / r["requests"] * 1e6
            r["background_us"] = max(0.0, cpu - main) / r["requests"] * 1e6
            results[endpoint] = r
            served += r["requests"]
        results["rss_mb"] = peak_rss_mb(pid)
        results["served"] = served
    # The server stopped with SIGTERM: its exit flush shipped what was queued.
    time.sleep(1.0)
    # apimon delivers everything within seconds; Moesif's own middlewares lose events, so waiting
    # longer for them only stretches the run.
    deadline = time.monotonic() + (30 if variant.startswith("apimon") else 15)
    delivered = collector.count() - before_events
    while variant not in NOT_SHIPPED and delivered < served and time.monotonic() < deadline:
        time.sleep(1.0)
        delivered = collector.count() - before_events
    results["delivered"] = delivered
    return results


if __name__ == "__main__":
    print(sys.argv)
