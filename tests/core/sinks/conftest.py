from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import apimon
from apimon.client import Client
from apimon.sinks.threaded import ThreadedSink
from apimon.testing import FakeMoEngage, FakeMoesif
from apimon.transport import RetryPolicy
from tests.factories import make_raw


@pytest.fixture
def moesif() -> Iterator[FakeMoesif]:
    with FakeMoesif() as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def moengage() -> Iterator[FakeMoEngage]:
    with FakeMoEngage() as fake:
        yield fake  # type: ignore[misc]


def fast_retries(client: Client, **policy: Any) -> None:
    """Shorten the backoff so failure tests take milliseconds, not the production seconds."""
    for sink in client.sinks:
        if isinstance(sink, ThreadedSink):
            inner: Any = sink.inner
            inner.policy = RetryPolicy(**{"base": 0.01, "cap": 0.05, "attempts": 5, **policy})


def capture(client: Client, n: int, user: str | None = "u1", **raw_kw: Any) -> None:
    for i in range(n):
        raw = make_raw(path=f"/calls/{i}", **raw_kw)
        raw.user_id = user
        client.complete(raw, None)


def moesif_client(fake: FakeMoesif, **options: Any) -> Client:
    return apimon.init(
        moesif_application_id=fake.application_id, moesif_base_url=fake.url, store="off", flush_interval=0.05, **options
    )


def moengage_client(fake: FakeMoEngage, **options: Any) -> Client:
    return apimon.init(
        moengage_workspace_id=fake.workspace_id,
        moengage_api_key=fake.api_key,
        moengage_base_url=fake.url,
        store="off",
        flush_interval=0.05,
        **options,
    )
