"""Hostile input through real servers: random bytes under every content type, huge and malformed
headers, invalid and deeply nested JSON, compression bombs, very long URLs, null bytes, bad
X-Forwarded-For. The app sees the same request, the server never crashes, every event is valid
(the strict fake collector rejects nothing), memory stays bounded."""

from __future__ import annotations

import gzip
import random
import socket
from pathlib import Path

import pytest

from apimon.testing import FakeMoesif
from tests.reliability.harness import flask_server, record, rss_mb, stats, wait_for

pytestmark = pytest.mark.slow

CONTENT_TYPES = [
    "application/json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/octet-stream",
    "application/xml",
    "image/png",
    "",
    "text/html; charset=utf-8",
    "application/problem+json",
    "multipart/form-data",
]


def raw_request(port: int, data: bytes) -> bytes:
    """Send bytes as they are; return the whole answer (the server closes the connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status_and_body(answer: bytes) -> tuple[bytes, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0], body


def case(rng: random.Random, i: int) -> bytes:
    kind = i % 8
    ctype = rng.choice(CONTENT_TYPES)
    body = rng.randbytes(rng.randint(0, 4000))
    headers = [b"Host: fuzz", b"Connection: close"]
    path = b"/echo"
    if kind == 1:  # invalid or deeply nested JSON
        body = rng.choice([b"[" * 5000 + b"]" * 5000, b'{"a": ' * 3000, b'{"x": 1,,}', b"\xff\xfe{}"])
        ctype = "application/json"
    elif kind == 2:  # a compression bomb as the request body
        body = gzip.compress(b"\0" * rng.choice([1_000_000, 20_000_000]))
        headers.append(b"Content-Encoding: gzip")
    elif kind == 3:  # a huge header and many headers
        headers += [b"X-Big: " + b"a" * 7000] + [f"X-N{j}: {j}".encode() for j in range(90)]
    elif kind == 4:  # a very long URL, null bytes and odd bytes in the query
        path = b"/echo?" + b"q=" + b"%00" * 1000 + bytes(rng.randrange(33, 127) for _ in range(3000)).replace(b" ", b"")
    elif kind == 5:  # bad X-Forwarded-For and Forwarded
        headers += [
            b"X-Forwarded-For: " + rng.choice([b"999.1.1.1, <script>", b"::::, , ,", b"1.2.3.4:99999"]),
            b'Forwarded: for="[zz::1]";by=' + rng.randbytes(8).hex().encode(),
        ]
    elif kind == 6:  # malformed header line (servers answer 400; apimon must not care)
        headers.append(b"Bad Header Without Colon")
    elif kind == 7:  # null bytes in a header value
        headers.append(b"X-Null: a\x00b")
    if ctype:
        headers.append(b"Content-Type: " + ctype.encode())
    headers.append(f"Content-Length: {len(body)}".encode())
    return b"POST " + path + b" HTTP/1.1\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + body


def test_fuzz_through_gunicorn(tmp_path: Path) -> None:
    rng = random.Random(20261125)
    cases = [case(rng, i) for i in range(400)]
    with FakeMoesif() as fake:
        monitored = flask_server(tmp_path, "fuzz", moesif=fake)
        bare = flask_server(tmp_path, "fuzz-bare", env={"APIMON_SAMPLE_BARE": "1"})
        with monitored, bare:
            for data in cases:
                got = status_and_body(raw_request(monitored.port, data))
                want = status_and_body(raw_request(bare.port, data))
                assert got == want  # the app and the client saw exactly what they see without apimon
                assert monitored.proc is not None and monitored.proc.poll() is None
            assert wait_for(lambda: stats(monitored.port)["queued"] == 0, timeout=30)
            final = stats(monitored.port)
            rss = rss_mb(monitored.proc.pid)  # type: ignore[union-attr]
        assert fake.rejections == []  # every event shipped was valid against Moesif's API reference
        assert final["sent"] == len(fake.events) and final["failed"] == 0
        assert final["internal_errors"] == 0 and final["dropped_error"] == 0
        assert rss < 150
        record(
            "hostile input through gunicorn",
            inputs=len(cases),
            server_crashes=0,
            responses_changed=0,
            events_rejected_by_collector=len(fake.rejections),
            rss_mb=round(rss, 1),
            captured=final["captured"],
            delivered=final["sent"],
        )
