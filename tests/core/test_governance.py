"""Governance rules (apimon.governance) on their own: parsing, Moesif's order and cohorts,
templates, unusable rules skipped and counted, and fetching through MoesifRemoteConfig against
FakeMoesif answering badly."""

from __future__ import annotations

import gzip
import logging
import time
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apimon.config import Config
from apimon.counters import Counters
from apimon.governance.compiled import compile_matcher
from apimon.governance.conditions import (
    MAX_VALUE,
    Conditions,
    RuleError,
    compile_pattern,
    parse_conditions,
    plain,
    read_values,
)
from apimon.governance.fields import EnvironFields
from apimon.governance.rules import Decision, RuleSet
from apimon.sinks.moesif_config import MAX_ANSWER_BYTES, MoesifRemoteConfig
from apimon.testing import FakeMoesif


def fields(
    method: str = "GET", path: str = "/x", headers: list[tuple[str, str]] | None = None, body: bytes | None = None
) -> EnvironFields:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "plan=free&x=1",
        "REMOTE_ADDR": "203.0.113.5",
        "wsgi.url_scheme": "https",
        "HTTP_HOST": "api.example.com",
    }
    for name, value in headers or []:
        key = name.upper().replace("-", "_")
        environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key] = value
    return EnvironFields(environ, body)


def decide(rules: RuleSet, f: EnvironFields, user: str | None = None, company: str | None = None) -> Decision | None:
    return rules.decide(read_values(f, rules.paths), user, company)


def named(f: EnvironFields, conditions: Conditions) -> dict[str, str | None]:
    paths = sorted(conditions.paths)
    return dict(zip(paths, read_values(f, paths), strict=True))


def regex(rid: str, conditions: list[tuple[str, str]] | None, **extra: Any) -> dict[str, Any]:
    config = None if conditions is None else [{"conditions": [{"path": p, "value": v} for p, v in conditions]}]
    return {"_id": rid, "type": "regex", "regex_config": config, **extra}


def block(status: int, body: Any = None, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {"block": True, "response": {"status": status, "body": body, "headers": headers or {}}}


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("request.verb", "POST", "POST"),
        ("request.route", "/orders/7", "/orders/7"),
        ("request.ip_address", "", "198.51.100.9"),
        ("request.ip", "", "198.51.100.9"),
        ("request.headers.x-plan", "", "gold"),
        ("request.headers.X-PLAN", "", "gold"),
        ("request.query", "", "plan=free&x=1"),
        ("request.query.plan", "", "free"),
        ("request.query.nope", "", None),
        ("request.body.action", "", "pay"),
        ("request.body.user.id", "", "42"),
        ("request.body.flag", "", "true"),
        ("request.body.nested", "", None),
        ("request.nothing", "", None),
    ],
)
def test_request_fields(path: str, value: str, expected: str | None) -> None:
    f = fields(
        "post",
        "/orders/7",
        [("X-Plan", "gold"), ("X-Forwarded-For", "198.51.100.9")],
        b'{"action": "pay", "user": {"id": 42}, "flag": true, "nested": {"a": 1}}',
    )
    from apimon.governance.conditions import normalise_path

    assert f.value(normalise_path(path)) == expected


def test_a_body_that_is_not_json_has_no_fields() -> None:
    assert fields(body=b"not json").value("request.body.a") is None
    assert fields(body=None).value("request.body.a") is None


def test_conditions_or_of_and_groups() -> None:
    conditions = parse_conditions(
        [
            {"conditions": [{"path": "request.verb", "value": "^POST$"}, {"path": "request.route", "value": "^/a"}]},
            {"conditions": [{"path": "request.headers.x-admin", "value": "yes"}]},
            {"conditions": []},  # an empty group never matches
        ]
    )
    assert conditions.matches(named(fields("POST", "/a/1"), conditions))
    assert not conditions.matches(named(fields("GET", "/a/1"), conditions))
    assert conditions.matches(named(fields("GET", "/b", [("X-Admin", "yes")]), conditions))
    assert parse_conditions(None).matches({}) and parse_conditions([]).matches({})


