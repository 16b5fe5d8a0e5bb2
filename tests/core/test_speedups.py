"""The compiled speedups (apimon/_speedups.c) against their Python references.

Function by function in this process (hypothesis, with shrinking), then whole events: the same
raw calls, as every adapter makes them, built by two worker processes, one with the extension and
one with ``APIMON_PURE_PYTHON=1``, must give the same bytes.
"""

from __future__ import annotations

import base64
import copy
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apimon import headers as hdr
from apimon import native
from apimon.environ import environ_headers_py
from apimon.redact import redact_json_py

ROOT = Path(__file__).resolve().parents[2]
FORCED_PURE = native.pure_forced()


def _compiled() -> Any:
    # Built by ./dev (the editable install compiles it); a missing build is a failure, not a skip.
    from apimon import _speedups  # type: ignore[attr-defined,unused-ignore]

    # Under APIMON_PURE_PYTHON=1 no module has handed it what it shares with Python: done here
    # (the same calls apimon.headers and apimon.environ make; repeating them changes nothing).
    _speedups.configure_headers(hdr._KNOWN, hdr.canonical, hdr.merge_py, hdr.REDACTED)
    _speedups.configure_environ(environ_headers_py)
    _speedups.configure_redact(redact_json_py)
    return _speedups


def _plain(data: bytes, fields: frozenset[str]) -> bool:
    speedups = _compiled()
    return bool(speedups.json_plain(data, speedups.field_table(fields)))


def test_the_extension_is_used_unless_told_not_to() -> None:
    _compiled()
    assert native.ACTIVE is (not FORCED_PURE)
    if FORCED_PURE:
        assert hdr.merge is hdr.merge_py
    else:
        assert hdr.merge is _compiled().merge


def _outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(*args)
    except Exception as exc:
        return "raised", type(exc)


class Shouty(str):
    """A str subclass: the compiled loops hand these to the reference."""


NAME_TEXT = st.one_of(
    st.sampled_from(["content-type", "CONTENT_TYPE", "X-Forwarded-For", "set-cookie", "authorization", "a", ""]),
    st.text(st.characters(min_codepoint=32, max_codepoint=0x17F), max_size=20),
)
NAMES = st.one_of(
    NAME_TEXT, NAME_TEXT.map(lambda s: s.encode("latin-1", "replace")), NAME_TEXT.map(Shouty), st.integers()
)
VALUE_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=30)
VALUES = st.one_of(
    VALUE_TEXT,
    VALUE_TEXT.map(lambda s: s.encode("latin-1")),
    VALUE_TEXT.map(lambda s: bytearray(s.encode("latin-1"))),
    VALUE_TEXT.map(Shouty),
    st.integers(),
)


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.tuples(NAMES, VALUES), max_size=12), st.sampled_from(["list", "tuple", "iter"]))
def test_merge_matches_the_reference(pairs: list[tuple[Any, Any]], shape: str) -> None:
    def given_as() -> Any:
        return {"list": list, "tuple": tuple, "iter": iter}[shape](pairs)

    compiled = _outcome(_compiled().merge, given_as())
    reference = _outcome(hdr.merge_py, given_as())
    assert compiled == reference
    if compiled[0] == "ok":
        assert list(compiled[1].items()) == list(reference[1].items())
        assert [type(v) for v in compiled[1].values()] == [type(v) for v in reference[1].values()]


def test_merge_joins_repeats_and_keeps_order() -> None:
    pairs = [(b"x-a", b"1"), ("X_A", "2"), ("Accept", "*/*"), (b"x-a", b"\xe9")]
    assert list(_compiled().merge(pairs).items()) == [("X-A", "1,2,\xe9"), ("Accept", "*/*")]


ENVIRON_KEYS = st.one_of(
    st.sampled_from(["HTTP_HOST", "HTTP_", "HTTP", "H", "", "REQUEST_METHOD", "HTTP_X_A", "wsgi.input", "HTTPS"]),
    st.text(max_size=12).map(lambda s: "HTTP_" + s),
    st.text(max_size=12),
)


@settings(max_examples=1000, deadline=None)
@given(
    st.dictionaries(ENVIRON_KEYS, st.one_of(VALUE_TEXT, st.none(), st.integers()), max_size=15),
    st.sampled_from(["dict", "bytes key", "str subclass key", "int key", "mapping"]),
)
def test_environ_headers_matches_the_reference(environ: dict[Any, Any], odd: str) -> None:
    given_environ: Any = dict(environ)
    if odd == "bytes key":
        given_environ[b"HTTP_X"] = "b"
    elif odd == "str subclass key":
        given_environ[Shouty("HTTP_SHOUT")] = "s"
    elif odd == "int key":
        given_environ[7] = "i"
    elif odd == "mapping":
        from types import MappingProxyType

        given_environ = MappingProxyType(given_environ)
    assert _outcome(_compiled().environ_headers, given_environ) == _outcome(environ_headers_py, given_environ)


