"""The compat apps on Moesif's own middlewares and on apimon.compat, side by side, against the same
fake Moesif: what reaches Moesif for the same requests, field by field (``./dev moesif-compare``,
which installs moesifwsgi, moesifasgi and moesifdjango first).

Usage: ``python -m tests.compat.compare [flask|fastapi|django ...]``; prints a Markdown table.
"""

from __future__ import annotations

import base64
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from apimon.testing import FakeMoesif
from tests.compat.expect import drive
from tests.compat.harness import events_by_test_id, header, server
from tests.httpcheck import Reply, exchange

APPS = {
    "flask": ("gunicorn", "tests.compat.apps.flask_moesif:app", {}),
    "fastapi": ("uvicorn", "tests.compat.apps.fastapi_moesif:app", {}),
    "django": (
        "gunicorn",
        "tests.compat.apps.django_moesif.wsgi:application",
        {"DJANGO_SETTINGS_MODULE": "tests.compat.apps.django_moesif.settings"},
    ),
}
CALLS = ("hooked", "builtin", "whoami")
SKIPPED = ("health", "teapot", "drop")


def run(framework: str, impl: str) -> tuple[FakeMoesif, dict[str, Reply]]:
    kind, target, env = APPS[framework]
    moesif = FakeMoesif(lenient=True)
    with moesif:
        env = {**env, "MOESIF_IMPL": impl}
        with server(kind, target, Path(tempfile.mkdtemp()), moesif, env) as srv:
            replies = drive(srv.port)
            if framework == "django":
                replies["whoami"] = exchange(srv.port, "GET", "/whoami", None, [("X-Api-Token", "t")], "whoami")
            # Moesif's middlewares send on timers of their own and not all flush at exit: wait for
            # the events while the server runs.
            deadline = time.monotonic() + 20
            want = {"hooked", "builtin"}
            while time.monotonic() < deadline and not want <= set(events_by_test_id(moesif)):
                time.sleep(0.2)
            time.sleep(3)
    return moesif, replies


def _body(part: dict[str, Any]) -> Any:
    body = part.get("body")
    if part.get("transfer_encoding") == "base64" and isinstance(body, str):
        raw = base64.b64decode(body)
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw.decode("utf-8", "replace")
    return body


def fields(moesif: FakeMoesif, replies: dict[str, Reply]) -> dict[str, Any]:
    """What is compared: per call, the fields the compat layer promises."""
    by_id = events_by_test_id(moesif)
    out: dict[str, Any] = {}
    for name in SKIPPED:
        out[f"{name}: event sent"] = name in by_id
        out[f"{name}: the status the client got"] = replies[name].status
    for name in CALLS:
        if name not in replies:
            continue
        event = by_id.get(name)
        out[f"{name}: event sent"] = event is not None
        if event is None:
            continue
        request, response = event["request"], event.get("response", {})
        reply_tid = {k.lower(): v for k, v in replies[name].headers}.get("x-moesif-transaction-id")
        meta = {k: v for k, v in (event.get("metadata") or {}).items() if k != "apimon"}
        values = {
            "verb": request.get("verb"),
            # The two servers listen on different ports: the path and query are compared.
            "uri": _path(request.get("uri")),
            "ip_address": request.get("ip_address"),
            "user_id": event.get("user_id"),
            "company_id": event.get("company_id"),
            "session_token": event.get("session_token"),
            "metadata": meta or None,
            "request.body": _body(request),
            "response.status": response.get("status"),
            "response.body": _body(response),
            "request header X-Secret": header(request, "X-Secret"),
            "request header X-Api-Token": header(request, "X-Api-Token"),
            "response carries X-Moesif-Transaction-Id": reply_tid is not None,
            "event headers carry that id": reply_tid is not None
            and header(request, "X-Moesif-Transaction-Id") == reply_tid
            and header(response, "X-Moesif-Transaction-Id") == reply_tid,
        }
        for key, value in values.items():
            out[f"{name}: {key}"] = _without_nulls(value)
    users = {u.get("user_id"): u for u in moesif.users}
    companies = {c.get("company_id"): c for c in moesif.companies}
    for key in ("company_id", "campaign", "metadata", "session_token", "ip_address", "user_agent_string"):
        out[f"user profile: {key}"] = _without_nulls(users.get("12345", {}).get(key))
    for key in ("company_domain", "campaign", "metadata"):
        out[f"company profile: {key}"] = _without_nulls(companies.get("67890", {}).get(key))
    return out


def _path(uri: Any) -> Any:
    if not isinstance(uri, str) or "://" not in uri:
        return uri
    return "/" + uri.split("://", 1)[1].partition("/")[2]


def _without_nulls(value: Any) -> Any:
    """Moesif's models send every field they have, null when unset: the same as leaving it out."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


#: Differences on purpose (docs/migrating-from-moesif.md), named in the table.
WHY = {
    "request.body": "apimon's redaction on top of the mask",
    "response.body": "apimon's redaction on top of the mask",
    "event headers carry that id": "a client's own id is not reused",
    "session_token": "the session key sent as its HMAC",
}


def _short(value: Any) -> str:
    text = orjson.dumps(value).decode() if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def main(argv: list[str]) -> int:
    frameworks = argv or list(APPS)
    results: dict[str, tuple[dict[str, Any], dict[str, Any], list[str]]] = {}
    for framework in frameworks:
        theirs, their_replies = run(framework, "moesif")
        ours, our_replies = run(framework, "apimon")
        results[framework] = (fields(theirs, their_replies), fields(ours, our_replies), theirs.deviations)
    keys: list[str] = []
    for theirs_fields, ours_fields, _ in results.values():
        for key in [*theirs_fields, *ours_fields]:
            if key not in keys:
                keys.append(key)
    print("| field | " + " | ".join(frameworks) + " |")
    print("|---|" + "---|" * len(frameworks))
    same = differ = 0
    for key in keys:
        cells = []
        for framework in frameworks:
            theirs_fields, ours_fields, _ = results[framework]
            if key not in theirs_fields and key not in ours_fields:
                cells.append("")
            elif theirs_fields.get(key) == ours_fields.get(key):
                same += 1
                cells.append("same")
            else:
                differ += 1
                why = WHY.get(key.partition(": ")[2], "")
                text = f"Moesif `{_short(theirs_fields.get(key))}`, apimon `{_short(ours_fields.get(key))}`"
                cells.append(f"{text} ({why})" if why else text)
        print(f"| {key} | " + " | ".join(cells) + " |")
    print(f"\n{same} the same, {differ} different.")
    for framework, (_, _, deviations) in results.items():
        if deviations:
            kinds = sorted(set(deviations))
            print(f"\n{framework}: what Moesif's middleware sent that the fake's validator flags: {kinds[:6]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
