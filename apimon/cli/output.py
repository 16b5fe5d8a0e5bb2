"""Rendering of stored calls for the terminal (rich tables) and for scripts (``--json``)."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from apimon.store import StoredCall


def _console() -> Console:
    # Markup is for apimon's own words only: every captured value reaches the console as a Text
    # (never parsed as markup) with its control characters replaced, by _clean.
    return Console(highlight=False, soft_wrap=False)


def _printable(text: str) -> str:
    # Escape sequences (ESC, OSC, C1 controls), bidi overrides and other non-printing characters
    # would steer the terminal: each shows as U+FFFD instead.
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch in "\n\t" else "\ufffd" for ch in text)


def _clean(value: object, style: str = "") -> Text:
    """A captured value as plain text for the terminal (None: empty)."""
    return Text("" if value is None else _printable(str(value)), style=style)


def _local_time(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) + f".{int(ts * 1000) % 1000:03d}"


def _status_style(status: int) -> str:
    if status >= 500:
        return "bold red"
    if status >= 400:
        return "yellow"
    if status >= 300:
        return "cyan"
    return "green"


def _write_json_line(value: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(value) + b"\n")
    sys.stdout.flush()


def call_summary(call: StoredCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "transaction_id": call.transaction_id,
        "time": call.event().get("request", {}).get("time"),
        "verb": call.verb,
        "path": call.path,
        "route": call.route,
        "status": call.status,
        "duration_ms": call.duration_ms,
        "user_id": call.user_id,
        "company_id": call.company_id,
        "direction": call.direction,
    }


def _shown_path(call: StoredCall) -> str:
    """The path, and for a call the app made, the host it called first (``api.stripe.com/v1/...``)."""
    if call.direction != "Outgoing":
        return call.path
    uri = str(call.event().get("request", {}).get("uri", ""))
    return urlsplit(uri).netloc + call.path


def print_calls(calls: Sequence[StoredCall], as_json: bool) -> None:
    if as_json:
        for call in calls:
            _write_json_line(call_summary(call))
        return
    table = Table(title=f"{len(calls)} most recent calls", title_justify="left")
    for name, justify in (
        ("id", "right"),
        ("time", "left"),
        ("dir", "left"),
        ("verb", "left"),
        ("path", "left"),
        ("status", "right"),
        ("ms", "right"),
        ("user", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for call in calls:
        table.add_row(
            str(call.id),
            _local_time(call.ts),
            "out" if call.direction == "Outgoing" else "in",
            _clean(call.verb),
            _clean(_shown_path(call)),
            f"[{_status_style(call.status)}]{call.status}[/]",
            f"{call.duration_ms:.1f}",
            _clean(call.user_id),
        )
    _console().print(table)


def print_call(call: StoredCall, as_json: bool) -> None:
    if as_json:
        # Exactly as shipped: the stored bytes, not a re-encoding.
        sys.stdout.buffer.write(call.event_json + b"\n")
        sys.stdout.flush()
        return
    event = call.event()
    console = _console()
    request = event.get("request", {})
    response = event.get("response", {})
    console.print(
        Text.assemble(
            _clean(request.get("verb"), "bold"),
            " ",
            _clean(request.get("uri"), "bold"),
            "  →  ",
            _clean(response.get("status"), _status_style(call.status)),
            f"  {call.duration_ms:.1f} ms",
        )
    )
    for key in ("transaction_id", "user_id", "company_id", "session_token"):
        if event.get(key):
            console.print(Text.assemble(f"{key}: ", _clean(event[key])))
    if request.get("ip_address"):
        console.print(Text.assemble("ip_address: ", _clean(request["ip_address"])))
    for title, section in (("request", request), ("response", response)):
        console.print(Text.assemble("\n", (title, "bold underline"), " at ", _clean(section.get("time"))))
        for name, value in (section.get("headers") or {}).items():
            console.print(Text.assemble("  ", _clean(name), ": ", _clean(value)))
        if "body" in section:
            body = section["body"]
            shown = body if isinstance(body, str) else orjson.dumps(body, option=orjson.OPT_INDENT_2).decode()
            if section.get("transfer_encoding") == "base64":
                console.print(f"  body (base64, {len(body)} chars):")
            else:
                console.print("  body:")
            console.print(_clean("    " + shown[:4000].replace("\n", "\n    ")))
    if event.get("metadata"):
        console.print("\n[bold underline]metadata[/]")
        console.print(_clean(orjson.dumps(event["metadata"], option=orjson.OPT_INDENT_2).decode()))


def print_stats(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _write_json_line(summary)
        return
    console = _console()

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} ms"

    console.print(
        f"[bold]{summary['total']} calls[/]   p50 {ms(summary['p50_ms'])}   p95 {ms(summary['p95_ms'])}"
        f"   p99 {ms(summary['p99_ms'])}"
    )
    classes = Table(title="by status class", title_justify="left")
    classes.add_column("class")
    classes.add_column("calls", justify="right")
    for name, count in summary["by_status_class"].items():
        classes.add_row(name, str(count))
    console.print(classes)
    routes = Table(title="by route", title_justify="left")
    for name, justify in (("verb", "left"), ("route", "left"), ("calls", "right"), ("5xx", "right"), ("avg", "right")):
        routes.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in summary["by_route"]:
        routes.add_row(
            _clean(row["verb"]), _clean(row["route"]), str(row["count"]), str(row["errors"]), ms(row["avg_ms"])
        )
    console.print(routes)
    if summary.get("outgoing_by_host"):
        hosts = Table(title="outgoing calls by host", title_justify="left")
        for name, justify in (("host", "left"), ("calls", "right"), ("errors", "right"), ("avg", "right")):
            hosts.add_column(name, justify=justify)  # type: ignore[arg-type]
        for row in summary["outgoing_by_host"]:
            hosts.add_row(_clean(row["host"]), str(row["count"]), str(row["errors"]), ms(row["avg_ms"]))
        console.print(hosts)
