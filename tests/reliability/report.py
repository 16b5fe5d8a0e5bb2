"""Render RELIABILITY.md from the figures the reliability tests recorded.

Run by ``./dev reliability`` (which runs the suite first); ``python -m tests.reliability.report FIGURES``.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

HEADER = """# Reliability

What was tried against apimon and what came out, produced by one command that anyone can rerun:

```sh
./dev reliability
```

It runs `tests/reliability/` (real gunicorn and uvicorn servers with the Flask and Starlette
sample apps, apimon shipping to the `apimon.testing` fake collectors over loopback, faults injected
there) and `tests/thirdparty/` (below), and writes this file from the figures the tests recorded.
Every test also asserts its own bound, so the same suites run in CI (`./dev test`).

Column meanings: *requests* driven by the test's load generator; *delivered* distinct
`transaction_id`s the collector received; *lost* (or *lost_uncounted*) events neither delivered
nor counted under a reason in `apimon.stats()` — the figure that must be zero; *latency_ratio* the
median request latency with the fault divided by a healthy run measured in the same test.

The *third-party suite* rows (`tests/thirdparty/`, also `./dev thirdparty`) run other projects'
own test suites from their pinned sdists, once bare and once with apimon injected by a pytest
plugin (`apimon_shim`: Flask apps' `wsgi_app` wrapped, Starlette's `TestClient` apps wrapped,
the Django middleware first in `MIDDLEWARE`), without editing their tests. *requests_reached_apimon*
is counted by the shim itself; each must be a stored event or a counted drop, with nothing
*unfinished* and no *internal_errors*, and every test that passes bare must pass with apimon but
those listed with a reason in `tests/thirdparty/run.py` (*tests_differing_as_listed*: Flask's
`test_app_freed_on_zero_refcount`, which the `app.wsgi_app = Middleware(app.wsgi_app)` idiom fails
with Werkzeug's own ProxyFix too: the app is freed by the garbage collector, not at once).

Two figures need reading with care. *kill -9*: `SIGKILL` gives no chance to flush, so the calls
still in the worker's memory (at most `flush_interval`'s worth, `in_memory_at_kill`) are gone;
the guarantee is that nothing *committed* to the outbox is lost (`lost_committed`). *Hostile
input*: `captured` is below `inputs` because gunicorn itself answers malformed requests with 400
before any app or middleware runs.

"""


# The security section: attacks and their before/after figures, kept beside the tests that carry them.
SECURITY = (Path(__file__).with_name("security.md")).read_text()


def render(figures: dict[str, dict[str, object]]) -> str:
    lines = [
        HEADER,
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, Python "
        f"{platform.python_version()}, {platform.system()}.\n",
        "| scenario | figures |",
        "|---|---|",
    ]
    zero_loss = True
    for name in sorted(figures):
        row = figures[name]
        cells = ", ".join(f"{k}: {v}" for k, v in sorted(row.items()))
        lines.append(f"| {name} | {cells} |")
        for key in ("lost", "lost_uncounted", "lost_committed"):
            if row.get(key) not in (None, 0):
                zero_loss = False
    verdict = "**Unaccounted events: 0** in every scenario." if zero_loss else "**Some events were unaccounted.**"
    lines += ["", verdict, "", SECURITY]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    source = Path(argv[1]) if len(argv) > 1 else Path(".reliability-figures.json")
    target = Path(argv[2]) if len(argv) > 2 else Path("RELIABILITY.md")
    figures = json.loads(source.read_text())
    target.write_text(render(figures))
    print(target.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
