"""Moesif's governance rules through every adapter under its real server (gunicorn for Flask and
Django-WSGI, uvicorn for Starlette, FastAPI and Django-ASGI), the rules served by FakeMoesif:
a blocking rule answers for the app (which never runs), a non-blocking one adds headers, user
and company rules fill in their cohort's template values, a JSON body field can be a condition,
and a change of rules is picked up when Moesif's config ETag moves."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from apimon.serverproc import ServerProcess, free_port
from apimon.testing import FakeMoesif
from tests.conftest import REPO
from tests.httpcheck import Reply, exchange
from tests.integrations.test_scenarios import FRAMEWORKS, Framework


def _rule(rid: str, conditions: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    return {"_id": rid, "type": "regex", "regex_config": [{"conditions": conditions}], **extra}


RULES: list[dict[str, Any]] = [
    _rule(
        "no-new-items",
        [{"path": "request.verb", "value": "^POST$"}, {"path": "request.route", "value": "^/items$"}],
        block=True,
        response={"status": 403, "headers": {"X-Blocked": "no-new-items"}, "body": {"error": "items are closed"}},
    ),
    _rule("tag-ping", [{"path": "request.route", "value": "^/ping$"}], response={"headers": {"X-Rule": "tagged"}}),
    _rule(
        "no-delete-all",
        [{"path": "request.body.action", "value": "^delete-all$"}],
        block=True,
        response={"status": 409, "body": {"error": "not all at once"}},
    ),
    {
        "_id": "free-plan",
        "type": "user",
        "block": True,
        "applied_to": "matching",
        "regex_config": [{"conditions": [{"path": "request.route", "value": "^/me$"}]}],
        "variables": [{"name": "plan", "path": "body.plan"}],
        "response": {"status": 402, "headers": {"X-Plan": "{{plan}}"}, "body": {"error": "upgrade from {{plan}}"}},
    },
    {
        "_id": "gold-companies",
        "type": "company",
        "applied_to": "matching",
        "variables": [{"name": "tier", "path": "body.tier"}],
        "response": {"headers": {"X-Tier": "{{tier}}"}},
    },
]
# Patterns a backtracking engine takes seconds to minutes on with one hostile header value (each
# value below, for the pattern beside it); governance runs them on RE2, in linear time.
HOSTILE = {
    "redos-email": (r".*@.*\..*$", "@" * 4096),
    "redos-digits": (r".*\d+.*\d+.*x", "1" * 4096),
    "redos-words": (r"(\w+\s?)+$", "a" * 1000 + "!" * 3096),
}
RULES += [
    _rule(rid, [{"path": "request.headers.x-probe", "value": pattern}], response={"headers": {f"X-{rid}": "hit"}})
    for rid, (pattern, _) in HOSTILE.items()
]
# RE2 cannot run a backreference in linear time: the rule is skipped (and counted), never run.
RULES.append(
    _rule("backref", [{"path": "request.route", "value": r"^/(\w+)/\1$"}], block=True, response={"status": 500})
)
CONFIG = {
    "sample_rate": 100,
    "user_rules": {
        "u-free": [{"rules": "free-plan", "values": {"plan": "free"}}],
        "u-lukasz": [{"rules": "free-plan", "values": {"plan": "Łukasz 😀\x00\x0b\x7f"}}],
    },
    "company_rules": {
        "acme": [{"rules": "gold-companies", "values": {"tier": "gold"}}],
        "emoji-co": [{"rules": "gold-companies", "values": {"tier": "Ünïcode 😀\x00"}}],
    },
}


def _jwt(sub: str) -> str:
    payload = base64.urlsafe_b64encode(orjson.dumps({"sub": sub})).decode().rstrip("=")
    return f"Bearer eyJhbGciOiJub25lIn0.{payload}.x"


class Governed:
    """A framework's sample app with apimon shipping to ``moesif``, and the same app bare."""

    def __init__(self, fw: Framework, tmp: Path, moesif: FakeMoesif) -> None:
        self.fw = fw
        env = {
            "PYTHONPATH": str(REPO),
            "APIMON_MOESIF_APPLICATION_ID": moesif.application_id,
            "APIMON_MOESIF_BASE_URL": moesif.url,
            "APIMON_STORE": "off",
            "APIMON_SAMPLE_COMPANY_HEADER": "1",
        }
        port, bare_port = free_port(), free_port()
        log = str(tmp / f"{fw.name}.log")
        self.server = ServerProcess(fw.command(port), port, env=env, cwd=str(REPO), log_path=log)
        self.bare = ServerProcess(
            fw.command(bare_port), bare_port, env={**env, "APIMON_SAMPLE_BARE": "1"}, cwd=str(REPO), log_path=log
        )

    def get(self, path: str, headers: list[tuple[str, str]] | None = None) -> Reply:
        return exchange(self.server.port, "GET", path, None, headers)

    def post(self, path: str, body: Any) -> Reply:
        return exchange(self.server.port, "POST", path, orjson.dumps(body), [("Content-Type", "application/json")])