@pytest.mark.parametrize(
    "bad",
    [
        "x",
        [1],
        [{"conditions": "x"}],
        [{"conditions": [{"path": "request.verb"}]}],
        [{"conditions": [{"path": "request.verb", "value": "(unclosed"}]}],
    ],
)
def test_malformed_conditions_are_rule_errors(bad: Any) -> None:
    with pytest.raises(RuleError):
        parse_conditions(bad)


def test_unusable_rules_are_skipped_with_a_reason_and_the_rest_kept() -> None:
    rules, errors = RuleSet.parse(
        [
            "not an object",
            {"type": "regex"},
            regex("bad-type", None, type="session"),
            regex("bad-regex", [("request.verb", "[")]),
            regex("no-status", None, block=True, response={"body": {}}),
            regex("bad-header", None, response={"headers": {"Bad Name": "x"}}),
            regex("good", [("request.verb", "GET")], response={"headers": {"X-Ok": "1"}}),
        ],
        {},
    )
    assert rules.count == 1 and len(errors) == 6
    assert any("bad-regex" in e for e in errors) and any("no-status" in e for e in errors)
    decision = decide(rules, fields(), None, None)
    assert decision is not None and decision.headers == {"X-Ok": "1"} and decision.blocked_by is None
    assert RuleSet.parse({"not": "a list"}, {})[0].count == 0


def test_order_regex_then_company_then_user_later_headers_and_blocks_win() -> None:
    rules, errors = RuleSet.parse(
        [
            regex("r", None, **block(429, {"e": "regex"}, {"X-A": "regex", "X-R": "1"})),
            {
                "_id": "c",
                "type": "company",
                "applied_to": "matching",
                **block(403, {"e": "company"}, {"X-A": "company"}),
            },
            {"_id": "u", "type": "user", "applied_to": "matching", "response": {"headers": {"X-A": "user"}}},
        ],
        {"company_rules": {"acme": [{"rules": "c"}]}, "user_rules": {"ann": [{"rules": "u"}]}},
    )
    assert errors == []
    decision = decide(rules, fields(), "ann", "acme")
    assert decision is not None
    assert decision.rules == ["r", "c", "u"]
    assert decision.headers == {"X-A": "user", "X-R": "1"}
    assert (decision.blocked_by, decision.status, decision.body) == ("c", 403, b'{"e":"company"}')


def test_cohorts_matching_not_matching_and_unidentified() -> None:
    rules, _ = RuleSet.parse(
        [
            {"_id": "in", "type": "user", "applied_to": "matching", "response": {"headers": {"X-In": "1"}}},
            {"_id": "out", "type": "user", "applied_to": "not_matching", "response": {"headers": {"X-Out": "1"}}},
            {
                "_id": "anon",
                "type": "user",
                "applied_to": "matching",
                "applied_to_unidentified": True,
                "response": {"headers": {"X-Anon": "1"}},
            },
        ],
        {"user_rules": {"member": [{"rules": "in"}, {"rules": "out"}]}},
    )

    def headers(user: str | None) -> dict[str, str]:
        decision = decide(rules, fields(), user, None)
        return {} if decision is None else decision.headers

    assert headers("member") == {"X-In": "1"}
    assert headers("stranger") == {"X-Out": "1"}
    assert headers(None) == {"X-Anon": "1"}


