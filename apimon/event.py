"""Build the Moesif API Call event (docs/events.md) from a :class:`~apimon.record.RawCall`.

Runs on the flusher thread: everything here may cost microseconds, none of it is on the request path.
"""

from __future__ import annotations

import os
import time
from functools import lru_cache
from typing import Any

from apimon import headers as hdr
from apimon.bodies import Body, classify
from apimon.config import Config
from apimon.identity import session_hash, user_from_headers
from apimon.ipaddr import client_ip, header_values
from apimon.record import RawCall
from apimon.redact import redact_query
from apimon.tee import BodyTee

_NO_BODY_STATUSES = frozenset({204, 304})
OUTGOING = "Outgoing"
_DEFAULT_PORTS = {"http": "80", "https": "443"}


@lru_cache(maxsize=64)
def _second(secs: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))


# ".000Z" to ".999Z": two per event, and a lookup costs half of formatting the number.
_MILLIS = tuple(f".{n:03d}Z" for n in range(1000))


def iso_ms(ts: float) -> str:
    """``2026-11-25T14:04:34.785Z``: UTC, ISO 8601, milliseconds (docs/events.md#times-uri-verb-status-headers)."""
    ms = int(ts * 1000)
    return _second(ms // 1000) + _MILLIS[ms % 1000]


class _TransactionIds:
    """UUID4 strings cut from one ``os.urandom`` block of 256 ids (``uuid.uuid4()`` costs 2 µs each).

    The block is laid out once as 256 ready strings in one text (:func:`_uuid_block`); an id is
    one slice of it: ~0.23 µs, against ~0.58 for formatting five slices of hex per id.
    """

    def __init__(self) -> None:
        self._text = ""
        self._at = 0

    def reset(self) -> None:
        """Drop the block: after a fork, parent and child must not cut the same ids (Moesif
        deduplicates by transaction_id, so a repeated id would be a silently lost event)."""
        self._text, self._at = "", 0

    def next(self) -> str:
        at = self._at
        if at >= len(self._text):
            self._text, at = _uuid_block(256), 0
        self._at = at + 36
        return self._text[at : at + 36]


# Where the 32 hex digits of a UUID go in its 36-character form (8-4-4-4-12).
_DIGIT_AT = [*range(0, 8), *range(9, 13), *range(14, 18), *range(19, 23), *range(24, 36)]
# The variant digit keeps its two low random bits and gets the high bits 10: 8, 9, a or b.
_VARIANT = bytes.maketrans(b"0123456789abcdef", b"89ab" * 4)


def _uuid_block(n: int) -> str:
    """``n`` random version-4 UUIDs (RFC 4122, 122 random bits each), 36 characters apiece, in
    one string: each of the 32 digit positions is filled for all ids by one slice assignment."""
    digits = os.urandom(16 * n).hex().encode("ascii")
    out = bytearray(b"-" * (36 * n))
    for digit, at in enumerate(_DIGIT_AT):
        out[at::36] = digits[digit::32]
    out[14::36] = b"4" * n  # the version digit
    out[19::36] = digits[16::32].translate(_VARIANT)
    return out.decode("ascii")


transaction_ids = _TransactionIds()

#: The response header carrying the event's ``transaction_id`` (option ``transaction_id_header``).
TRANSACTION_HEADER = "X-Moesif-Transaction-Id"


def response_transaction_id(raw: RawCall) -> str:
    """The call's transaction id, fixed now for the response header. Always apimon's own: an id
    a client sent (``X-Moesif-Transaction-Id`` on the request, which the event keeps among its
    request headers) would let any client make Moesif deduplicate other calls' events away."""
    tid = raw.transaction_id
    if tid is None:
        tid = raw.transaction_id = transaction_ids.next()
    return tid


os.register_at_fork(after_in_child=transaction_ids.reset)


def build_uri(scheme: str, host: str, raw_path: str, query: str) -> str:
    """scheme://host[:port]/raw/path?query with the default port left out."""
    path = raw_path if raw_path[:1] == "/" else "/" + raw_path
    uri = (_origin(scheme, host) if len(host) <= 128 else _parse_origin(scheme, host)) + path
    return f"{uri}?{query}" if query else uri


def _parse_origin(scheme: str, host: str) -> str:
    name, colon, port = host.rpartition(":")
    if colon and "]" not in port and _DEFAULT_PORTS.get(scheme) == port:
        host = name
    return f"{scheme}://{host}"


# A process serves a handful of (scheme, Host) pairs: each short one is parsed once.
_origin = lru_cache(maxsize=256)(_parse_origin)


def _body_into(
    target: dict[str, Any],
    whole: bytes | None,
    tee: BodyTee | None,
    content_type: str | None,
    content_encoding: str | None,
    config: Config,
    where: str,
    truncated: dict[str, int | None],
    check_depth: bool,
) -> None:
    # A body that came in one piece (adapters keep it only within the cap) is read as the app's
    # own bytes: no BodyTee is made for it.
    if whole is not None:
        data = whole
    elif tee is None or tee.size == 0:
        return
    elif tee.truncated:
        truncated[where] = tee.size if tee.complete else None
        return
    else:
        data = tee.data()
    if not data:
        return
    body: Body | None = classify(
        data,
        content_type,
        content_encoding,
        config.max_body_bytes,
        config.redact_body_fields,
        check_depth,
        # Bodies may stay the app's JSON bytes unless a mask_event hook reads the event first.
        config.mask_event is None,
    )
    if body is None:
        return
    if body.oversize:
        # The decoded size is unknown: decoding stopped at the cap.
        truncated[where] = None
        return
    target["body"] = body.value
    if body.transfer_encoding:
        target["transfer_encoding"] = body.transfer_encoding


def build_event(raw: RawCall, config: Config, check_depth: bool = False) -> dict[str, Any]:
    """The event as a plain dict, ready for ``mask_event`` and orjson.

    A JSON body is not checked for nesting too deep to encode unless ``check_depth``: the
    pipeline builds again with it when encoding fails (such a body then becomes text)."""
    req_headers = hdr.merge(raw.req_headers)
    resp_headers = hdr.merge(raw.resp_headers)

    outgoing = raw.direction == OUTGOING
    parent = raw.parent
    company_id = raw.company_id
    if not outgoing:
        authorization = req_headers.get("Authorization")
        user_id = (
            raw.user_id
            or raw.framework_user
            or user_from_headers(req_headers, config.user_id_headers, config.user_id_claim)
        )
        session_token = raw.session_token
        if session_token is None and config.session_from_credentials:
            credential = authorization or raw.session_cookie
            if credential:
                session_token = session_hash(credential, config.session_secret)
        trusted = config.client_ip
        if trusted is None:
            ip = client_ip(header_values(req_headers), raw.peer)
        else:
            ip = trusted(tuple(map(req_headers.get, trusted.headers)), raw.peer)
        # For the outgoing calls made inside this one, built right after it.
        raw.resolved_user, raw.resolved_company, raw.resolved_session = user_id, company_id, session_token
    else:
        # An outgoing call's credentials are the app's, towards another API: its user, company
        # and session are those of the incoming call it was made in, if any.
        user_id, session_token, ip = raw.user_id, raw.session_token, None
        if parent is not None:
            user_id = user_id or parent.resolved_user
            company_id = company_id or parent.resolved_company
            session_token = session_token or parent.resolved_session

    request: dict[str, Any] = {
        "time": iso_ms(raw.start),
        "uri": build_uri(raw.scheme, raw.host, raw.raw_path, redact_query(raw.query, config.redact_query_params)),
        "verb": raw.method.upper(),
    }
    if raw.api_version:
        request["api_version"] = raw.api_version
    if ip:
        request["ip_address"] = ip
    # An outgoing call that got no answer (refused, timed out) has no response (Moesif's API reference: "not
    # set implies no response received"); an incoming one that raised answered 500.
    response: dict[str, Any] = {"time": iso_ms(raw.end), "status": raw.status or 500}

    truncated: dict[str, int | None] = {}
    if config.log_body:
        _body_into(
            request,
            raw.req_whole,
            raw.req_body,
            req_headers.get("Content-Type"),
            req_headers.get("Content-Encoding"),
            config,
            "request.body",
            truncated,
            check_depth,
        )
        if request["verb"] != "HEAD" and raw.status not in _NO_BODY_STATUSES:
            _body_into(
                response,
                raw.resp_whole,
                raw.resp_body,
                resp_headers.get("Content-Type"),
                None if raw.resp_decoded else resp_headers.get("Content-Encoding"),
                config,
                "response.body",
                truncated,
                check_depth,
            )

    if raw.transaction_id is not None and config.transaction_id_header and not outgoing:
        # The id the response carried; the event's request shows it as the client now knows it
        # (a request that carried one of its own keeps it there).
        req_headers.setdefault(TRANSACTION_HEADER, raw.transaction_id)
    request["headers"] = hdr.redact(req_headers, config.redact_headers)
    response["headers"] = hdr.redact(resp_headers, config.redact_headers)

    transaction_id = raw.transaction_id or transaction_ids.next()
    raw.transaction_id = transaction_id  # the same id if the pipeline builds this call again
    event: dict[str, Any] = {"request": request}
    if not (outgoing and not raw.status):
        event["response"] = response
    event["transaction_id"] = transaction_id
    event["direction"] = raw.direction
    if user_id:
        event["user_id"] = user_id
    if company_id:
        event["company_id"] = company_id
    if session_token:
        event["session_token"] = session_token

    metadata: dict[str, Any] = dict(raw.metadata) if raw.metadata else {}
    apimon_meta: dict[str, Any] = {}
    if truncated:
        apimon_meta["truncated"] = truncated
    if raw.route:
        apimon_meta["route"] = raw.route
    if raw.error:
        apimon_meta["error"] = raw.error
    if raw.incomplete:
        apimon_meta["incomplete"] = raw.incomplete
    if parent is not None:
        if parent.transaction_id is None:  # the parent was never built (dropped): it gets one now
            parent.transaction_id = transaction_ids.next()
        apimon_meta["parent"] = parent.transaction_id
    if apimon_meta:
        existing = metadata.get("apimon")
        metadata["apimon"] = {**existing, **apimon_meta} if isinstance(existing, dict) else apimon_meta
    if metadata:
        event["metadata"] = metadata
    if raw.blocked_by:
        event["blocked_by"] = raw.blocked_by
    if raw.weight is not None:
        event["weight"] = raw.weight
    return event
