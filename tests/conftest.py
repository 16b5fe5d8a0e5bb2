from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import apimon
from apimon._guard import forget_logged
from apimon.sinks import Item, Outcome, Sink

REPO = Path(__file__).resolve().parents[1]
# The sample apps are imported by module path from the repository root (as gunicorn does).
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


class ListSink(Sink):
    """A sink that keeps what it was given, for tests of the flusher and pipeline."""

    name = "list"
    counter = "sent"

    def __init__(self, delay: float = 0.0) -> None:
        self.items: list[Item] = []
        self.profiles: list[tuple[str, dict[str, Any]]] = []
        self.delay = delay

    def send(self, batch: Sequence[Item]) -> Outcome:
        if self.delay:
            import time

            time.sleep(self.delay)
        self.items.extend(batch)
        return Outcome(delivered=len(batch))

    def send_profiles(self, kind: str, payloads: Sequence[dict[str, Any]]) -> Outcome:
        self.profiles.extend((kind, p) for p in payloads)
        return Outcome(delivered=len(payloads))

    @property
    def events(self) -> list[dict[str, Any]]:
        return [i.event for i in self.items]


@pytest.fixture(autouse=True)
def _fresh_apimon(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("APIMON_"):
            monkeypatch.delenv(key)
    forget_logged()
    yield
    client = apimon._client
    if client is not None:
        client.shutdown(1.0)
    apimon._client = None
