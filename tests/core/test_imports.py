from __future__ import annotations

import subprocess
import sys


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
