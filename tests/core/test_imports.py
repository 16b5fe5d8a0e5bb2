from __future__ import annotations

import importlib
import subprocess
import sys

import pytest


def test_core_imports_no_framework() -> None:
    code = (
        "import sys, apimon, apimon.event, apimon.client, apimon.store, apimon.cli, apimon.integrations.wsgi\n"
        "libs = ('flask', 'django', 'starlette', 'fastapi', 'werkzeug', 'httpx', 'requests', 'aiohttp')\n"
        "bad = [m for m in libs if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == ""


def test_integrations_is_only_importable_under_apimon(tmp_path: object) -> None:
    import apimon.integrations

    assert apimon.integrations.__name__ == "apimon.integrations"


def test_compat_is_only_importable_under_apimon() -> None:
    import apimon.compat

    assert apimon.compat.__name__ == "apimon.compat"
    with pytest.raises(ImportError, match="apimon.compat"):
        importlib.import_module("compat")


def test_every_package_is_in_the_wheel() -> None:
    """pyproject lists the packages by hand: one left out is missing from the wheel while the
    editable install (the tree itself) still imports it (apimon.governance was, in 0.4.0).
    Against the source tree this compares the list with the tree; against an installed wheel
    (tox's wheel env), with what the wheel installed."""
    import tomllib
    from pathlib import Path

    import apimon.compat
    import apimon.integrations

    import apimon

    root = Path(__file__).resolve().parents[2]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found: set[str] = set()
    packages = (("apimon", apimon), ("apimon.integrations", apimon.integrations), ("apimon.compat", apimon.compat))
    for name, package in packages:
        base = Path(package.__file__).parent
        found |= {".".join((name, *init.parent.relative_to(base).parts)) for init in base.rglob("__init__.py")}
    assert listed == found
