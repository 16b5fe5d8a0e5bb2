"""The sender's in-flight limit: grows while it is the bottleneck and the round trip stays flat,
shrinks on push-back or a rising round trip, stays within 1..maximum."""

from __future__ import annotations

import time

from apimon.concurrency import MIN_WINDOW, AdaptiveConcurrency


def _round(limiter: AdaptiveConcurrency, rtt: float, pushed_back: bool = False, busy: bool = True) -> None:
    """One window: the limit's worth of requests out at once, answered after ``rtt``."""
    n = limiter.limit if busy else 1
    for _ in range(n):
        limiter.start()
    time.sleep(MIN_WINDOW + 0.01)
    for _ in range(n):
        limiter.done(rtt, pushed_back)


def test_grows_by_one_a_window_while_saturated_and_flat() -> None:
    limiter = AdaptiveConcurrency(maximum=6)
    for _ in range(8):
        _round(limiter, 0.05)
    assert limiter.limit == 6 and limiter.grown == 5


def test_does_not_grow_when_the_limit_is_never_reached() -> None:
    limiter = AdaptiveConcurrency(maximum=8, initial=3)
    for _ in range(4):
        _round(limiter, 0.05, busy=False)
    assert limiter.limit == 3 and limiter.grown == 0


def test_push_back_shrinks_at_once_and_a_burst_of_them_counts_once() -> None:
    limiter = AdaptiveConcurrency(maximum=20, initial=20)
    for _ in range(20):
        limiter.start()
    time.sleep(MIN_WINDOW + 0.01)
    for _ in range(20):
        limiter.done(0.01, pushed_back=True)  # every request in flight came back with a 429
    assert limiter.limit == 18 and limiter.shrunk == 1


def test_a_rising_round_trip_shrinks_the_limit() -> None:
    limiter = AdaptiveConcurrency(maximum=10, initial=10)
    for _ in range(3):
        _round(limiter, 0.02)
    assert limiter.limit == 10
    _round(limiter, 0.2)  # ten times the average: the collector is queueing
    assert limiter.limit == 9 and limiter.shrunk == 1


def test_never_below_one() -> None:
    limiter = AdaptiveConcurrency(maximum=4)
    for _ in range(5):
        _round(limiter, 0.01, pushed_back=True)
    assert limiter.limit == 1
    assert limiter.in_flight == 0