def test_template_values_unknown_and_undeclared_names() -> None:
    rules, _ = RuleSet.parse(
        [
            {
                "_id": "quota",
                "type": "company",
                "variables": [{"name": "limit", "path": "x"}, {"name": "plan", "path": "y"}],
                **block(429, {"msg": "limit {{limit}} on {{ plan }}", "raw": "{{other}}", "n": [1, "{{limit}}"]}),
                "response": {
                    "status": 429,
                    "headers": {"X-Limit": "{{limit}}", "X-Evil": "{{plan}}"},
                    "body": {"msg": "limit {{limit}} on {{ plan }}", "raw": "{{other}}", "n": [1, "{{limit}}"]},
                },
            }
        ],
        {
            "company_rules": {
                "acme": [{"rules": "quota", "values": {"limit": 100, "plan": "a\r\nSet-Cookie: x=1"}}],
                "globex": [{"rules": "quota", "values": {}}],
            }
        },
    )
    acme = decide(rules, fields(), None, "acme")
    assert acme is not None
    # A value with a line break never reaches the server as one (no header injection through the
    # config): it is percent-encoded, and counted.
    assert acme.headers == {"X-Limit": "100", "X-Evil": "a%0D%0ASet-Cookie: x=1"}
    assert acme.encoded == 1
    globex = decide(rules, fields(), None, "globex")
    assert globex is not None and globex.headers == {"X-Limit": "UNKNOWN", "X-Evil": "UNKNOWN"}
    assert globex.body == b'{"msg":"limit UNKNOWN on UNKNOWN","raw":"{{other}}","n":[1,"UNKNOWN"]}'
    assert decide(rules, fields(), None, "initech") is None  # not in the cohort


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        ("free", "free"),
        ("Łukasz 😀", "%C5%81ukasz %F0%9F%98%80"),
        ("a\x00b\x0bc\x7fd", "a%00b%0Bc%7Fd"),
        ("café 100%", "caf%C3%A9 100%25"),  # once encoding, "%" is encoded too: the value reads back
        (" padded\t", "padded"),
    ],
)
def test_template_values_that_are_not_field_content_are_percent_encoded(value: str, sent: str) -> None:
    rules, _ = RuleSet.parse(
        [
            {
                "_id": "plan",
                "type": "user",
                "variables": [{"name": "name", "path": "x"}],
                "response": {"status": 402, "headers": {"X-Name": "{{name}}"}, "body": {"hi": "{{name}}"}},
                "block": True,
            }
        ],
        {"user_rules": {"u": [{"rules": "plan", "values": {"name": value}}]}},
    )
    decision = decide(rules, fields(), "u", None)
    assert decision is not None
    assert decision.headers == {"X-Name": sent} and decision.encoded == (value != sent)
    for _, header_value in decision.header_pairs():
        header_value.encode("ascii")  # what every server takes
    assert orjson.loads(decision.body) == {"hi": value}  # the body stays valid JSON, the value whole


def test_blocked_headers_carry_the_json_type_and_length() -> None:
    rules, _ = RuleSet.parse([regex("b", None, **block(451, {"e": 1}, {"Content-Length": "999", "X-Why": "law"}))], {})
    decision = decide(rules, fields(), None, None)
    assert decision is not None
    assert decision.header_pairs() == [("X-Why", "law"), ("Content-Type", "application/json"), ("Content-Length", "7")]


def test_needs_flags() -> None:
    rules, _ = RuleSet.parse([regex("a", [("request.body.x", "1")])], {})
    assert rules.needs_body and not rules.needs_user and not rules.needs_company
    rules, _ = RuleSet.parse([{"_id": "u", "type": "user"}, {"_id": "c", "type": "company"}], {})
    assert not rules.needs_body and rules.needs_user and rules.needs_company


# -- fetching -------------------------------------------------------------------------------------


def _remote(fake: FakeMoesif) -> tuple[MoesifRemoteConfig, Counters, list[RuleSet | None]]:
    counters = Counters()
    seen: list[RuleSet | None] = []
    config = Config.from_options(moesif_application_id=fake.application_id, moesif_base_url=fake.url)
    return MoesifRemoteConfig(config, counters, seen.append, governance=True), counters, seen


