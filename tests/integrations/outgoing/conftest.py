from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import apimon
from apimon.client import Client
from apimon.config import Config
from tests.conftest import ListSink
from tests.integrations.outgoing.partner import Partner


@pytest.fixture()
def partner() -> Iterator[Partner]:
    with Partner() as p:
        yield p


@pytest.fixture()
def sink() -> Iterator[ListSink]:
    sink = ListSink()
    apimon._client = Client(Config.from_options({"flush_interval": 0.05}), sinks=[sink])
    yield sink


def events(sink: ListSink) -> list[dict[str, Any]]:
    assert apimon.flush(5.0)
    return sink.events


def outgoing(sink: ListSink) -> list[dict[str, Any]]:
    found = [e for e in events(sink) if e["direction"] == "Outgoing"]
    assert apimon.stats()["internal_errors"] == 0
    return found