def header(reply: Reply, name: str) -> str | None:
    found = [v for k, v in reply.headers if k.lower() == name.lower()]
    return ",".join(found) if found else None


def wait_for(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


@pytest.fixture(scope="module")
def moesif() -> Iterator[FakeMoesif]:
    with FakeMoesif() as fake:
        fake.config, fake.rules = CONFIG, RULES
        yield fake  # type: ignore[misc]


@pytest.fixture(scope="module", params=FRAMEWORKS, ids=[f.name for f in FRAMEWORKS])
def app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, moesif: FakeMoesif
) -> Iterator[Governed]:
    fw: Framework = request.param
    for module in fw.requires:
        pytest.importorskip(module)
    governed = Governed(fw, tmp_path_factory.mktemp(fw.name), moesif)
    with governed.server, governed.bare:
        # The rules arrive in the background after start-up: wait until they are in force.
        assert wait_for(lambda: header(governed.get("/ping"), "X-Rule") == "tagged"), "the rules never arrived"
        yield governed


def event_for(moesif: FakeMoesif, test_id: str) -> dict[str, Any]:
    found = wait_for(lambda: [e for e in moesif.events if e["request"]["headers"].get("X-Test-Id") == test_id])
    assert found, f"no event for {test_id}"
    [event] = found
    return event


def test_a_blocked_call_never_reaches_the_app(app: Governed, moesif: FakeMoesif) -> None:
    blocked = app.post("/items", {"name": f"blocked-{app.fw.name}"})
    assert blocked.status == 403
    assert blocked.body == b'{"error":"items are closed"}'
    assert header(blocked, "X-Blocked") == "no-new-items"
    assert header(blocked, "Content-Type") == "application/json"
    assert header(blocked, "Content-Length") == str(len(blocked.body))
    listed = orjson.loads(app.get("/items").body)
    assert f"blocked-{app.fw.name}" not in str(listed)  # the app never created it
    event = event_for(moesif, blocked.test_id)
    assert event["blocked_by"] == "no-new-items"
    assert event["response"]["status"] == 403
    assert event["response"]["body"] == {"error": "items are closed"}
    assert event["response"]["headers"]["X-Blocked"] == "no-new-items"
    assert event["request"]["body"] == {"name": f"blocked-{app.fw.name}"}
    assert moesif.rejections == []


def test_a_rule_without_block_adds_its_headers_and_nothing_else(app: Governed, moesif: FakeMoesif) -> None:
    got = app.get("/ping")
    want = exchange(app.bare.port, "GET", "/ping")
    assert (got.status, got.body) == (want.status, want.body)
    assert header(got, "X-Rule") == "tagged" and header(want, "X-Rule") is None
    added = [(k.lower(), v) for k, v in got.stable_headers() if k.lower() != "x-rule"]
    assert added == want.stable_headers()
    event = event_for(moesif, got.test_id)
    assert event["response"]["headers"]["X-Rule"] == "tagged" and "blocked_by" not in event


def test_user_rules_fill_in_the_cohorts_values(app: Governed, moesif: FakeMoesif) -> None:
    free = app.get("/me", [("Authorization", _jwt("u-free"))])
    assert free.status == 402 and free.body == b'{"error":"upgrade from free"}'
    assert header(free, "X-Plan") == "free"
    paid = app.get("/me", [("Authorization", _jwt("u-paid"))])
    assert paid.status == 200 and paid.body == b'{"user":"u-paid"}'
    event = event_for(moesif, free.test_id)
    assert event["blocked_by"] == "free-plan" and event["user_id"] == "u-free"


def test_template_values_that_are_not_field_content_never_break_the_response(app: Governed, moesif: FakeMoesif) -> None:
    # Cohort values are user profile fields: a name in any script, or with control characters.
    blocked = app.get("/me", [("Authorization", _jwt("u-lukasz"))])
    assert blocked.status == 402
    assert orjson.loads(blocked.body) == {"error": "upgrade from Łukasz 😀\x00\x0b\x7f"}
    assert header(blocked, "X-Plan") == "%C5%81ukasz %F0%9F%98%80%00%0B%7F"
    tagged = app.get("/ping", [("X-Company", "emoji-co")])
    want = exchange(app.bare.port, "GET", "/ping")
    assert (tagged.status, tagged.body) == (want.status, want.body)
    assert header(tagged, "X-Tier") == "%C3%9Cn%C3%AFcode %F0%9F%98%80%00"
    assert event_for(moesif, tagged.test_id)["response"]["headers"]["X-Tier"] == "%C3%9Cn%C3%AFcode %F0%9F%98%80%00"


def test_company_rules_from_the_identify_company_hook(app: Governed, moesif: FakeMoesif) -> None:
    acme = app.get("/ping", [("X-Company", "acme")])
    other = app.get("/ping", [("X-Company", "globex")])
    assert header(acme, "X-Tier") == "gold" and header(other, "X-Tier") is None
    assert header(acme, "X-Rule") == header(other, "X-Rule") == "tagged"
    assert event_for(moesif, acme.test_id)["company_id"] == "acme"


