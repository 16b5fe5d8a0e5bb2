"""The API Call event (docs/events.md), rule by rule, with concrete inputs and expected JSON."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import uuid
import zlib
from typing import Any

import orjson
import pytest

from apimon.config import Config
from apimon.event import build_uri, iso_ms
from apimon.redact import redact_json
from apimon.session_key import session_key
from tests.factories import T0, build, make_raw, tee


def test_full_event_shape() -> None:
    raw = make_raw(
        method="post",
        path="/items/83738/reviews/",
        query="a=1&b=2",
        req_headers=[("Content-Type", "application/json"), ("Accept", "*/*")],
        resp_headers=[("Content-Type", "application/json; charset=utf-8")],
        status=201,
        req_body=b'{"liked": true}',
        resp_body=b'{"id": 7}',
    )
    event = build(raw)
    txid = event.pop("transaction_id")
    assert uuid.UUID(txid).version == 4 and uuid.UUID(txid).variant == uuid.RFC_4122
    assert event == {
        "request": {
            "time": "2026-11-25T14:04:34.785Z",
            "uri": "https://api.example.com/items/83738/reviews/?a=1&b=2",
            "verb": "POST",
            "ip_address": "203.0.113.9",
            "headers": {"Content-Type": "application/json", "Accept": "*/*"},
            "body": {"liked": True},
        },
        "response": {
            "time": "2026-11-25T14:04:35.035Z",
            "status": 201,
            "headers": {"Content-Type": "application/json; charset=utf-8"},
            "body": {"id": 7},
        },
        "direction": "Incoming",
    }


def test_absent_values_are_left_out_not_empty() -> None:
    event = build(make_raw(peer=None))
    assert "ip_address" not in event["request"]
    assert "body" not in event["request"] and "body" not in event["response"]
    for key in ("user_id", "company_id", "session_token", "metadata", "weight"):
        assert key not in event
    assert "api_version" not in event["request"]


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (T0, "2026-11-25T14:04:34.785Z"),
        (0.0, "1970-01-01T00:00:00.000Z"),
        (1795615474.0009, "2026-11-25T14:04:34.000Z"),
        (1795615474.9999, "2026-11-25T14:04:34.999Z"),
    ],
)
def test_times_are_utc_iso8601_with_milliseconds(ts: float, expected: str) -> None:
    assert iso_ms(ts) == expected


@pytest.mark.parametrize(
    ("scheme", "host", "path", "query", "uri"),
    [
        ("https", "api.example.com:443", "/a", "", "https://api.example.com/a"),
        ("http", "api.example.com:80", "/a", "", "http://api.example.com/a"),
        ("http", "api.example.com:8080", "/a", "x=1", "http://api.example.com:8080/a?x=1"),
        ("https", "api.example.com:80", "/a", "", "https://api.example.com:80/a"),
        ("http", "[::1]:8000", "/a", "", "http://[::1]:8000/a"),
        ("http", "[::1]", "/a", "", "http://[::1]/a"),
        ("http", "h", "/files/a%2Fb/c%20d", "q=%E2%9C%93&x", "http://h/files/a%2Fb/c%20d?q=%E2%9C%93&x"),
        ("http", "h", "/mount/app/x", "", "http://h/mount/app/x"),
    ],
)
def test_uri_keeps_wire_path_and_drops_default_port(scheme: str, host: str, path: str, query: str, uri: str) -> None:
    assert build_uri(scheme, host, path, query) == uri
    assert build(make_raw(scheme=scheme, host=host, path=path, query=query))["request"]["uri"] == uri


def test_verb_is_upper_case_and_status_500_when_unknown() -> None:
    event = build(make_raw(method="delete", status=0))
    assert event["request"]["verb"] == "DELETE"
    assert event["response"]["status"] == 500


def test_headers_title_case_and_repeated_names_joined_with_comma() -> None:
    raw = make_raw(
        req_headers=[("X_FORWARDED_PROTO", "https"), ("accept", "a"), ("ACCEPT", "b"), ("x-request-id", "r1")],
        resp_headers=[("set-cookie", "a=1; Path=/"), ("Set-Cookie", "b=2"), ("content-type", "text/plain")],
    )
    event = build(raw, redact_headers=[])
    assert event["request"]["headers"] == {"X-Forwarded-Proto": "https", "Accept": "a,b", "X-Request-Id": "r1"}
    assert event["response"]["headers"] == {"Set-Cookie": "a=1; Path=/,b=2", "Content-Type": "text/plain"}


def test_set_cookie_twice_is_joined_then_redacted_by_default() -> None:
    raw = make_raw(resp_headers=[("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
    assert build(raw)["response"]["headers"] == {"Set-Cookie": "[REDACTED]"}


@pytest.mark.parametrize(
    ("headers", "peer", "expected"),
    [
        ([("X-Forwarded-For", "8.8.8.8, 10.0.0.1")], "127.0.0.1", "8.8.8.8"),
        ([("X-Forwarded-For", "10.0.0.1, 192.168.1.1, 1.1.1.1")], "127.0.0.1", "1.1.1.1"),
        ([("X-Forwarded-For", "unknown, <script>, 999.1.1.1, 8.8.4.4")], "127.0.0.1", "8.8.4.4"),
        ([("X-Forwarded-For", "garbage, also-bad")], "198.51.100.4", "198.51.100.4"),
        ([("X-Forwarded-For", "10.0.0.1, 172.16.0.5")], "127.0.0.1", "10.0.0.1"),
        ([("X-Forwarded-For", "fd00::1, 2001:4860:4860::8888")], None, "2001:4860:4860::8888"),
        ([("X-Forwarded-For", "1.2.3.4:5678")], None, "1.2.3.4"),
        ([("X-Real-IP", "9.9.9.9")], "127.0.0.1", "9.9.9.9"),
        ([("X-Forwarded-For", "10.1.1.1"), ("X-Real-IP", "9.9.9.9")], None, "9.9.9.9"),
        ([("Forwarded", 'for="[2001:db8:cafe::17]:4711";proto=https, for=192.0.2.60')], None, "2001:db8:cafe::17"),
        ([("Forwarded", "for=unknown;by=x, for=8.8.8.8")], None, "8.8.8.8"),
        ([("X-Forwarded-For", "169.254.1.1, fe80::1")], "127.0.0.1", "169.254.1.1"),
        # CDN headers come before X-Forwarded-For, which a client can fill in itself.
        ([("X-Forwarded-For", "6.6.6.6, 8.8.8.8"), ("CF-Connecting-IP", "8.8.8.8")], None, "8.8.8.8"),
        ([("X-Forwarded-For", "6.6.6.6"), ("True-Client-IP", "9.9.9.9")], None, "9.9.9.9"),
        ([("X-Forwarded-For", "6.6.6.6"), ("Fastly-Client-IP", "1.0.0.1")], None, "1.0.0.1"),
        ([("CF-Connecting-IP", "10.0.0.7"), ("X-Forwarded-For", "1.1.1.1")], None, "1.1.1.1"),
        ([("CF-Connecting-IP", "not-an-ip"), ("X-Real-IP", "10.9.9.9")], "8.8.8.8", "10.9.9.9"),
        ([("X-Client-IP", "4.4.4.4")], "127.0.0.1", "4.4.4.4"),
        ([("X-Cluster-Client-IP", "5.5.5.5"), ("Forwarded", "for=7.7.7.7")], None, "5.5.5.5"),
        ([("X-Real-IP", "10.0.0.2"), ("X-Client-IP", "2.2.2.2")], None, "2.2.2.2"),
        ([], "::ffff:8.8.8.8", "8.8.8.8"),
        ([], "not-an-ip", None),
        ([], None, None),
    ],
)
def test_ip_address_proxy_aware(headers: list[tuple[str, str]], peer: str | None, expected: str | None) -> None:
    event = build(make_raw(req_headers=headers, peer=peer))
    assert event["request"].get("ip_address") == expected


# -- bodies (docs/events.md#bodies) ------------------------------------------------------------------------


def _resp(body: bytes, content_type: str | None, *extra: tuple[str, str], **raw_kw: object) -> dict[str, object]:
    headers = [("Content-Type", content_type)] if content_type else []
    event = build(make_raw(resp_headers=[*headers, *extra], resp_body=body, **raw_kw))  # type: ignore[arg-type]
    response: dict[str, object] = event["response"]
    response["_metadata"] = event.get("metadata")
    return response


def test_json_body_is_json_even_with_leading_whitespace() -> None:
    r = _resp(b'  \n\t {"a": [1, 2.5, null, "x"]}', "application/json")
    assert r["body"] == {"a": [1, 2.5, None, "x"]} and "transfer_encoding" not in r


def test_vendor_json_content_type() -> None:
    assert _resp(b'{"ok": true}', "application/problem+json; charset=utf-8")["body"] == {"ok": True}


def test_invalid_json_with_json_content_type_is_text() -> None:
    r = _resp(b'{"a": 1,, oops', "application/json")
    assert r["body"] == '{"a": 1,, oops' and "transfer_encoding" not in r


def test_json_top_level_scalar() -> None:
    assert _resp(b"42", "application/json")["body"] == 42


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "text/html; charset=utf-8",
        "application/xml",
        "application/soap+xml",
        "application/javascript",
        "application/graphql",
        "application/x-ndjson",
        "text/csv",
    ],
)
def test_text_bodies_are_strings(content_type: str | None) -> None:
    r = _resp("héllo <b>wörld</b>\n".encode(), content_type)
    assert r["body"] == "héllo <b>wörld</b>\n" and "transfer_encoding" not in r


def test_binary_is_base64() -> None:
    data = bytes(range(256))
    r = _resp(data, "application/octet-stream")
    assert r["transfer_encoding"] == "base64"
    assert base64.b64decode(r["body"]) == data  # type: ignore[arg-type]


def test_invalid_utf8_text_is_base64() -> None:
    data = b"caf\xe9 \xff\xfe"
    r = _resp(data, "text/plain")
    assert r["transfer_encoding"] == "base64" and base64.b64decode(r["body"]) == data  # type: ignore[arg-type]


def test_image_is_base64_even_when_ascii() -> None:
    assert _resp(b"GIF89a", "image/gif")["transfer_encoding"] == "base64"


def test_gzip_response_is_decoded_and_header_kept() -> None:
    payload = b'{"compressed": true}'
    r = _resp(gzip.compress(payload), "application/json", ("Content-Encoding", "gzip"))
    assert r["body"] == {"compressed": True}
    assert r["headers"] == {"Content-Type": "application/json", "Content-Encoding": "gzip"}


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS])
def test_deflate_zlib_and_raw(wbits: int) -> None:
    c = zlib.compressobj(wbits=wbits)
    data = c.compress(b"plain text") + c.flush()
    assert _resp(data, "text/plain", ("Content-Encoding", "deflate"))["body"] == "plain text"


def test_corrupt_gzip_is_base64_of_the_raw_bytes() -> None:
    r = _resp(b"\x1f\x8b not gzip", "application/json", ("Content-Encoding", "gzip"))
    assert r["transfer_encoding"] == "base64" and base64.b64decode(r["body"]) == b"\x1f\x8b not gzip"  # type: ignore


def test_compression_bomb_is_bounded_and_marked() -> None:
    bomb = gzip.compress(b"\0" * 50_000_000)  # 50 MB of zeros in ~50 KB
    assert len(bomb) < 100_000
    r = _resp(bomb, "application/json", ("Content-Encoding", "gzip"))
    assert "body" not in r
    assert r["_metadata"] == {"apimon": {"truncated": {"response.body": None}}}


def test_body_over_cap_is_left_out_and_marked_with_full_size() -> None:
    big = b"x" * 262_144
    raw = make_raw(resp_headers=[("Content-Type", "text/plain")], resp_body=big, cap=100_000)
    assert raw.resp_body is not None and raw.resp_body.held == 0  # over the cap nothing is held
    event = build(raw, max_body_bytes=100_000)
    assert "body" not in event["response"]
    assert event["metadata"] == {"apimon": {"truncated": {"response.body": 262144}}}


def test_body_over_cap_with_unknown_size_is_null() -> None:
    raw = make_raw(req_headers=[("Content-Type", "text/plain")])
    raw.req_body = tee(b"y" * 20, cap=10, complete=False)
    event = build(raw, max_body_bytes=10)
    assert event["metadata"] == {"apimon": {"truncated": {"request.body": None}}}


def test_log_body_false_means_no_bodies() -> None:
    raw = make_raw(req_body=b'{"a": 1}', resp_body=b"ok", req_headers=[("Content-Type", "application/json")])
    event = build(raw, log_body=False)
    assert "body" not in event["request"] and "body" not in event["response"]


@pytest.mark.parametrize(("method", "status"), [("HEAD", 200), ("GET", 204), ("GET", 304)])
def test_no_response_body_for_head_204_304(method: str, status: int) -> None:
    event = build(make_raw(method=method, status=status, resp_body=b"should not appear"))
    assert "body" not in event["response"]


def test_multipart_summary_never_contains_file_contents() -> None:
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="title"\r\n\r\nholiday\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="password"\r\n\r\nhunter2\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="photo"; filename="a.png"\r\n'
        b"Content-Type: image/png\r\n\r\n\x89PNG-secret-bytes\r\n--XyZ--\r\n"
    )
    raw = make_raw(method="POST", req_headers=[("Content-Type", 'multipart/form-data; boundary="XyZ"')], req_body=body)
    event = build(raw)
    assert event["request"]["body"] == {
        "title": "holiday",
        "password": "[REDACTED]",
        "photo": {"filename": "a.png", "content_type": "image/png", "size": 17},
    }


def test_malformed_multipart_is_base64() -> None:
    raw = make_raw(method="POST", req_headers=[("Content-Type", "multipart/form-data; boundary=q")], req_body=b"zz")
    assert build(raw)["request"]["transfer_encoding"] == "base64"


# -- who made the call (docs/events.md#who-made-the-call) -------------------------------------------------------------


def _jwt(payload: bytes) -> str:
    return "eyJhbGciOiJIUzI1NiJ9." + base64.urlsafe_b64encode(payload).decode().rstrip("=") + ".sig"


def test_user_from_bearer_jwt_sub_and_session_is_hash() -> None:
    auth = "Bearer " + _jwt(b'{"sub": "user-42"}')
    event = build(make_raw(req_headers=[("Authorization", auth)]))
    assert event["user_id"] == "user-42"
    keyed = build(make_raw(req_headers=[("Authorization", auth)]), session_secret="k1")
    digest = hmac.new(b"k1", auth.encode(), hashlib.sha256).hexdigest()[:32]
    assert keyed["session_token"] == "sha256:" + digest
    assert event["session_token"].startswith("sha256:") and len(event["session_token"]) == 39
    assert auth not in str(event)  # the raw credential never leaves the process


def test_a_weak_basic_password_is_not_recovered_from_the_session_token() -> None:
    # With a plain SHA-256 the user name beside the token let a dictionary find the password.
    auth = "Basic " + base64.b64encode(b"alice:hunter2").decode()
    key = session_key(Config.from_options(moesif_application_id="app-id-1"))
    event = build(make_raw(req_headers=[("Authorization", auth)]), session_secret=key)
    assert event["user_id"] == "alice"

    def unkeyed(password: str) -> str:
        value = "Basic " + base64.b64encode(f"alice:{password}".encode()).decode()
        return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:32]

    assert event["session_token"] not in {unkeyed(w) for w in ("password", "123456", "hunter2", "letmein")}
    digest = hmac.new(b"app-id-1", auth.encode(), hashlib.sha256).hexdigest()[:32]
    assert event["session_token"] == "sha256:" + digest  # keyed by the Moesif app id: every worker agrees


@pytest.mark.parametrize(
    ("options", "headers", "expected"),
    [
        # user_id_headers: the first of the named headers present is read, in the order given.
        ({"user_id_headers": ["X-Api-Key", "Authorization"]}, [("X-Api-Key", _jwt(b'{"sub": "k-1"}'))], "k-1"),
        (
            {"user_id_headers": "x-api-key, authorization"},
            [("Authorization", "Bearer " + _jwt(b'{"sub": "a-1"}'))],
            "a-1",
        ),
        (
            {"user_id_headers": ["X-Api-Key", "Authorization"]},
            [("X-Api-Key", "Bearer " + _jwt(b'{"sub": "k-2"}')), ("Authorization", "Bearer " + _jwt(b'{"sub": "a"}'))],
            "k-2",
        ),
        # A header that is not a credential apimon can read gives no user (a plain API key).
        ({"user_id_headers": ["X-Api-Key"]}, [("X-Api-Key", "sk_live_abc123")], None),
        ({"user_id_headers": ["X-Api-Key"]}, [("Authorization", "Bearer " + _jwt(b'{"sub": "a"}'))], None),
        # user_id_claim: another claim, a dotted path into nested claims, a number.
        ({"user_id_claim": "uid"}, [("Authorization", "Bearer " + _jwt(b'{"sub": "s", "uid": "u-9"}'))], "u-9"),
        ({"user_id_claim": "user.id"}, [("Authorization", "Bearer " + _jwt(b'{"user": {"id": 77}}'))], "77"),
        ({"user_id_claim": "user.id"}, [("Authorization", "Bearer " + _jwt(b'{"user.id": "flat"}'))], "flat"),
        ({"user_id_claim": "user.id"}, [("Authorization", "Bearer " + _jwt(b'{"user": "x"}'))], None),
        ({"user_id_claim": "uid"}, [("Authorization", "Bearer " + _jwt(b'{"uid": true}'))], None),
        ({"user_id_claim": "uid"}, [("Authorization", "Basic " + base64.b64encode(b"bob:pw").decode())], "bob"),
    ],
)
def test_user_id_source_options(options: dict[str, Any], headers: list[tuple[str, str]], expected: str | None) -> None:
    event = build(make_raw(req_headers=headers), **options)
    assert event.get("user_id") == expected


@pytest.mark.parametrize("bad", [[], [""], "", " , ", [1]])
def test_user_id_headers_must_name_a_header(bad: Any) -> None:
    with pytest.raises(ValueError, match="user_id_headers"):
        Config.from_options(user_id_headers=bad)


def test_user_from_basic_auth() -> None:
    auth = "Basic " + base64.b64encode(b"alice:secret").decode()
    event = build(make_raw(req_headers=[("Authorization", auth)]))
    assert event["user_id"] == "alice"
    assert "secret" not in str(event)


@pytest.mark.parametrize(
    "auth",
    [
        "Bearer not-a-jwt",
        "Bearer a.!!!.c",
        f"Bearer {_jwt(b'[1,2]')}",
        f"Bearer {_jwt(b'{}')}",
        "Basic ***",
        "Basic " + base64.b64encode(b"nocolon").decode(),
        "Digest x",
    ],
)
def test_bad_credentials_give_no_user_but_a_session(auth: str) -> None:
    event = build(make_raw(req_headers=[("Authorization", auth)]))
    assert "user_id" not in event
    assert event["session_token"].startswith("sha256:")


def test_framework_user_wins_over_jwt_and_hook_wins_over_both() -> None:
    raw = make_raw(req_headers=[("Authorization", "Bearer " + _jwt(b'{"sub": "jwt-user"}'))])
    raw.framework_user = "django-user"
    assert build(raw)["user_id"] == "django-user"
    raw.user_id = "hook-user"
    assert build(raw)["user_id"] == "hook-user"


def test_session_cookie_hash_without_authorization() -> None:
    raw = make_raw()
    raw.session_cookie = "abc123"
    digest = hmac.new(b"s", b"abc123", hashlib.sha256).hexdigest()[:32]
    assert build(raw, session_secret="s")["session_token"] == "sha256:" + digest


# -- redaction (docs/events.md#redaction) ---------------------------------------------------------------------

SECRET_HEADERS = [
    "Authorization",
    "Proxy-Authorization",
    "Cookie",
    "Set-Cookie",
    "X-Api-Key",
    "Api-Key",
    "X-Auth-Token",
    "X-Csrf-Token",
    "X-Moesif-Application-Id",
]


def test_default_header_redaction() -> None:
    raw = make_raw(
        req_headers=[(h.lower(), "s3cr3t") for h in SECRET_HEADERS] + [("Accept", "*/*")],
        resp_headers=[(h.upper(), "s3cr3t") for h in SECRET_HEADERS],
    )
    event = build(raw)
    assert event["request"]["headers"] == {**{h: "[REDACTED]" for h in SECRET_HEADERS}, "Accept": "*/*"}
    assert event["response"]["headers"] == {h: "[REDACTED]" for h in SECRET_HEADERS}
    assert "s3cr3t" not in str(event)


def test_default_body_field_redaction_at_any_depth() -> None:
    body = (
        b'{"user": {"Password": "p", "profile": {"ssn": "1", "cards": [{"card_number": "4111", "CVV": 1}]}},'
        b' "access_token": {"nested": "object"}, "keep": "me"}'
    )
    raw = make_raw(
        method="POST",
        req_headers=[("Content-Type", "application/json")],
        req_body=body,
        resp_headers=[("Content-Type", "application/json")],
        resp_body=b'[{"refresh_token": "r"}]',
    )
    event = build(raw)
    assert event["request"]["body"] == {
        "user": {
            "Password": "[REDACTED]",
            "profile": {"ssn": "[REDACTED]", "cards": [{"card_number": "[REDACTED]", "CVV": "[REDACTED]"}]},
        },
        "access_token": "[REDACTED]",
        "keep": "me",
    }
    assert event["response"]["body"] == [{"refresh_token": "[REDACTED]"}]


def test_form_body_redaction_keeps_other_bytes() -> None:
    raw = make_raw(
        method="POST",
        req_headers=[("Content-Type", "application/x-www-form-urlencoded")],
        req_body=b"name=al+ice&PassWord=hunter2&x=%41&token",
    )
    assert build(raw)["request"]["body"] == "name=al+ice&PassWord=[REDACTED]&x=%41&token"


def test_custom_redaction_lists_replace_the_defaults() -> None:
    raw = make_raw(
        method="POST",
        req_headers=[("Authorization", "a"), ("X-Custom", "c"), ("Content-Type", "application/json")],
        req_body=b'{"password": "p", "pin": "1234"}',
    )
    event = build(raw, redact_headers=["x-custom"], redact_body_fields=["PIN"])
    assert event["request"]["headers"]["X-Custom"] == "[REDACTED]"
    assert event["request"]["headers"]["Authorization"] == "a"
    assert event["request"]["body"] == {"password": "p", "pin": "[REDACTED]"}


def test_weight_metadata_route_and_company() -> None:
    raw = make_raw()
    raw.weight = 4
    raw.company_id = "acme"
    raw.route = "/items/<id>"
    raw.metadata = {"plan": "pro", "apimon": {"custom": 1}}
    raw.api_version = "2.1"
    event = build(raw)
    assert event["weight"] == 4 and event["company_id"] == "acme"
    assert event["request"]["api_version"] == "2.1"
    assert event["metadata"] == {"plan": "pro", "apimon": {"custom": 1, "route": "/items/<id>"}}


def test_redaction_sees_through_unicode_escaped_keys() -> None:
    raw = make_raw(
        method="POST", req_headers=[("Content-Type", "application/json")], req_body=b'{"pass\\u0077ord": "p", "ok": 1}'
    )
    assert build(raw)["request"]["body"] == {"password": "[REDACTED]", "ok": 1}


@pytest.mark.parametrize(
    "body",
    [
        # Few keys for its size: checked by walking the parsed value.
        {"blob": "A" * 50_000, "nested": {"note": "x" * 5000, "Client_Secret": "s"}},
        # Many keys for its size: checked by searching the bytes first, the secret buried deep.
        {"rows": [{f"k{j}": j for j in range(10)} for _ in range(300)] + [{"deep": [{"cvc": "123"}]}]},
        # Small and flat: its keys are checked directly, without the walk.
        {"user": "al", "Password": "s", "n": 1, "CVC": "123"},
        # Flat but over FLAT_KEYS keys, and flat but for its last value: both go to the walk.
        {**{f"k{j}": j for j in range(40)}, "token": "s", "cvc": "123"},
        {"a": 1, "token": "s", "z": {"cvc": "123"}},
    ],
    ids=["long-strings", "key-dense", "flat", "flat-many-keys", "flat-but-last"],
)
def test_body_redaction_holds_whatever_the_body_shape(body: Any) -> None:
    data = orjson.dumps(body)
    raw = make_raw(method="POST", req_headers=[("Content-Type", "application/json")], req_body=data)
    got = build(raw)["request"]["body"]
    text = orjson.dumps(got)
    assert b"[REDACTED]" in text and b'"s"' not in text and b'"123"' not in text
    expected = orjson.loads(data)
    assert redact_json(expected, Config.from_options({}).redact_body_fields) > 0
    assert got == expected


def test_keys_hidden_between_the_sampled_windows_are_still_redacted() -> None:
    # The cost model counts ':' in three 256-byte windows (start, middle, end); here all three
    # fall (nearly) inside long strings, so it sees almost no keys, walks, and must still find the secrets.
    rows = [{f"k{j}": j for j in range(8)} for _ in range(60)]
    body = {"head": "h" * 600, "a": [*rows, {"token": "t1"}], "mid": "m" * 6000, "b": [*rows, {"Password": "p1"}]}
    body["tail"] = "z" * 600
    data = orjson.dumps(body)
    raw = make_raw(method="POST", req_headers=[("Content-Type", "application/json")], req_body=data)
    got = build(raw)["request"]["body"]
    assert got["a"][-1] == {"token": "[REDACTED]"} and got["b"][-1] == {"Password": "[REDACTED]"}
    assert got["a"][:-1] == rows and got["mid"] == "m" * 6000


def test_key_dense_body_without_secrets_is_unchanged() -> None:
    body = [{"id": i, "name": f"w{i}", "qty": i} for i in range(500)]
    raw = make_raw(method="POST", req_headers=[("Content-Type", "application/json")], req_body=orjson.dumps(body))
    assert build(raw)["request"]["body"] == body


def test_transaction_ids_differ_between_parent_and_child_after_fork() -> None:
    import os

    from apimon.event import transaction_ids

    transaction_ids.next()  # the parent holds a block of pre-cut ids
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids and leave at once
        os.write(write, ",".join(transaction_ids.next() for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 4096).decode().split(",")
    os.close(read)
    parent = [transaction_ids.next() for _ in range(5)]
    assert len(child) == 5 and not set(child) & set(parent)


def test_header_names_clients_make_up_are_canonical_and_their_cache_stays_bounded() -> None:
    from apimon import headers

    pairs = [(f"x-made-up-{i}".encode(), b"v") for i in range(3000)] + [(b"X-MADE-UP-7", b"w")]
    merged = headers.merge(pairs)
    assert len(merged) == 3000
    assert merged["X-Made-Up-7"] == "v,w" and merged["X-Made-Up-2999"] == "v"
    assert len(headers._KNOWN) <= headers._KNOWN_MAX


def test_transaction_ids_across_blocks_are_distinct_canonical_uuid4s() -> None:
    from apimon.event import transaction_ids

    ids = [transaction_ids.next() for _ in range(1000)]  # several blocks of 256
    assert len(set(ids)) == 1000
    for txid in ids:
        parsed = uuid.UUID(txid)
        assert str(parsed) == txid and parsed.version == 4 and parsed.variant == uuid.RFC_4122
    # Every digit that is not the version's is random: no position is constant across ids.
    assert all(len({txid[i] for txid in ids}) > 1 for i in range(36) if i not in (8, 13, 14, 18, 23))


# -- redaction gaps: JSON whatever its type says, nested form names, the query ---------------------


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"password": "hunter2", "ratio": NaN, "max": Infinity, "min": -Infinity}'),
        ("text/plain", b'{"user": {"token": "hunter2"}}'),
        ("text/plain; charset=utf-8", b' [{"api_key": "hunter2"}, NaN]'),
        (None, b'{"secret": "hunter2"}'),
        ("application/octet-stream", b'{"client_secret": "hunter2"}'),
    ],
    ids=["json-with-nan", "text-plain", "text-array-nan", "no-type", "octet-stream"],
)
def test_a_body_that_is_json_is_redacted_whatever_its_type(content_type: str | None, body: bytes) -> None:
    headers = [("Content-Type", content_type)] if content_type else []
    event = build(make_raw(method="POST", req_headers=headers, req_body=body, resp_headers=headers, resp_body=body))
    for section in ("request", "response"):
        shown = event[section]["body"]
        assert isinstance(shown, str) and "hunter2" not in shown and "[REDACTED]" in shown, shown
        assert event[section].get("transfer_encoding") is None


def test_json_text_with_nothing_to_redact_stays_as_sent() -> None:
    body = b'{"ratio": NaN,  "n": 1}'
    event = build(make_raw(method="POST", req_headers=[("Content-Type", "text/plain")], req_body=body))
    assert event["request"]["body"] == body.decode()


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ("user[password]=hunter2&user[name]=al", "user[password]=[REDACTED]&user[name]=al"),
        ("user%5Btoken%5D=hunter2&n=1", "user%5Btoken%5D=[REDACTED]&n=1"),
        ("creds[0][api_key]=hunter2", "creds[0][api_key]=[REDACTED]"),
        ("password[]=hunter2&password[]=x", "password[]=[REDACTED]&password[]=[REDACTED]"),
        ("user[passwords]=ok&pass[word]=ok", "user[passwords]=ok&pass[word]=ok"),
    ],
)
def test_nested_form_names_are_matched_by_their_last_part(form: str, expected: str) -> None:
    ctype = [("Content-Type", "application/x-www-form-urlencoded")]
    event = build(make_raw(method="POST", req_headers=ctype, req_body=form.encode()))
    assert event["request"]["body"] == expected


def test_nested_multipart_names_are_redacted() -> None:
    body = b'--b\r\nContent-Disposition: form-data; name="user[password]"\r\n\r\nhunter2\r\n--b--\r\n'
    raw = make_raw(method="POST", req_headers=[("Content-Type", "multipart/form-data; boundary=b")], req_body=body)
    assert build(raw)["request"]["body"] == {"user[password]": "[REDACTED]"}


def test_secrets_in_the_query_are_redacted_in_the_uri_only() -> None:
    raw = make_raw(path="/cb", query="code=ok&access_token=hunter2&API_KEY=hunter2&sig=abc&monkey=1&user%5Btoken%5D=x")
    event = build(raw)
    assert event["request"]["uri"] == (
        "https://api.example.com/cb?code=ok&access_token=[REDACTED]&API_KEY=[REDACTED]&sig=[REDACTED]&monkey=1"
        "&user%5Btoken%5D=[REDACTED]"
    )
    assert raw.query.endswith("user%5Btoken%5D=x")  # what the app read is untouched
    assert build(raw, redact_query_params=["monkey"])["request"]["uri"].endswith("&monkey=[REDACTED]&user%5Btoken%5D=x")
    assert build(make_raw(path="/p", query="page=2"))["request"]["uri"].endswith("/p?page=2")
