"""The overload sampler: 1 call in N with weight N while the backlog stays high, N adapted to it,
every call either kept with its weight or counted out."""

from __future__ import annotations

import logging

import pytest

from apimon.overload import MAX_N, STEP_DOWN, SUSTAIN, OverloadSampler
from apimon.record import RawCall


def _raw(weight: int | None = None) -> RawCall:
    raw = RawCall("GET", "http", "h", "/", "", [], None, 0.0)
    raw.weight = weight
    return raw


def test_off_until_the_backlog_stays_high(caplog: pytest.LogCaptureFixture) -> None:
    fill = [0.9]
    sampler = OverloadSampler(lambda: fill[0])
    sampler.tick(100.0)
    assert sampler.n == 1  # high, but not for long yet
    sampler.tick(100.0 + SUSTAIN)
    assert sampler.n == 2
    sampler.tick(100.0 + SUSTAIN + 1.0)
    assert sampler.n == 4
    assert [r.message for r in caplog.records if r.levelno == logging.WARNING][0].startswith(
        "apimon: the pipeline cannot keep up"
    )
    fill[0] = 0.0
    t = 100.0 + SUSTAIN + 1.0
    for step in range(1, 12):
        sampler.tick(t + step * STEP_DOWN)
    assert sampler.n == 1
    warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "caught up" in warnings[1]  # once at the start, once at the end


def test_kept_calls_carry_weights_that_add_up_to_the_calls() -> None:
    sampler = OverloadSampler(lambda: 0.0)
    sampler.n = 8
    calls = [_raw() for _ in range(800)]
    kept = [raw for raw in calls if sampler.keep(raw)]
    assert len(kept) == 100 and {raw.weight for raw in kept} == {8}
    assert sum(raw.weight or 1 for raw in kept) == 800


def test_a_call_already_sampled_keeps_its_own_weight_too() -> None:
    sampler = OverloadSampler(lambda: 0.0)
    sampler.n = 4
    kept = [raw for raw in (_raw(weight=10) for _ in range(8)) if sampler.keep(raw)]
    assert [raw.weight for raw in kept] == [40, 40]


def test_an_overflow_starts_sampling_at_once_and_n_is_bounded() -> None:
    sampler = OverloadSampler(lambda: 1.0)
    sampler.overflowed(10.0)
    assert sampler.n == 2
    now = 10.0
    for _ in range(40):
        now += 1.0
        sampler.tick(now)
    assert sampler.n == MAX_N


def test_overload_sampling_false_never_samples() -> None:
    sampler = OverloadSampler(lambda: 1.0, enabled=False)
    sampler.overflowed(1.0)
    for t in range(10):
        sampler.tick(float(t))
    assert sampler.n == 1
