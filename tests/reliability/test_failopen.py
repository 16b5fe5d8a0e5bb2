"""Fail-open: hooks that raise, a mask_event that raises (fails closed), an internal error in the
event builder. The app's responses never change; every error is counted and logged once."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from apimon.client import Client
from apimon.config import Config
from apimon.testing import FakeMoesif
from tests.conftest import ListSink
from tests.factories import make_raw
from tests.httpcheck import exchange
from tests.reliability.harness import flask_server, record, stats, wait_for


def test_raising_hooks_never_change_a_response(tmp_path: Path) -> None:
    with FakeMoesif() as fake:
        broken = flask_server(tmp_path, "broken-hooks", moesif=fake, env={"APIMON_SAMPLE_FAULTY_HOOKS": "1"})
        bare = flask_server(tmp_path, "bare", env={"APIMON_SAMPLE_BARE": "1"})
        requests = [
            ("GET", "/ping", None),
            ("POST", "/echo", b'{"a": 1}'),
            ("GET", "/items", None),
            ("GET", "/download", None),
            ("GET", "/boom", None),
        ] * 10
        with broken, bare:
            for method, path, body in requests:
                got = exchange(broken.port, method, path, body, [("Content-Type", "application/json")])
                want = exchange(bare.port, method, path, body, [("Content-Type", "application/json")])
                assert (got.status, got.stable_headers(), got.body) == (want.status, want.stable_headers(), want.body)
            assert wait_for(lambda: stats(broken.port)["queued"] == 0, timeout=20)
            final = stats(broken.port)
        log = Path(tmp_path / "broken-hooks.log").read_text()
        calls = len(requests) + broken.probes
        assert final["captured"] == calls
        assert final["dropped_by_mask"] == 10  # the /echo calls: mask_event fails closed
        assert final["sent"] == calls - 10 and len(fake.events) == calls - 10
        assert final["hook_errors"] == 5 * calls + 10  # five hooks a call, plus the mask failures
        for hook in ("identify_user", "identify_company", "get_session_token", "get_metadata", "api_version"):
            assert log.count(f"the {hook} hook raised") == 1, hook
        assert log.count("mask_event raised") == 1
        record(
            "fail-open: every hook raising",
            requests=len(requests),
            responses_changed=0,
            hook_errors_counted=final["hook_errors"],
            dropped_by_mask=final["dropped_by_mask"],
            lost_uncounted=calls - final["sent"] - final["dropped_by_mask"],
        )


def test_an_internal_error_in_the_event_builder_is_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = ListSink()
    client = Client(Config.from_options(), sinks=[sink])
    with caplog.at_level(logging.WARNING, logger="apimon"):
        for i in range(5):
            raw = make_raw(path=f"/{i}")
            if i % 2:
                raw.method = None  # type: ignore[assignment]  # a corrupt snapshot: building it raises
            client.complete(raw, None)
        assert client.flush(5)
    stats = client.stats()
    assert stats["dropped_error"] == 2 and stats["internal_errors"] == 2 and stats["sent"] == 3
    assert caplog.text.count("building an event failed") == 1
