"""The byte bound on what the pipeline holds in memory (``max_queue_bytes``).

One :class:`Budget` per client is charged by everything that holds captured calls: the flusher's
queue of raw calls (their bodies, headers and the copied request data) and each remote sender's
backlog of encoded events until they are delivered or counted. When a charge does not fit, the
call or batch is dropped and counted, never queued: a collector outage with large bodies costs at
most the budget, not the count bound times the body size.
"""

from __future__ import annotations

#: What an encoded event costs beside its JSON: the Item and the strings of its indexed columns.
ITEM_OVERHEAD = 512
#: What a raw call costs beside its kept bodies: the object, the header list or the copied
#: environ/scope, the strings of the request line.
RAW_OVERHEAD = 2048


class Budget:
    """Bytes charged against ``limit``. Usage::

        if not budget.charge(n): drop_and_count()
        ...
        budget.release(n)   # the same n, once the bytes are let go of

    Lock-free: ``used`` is one integer attribute updated with ``+=``/``-=``, which CPython runs
    without a thread switch between the read and the write (the interpreter hands the GIL over
    only at calls and backward jumps, and an int's add calls no Python code), so charges from
    the request threads and releases from the flusher and senders are exact without a lock the
    request path would share with the background threads.
    """

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def charge(self, n: int) -> bool:
        """Take ``n`` bytes if they fit; False (nothing taken) when they do not."""
        if self.used + n > self.limit:
            return False
        self.used += n
        return True

    def release(self, n: int) -> None:
        self.used -= n

    @property
    def fill(self) -> float:
        """How full the budget is, 0 to 1."""
        return min(1.0, max(0, self.used) / self.limit)

    def reset(self) -> None:
        """After a fork: the parent's queued calls are the parent's."""
        self.used = 0
