"""Argument parsing and dispatch for ``apimon calls|show|stats|ship|serve|demo`` (README.md#quick-start)."""

from __future__ import annotations

import argparse
import os
import sys

from apimon._version import __version__
from apimon.store import Store, StoreError
from apimon.summary import summarize


def _status_class(text: str) -> int:
    value = text.strip().lower()
    if len(value) == 3 and value.endswith("xx") and value[0] in "12345":
        return int(value[0])
    raise argparse.ArgumentTypeError(f"expected a status class such as 2xx or 5xx, got {text!r}")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("expected a number of at least 1")
    return value


def _port(text: str) -> int:
    value = _positive(text)
    if value > 65535:
        raise argparse.ArgumentTypeError("expected a TCP port, 1-65535")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="apimon", description="Read and ship the API calls apimon captured.")
    parser.add_argument("--version", action="version", version=f"apimon {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    default_store = os.environ.get("APIMON_STORE") or "apimon.db"

    def with_store(p: argparse.ArgumentParser) -> None:
        p.add_argument("--store", default=default_store, help="path of the SQLite store (default: %(default)s)")

    calls = sub.add_parser("calls", help="recent calls, one line each")
    with_store(calls)
    calls.add_argument("--last", type=_positive, default=20, help="how many (default: %(default)s)")
    calls.add_argument("--status", type=_status_class, help="status class, e.g. 5xx")
    calls.add_argument("--path", help="path glob, e.g. '/items/*'")
    calls.add_argument("--user", help="only this user_id")
    calls.add_argument(
        "--direction", choices=("incoming", "outgoing"), help="only calls to the app, or only calls the app made"
    )
    calls.add_argument("--json", action="store_true", help="one JSON object per line")

    show = sub.add_parser("show", help="one call in full")
    with_store(show)
    show.add_argument("id", help="the id that `apimon calls` shows, or a transaction_id")
    show.add_argument("--json", action="store_true", help="the event exactly as shipped")

    stats = sub.add_parser("stats", help="counts by status class and route, duration percentiles")
    with_store(stats)
    stats.add_argument("--json", action="store_true")

    ship = sub.add_parser("ship", help="send stored calls not yet shipped to Moesif and/or MoEngage")
    with_store(ship)
    for flag in (
        "moesif-application-id",
        "moesif-base-url",
        "moengage-workspace-id",
        "moengage-api-key",
        "moengage-data-center",
        "moengage-base-url",
    ):
        ship.add_argument(f"--{flag}", help="default: $APIMON_" + flag.upper().replace("-", "_"))
    ship.add_argument("--batch-size", type=_positive, default=100)

    serve = sub.add_parser("serve", help="a local web dashboard over the store (the apimon[ui] extra)")
    with_store(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s, loopback)")
    serve.add_argument("--port", type=_port, default=8765, help="(default: %(default)s)")
    serve.add_argument(
        "--token",
        default=os.environ.get("APIMON_UI_TOKEN") or None,
        help="access token (default: $APIMON_UI_TOKEN); required off loopback",
    )
    serve.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host (needs --token)")

    demo = sub.add_parser("demo", help="run the sample app with apimon on a loopback server and show the capture")
    demo.add_argument("--requests", type=_positive, default=60, help="requests to drive (default: %(default)s)")
    demo.add_argument("--keep", metavar="DIR", help="keep the demo store in DIR instead of a temporary folder")
    return parser


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from apimon.cli import output

    try:
        if args.command == "demo":
            from apimon.cli.demo import run_demo

            return run_demo(requests=args.requests, keep=args.keep)
        if args.command == "serve":
            from apimon.dashboard.serve import ServeError, serve

            try:
                return serve(args.store, args.host, args.port, token=args.token, allow_remote=args.allow_remote)
            except ServeError as exc:
                print(f"apimon: {exc}", file=sys.stderr)
                return 2
        if args.command == "ship":
            from apimon.cli.ship import ship

            names = (
                "moesif_application_id",
                "moesif_base_url",
                "moengage_workspace_id",
                "moengage_api_key",
                "moengage_data_center",
                "moengage_base_url",
            )
            options = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
            try:
                return ship(args.store, {**options, "batch_size": args.batch_size, "store": args.store})
            except ValueError as exc:
                print(str(exc), file=sys.stderr)
                return 2
        store = Store(args.store, readonly=True)
        if args.command == "calls":
            direction = args.direction.title() if args.direction else None
            rows = store.recent(
                limit=args.last, status_class=args.status, path_glob=args.path, user_id=args.user, direction=direction
            )
            output.print_calls(rows, as_json=args.json)
            return 0
        if args.command == "show":
            call = store.get(args.id)
            if call is None:
                print(f"apimon: no call {args.id!r} in {args.store}", file=sys.stderr)
                return 1
            output.print_call(call, as_json=args.json)
            return 0
        if args.command == "stats":
            output.print_stats(summarize(store), as_json=args.json)
            return 0
    except StoreError as exc:
        print(f"apimon: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    return 2
