"""Overload that stays honest: under a backlog that lasts, keep 1 call in N with ``weight: N``.

When the pipeline cannot keep up (the collector is slow or down, or the flusher cannot build
events as fast as a saturated worker serves requests), a bounded queue must lose something.
Dropping the newest calls blind skews every metric Moesif computes; keeping one call in N and
giving it ``weight`` N (Moesif scales its metrics by ``weight``) keeps the totals right. N adapts to
the backlog: it doubles while the backlog stays high, and halves once it has stayed low.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from apimon._guard import logger

#: The backlog's fill (0-1) above which the pipeline is behind, and below which it has caught up.
HIGH = 0.25
LOW = 0.05
#: Seconds the backlog must stay high before sampling starts and between two doublings of N;
#: low before N first halves, and between two halvings (from 1,024 back to 1 in ~12 s).
SUSTAIN = 1.0
STEP_UP = 1.0
SUSTAIN_LOW = 2.0
STEP_DOWN = 1.0
MAX_N = 1024


class OverloadSampler:
    """Decides, on the request path, which calls to keep while the pipeline is overloaded.

    Usage::

        sampler = OverloadSampler(pressure=lambda: max(queue_fill, bytes_fill))
        # request path: only when sampler.n > 1
        if sampler.n > 1 and not sampler.keep(raw): count("sampled_overload")
        # background, every quarter second
        sampler.tick(time.monotonic())

    ``keep`` is one ``next()`` on a counter and a modulo: the kept call is every N-th one, so
    the weights of what is kept add up to the calls seen, call for call, at any fixed N.
    """

    def __init__(self, pressure: Callable[[], float], enabled: bool = True) -> None:
        self.pressure = pressure
        self.enabled = enabled
        self.n = 1  # read on the request path
        self._seq = itertools.count()
        self._high_since: float | None = None
        self._low_since: float | None = None
        self._changed = 0.0
        self.episodes = 0

    def keep(self, raw: object) -> bool:
        """Keep this call (its weight multiplied by N) or not (the caller counts it)."""
        n = self.n
        if next(self._seq) % n:
            return False
        weight = getattr(raw, "weight", None)
        setattr(raw, "weight", (weight or 1) * n)  # noqa: B010 - any call record with a weight
        return True

    def overflowed(self, now: float) -> None:
        """A call was dropped because the queue was full: sampling should have started already."""
        if self.enabled and now - self._changed >= STEP_UP / 4:
            self._set(max(2, self.n * 2), now, "the queue overflowed")

    def tick(self, now: float) -> None:
        if not self.enabled:
            return
        fill = self.pressure()
        if fill >= HIGH:
            self._low_since = None
            if self._high_since is None:
                self._high_since = now
            waited = now - self._high_since >= SUSTAIN if self.n == 1 else now - self._changed >= STEP_UP
            if waited and self.n < MAX_N:
                self._set(self.n * 2, now, f"the backlog is {fill:.0%} full")
        elif fill <= LOW:
            self._high_since = None
            if self.n == 1:
                return
            if self._low_since is None:
                self._low_since = now
            if now - self._low_since >= SUSTAIN_LOW and now - self._changed >= STEP_DOWN:
                self._set(self.n // 2, now, "caught up")
        else:
            self._high_since = self._low_since = None

    def _set(self, n: int, now: float, why: str) -> None:
        n = max(1, min(MAX_N, n))
        if n == self.n:
            return
        if self.n == 1:
            self.episodes += 1
            # Once an episode (its start and its end), never per call.
            logger.warning(
                "apimon: the pipeline cannot keep up (%s); keeping 1 call in %d with weight %d,"
                " the others counted as sampled_overload",
                why,
                n,
                n,
            )
        elif n == 1:
            logger.warning("apimon: the pipeline caught up; every call is kept again")
        self.n = n
        self._changed = now