SECRET_KEYS = st.sampled_from(
    ["password", "PassWord", "api_key", "API_KEY", "token", "secret", "Secret", "pässword", "PÄSSWORD", "x" * 70]
)
KEYS = st.one_of(SECRET_KEYS, st.text(max_size=10))
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(KEYS, children, max_size=6),
    max_leaves=40,
)
FIELDS = st.sampled_from(
    [
        frozenset(),
        frozenset({"password", "api_key", "token", "secret"}),
        frozenset({"pässword", "x" * 70}),
        frozenset({"password"}),
        # Not exact: the compiled walk hands these to the reference.
        {"password", "token"},
        frozenset({Shouty("password"), "token"}),
        ["password"],
    ]
)


@settings(max_examples=1500, deadline=None)
@given(JSONISH, FIELDS)
def test_redact_json_matches_the_reference(value: Any, fields: Any) -> None:
    mine, theirs = copy.deepcopy(value), copy.deepcopy(value)
    assert _compiled().redact_json(mine, fields) == redact_json_py(theirs, fields)  # how many
    assert orjson.dumps(mine) == orjson.dumps(theirs)  # both in place


def test_redact_json_deep_nesting_does_not_recurse() -> None:
    value: Any = {"password": "x"}
    for _ in range(100_000):
        value = [value]
    _compiled().redact_json(value, frozenset({"password"}))
    inner = value
    while isinstance(inner, list):
        inner = inner[0]
    assert inner == {"password": hdr.REDACTED}


# json_plain: True only for JSON that orjson reads and that has no key to redact (the event then
# carries the app's bytes); anything it is unsure of goes down the Python path.

DEFAULT_FIELDS = frozenset({"password", "api_key", "token", "secret", "PassWord"})
TRICKY = st.sampled_from(
    [
        b"",
        b" ",
        b"01",
        b"-",
        b"1.",
        b".5",
        b"+1",
        b"1e",
        b"1e400",
        b"1e99",
        b"-0.0e-00",
        b"18446744073709551616",
        b"[1,]",
        b'{"a":1,}',
        b'{"a" 1}',
        b'{"a":1 "b":2}',
        b"NaN",
        b"Infinity",
        b"nul",
        b"truex",
        b"[true false]",
        b'"\\ud800"',
        b'"\\ud83d\\ude00"',
        b'"\\udc00"',
        b'"\\u00e9\\n\\/"',
        b'"\\x"',
        b'"\\u12"',
        b'"\x01"',
        b'"\x7f"',
        b'"\xc3\xa9"',
        b'"\xc3"',
        b'"\xed\xa0\x80"',
        b'"\xe0\x80\xaf"',
        b'"\xf4\x90\x80\x80"',
        b'"\xf0\x9f\x98\x80"',
        b"\xef\xbb\xbf[1]",
        b'{"Password": 1}',
        b'{"PASSWORD": 1}',
        b'{"pass\\u0077ord": 1}',
        b'{"a": {"token": 1}}',
        b'{"a": 1, "a": 2}',
        b'[{"\xc3\xa9": 1}]',
        b"[" * 129 + b"]" * 129,
        b"[" * 128 + b"]" * 128,
        b' \t\n{"a" : [ 1 , 2 ] }\r\n',
        b"[1]x",
        b'"unterminated',
    ]
)


def _mutated(data: bytes, at: int, byte: int, how: str) -> bytes:
    if not data:
        return bytes([byte])
    at %= len(data)
    if how == "replace":
        return data[:at] + bytes([byte]) + data[at + 1 :]
    if how == "insert":
        return data[:at] + bytes([byte]) + data[at:]
    return data[:at] + data[at + 1 :]


JSON_BYTES = st.one_of(
    TRICKY,
    JSONISH.map(orjson.dumps),
    JSONISH.map(lambda v: orjson.dumps(v, option=orjson.OPT_INDENT_2)),
    st.builds(
        _mutated,
        st.one_of(TRICKY, JSONISH.map(orjson.dumps)),
        st.integers(0, 1000),
        st.sampled_from(b' "\\{}[],:0-.eE+u\x00\x1f\x80\xc3\xed\xff'),
        st.sampled_from(["replace", "insert", "delete"]),
    ),
    st.binary(max_size=30),
)


