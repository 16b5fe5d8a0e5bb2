"""The compat apps under their real servers, shipping to the fake Moesif over loopback."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from apimon.serverproc import ServerProcess, free_port, gunicorn_command, uvicorn_command
from apimon.testing import FakeMoesif

REPO = Path(__file__).resolve().parents[2]

#: What every compat app's profile route is sent, field for field as Moesif's models take them.
USER = {
    "user_id": "12345",
    "company_id": "67890",
    "modified_time": "2026-12-07T10:00:00.000Z",
    "ip_address": "29.80.250.240",
    "session_token": "di3hd982h3fubv3yfd94egf",
    "user_agent_string": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
    "campaign": {
        "utm_source": "google",
        "utm_medium": "cpc",
        "utm_campaign": "adwords",
        "referrer": "https://x.example",
    },
    "metadata": {"email": "john@acmeinc.com", "first_name": "John", "custom": {"plan": "pro"}},
}
COMPANY = {
    "company_id": "67890",
    "company_domain": "acmeinc.com",
    "modified_time": "2026-12-07T10:00:00.000Z",
    "campaign": {"utm_source": "linkedin", "gclid": "abc"},
    "metadata": {"org_name": "Acme, Inc", "plan_name": "Free"},
}


def server(kind: str, target: str, tmp: Path, moesif: FakeMoesif, env: dict[str, str] | None = None) -> ServerProcess:
    port = free_port()
    command = gunicorn_command(target, port) if kind == "gunicorn" else uvicorn_command(target, port)
    full_env = {
        "PYTHONPATH": str(REPO),
        "MOESIF_APPLICATION_ID": moesif.application_id,
        "MOESIF_BASE_URI": moesif.url,
        **(env or {}),
    }
    return ServerProcess(command, port, env=full_env, cwd=str(REPO), log_path=str(tmp / f"{port}.log"), stop_timeout=20)


def events_by_test_id(moesif: FakeMoesif) -> dict[str, dict[str, Any]]:
    out = {}
    for event in moesif.events:
        headers = {k.lower(): v for k, v in event["request"]["headers"].items()}
        if "x-test-id" in headers:
            out[headers["x-test-id"]] = event
    return out


def wait_for(moesif: FakeMoesif, what: str, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(getattr(moesif, what)) < count:
        time.sleep(0.05)


def header(event_part: dict[str, Any], name: str) -> Any:
    """A header of an event's request or response, by any case of its name."""
    for key, value in event_part.get("headers", {}).items():
        if key.lower() == name.lower():
            return value
    return None
