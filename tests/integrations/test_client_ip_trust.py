"""A deployment that says which proxy it trusts gets a client IP no forged header can move, under
gunicorn and uvicorn: an IP rule blocks the real client whatever else it sends, and the event
carries the same address the rule saw."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apimon.serverproc import ServerProcess, free_port
from apimon.testing import FakeMoesif
from tests.conftest import REPO
from tests.httpcheck import Reply, exchange
from tests.integrations.test_governance import wait_for
from tests.integrations.test_scenarios import FRAMEWORKS, Framework

BLOCKED = "203.0.113.9"
RULES = [
    {
        "_id": "banned-ip",
        "type": "regex",
        "block": True,
        "regex_config": [{"conditions": [{"path": "request.ip_address", "value": r"^203\.0\.113\.9$"}]}],
        "response": {"status": 403, "body": {"error": "banned"}},
    },
    {
        "_id": "ready",
        "type": "regex",
        "regex_config": [{"conditions": [{"path": "request.route", "value": "^/ping$"}]}],
        "response": {"headers": {"X-Rules": "in"}},
    },
]
# The forged headers a client sends around the address that is really its own.
CDN_SPOOF = [("Fastly-Client-IP", BLOCKED), ("CF-Connecting-IP", "8.8.8.8")]
XFF_SPOOF = [("X-Forwarded-For", f"8.8.8.8, {BLOCKED}")]  # "8.8.8.8" forged, the rest by the proxy
TRUST: dict[str, dict[str, str]] = {
    "default": {},
    "fastly-header": {"APIMON_CLIENT_IP_HEADER": "Fastly-Client-IP"},
    "one-hop": {"APIMON_TRUSTED_PROXIES": "1"},
    "loopback-cidr": {"APIMON_TRUSTED_PROXIES": "127.0.0.0/8, ::1"},
}
SERVERS = [fw for fw in FRAMEWORKS if fw.name in ("flask", "starlette")]


class Deployed:
    def __init__(self, fw: Framework, trust: str, moesif: FakeMoesif, tmp: Path) -> None:
        self.trust = trust
        env = {
            "PYTHONPATH": str(REPO),
            "APIMON_MOESIF_APPLICATION_ID": moesif.application_id,
            "APIMON_MOESIF_BASE_URL": moesif.url,
            "APIMON_STORE": "off",
            **TRUST[trust],
        }
        self.port = free_port()
        self.server = ServerProcess(
            fw.command(self.port), self.port, env=env, cwd=str(REPO), log_path=str(tmp / "s.log")
        )
        self.moesif = moesif

    def get(self, headers: list[tuple[str, str]]) -> Reply:
        return exchange(self.port, "GET", "/ping", None, headers)

    def event_ip(self, reply: Reply) -> Any:
        found = wait_for(
            lambda: [e for e in self.moesif.events if e["request"]["headers"].get("X-Test-Id") == reply.test_id]
        )
        assert found, "no event"
        return found[0]["request"].get("ip_address")


@pytest.fixture(scope="module")
def moesif() -> Iterator[FakeMoesif]:
    with FakeMoesif() as fake:
        fake.rules = RULES
        yield fake  # type: ignore[misc]


@pytest.fixture(
    scope="module",
    params=[(fw, trust) for fw in SERVERS for trust in TRUST],
    ids=[f"{fw.name}-{trust}" for fw in SERVERS for trust in TRUST],
)
def deployed(
    request: pytest.FixtureRequest, moesif: FakeMoesif, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployed]:
    fw, trust = request.param
    for module in fw.requires:
        pytest.importorskip(module)
    app = Deployed(fw, trust, moesif, tmp_path_factory.mktemp(trust))
    with app.server:
        assert wait_for(lambda: any(k.lower() == "x-rules" for k, _ in app.get([]).headers)), "no rules"
        yield app


def test_a_forged_header_cannot_hide_a_blocked_client(deployed: Deployed) -> None:
    cdn, xff = deployed.get(CDN_SPOOF), deployed.get(XFF_SPOOF)
    if deployed.trust == "default":
        # The order apimon reads without trust configured: a forged CDN header wins over the real
        # one, the left of X-Forwarded-For over the proxy's entry. What the options are for.
        assert (cdn.status, xff.status) == (200, 200)
        assert deployed.event_ip(cdn) == deployed.event_ip(xff) == "8.8.8.8"
    elif deployed.trust == "fastly-header":
        assert cdn.status == 403 and cdn.body == b'{"error":"banned"}'
        assert xff.status == 200 and deployed.event_ip(xff) == "127.0.0.1"  # no Fastly header: the peer
    else:
        assert xff.status == 403 and xff.body == b'{"error":"banned"}'
        # The CDN headers are not believed: X-Forwarded-For (absent) leaves the peer.
        assert cdn.status == 200 and deployed.event_ip(cdn) == "127.0.0.1"


def test_the_event_has_the_address_the_rule_saw(deployed: Deployed) -> None:
    reply = deployed.get([("X-Forwarded-For", "10.9.9.9, 198.51.100.7"), ("Fastly-Client-IP", "192.0.2.44")])
    assert reply.status == 200
    expected = {"default": "192.0.2.44", "fastly-header": "192.0.2.44"}  # the CDN header first by default
    assert deployed.event_ip(reply) == expected.get(deployed.trust, "198.51.100.7")
