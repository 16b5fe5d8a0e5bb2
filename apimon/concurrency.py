"""How many requests a remote sink keeps in flight: adapted to what the collector sustains.

A collector 50-200 ms away answers one request at a time far slower than the flusher builds
events: with one batch in flight, throughput is the batch size over the round trip (100 events at
200 ms: 500 events/s). Several requests in flight make throughput independent of the distance, up
to what the collector takes. The limit follows the idea of Vector's adaptive request concurrency
(additive increase, multiplicative decrease, with the round-trip time as the congestion signal):

- every adjustment window (about one round trip, and at least ``limit`` answers), if the
  collector pushed back (429, 5xx, a timeout, a refused connection) or the mean round trip of the
  window rose clearly above its moving average, the limit shrinks to ``limit * DECREASE``;
- else, if the limit was reached during the window (more was waiting than could be sent), it
  grows by one, up to ``maximum``.

A light load never reaches its limit, so it keeps one connection warm; a backlog at a distance
grows the limit until the round trip starts to rise or the collector pushes back.
"""

from __future__ import annotations

import math
import time

#: Multiplicative decrease on push-back or a rising round trip (Vector's default ratio).
DECREASE = 0.9
#: The moving average of the round trip gives each new window this weight.
EWMA_WEIGHT = 0.4
#: The round trip has "risen" when a window's mean is over average * (1 + RISE) + RISE_FLOOR.
RISE = 0.5
RISE_FLOOR = 0.005
#: Shortest adjustment window, seconds: on loopback a round trip is well under a millisecond.
MIN_WINDOW = 0.05


class AdaptiveConcurrency:
    """The in-flight limit of one sender. Not locked: the sender calls it under its own lock.

    Usage (by :class:`~apimon.sinks.threaded.ThreadedSink`)::

        if limiter.has_room: limiter.start()      # a request goes out
        ...
        limiter.done(rtt=0.052, pushed_back=False) # its answer came back
    """

    def __init__(self, maximum: int, initial: int = 1) -> None:
        self.maximum = max(1, maximum)
        self.limit = max(1, min(initial, self.maximum))
        self.in_flight = 0
        self.average: float | None = None  # moving average of the round trip, seconds
        self.grown = 0  # how many times the limit grew, and shrank (for tests and the debug log)
        self.shrunk = 0
        self._window_start = time.monotonic()
        self._window_rtts = 0.0
        self._window_answers = 0
        self._reached = False
        self._pushed_back = False

    @property
    def has_room(self) -> bool:
        return self.in_flight < self.limit

    def start(self) -> None:
        self.in_flight += 1
        if self.in_flight >= self.limit:
            self._reached = True

    def wanted(self) -> None:
        """Something was waiting while every slot was busy: the limit was the bottleneck."""
        self._reached = True

    def done(self, rtt: float, pushed_back: bool) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        self._window_answers += 1
        self._window_rtts += rtt
        self._pushed_back = self._pushed_back or pushed_back
        now = time.monotonic()
        window = max(MIN_WINDOW, self.average or 0.0)
        elapsed = now - self._window_start
        # A push-back shrinks the limit at once, but once per MIN_WINDOW: the requests in flight
        # when a collector starts answering 429 all come back with one, and that is one signal.
        if (self._pushed_back and elapsed >= MIN_WINDOW) or (elapsed >= window and self._window_answers >= self.limit):
            self._adjust(now)

    def _adjust(self, now: float) -> None:
        mean = self._window_rtts / max(1, self._window_answers)
        average = self.average
        rising = average is not None and mean > average * (1 + RISE) + RISE_FLOOR
        if self._pushed_back or rising:
            new = max(1, math.floor(self.limit * DECREASE))
            if new < self.limit:
                self.shrunk += 1
            self.limit = new
        elif self._reached and self.limit < self.maximum:
            self.limit += 1
            self.grown += 1
        if not self._pushed_back:
            # A push-back's answer time says nothing about the path (a 429 is quick).
            self.average = mean if average is None else average + EWMA_WEIGHT * (mean - average)
        self._window_start = now
        self._window_rtts = 0.0
        self._window_answers = 0
        self._reached = self.in_flight >= self.limit
        self._pushed_back = False