@pytest.mark.parametrize(
    "fault",
    ["500", "garbage", "wrong shape", "dropped", "too large", "gzip bomb"],
)
def test_a_bad_rules_answer_keeps_the_rules_in_force_and_is_counted(
    fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    with FakeMoesif() as fake:
        fake.rules = [regex("a", None, response={"headers": {"X-A": "1"}})]
        remote, counters, seen = _remote(fake)
        assert remote.refresh()
        assert seen[-1] is not None and seen[-1].count == 1
        if fault == "500":
            fake.fail_next(1, 500, {"error": "oops"}, path="/v1/rules")
        elif fault == "garbage":
            fake.fail_next(1, 200, b"<html>not json", path="/v1/rules")
        elif fault == "wrong shape":
            fake.fail_next(1, 200, {"rules": []}, path="/v1/rules")
        elif fault == "too large":
            fake.fail_next(1, 200, b"[" + b'"x",' * (MAX_ANSWER_BYTES // 4) + b'"x"]', path="/v1/rules")
        elif fault == "gzip bomb":
            # 100 MB of JSON that is 100 KB on the wire.
            bomb = gzip.compress(b"[" + b" " * 100_000_000 + b"]", compresslevel=9)
            fake.fail_next(1, 200, bomb, headers={"Content-Encoding": "gzip"}, path="/v1/rules")
        else:
            # A kept connection closed without an answer is tried once more on a new one.
            fake.drop_next(2, path="/v1/rules")
        with caplog.at_level(logging.WARNING, logger="apimon"):
            assert not remote.refresh()
        assert counters.get("rules_fetch_failed") == 1 and len(seen) == 1
        assert counters.get("rules_refused_too_large") == (fault in ("too large", "gzip bomb"))
        assert remote.ruleset is seen[0]
        assert "rules in force are kept" in caplog.text
        assert remote.refresh() and len(seen) == 2  # the connection dropped, the next fetch works
        remote.close()


def test_a_config_answer_past_the_cap_is_refused_and_the_sampling_kept() -> None:
    with FakeMoesif() as fake:
        fake.config = {"sample_rate": 50}
        remote, counters, _ = _remote(fake)
        assert remote.refresh() and remote.sampling.rate == 50
        fake.fail_next(1, 200, {"sample_rate": 10, "pad": "x" * MAX_ANSWER_BYTES}, path="/v1/config")
        assert not remote.refresh()
        assert remote.sampling.rate == 50 and counters.get("rules_refused_too_large") == 1
        remote.close()


def test_unusable_rules_from_moesif_are_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    with FakeMoesif() as fake:
        fake.rules = [regex("bad", [("request.verb", "(")]), regex("good", None, response={"headers": {"X": "1"}})]
        fake.config = {"sample_rate": 100, "regex_config": [{"conditions": [], "sample_rate": 500}]}
        remote, counters, seen = _remote(fake)
        with caplog.at_level(logging.WARNING, logger="apimon"):
            assert remote.refresh()
        assert counters.get("rules_skipped") == 2
        assert seen[-1] is not None and seen[-1].count == 1
        assert caplog.text.count("skipped unusable Moesif rules") == 1
        remote.close()


def test_no_rules_is_none_and_governance_off_never_asks() -> None:
    with FakeMoesif() as fake:
        remote, _, seen = _remote(fake)
        assert remote.refresh() and seen == [None]
        config = Config.from_options(moesif_application_id=fake.application_id, moesif_base_url=fake.url)
        quiet = MoesifRemoteConfig(config, Counters(), seen.append, governance=False)
        assert quiet.refresh()
        assert [r.path for r in fake.requests] == ["/v1/config", "/v1/rules", "/v1/config"]
        remote.close()
        quiet.close()


def test_the_fetch_runs_in_the_background_and_start_returns_at_once() -> None:
    with FakeMoesif() as fake:
        fake.stall()  # Moesif does not answer at all
        remote, _, _ = _remote(fake)
        t0 = time.monotonic()
        remote.start()
        assert time.monotonic() - t0 < 0.1
        assert not remote.wait_first(0.3)
        fake.resume()
        assert remote.wait_first(10)
        remote.close()


# -- the fast paths against the reference ---------------------------------------------------------

_PATTERN_CHARS = "ab/.-^$\\*?()[]\n"
_VALUE_CHARS = "ab/.-^$\\*?\n"


def _compiles(pattern: str) -> bool:
    try:
        compile_pattern(pattern)
    except RuleError:
        return False
    return True


patterns = st.text(alphabet=_PATTERN_CHARS, max_size=7).filter(_compiles)
values = st.text(alphabet=_VALUE_CHARS, max_size=9)


@settings(max_examples=2000, deadline=None)
@given(patterns, values)
def test_plain_string_tests_agree_with_the_regex_engine(pattern: str, value: str) -> None:
    (condition,) = parse_conditions([{"conditions": [{"path": "request.route", "value": pattern}]}]).groups[0]
    assert condition.kind == plain(pattern)[0]
    reference = compile_pattern(pattern).search(value) is not None
    assert condition.test(value) == reference, (condition.kind, condition.literal)


PATHS = ("request.verb", "request.route", "request.headers.x-plan")
groups = st.lists(st.tuples(st.sampled_from(PATHS), patterns), max_size=3)
rule_configs = st.lists(groups, max_size=3)


@settings(max_examples=800, deadline=None)
@given(st.lists(rule_configs, max_size=8), st.tuples(*(st.none() | values for _ in PATHS)))
def test_the_generated_matcher_agrees_with_the_rules_checked_one_by_one(
    configs: list[list[list[tuple[str, str]]]], call: tuple[str | None, ...]
) -> None:
    rules = [
        parse_conditions([{"conditions": [{"path": p, "value": v} for p, v in group]} for group in config])
        for config in configs
    ]
    named_values = dict(zip(PATHS, call, strict=True))
    expected = [i for i, conditions in enumerate(rules) if conditions.matches(named_values)]
    matcher = compile_matcher(rules, PATHS)
    assert matcher is not None
    assert matcher(call) == expected


ALL_PATHS = [
    "request.verb",
    "request.route",
    "request.uri",
    "request.ip_address",
    "request.headers.x-plan",
    "request.headers.content-type",
    "request.headers.x-missing",
    "request.query",
    "request.query.plan",
    "request.query.none",
    "request.body.action",
    "request.nothing",
]


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [("X-Forwarded-For", "10.0.0.1, 198.51.100.9"), ("X-Plan", "gold"), ("Content-Type", "application/json")],
        [("CF-Connecting-IP", "8.8.8.8"), ("X-Plan", "a"), ("X-Plan", "b")],
    ],
)
def test_each_reader_reads_what_value_reads_and_wsgi_and_asgi_agree(headers: list[tuple[str, str]]) -> None:
    from apimon.governance.fields import ScopeFields, readers

    body = b'{"action": "pay"}'
    # Repeated headers reach a WSGI app joined; ASGI keeps them apart.
    joined: dict[str, str] = {}
    for name, value in headers:
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    environ_fields = fields("post", "/orders/7", list(joined.items()), body)
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": "https",
        "path": "/orders/7",
        "raw_path": b"/orders/7",
        "query_string": b"plan=free&x=1",
        "headers": [(b"host", b"api.example.com")] + [(n.lower().encode(), v.encode()) for n, v in headers],
        "client": ("203.0.113.5", 4000),
    }
    scope_fields = ScopeFields(scope, body)
    wanted = readers(ALL_PATHS)
    by_value = read_values(environ_fields, ALL_PATHS)
    assert environ_fields.read_all(wanted) == by_value
    assert scope_fields.read_all(wanted) == read_values(scope_fields, ALL_PATHS) == by_value


