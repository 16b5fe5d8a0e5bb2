"""Builds events for tests/core/test_speedups.py in a process of its own, so that the choice
between the compiled speedups and the Python reference is made exactly as in production: by
``APIMON_PURE_PYTHON`` at import.

Reads one raw call a line (JSON, see ``make_raw``) on stdin, writes the encoded event (what the
sinks get, base64) or the error's class name on stdout.
"""

from __future__ import annotations

import base64
import gzip
import sys
from typing import Any

import orjson

from apimon.config import Config
from apimon.counters import Counters
from apimon.environ import resolve_environ
from apimon.native import ACTIVE
from apimon.pipeline import Pipeline
from apimon.record import RawCall
from apimon.tee import BodyTee


def _bytes(value: Any) -> Any:
    """Header pairs travel as JSON: ``{"b": base64}`` stands for a bytes value."""
    if isinstance(value, dict):
        return base64.b64decode(value["b"])
    return value


def make_raw(spec: dict[str, Any]) -> RawCall:
    """A raw call as each adapter makes it: a WSGI/Django environ resolved on the flusher, ASGI
    byte pairs, or str pairs (outgoing calls, the explicit API)."""
    start = 1795615474.785 + spec["offset"]
    if spec["kind"] == "wsgi":
        environ = {key: _bytes(value) for key, value in spec["environ"]}
        raw = RawCall.deferred(environ, resolve_environ, start)
    else:
        pairs = [(_bytes(n), _bytes(v)) for n, v in spec["req_headers"]]
        raw = RawCall(
            spec["method"], spec["scheme"], spec["host"], spec["path"], spec["query"], pairs, spec["peer"], start
        )
    raw.end = start + spec["duration"]
    raw.status = spec["status"]
    raw.resp_headers = [(_bytes(n), _bytes(v)) for n, v in spec["resp_headers"]]
    raw.transaction_id = spec["transaction_id"]
    for side in ("req", "resp"):
        body = spec.get(side + "_body")
        if body is None:
            continue
        data = base64.b64decode(body)
        if spec.get(side + "_gzip"):
            data = gzip.compress(data, mtime=0)
        if spec.get(side + "_whole"):
            setattr(raw, side + "_whole", data)
        else:
            tee = BodyTee(spec["options"].get("max_body_bytes", 100_000))
            tee.feed(data)
            tee.complete = True
            setattr(raw, side + "_body", tee)
    for name in ("user_id", "company_id", "session_token", "metadata", "route", "direction", "error", "incomplete"):
        if name in spec:
            setattr(raw, name, spec[name])
    return raw


def main() -> None:
    out = sys.stdout.buffer
    out.write(b"native\n" if ACTIVE else b"pure\n")
    out.flush()
    configs: dict[bytes, Config] = {}
    for line in sys.stdin.buffer:
        spec = orjson.loads(line)
        key = orjson.dumps(spec["options"], option=orjson.OPT_SORT_KEYS)
        config = configs.get(key)
        if config is None:
            config = configs[key] = Config.from_options({"store": "off", "session_secret": "k", **spec["options"]})
        counters = Counters()
        try:
            item = Pipeline(config, counters, []).prepare(make_raw(spec))
            answer = b"none " + orjson.dumps(counters.snapshot()) if item is None else base64.b64encode(item.data)
        except Exception as exc:  # the two must fail alike too
            answer = b"raised " + type(exc).__name__.encode()
        out.write(answer + b"\n")
        out.flush()


if __name__ == "__main__":
    main()
