"""The shared flusher: concurrency, bounds, fork, exit flush and timeouts."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from apimon.client import Client
from apimon.config import Config
from apimon.counters import LOSS_REASONS
from apimon.flusher import Flusher
from apimon.sinks.store import StoreSink
from apimon.store import Store
from tests.conftest import REPO, ListSink
from tests.factories import make_raw


def _client(sink: ListSink | StoreSink, **options: object) -> Client:
    return Client(Config.from_options(options), sinks=[sink])


def _accounted(stats: dict[str, int], delivered: str = "sent") -> int:
    return stats[delivered] + sum(stats[r] for r in LOSS_REASONS) + stats["queued"]


def test_many_threads_lose_nothing_uncounted() -> None:
    sink = ListSink()
    client = _client(sink, max_queue=2_000, batch_size=100, flush_interval=0.05)
    threads, per_thread = 8, 2_500

    def work(n: int) -> None:
        for i in range(per_thread):
            raw = make_raw(path=f"/t{n}/{i}")
            client.complete(raw, None)

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert client.flush(10.0)
    stats = client.stats()
    assert stats["captured"] == threads * per_thread
    assert stats["queued"] == 0
    assert stats["sent"] == len(sink.items)
    assert _accounted(stats) == stats["captured"]
    # Every delivered event is distinct: nothing was sent twice.
    assert len({i.path for i in sink.items}) == len(sink.items)


def test_full_queue_drops_and_counts_without_blocking() -> None:
    sink = ListSink(delay=1.0)  # the flusher is stuck in a slow sink
    client = _client(sink, max_queue=50, batch_size=10, flush_interval=0.01)
    t0 = time.perf_counter()
    for i in range(2_000):
        client.complete(make_raw(path=f"/{i}"), None)
    elapsed = time.perf_counter() - t0
    stats = client.stats()
    assert stats["captured"] == 2_000
    # Dropped at the full queue, or (once the overload sampler saw it overflow) sampled out.
    assert stats["dropped_queue_full"] + stats["sampled_overload"] >= 2_000 - 60
    assert stats["dropped_queue_full"] > 0
    assert elapsed < 1.0, f"enqueue blocked: {elapsed:.2f}s for 2,000 calls"
    assert client.flush(10.0)
    assert _accounted(client.stats()) == 2_000


def test_flush_and_shutdown_respect_their_timeouts_with_a_slow_sink() -> None:
    sink = ListSink(delay=3.0)
    client = _client(sink, batch_size=1, flush_interval=0.01)
    for i in range(3):
        client.complete(make_raw(path=f"/{i}"), None)
    t0 = time.monotonic()
    assert client.flush(0.3) is False
    assert 0.25 <= time.monotonic() - t0 < 1.0
    t0 = time.monotonic()
    assert client.shutdown(0.3) is False
    assert time.monotonic() - t0 < 1.0


def test_flush_without_a_thread_runs_on_the_caller() -> None:
    handled: list[int] = []
    flusher = Flusher(handled.extend, max_queue=10, batch_size=3, flush_interval=60)
    # Items queued in the deque directly stand for a worker that never started (interpreter exit).
    flusher._queue.extend(range(7))
    assert flusher.flush(1.0)
    assert handled == list(range(7))


def test_flush_waits_only_for_what_was_queued_before_it() -> None:
    sink = ListSink()
    client = _client(sink, flush_interval=30.0, batch_size=1000)
    for i in range(5):
        client.complete(make_raw(path=f"/{i}"), None)
    t0 = time.monotonic()
    assert client.flush(5.0)
    assert time.monotonic() - t0 < 1.0  # the long interval was cut short
    assert [i.path for i in sink.items] == [f"/{i}" for i in range(5)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_child_ships_its_own_events(tmp_path: Path) -> None:
    db = str(tmp_path / "fork.db")
    client = _client(StoreSink(Store(db)), flush_interval=30.0, batch_size=1000)
    client.complete(make_raw(path="/parent-before-fork"), None)
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            for i in range(3):
                client.complete(make_raw(path=f"/child/{i}"), None)
            ok = client.flush(5.0)
            stats = client.stats()
            code = 0 if ok and stats["stored"] == 3 and stats["captured"] == 3 else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert client.flush(5.0)
    paths = sorted(c.path for c in Store(db).recent(limit=100))
    # The child shipped its own three; the parent's pre-fork event was shipped once, by the parent.
    assert paths == ["/child/0", "/child/1", "/child/2", "/parent-before-fork"]


EXIT_SCRIPT = """
import sys
from apimon.integrations.wsgi import ApimonMiddleware

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hi"]

