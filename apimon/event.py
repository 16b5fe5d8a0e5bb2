"""Build the Moesif API Call event (CONTRACT 2) from a :class:`~apimon.record.RawCall`.

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
from apimon.identity import session_hash, user_from_authorization
from apimon.ipaddr import client_ip
from apimon.record import BodyTee, RawCall

_NO_BODY_STATUSES = frozenset({204, 304})
_DEFAULT_PORTS = {"http": "80", "https": "443"}


@lru_cache(maxsize=64)
def _second(secs: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))


def iso_ms(ts: float) -> str:
    """``2026-11-25T14:04:34.785Z``: UTC, ISO 8601, milliseconds (CONTRACT 2.2)."""
    secs, frac = divmod(int(ts * 1000), 1000)
    return f"{_second(secs)}.{frac:03d}Z"


class _TransactionIds:
    """UUID4 strings from one ``os.urandom`` call per 256 ids (``uuid.uuid4()`` costs 2 µs each)."""

    def __init__(self) -> None:
        self._pool: list[str] = []

    def next(self) -> str:
        if not self._pool:
            data = os.urandom(16 * 256)
            self._pool = [_uuid4_from(data[i : i + 16]) for i in range(0, len(data), 16)]
        return self._pool.pop()


def _uuid4_from(b: bytes) -> str:
    # Set the version (4) and the RFC 4122 variant bits, as uuid.UUID(version=4) does.
    h = bytes((*b[:6], (b[6] & 0x0F) | 0x40, b[7], (b[8] & 0x3F) | 0x80, *b[9:])).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


transaction_ids = _TransactionIds()


def build_uri(scheme: str, host: str, raw_path: str, query: str) -> str:
    """scheme://host[:port]/raw/path?query with the default port left out."""
    name, colon, port = host.rpartition(":")
    if colon and "]" not in port and _DEFAULT_PORTS.get(scheme) == port:
        host = name
    path = raw_path if raw_path.startswith("/") else "/" + raw_path
    uri = f"{scheme}://{host}{path}"
    return f"{uri}?{query}" if query else uri


def _body_into(
    target: dict[str, Any],
    tee: BodyTee | None,
    content_type: str | None,
    content_encoding: str | None,
    config: Config,
    where: str,
    truncated: dict[str, int | None],
) -> None:
    if tee is None or tee.size == 0:
        return
    if tee.truncated:
        truncated[where] = tee.size if tee.complete else None
        return
    body: Body | None = classify(
        tee.data(), content_type, content_encoding, config.max_body_bytes, config.redact_body_fields
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


def build_event(raw: RawCall, config: Config) -> dict[str, Any]:
    """The event as a plain dict, ready for ``mask_event`` and orjson."""
    req_headers = hdr.merge(raw.req_headers)
    resp_headers = hdr.merge(raw.resp_headers)

    authorization = req_headers.get("Authorization")
    user_id = raw.user_id or raw.framework_user or user_from_authorization(authorization)
    session_token = raw.session_token
    if session_token is None:
        credential = authorization or raw.session_cookie
        if credential:
            session_token = session_hash(credential)

    ip = client_ip(
        req_headers.get("X-Forwarded-For"), req_headers.get("X-Real-Ip"), req_headers.get("Forwarded"), raw.peer
    )

    request: dict[str, Any] = {
        "time": iso_ms(raw.start),
        "uri": build_uri(raw.scheme, raw.host, raw.raw_path, raw.query),
        "verb": raw.method.upper(),
    }
    if raw.api_version:
        request["api_version"] = raw.api_version
    if ip:
        request["ip_address"] = ip
    response: dict[str, Any] = {"time": iso_ms(raw.end), "status": raw.status or 500}

    truncated: dict[str, int | None] = {}
    if config.log_body:
        _body_into(
            request,
            raw.req_body,
            req_headers.get("Content-Type"),
            req_headers.get("Content-Encoding"),
            config,
            "request.body",
            truncated,
        )
        if request["verb"] != "HEAD" and raw.status not in _NO_BODY_STATUSES:
            _body_into(
                response,
                raw.resp_body,
                resp_headers.get("Content-Type"),
                resp_headers.get("Content-Encoding"),
                config,
                "response.body",
                truncated,
            )

    request["headers"] = hdr.redact(req_headers, config.redact_headers)
    response["headers"] = hdr.redact(resp_headers, config.redact_headers)

    event: dict[str, Any] = {
        "request": request,
        "response": response,
        "transaction_id": transaction_ids.next(),
        "direction": "Incoming",
    }
    if user_id:
        event["user_id"] = user_id
    if raw.company_id:
        event["company_id"] = raw.company_id
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
    if apimon_meta:
        existing = metadata.get("apimon")
        metadata["apimon"] = {**existing, **apimon_meta} if isinstance(existing, dict) else apimon_meta
    if metadata:
        event["metadata"] = metadata
    if raw.weight is not None:
        event["weight"] = raw.weight
    return event