@settings(max_examples=4000, deadline=None)
@given(JSON_BYTES, st.sampled_from([DEFAULT_FIELDS, frozenset(), frozenset({"pässword", "a"})]))
def test_json_plain_passes_only_what_orjson_reads_with_nothing_to_redact(data: bytes, fields: frozenset[str]) -> None:
    if _plain(data, fields):
        parsed = orjson.loads(data)  # raises if the check let through what orjson refuses
        assert redact_json_py(parsed, fields) == 0


PLAIN_KEYS = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=8).filter(
    lambda k: k.lower() not in DEFAULT_FIELDS and "\\" not in k and '"' not in k
)
PLAIN_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(PLAIN_KEYS, children, max_size=6),
    max_leaves=30,
)


@settings(max_examples=1000, deadline=None)
@given(PLAIN_JSON, st.booleans())
def test_json_plain_passes_ordinary_json(value: Any, indent: bool) -> None:
    """The fast path is taken for what apps send: compact or indented, any text in values."""
    data = orjson.dumps(value, option=orjson.OPT_INDENT_2 if indent else None)
    assert _plain(data, DEFAULT_FIELDS)


def test_json_plain_follows_a_new_field_set() -> None:
    data = b'{"card": "4111"}'
    assert _plain(data, DEFAULT_FIELDS)
    assert not _plain(data, frozenset({"card"}))
    assert _plain(data, DEFAULT_FIELDS)


# Whole events: the same raw calls through two builder processes.


class Worker:
    def __init__(self, pure: bool) -> None:
        env = {k: v for k, v in os.environ.items() if k != "APIMON_PURE_PYTHON"}
        if pure:
            env["APIMON_PURE_PYTHON"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.core.speedups_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
            env=env,
        )
        self.mode = self._read()

    def _read(self) -> bytes:
        stdout: IO[bytes] | None = self.proc.stdout
        assert stdout is not None
        return stdout.readline().rstrip(b"\n")

    def build(self, line: bytes) -> bytes:
        stdin = self.proc.stdin
        assert stdin is not None
        stdin.write(line + b"\n")
        stdin.flush()
        return self._read()

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def workers() -> Iterator[tuple[Worker, Worker]]:
    native_worker, pure_worker = Worker(pure=False), Worker(pure=True)
    try:
        yield native_worker, pure_worker
    finally:
        native_worker.stop()
        pure_worker.stop()


def _jwt(claims: dict[str, Any]) -> str:
    payload = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
    return f"eyJhbGciOiJub25lIn0.{payload}.sig"


def _wire(value: str | bytes) -> Any:
    return {"b": base64.b64encode(value).decode()} if isinstance(value, bytes) else value


CONTENT_TYPES = st.sampled_from(
    [
        None,
        "application/json",
        "application/vnd.api+json; charset=utf-8",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=b",
        "application/octet-stream",
        "image/png",
    ]
)
CREDENTIALS = st.sampled_from(
    [
        None,
        "Bearer " + _jwt({"sub": "user-1"}),
        "Bearer " + _jwt({"user": {"id": 42}}),
        "Basic " + base64.b64encode(b"alice:pw").decode(),
        "Bearer not.a.jwt",
        "Token abc",
    ]
)
IPS = st.sampled_from([None, "203.0.113.7", "10.0.0.1, 198.51.100.2", "unknown", "2001:db8::1", "for=192.0.2.60"])
IP_HEADERS = st.sampled_from(["X-Forwarded-For", "CF-Connecting-IP", "X-Real-IP", "Forwarded", "True-Client-IP"])


# Bodies with enough keys that the Python builder searches the bytes for secret names instead of
# walking (apimon.bodies._may_hold_fields), with or without one, escaped or not.
MANY_KEYS = st.builds(
    lambda n, secret, escaped: (
        b'{"rows": ['
        + b",".join(b'{"id": %d, "name": "n%d"}' % (i, i) for i in range(n))
        + b"]"
        + ({b"": b"", b"plain": b', "deep": {"Password": "x"}', b"escaped": b', "pass\\u0077ord": "x"'}[secret])
        + (b', "note": "\\u00e9"' if escaped else b"")
        + b"}"
    ),
    st.integers(40, 400),
    st.sampled_from([b"", b"plain", b"escaped"]),
    st.booleans(),
)


def _body(draw: Any, content_type: str | None) -> bytes:
    if content_type and "json" in content_type:
        return draw(st.one_of(JSON_BYTES, MANY_KEYS))
    if content_type == "application/x-www-form-urlencoded":
        return draw(st.sampled_from([b"a=1&password=x&b=2", b"token=%20t", b"plain", b""]))
    if content_type and content_type.startswith("multipart"):
        return b'--b\r\nContent-Disposition: form-data; name="password"\r\n\r\nx\r\n--b--\r\n'
    return draw(st.one_of(st.binary(max_size=60), VALUE_TEXT.map(lambda s: s.encode("utf-8"))))


