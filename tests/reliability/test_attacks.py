"""Attacks on apimon's own caches and request-path work, through real servers: request data
that is new on every call (long proxy headers, Host, Content-Type, header names) leaves a
worker's memory flat, since no cache keeps a long value."""

from __future__ import annotations

import http.client
import random
from pathlib import Path

import pytest

from apimon.serverproc import ServerProcess, free_port
from apimon.testing import FakeMoesif
from tests.conftest import REPO
from tests.integrations.test_scenarios import FRAMEWORKS
from tests.reliability.harness import record, rss_mb, wait_for

pytestmark = pytest.mark.slow

CALLS = 3_000


def hostile_headers(rng: random.Random) -> list[tuple[str, str]]:
    """About 13 KB of headers, all new: each cache keyed on request data sees a new key."""

    def noise(n: int) -> str:
        return rng.randbytes(n // 2).hex()

    tokens = ", ".join(noise(100) for _ in range(60))  # proxy tokens, none an address
    return [
        ("Host", ".".join(noise(50) for _ in range(6)) + ".example"),
        ("X-Forwarded-For", f"{tokens}, 203.0.113.{rng.randrange(256)}"),
        ("Forwarded", ";".join(f"for={noise(60)}" for _ in range(60))),
        ("Content-Type", f"application/json; x={noise(1500)}"),
        (f"X-{noise(1000)}", "1"),
    ]


def send_all(port: int, rng: random.Random, n: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    ok = 0
    try:
        for _ in range(n):
            conn.putrequest("POST", "/echo", skip_host=True, skip_accept_encoding=True)
            for name, value in hostile_headers(rng):
                conn.putheader(name, value)
            conn.putheader("Content-Length", "8")
            conn.endheaders(b'{"n": 1}')
            response = conn.getresponse()
            ok += response.read() == b'{"n": 1}' and response.status == 200
    finally:
        conn.close()
    return ok


@pytest.mark.parametrize("fw", [f for f in FRAMEWORKS if f.name in ("flask", "starlette")], ids=lambda f: f.name)
def test_new_long_request_values_leave_memory_flat(fw: object, tmp_path: Path) -> None:
    from tests.integrations.test_scenarios import Framework

    assert isinstance(fw, Framework)
    for module in fw.requires:
        pytest.importorskip(module)
    rng = random.Random(7)
    with FakeMoesif() as moesif:
        port = free_port()
        env = {
            "PYTHONPATH": str(REPO),
            "APIMON_MOESIF_APPLICATION_ID": moesif.application_id,
            "APIMON_MOESIF_BASE_URL": moesif.url,
            "APIMON_STORE": "off",
        }
        server = ServerProcess(fw.command(port), port, env=env, cwd=str(REPO), log_path=str(tmp_path / "s.log"))
        with server:
            assert server.proc is not None
            assert send_all(port, rng, 300) == 300
            assert wait_for(lambda: len(moesif.events) >= 300, timeout=30)
            before = rss_mb(server.proc.pid)
            assert send_all(port, rng, CALLS) == CALLS  # every answer the app's own
            assert wait_for(lambda: len(moesif.events) >= 300 + CALLS, timeout=60)
            grown = rss_mb(server.proc.pid) - before
        assert moesif.rejections == []
        # With caches keyed on whole values this grew by ~35 MB (RELIABILITY.md).
        assert grown < 12, f"+{grown:.0f} MB after {CALLS} calls with new long header values"
        record(f"cache memory under new long header values ({fw.name})", calls=CALLS, rss_growth_mb=round(grown, 1))
