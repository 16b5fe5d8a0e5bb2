"""The ``apimon`` command line."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    from apimon.cli.main import run

    return run(argv)