wrapped = ApimonMiddleware(app, store=sys.argv[1], flush_interval=3600)
for i in range(25):
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": f"/{i}", "wsgi.url_scheme": "http", "SERVER_NAME": "x",
               "SERVER_PORT": "80", "wsgi.input": None}
    body = wrapped(environ, lambda s, h, e=None: None)
    list(body)
    body.close()
# no flush, no shutdown: the interpreter exits with 25 events queued
"""


def test_exit_flush_ships_what_was_queued(tmp_path: Path) -> None:
    db = str(tmp_path / "exit.db")
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", EXIT_SCRIPT, db], check=True, cwd=REPO, timeout=30)
    assert time.monotonic() - t0 < 10
    assert Store(db).count() == 25


def test_profiles_are_queued_for_sinks() -> None:
    import apimon

    sink = ListSink()
    apimon._client = _client(sink)
    assert apimon.update_user("u1", metadata={"plan": "pro"})
    assert apimon.update_company("c1")
    assert apimon.flush(5.0)
    assert [(k, p.get("user_id") or p.get("company_id")) for k, p in sink.profiles] == [
        ("user", "u1"),
        ("company", "c1"),
    ]
    with pytest.raises(ValueError):
        apimon.update_user("")


class _Recorder:
    """prepare/handle pair that records what the flusher did, on which thread."""

    def __init__(self) -> None:
        self.prepared: list[int] = []
        self.batches: list[list[str]] = []
        self.lock = threading.Lock()

    def prepare(self, item: int) -> str | None:
        with self.lock:
            self.prepared.append(item)
        if item < 0:
            return None  # a dropped item
        if item == 13:
            raise RuntimeError("a bug in preparing")
        return f"built-{item}"

    def handle(self, batch: list[str]) -> None:
        with self.lock:
            self.batches.append(list(batch))


def _wait_until(check: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


def test_items_are_prepared_as_they_arrive_and_handled_in_full_batches() -> None:
    rec = _Recorder()
    flusher = Flusher(rec.handle, prepare=rec.prepare, max_queue=1_000, batch_size=100, flush_interval=60)
    for i in range(20):
        flusher.put(100 + i)
    # 20 queued is past the build chunk (16): preparing starts long before a batch is full...
    assert _wait_until(lambda: len(rec.prepared) >= 16)
    assert rec.batches == []  # ...and nothing is handed on until one is (or it is due)
    assert flusher.pending == 20
    for i in range(230):
        flusher.put(200 + i)
    assert flusher.flush(5.0)
    assert [len(b) for b in rec.batches] == [100, 100, 50]
    assert [x for b in rec.batches for x in b] == [f"built-{i}" for i in [*range(100, 120), *range(200, 430)]]
    assert flusher.pending == 0
    flusher.shutdown(1.0)


def test_a_partial_batch_is_handed_on_after_flush_interval() -> None:
    rec = _Recorder()
    flusher = Flusher(rec.handle, prepare=rec.prepare, max_queue=1_000, batch_size=100, flush_interval=0.2)
    t0 = time.monotonic()
    for i in range(30):
        flusher.put(i + 100)
    assert _wait_until(lambda: rec.batches, timeout=3.0)
    waited = time.monotonic() - t0
    assert [len(b) for b in rec.batches] == [30]
    assert 0.15 <= waited < 2.0
    flusher.shutdown(1.0)


def test_dropped_and_failing_prepares_are_accounted_for() -> None:
    rec = _Recorder()
    errors: list[int] = []
    flusher = Flusher(
        rec.handle,
        prepare=rec.prepare,
        max_queue=100,
        batch_size=10,
        flush_interval=60,
        on_internal_error=lambda: errors.append(1),
    )
    for item in [1, -1, 13, 2, -2, 3]:
        flusher.put(item)
    assert flusher.flush(5.0)  # the dropped (-1, -2) and the failed (13) ones count as done
    assert rec.batches == [["built-1", "built-2", "built-3"]]
    assert errors == [1]
    assert flusher.pending == 0
    flusher.shutdown(1.0)


def test_flush_with_no_worker_prepares_and_hands_on_inline() -> None:
    rec = _Recorder()
    flusher = Flusher(rec.handle, prepare=rec.prepare, max_queue=1_000, batch_size=4, flush_interval=60)
    flusher._queue.extend(range(100, 110))  # as if queued before the worker could start
    assert flusher.flush(1.0)
    assert [len(b) for b in rec.batches] == [4, 4, 2]
    assert rec.batches[0][0] == "built-100"