# -- hostile patterns and values ------------------------------------------------------------------


@pytest.mark.parametrize("pattern", [r".*@.*\..*$", r".*\d+.*\d+.*x", r"(\w+\s?)+$", r"(?i)ADMIN", r"(a|aa)+$"])
def test_patterns_run_on_re2_never_on_python_re(pattern: str) -> None:
    (condition,) = parse_conditions([{"conditions": [{"path": "request.route", "value": pattern}]}]).groups[0]
    assert condition.kind == "search"
    assert type(condition.pattern).__module__.split(".")[0] == "re2"


@pytest.mark.parametrize("pattern", [r"^/(\w+)/\1$", r"(?=admin)", r"(?<!x)y", r"\Z", r"(?P<n>a)(?P=n)"])
def test_a_pattern_re2_refuses_skips_its_rule_and_prints_nothing(
    pattern: str, capfd: pytest.CaptureFixture[str]
) -> None:
    def rule(rid: str, value: str) -> dict[str, Any]:
        return {
            "_id": rid,
            "type": "regex",
            "regex_config": [{"conditions": [{"path": "request.route", "value": value}]}],
        }

    rules = [rule("bad", pattern), rule("good", "^/x")]
    ruleset, errors = RuleSet.parse(rules, None)
    assert [r.id for r in ruleset.regex] == ["good"]
    assert len(errors) == 1 and "bad" in errors[0]
    assert capfd.readouterr() == ("", "")  # RE2's own error log stays off the host app's stderr


def test_a_condition_reads_at_most_max_value_characters() -> None:
    hostile = "a" * 8192
    read = read_values(fields(headers=[("X-Plan", hostile)]), ["request.headers.x-plan"])
    assert read == (hostile[:MAX_VALUE],) and MAX_VALUE <= 1024
    from apimon.governance.fields import readers

    assert fields(headers=[("X-Plan", hostile)]).read_all(readers(["request.headers.x-plan"])) == read
