"""A local Moesif collector in a process of its own (so its CPU is not the measured process's):
prints its URL, serves until stdin closes, then prints how many events it received."""

from __future__ import annotations

import sys

from apimon.testing import FakeMoEngage, FakeMoesif
from apimon.testing._server import FakeServer
from benchmarks.apps import APP_ID


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else "moesif"
    fake: FakeServer = (
        FakeMoesif(application_id=APP_ID)
        if kind == "moesif"
        else FakeMoEngage(workspace_id="BENCH", api_key="bench-key", event_limit=10**9)
    )
    with fake:
        print(fake.url, flush=True)
        for line in sys.stdin:
            if line.strip() == "count":
                print(len(fake.events), flush=True)  # type: ignore[attr-defined]
        print(len(fake.events), flush=True)  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
