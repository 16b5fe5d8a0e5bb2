"""Gzip for request bodies sent to the collectors.

Intel's ISA-L (the ``isal`` package, a wheel on x86_64 and aarch64) writes the same gzip format
about ten times faster than zlib's fastest level on repetitive JSON, at an equal or better ratio
(``echo x100``, 461 KB: 0.07 ms against 0.69 ms; 100 varied small events, 50 KB: 0.025 ms against
0.058 ms). The flusher shares the host's core, so this is CPU the app gets back. Where ``isal``
cannot be imported, zlib's level 1 is used: the bytes differ, the format does not.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

_GZIP_WBITS = 31  # a gzip header and trailer, mtime 0 (so equal input gives equal bytes)


def _zlib(data: bytes) -> bytes:
    return zlib.compress(data, 1, wbits=_GZIP_WBITS)


def _pick() -> tuple[str, Callable[[bytes], bytes]]:
    try:
        from isal import isal_zlib
    except ImportError:
        return "zlib", _zlib

    def _isal(data: bytes) -> bytes:
        return isal_zlib.compress(data, 1, wbits=_GZIP_WBITS)

    return "isal", _isal


#: Which implementation is in use: ``"isal"`` or ``"zlib"``.
BACKEND, gzip_compress = _pick()
