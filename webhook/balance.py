"""Spreading client connections evenly over the serving workers: least connections.

kube-apiserver sends its reviews over a few long-lived keep-alive connections. Each
worker is one Python process, so two connections on one worker share one core while
another worker idles. Neither of the kernel's ways spreads them: on one shared
listening socket whichever worker wakes first accepts, and with a socket per worker
(SO_REUSEPORT) the kernel picks by a hash of the addresses, so two connections land
on one worker half of the time.

So the workers share one listening socket and a table in memory shared with the
master, which creates it before it forks them: one slot per worker, holding how many
connections that worker has open (vacant until the worker is ready to accept). A
worker accepts only while it holds no more than every other live worker; otherwise it
steps aside and stops watching the listening socket, and a sibling takes the
connection. The worker looks at the table again every `ASIDE_POLL_SECONDS` and comes
back as soon as no sibling holds fewer connections than it does. A connection still
waiting after `STEP_ASIDE_SECONDS` (the sibling is busy, hung or gone) it takes after
all, so nobody waits on a worker that cannot accept.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterable

STEP_ASIDE_SECONDS = 0.05
"""How long a worker with more connections than a sibling leaves new ones to it: longer
than a live worker takes to get to its listening socket (a few milliseconds while its
threads review, the GIL changing hands every 5 ms), short enough that a connection nobody
took waits little."""
ASIDE_POLL_SECONDS = 0.002
"""How often a worker that stepped aside reads its siblings' counts again."""
VACANT = -1
"""A slot no worker that accepts holds (free, or its worker still booting)."""
_SLOT_BYTES = 8


class ConnectionTable:
    """Open connections per worker slot, in anonymous shared memory (inherited by forks).

    The master assigns and vacates slots (gunicorn's `pre_fork` and `child_exit` hooks);
    each worker writes only its own slot and reads the others'.
    """

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError(f"a connection table needs a slot, got {slots}")
        self._memory = mmap.mmap(-1, slots * _SLOT_BYTES)
        self._counts = memoryview(self._memory).cast("q")
        for slot in range(slots):
            self._counts[slot] = VACANT

    def assign(self, taken: Iterable[int]) -> int | None:
        """A free slot for a worker about to be forked; None when all are taken (that
        worker then accepts whenever it can, as without a table). The slot stays vacant
        until the worker, booted, publishes its count: until then it cannot accept, and
        its siblings must not leave connections to it.
        """
        held = set(taken)
        for slot in range(len(self._counts)):
            if slot not in held:
                self._counts[slot] = VACANT
                return slot
        return None

    def vacate(self, slot: int) -> None:
        """Free the slot of a worker that exited."""
        self._counts[slot] = VACANT

    def publish(self, slot: int, count: int) -> None:
        self._counts[slot] = count

    def count(self, slot: int) -> int:
        return int(self._counts[slot])

    def least_loaded(self, slot: int) -> bool:
        """Whether the worker in `slot` has no more connections than any live other."""
        counts = self._counts
        mine = counts[slot]
        return all(
            other == VACANT or mine <= other for index, other in enumerate(counts) if index != slot
        )


class Share:
    """One worker's slot in a `ConnectionTable`."""

    def __init__(self, table: ConnectionTable, slot: int) -> None:
        self.table = table
        self.slot = slot

    def publish(self, count: int) -> None:
        self.table.publish(self.slot, count)

    def my_turn(self) -> bool:
        return self.table.least_loaded(self.slot)