@st.composite
def raw_calls(draw: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(["wsgi", "asgi", "direct"]))
    method = draw(st.sampled_from(["GET", "POST", "put", "HEAD", "DELETE"]))
    req_type, resp_type = draw(CONTENT_TYPES), draw(CONTENT_TYPES)
    credential, ip, ip_header = draw(CREDENTIALS), draw(IPS), draw(IP_HEADERS)
    extra = draw(st.lists(st.tuples(NAME_TEXT, VALUE_TEXT), max_size=5))
    headers: list[tuple[str, str]] = [("Host", "api.example.com:8443"), ("User-Agent", "t/1"), *extra]
    if credential:
        headers.append(("Authorization", credential))
    if ip:
        headers.append((ip_header, ip))
    if req_type:
        headers.append(("Content-Type", req_type))
    spec: dict[str, Any] = {
        "kind": kind,
        "offset": draw(st.floats(0, 10_000)),
        "duration": draw(st.floats(0, 5)),
        "status": draw(st.sampled_from([200, 201, 204, 304, 404, 500, 0])),
        "transaction_id": "00000000-0000-4000-8000-000000000001",
        "options": draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "redact_body_fields": st.sampled_from([["password"], ["name", "id"], []]),
                    "user_id_headers": st.just(["X-Api-Key", "Authorization"]),
                    "user_id_claim": st.just("user.id"),
                    "log_body": st.booleans(),
                    "max_body_bytes": st.sampled_from([16, 1000]),
                },
            )
        ),
    }
    if kind == "wsgi":
        environ: list[tuple[str, Any]] = [
            ("REQUEST_METHOD", method),
            ("PATH_INFO", "/items/ä"),
            ("RAW_URI", "/items/%C3%A4?q=1"),
            ("QUERY_STRING", "q=1"),
            ("wsgi.url_scheme", "https"),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("SERVER_NAME", "localhost"),
            ("SERVER_PORT", "8443"),
        ]
        for name, value in headers:
            if name == "Content-Type":
                environ.append(("CONTENT_TYPE", value))
            else:
                environ.append(("HTTP_" + name.upper().replace("-", "_"), value))
        spec["environ"] = environ
    else:
        as_bytes = kind == "asgi"
        spec["req_headers"] = [
            (_wire(n.lower().encode("latin-1", "replace")), _wire(v.encode("latin-1", "replace")))
            if as_bytes
            else (n, v)
            for n, v in headers
        ]
        spec.update(method=method, scheme="https", host="api.example.com", path="/items/%C3%A4", query="q=1")
        spec["peer"] = "198.51.100.9"
    resp_headers: list[tuple[str, str]] = [("Content-Type", resp_type)] if resp_type else []
    resp_headers += [("Set-Cookie", "a=1"), ("set-cookie", "b=2")]
    resp_gzip = draw(st.booleans())
    if resp_gzip:
        resp_headers.append(("Content-Encoding", "gzip"))
    spec["resp_headers"] = [
        (_wire(n.encode()), _wire(v.encode())) if kind == "asgi" else (n, v) for n, v in resp_headers
    ]
    if draw(st.booleans()):
        spec["req_body"] = base64.b64encode(_body(draw, req_type)).decode()
        spec["req_whole"] = draw(st.booleans())
    if draw(st.booleans()):
        spec["resp_body"] = base64.b64encode(_body(draw, resp_type)).decode()
        spec["resp_whole"] = draw(st.booleans())
        spec["resp_gzip"] = resp_gzip
    hooks = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "user_id": st.sampled_from(["u-9", ""]),
                "company_id": st.just("c-1"),
                "metadata": st.dictionaries(st.text(max_size=5), JSONISH, max_size=3),
                "route": st.just("/items/{name}"),
                "direction": st.just("Outgoing"),
                "error": st.just("ConnectTimeout"),
            },
        )
    )
    spec.update(hooks)
    return spec


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(raw_calls())
def test_both_builders_give_the_same_event_bytes(workers: tuple[Worker, Worker], spec: dict[str, Any]) -> None:
    native_worker, pure_worker = workers
    assert (native_worker.mode, pure_worker.mode) == (b"native", b"pure")
    line = orjson.dumps(spec)
    compiled, reference = native_worker.build(line), pure_worker.build(line)
    assert compiled == reference
    assert not compiled.startswith(b"raised"), compiled