def test_a_json_body_field_as_a_condition(app: Governed, moesif: FakeMoesif) -> None:
    blocked = app.post("/echo", {"action": "delete-all"})
    assert blocked.status == 409 and blocked.body == b'{"error":"not all at once"}'
    allowed = app.post("/echo", {"action": "read", "n": 1})
    # The app read the same body the rule did.
    assert allowed.status == 200 and orjson.loads(allowed.body) == {"action": "read", "n": 1}
    assert event_for(moesif, allowed.test_id)["request"]["body"] == {"action": "read", "n": 1}
    assert event_for(moesif, blocked.test_id)["blocked_by"] == "no-delete-all"


@pytest.mark.parametrize("rid", list(HOSTILE))
def test_a_hostile_header_against_a_backtracking_pattern_gets_the_apps_own_answer(app: Governed, rid: str) -> None:
    pattern, hostile = HOSTILE[rid]
    got = exchange(app.server.port, "GET", "/ping", None, [("X-Probe", hostile)])
    want = exchange(app.bare.port, "GET", "/ping", None, [("X-Probe", hostile)])
    assert (got.status, got.body) == (want.status, want.body) == (200, want.body)
    assert header(got, f"X-{rid}") is None
    # The rules still match what they should, past the hostile stretch too.
    matching = {"redos-email": "me@example.com", "redos-digits": "1 2 x", "redos-words": "hello world"}[rid]
    assert header(app.get("/ping", [("X-Probe", matching)]), f"X-{rid}") == "hit"


def test_a_pattern_re2_cannot_run_is_skipped_and_counted(app: Governed) -> None:
    got = app.get("/ping/ping")
    want = exchange(app.bare.port, "GET", "/ping/ping")
    assert got.status == want.status != 500
    if app.fw.name == "flask":  # the sample app with the stats endpoint
        stats = orjson.loads(app.get("/_apimon/stats").body)
        assert stats["rules_skipped"] >= 1 and stats["internal_errors"] == 0


def test_new_rules_are_picked_up_when_the_config_etag_moves(tmp_path: Path) -> None:
    # A Moesif of its own: the change must not leak into the other tests.
    fw = FRAMEWORKS[0]
    with FakeMoesif() as moesif:
        moesif.config, moesif.rules = CONFIG, RULES
        governed = Governed(fw, tmp_path, moesif)
        with governed.server:
            assert wait_for(lambda: header(governed.get("/ping"), "X-Rule") == "tagged")
            moesif.change_config(
                rules=[
                    _rule(
                        "tag-ping-2",
                        [{"path": "request.route", "value": "^/ping$"}],
                        response={"headers": {"X-Rule": "v2"}},
                    )
                ]
            )
            # The next events batch answers with the new ETag; the rules are fetched again.
            assert wait_for(lambda: header(governed.get("/ping"), "X-Rule") == "v2"), "the new rules never arrived"
            assert header(governed.get("/me", [("Authorization", _jwt("u-free"))]), "X-Plan") is None


def _p50_ms(port: int, n: int = 60) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        reply = exchange(port, "GET", "/ping")
        times.append(time.perf_counter() - t0)
        assert reply.status == 200
    return sorted(times)[n // 2] * 1000


@pytest.mark.parametrize("fault", ["down", "stalled", "500", "garbage"])
def test_rules_that_cannot_be_fetched_leave_requests_unaffected(fault: str, tmp_path: Path) -> None:
    fw = FRAMEWORKS[0]  # Flask: its sample app has the stats endpoint
    with FakeMoesif() as moesif:
        moesif.config, moesif.rules = CONFIG, RULES
        if fault == "down":
            moesif.down()
        elif fault == "stalled":
            moesif.stall()
        elif fault == "500":
            moesif.fail_next(100, 500, {"error": "down for maintenance"}, path="/v1/rules")
        else:
            moesif.fail_next(100, 200, b"<html>gateway</html>", path="/v1/rules")
        governed = Governed(fw, tmp_path, moesif)
        with governed.server, governed.bare:
            time.sleep(0.5)  # the first fetch has been tried (or is held)
            p50, bare_p50 = _p50_ms(governed.server.port), _p50_ms(governed.bare.port)
            got = governed.post("/items", {"name": "allowed"})
            assert got.status == 201  # no rule in force: nothing blocked
            assert header(governed.get("/ping"), "X-Rule") is None
            stats = orjson.loads(governed.get("/_apimon/stats").body)
            if fault == "stalled":
                moesif.resume()
        # A request never waits for Moesif: its latency stays that of the app (and apimon).
        assert p50 < bare_p50 * 2 + 1.0, f"p50 {p50:.2f} ms against {bare_p50:.2f} ms bare"
        assert stats["internal_errors"] == 0 and stats["governance_blocked"] == 0
        if fault != "stalled":
            assert stats["rules_fetch_failed"] >= 1
