"""The compiled loops against callers that fight back: callbacks that change what is being walked
(a name's ``__hash__`` clearing the header list, a key's ``lower()`` clearing the dict, a finalizer
calling ``json_plain`` with another field set), threads changing a header list under ``merge``,
and a sub-interpreter importing apimon beside the main one. Each crashed (use after free), gave a
wrong answer (a secret passed as plain) or broke the main interpreter before; each must now give
the Python reference's answer. Under the sanitizer job (``./dev test``'s ASan/UBSan build) any
memory error here fails the run."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
from typing import Any

import pytest

from apimon import headers as hdr
from apimon.redact import redact_json_py
from tests.core.test_speedups import Shouty, _compiled

SECRET_BODY = b'{"password": "hunter2"}'


class Clearing(str):
    """A header name whose hash empties the list it came from (once)."""

    victim: list[Any] = []

    def __hash__(self) -> int:
        Clearing.victim.clear()
        gc.collect()
        return str.__hash__(self)


def test_merge_survives_a_name_whose_hash_clears_the_list() -> None:
    pairs: list[Any] = [(Clearing(f"x-{i}"), f"v{i}") for i in range(50)] + [("x-last", "end")]
    Clearing.victim = pairs
    expected = hdr.merge_py(list(pairs))
    Clearing.victim = pairs
    assert _compiled().merge(pairs) == expected or pairs == []


def test_merge_survives_canonical_clearing_the_list_once_the_name_cache_is_full() -> None:
    speedups = _compiled()
    pairs: list[Any] = [(f"x-unseen-{i}".encode(), b"v") for i in range(3000)]
    calls = {"n": 0}

    def canonical(name: Any) -> str:
        calls["n"] += 1
        if calls["n"] == 5:
            pairs.clear()
            gc.collect()
        return hdr.canonical(name)

    speedups.configure_headers({}, canonical, hdr.merge_py, hdr.REDACTED)
    try:
        snapshot = list(pairs)
        got = speedups.merge(pairs)
        assert got == hdr.merge_py(snapshot)  # the list as it was when merge was called
    finally:
        _compiled()


def test_merge_while_another_thread_changes_the_list() -> None:
    speedups = _compiled()
    pairs: list[Any] = [(f"x-thread-{i}", "v") for i in range(200)]
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            pairs.append(("x-more", "m"))
            del pairs[0:51]
            pairs.extend((f"x-new-{i}", "n") for i in range(50))

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        for _ in range(3000):
            result = speedups.merge(pairs)
            assert all(type(k) is str for k in result)
    finally:
        stop.set()
        worker.join()


class Sneaky(str):
    """A JSON key whose lower() empties the dict being walked."""

    victim: dict[Any, Any] = {}

    def lower(self) -> str:
        Sneaky.victim.clear()
        gc.collect()
        return str.lower(self)


def _outcome(fn: Any, value: Any, fields: Any) -> tuple[str, Any, Any]:
    try:
        return "ok", fn(value, fields), value
    except Exception as exc:
        return "raised", type(exc), value


def _sneaky_body() -> dict[Any, Any]:
    body: dict[Any, Any] = {"password": "a", Sneaky("Token"): "b", **{f"k{i}": [i] for i in range(40)}}
    Sneaky.victim = body
    return body


def test_redact_json_hands_a_key_that_is_not_exact_to_the_reference() -> None:
    fields = frozenset({"password", "token"})
    # The reference itself stops when its dict changes under it: both end the same way.
    assert _outcome(_compiled().redact_json, _sneaky_body(), fields) == _outcome(redact_json_py, _sneaky_body(), fields)
    plain: dict[Any, Any] = {"password": "a", Shouty("Token"): "b", "n": [{"TOKEN": 1}]}
    twin: dict[Any, Any] = {"password": "a", Shouty("Token"): "b", "n": [{"TOKEN": 1}]}
    assert _compiled().redact_json(plain, fields) == redact_json_py(twin, fields) == 3
    assert plain == twin


class Fields:
    """Not a frozenset: its __contains__ changes the body being walked."""

    def __init__(self, victim: dict[str, Any]) -> None:
        self.victim = victim

    def __contains__(self, key: object) -> bool:
        self.victim.clear()
        return key == "password"

    def __bool__(self) -> bool:
        return True


def test_redact_json_with_fields_that_are_not_a_frozenset_uses_the_reference() -> None:
    def body() -> dict[str, Any]:
        return {"password": "a", "x": {"password": "b"}}

    mine, theirs = body(), body()
    assert _outcome(_compiled().redact_json, mine, Fields(mine)) == _outcome(redact_json_py, theirs, Fields(theirs))
    for fields in ({"password"}, ["password"], frozenset({Sneaky("password")})):
        mine, theirs = {"password": "a", "n": {"PASSWORD": 1}}, {"password": "a", "n": {"PASSWORD": 1}}
        assert _compiled().redact_json(mine, fields) == redact_json_py(theirs, fields)
        assert mine == theirs


class Dying:
    """A value whose finalizer empties the dict it was in, when redaction replaces it."""

    victim: dict[str, Any] = {}

    def __del__(self) -> None:
        Dying.victim.clear()


def test_a_replaced_value_is_released_after_the_walk() -> None:
    body: dict[str, Any] = {"password": Dying(), **{f"k{i}": {"token": i} for i in range(30)}}
    Dying.victim = body
    count = _compiled().redact_json(body, frozenset({"password", "token"}))
    assert count == 31 and body == {}  # walked whole, then the finalizer ran


class Finalizer:
    """Cyclic garbage whose finalizer calls json_plain with another field set."""

    def __init__(self, results: list[bool]) -> None:
        self.me = self
        self.results = results

    def __del__(self) -> None:
        speedups = _compiled()
        self.results.append(speedups.json_plain(b'{"card": 1}', speedups.field_table(frozenset({"card"}))))


def test_a_finalizer_calling_json_plain_cannot_change_another_calls_fields() -> None:
    speedups = _compiled()
    password = speedups.field_table(frozenset({"password"}))
    seen: list[bool] = []
    wrong = 0
    for i in range(5000):
        Finalizer(seen)
        if i % 50 == 0:
            gc.collect(0)
        wrong += speedups.json_plain(SECRET_BODY, password)
    gc.collect()
    assert wrong == 0
    assert seen and not any(seen)


def test_json_plain_takes_only_a_field_table() -> None:
    speedups = _compiled()
    for fields in (frozenset({"password"}), {"password"}, None):
        with pytest.raises(TypeError):
            speedups.json_plain(SECRET_BODY, fields)
    with pytest.raises(TypeError):
        speedups.field_table({"password"})
    with pytest.raises(TypeError):
        speedups.FieldTable()
    assert not speedups.json_plain(SECRET_BODY, speedups.field_table(frozenset({"password"})))
    assert speedups.json_plain(SECRET_BODY, speedups.field_table(frozenset({"token"})))


def test_json_plain_from_threads_with_two_field_sets() -> None:
    speedups = _compiled()
    tables = [speedups.field_table(frozenset({"password"})), speedups.field_table(frozenset({"card"}))]
    wrong = [0, 0]

    def run(which: int) -> None:
        for _ in range(20_000):
            if speedups.json_plain(SECRET_BODY, tables[which]) != (which == 1):
                wrong[which] += 1

    threads = [threading.Thread(target=run, args=(i % 2,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == [0, 0]


SUBINTERPRETER = r"""
import sys
sys.path[:0] = {path!r}
import _xxsubinterpreters as interpreters
from apimon import headers
from apimon import native
assert native.ACTIVE, "the compiled module is not loaded"
interp = interpreters.create()
interpreters.run_string(interp, '''
import sys
sys.path[:0] = {path!r}
from apimon import headers
assert headers.merge([(b"x-sub", b"1")]) == {{"X-Sub": "1"}}
''')
interpreters.destroy(interp)
# The main interpreter's own configuration is still in force: names past its cache work.
for i in range(2000):
    assert headers.merge([(f"x-main-{{i}}".encode(), b"v")]) == {{f"X-Main-{{i}}": "v"}}
print("ok")
"""


def test_a_sub_interpreter_has_its_own_module_state() -> None:
    code = SUBINTERPRETER.format(path=sys.path)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
