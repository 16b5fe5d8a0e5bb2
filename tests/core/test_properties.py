"""Property tests: any bytes and any headers produce a valid event that orjson can serialise."""

from __future__ import annotations

import gzip
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apimon.config import Config
from apimon.event import build_event
from apimon.record import RawCall
from apimon.tee import BodyTee

CONTENT_TYPES = st.sampled_from(
    [
        None,
        "application/json",
        "application/vnd.api+json",
        "text/plain",
        "text/html; charset=latin-1",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=b",
        "multipart/form-data",
        "application/octet-stream",
        "image/png",
        "application/xml",
        "",
        ";;;",
        "application/json; charset=utf-16",
    ]
)
ENCODINGS = st.sampled_from([None, "gzip", "deflate", "br", "identity", "GZIP", "x-gzip"])
HEADER_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=40)
IP_TEXT = st.one_of(HEADER_TEXT, st.ip_addresses().map(str), st.lists(st.ip_addresses().map(str)).map(", ".join))
JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
CONFIG = Config.from_options(max_body_bytes=2_000)


def _raw(
    method: str,
    headers: list[tuple[str, str]],
    body: bytes,
    ctype: str | None,
    enc: str | None,
    status: int,
    peer: str | None,
    path: str,
) -> RawCall:
    req_headers = list(headers)
    if ctype is not None:
        req_headers.append(("Content-Type", ctype))
    if enc is not None:
        req_headers.append(("Content-Encoding", enc))
    raw = RawCall(method, "http", "h", path, "", req_headers, peer, 1.7e9)
    raw.end = 1.7e9 + 1
    raw.status = status
    raw.resp_headers = list(req_headers)
    raw.req_body, raw.resp_body = BodyTee(2_000), BodyTee(2_000)
    raw.req_body.feed(body)
    raw.resp_body.feed(body)
    raw.req_body.complete = raw.resp_body.complete = True
    return raw


def _check(built: dict[str, object], json_strings: bool = False) -> dict[str, Any]:
    """The event as shipped (encoded, then read back: a JSON body may be the app's own bytes,
    an orjson.Fragment, until encoded), checked."""
    event: dict[str, Any] = orjson.loads(orjson.dumps(built))
    for part in ("request", "response"):
        section = event[part]
        assert isinstance(section, dict)
        for value in section["headers"].values():
            assert isinstance(value, str)
        if "transfer_encoding" in section:
            assert section["transfer_encoding"] == "base64"
        if not json_strings:
            assert section.get("body") != ""  # absent values are left out, never empty strings
    return event


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    method=st.sampled_from(["GET", "post", "HEAD", "PUT", "X"]),
    headers=st.lists(st.tuples(HEADER_TEXT, HEADER_TEXT), max_size=8),
    body=st.binary(max_size=3_000),
    ctype=CONTENT_TYPES,
    enc=ENCODINGS,
    status=st.integers(min_value=0, max_value=999),
    peer=st.one_of(st.none(), IP_TEXT),
    path=st.text(max_size=50),
)
def test_any_bytes_and_headers_make_a_valid_event(
    method: str,
    headers: list[tuple[str, str]],
    body: bytes,
    ctype: str | None,
    enc: str | None,
    status: int,
    peer: str | None,
    path: str,
) -> None:
    _check(build_event(_raw(method, headers, body, ctype, enc, status, peer, path), CONFIG))


@settings(max_examples=200, deadline=None)
@given(value=JSONISH, gz=st.booleans())
def test_any_json_value_round_trips_as_json(value: object, gz: bool) -> None:
    data = orjson.dumps(value)
    body = gzip.compress(data) if gz else data
    raw = _raw("POST", [], body, "application/json", "gzip" if gz else None, 200, None, "/")
    event = _check(build_event(raw, Config.from_options(redact_body_fields=[])), json_strings=True)
    assert event["request"]["body"] == value


@settings(max_examples=200, deadline=None)
@given(xff=IP_TEXT, real=st.one_of(st.none(), IP_TEXT), fwd=st.one_of(st.none(), HEADER_TEXT))
def test_ip_address_is_valid_or_absent(xff: str, real: str | None, fwd: str | None) -> None:
    import ipaddress

    headers = [("X-Forwarded-For", xff)]
    if real is not None:
        headers.append(("X-Real-IP", real))
    if fwd is not None:
        headers.append(("Forwarded", fwd))
    event = build_event(_raw("GET", headers, b"", None, None, 200, "127.0.0.1", "/"), CONFIG)
    ip = event["request"].get("ip_address")
    assert ip is not None  # the peer is valid, so there is always an answer
    ipaddress.ip_address(ip)
