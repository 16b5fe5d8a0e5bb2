"""The compiled speedups (``apimon/_speedups.c``): loaded when built, unless told not to.

The pure-Python functions stay the reference and the fallback (as in MarkupSafe and msgpack):
each module that has a compiled twin binds it at import when :func:`speedups` gives one, and
``APIMON_PURE_PYTHON=1`` in the environment forces the Python code. ``apimon.native.ACTIVE``
says which is in use (BENCHMARKS.md's header names it).
"""

from __future__ import annotations

import os
from types import ModuleType


def pure_forced() -> bool:
    """``APIMON_PURE_PYTHON`` is set (to anything but ``0``): the Python code runs."""
    return os.environ.get("APIMON_PURE_PYTHON", "").strip() not in ("", "0")


def speedups() -> ModuleType | None:
    """The compiled module, or None when it is not built or ``APIMON_PURE_PYTHON`` is set."""
    if pure_forced():
        return None
    try:
        from apimon import _speedups  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return None
    module: ModuleType = _speedups
    return module


ACTIVE = speedups() is not None
