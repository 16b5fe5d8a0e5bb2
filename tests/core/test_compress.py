"""The collectors' gzip: whatever the backend, standard gzip reads it back byte for byte."""

from __future__ import annotations

import gzip
import os

import orjson
import pytest

from apimon import compress

BODIES = [
    b"",
    b"[]",
    orjson.dumps([{"pad": "x" * 2038, "i": i} for i in range(100)]),
    os.urandom(300_000),  # incompressible: must still round-trip
]


@pytest.mark.parametrize("body", BODIES, ids=["empty", "tiny", "json", "random"])
def test_gzip_round_trips_with_the_standard_library(body: bytes) -> None:
    out = compress.gzip_compress(body)
    assert out[:2] == b"\x1f\x8b"  # a gzip member, as Content-Encoding: gzip says
    assert gzip.decompress(out) == body
    assert compress.gzip_compress(body) == out  # no timestamp: equal input, equal bytes


@pytest.mark.parametrize("body", BODIES, ids=["empty", "tiny", "json", "random"])
def test_the_zlib_fallback_round_trips_too(body: bytes) -> None:
    assert gzip.decompress(compress._zlib(body)) == body


def test_isal_is_used_where_it_installs() -> None:
    try:
        import isal  # noqa: F401
    except ImportError:
        assert compress.BACKEND == "zlib"
    else:
        assert compress.BACKEND == "isal"
