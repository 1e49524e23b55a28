"""The work queue of VM keys, with client-go's workqueue semantics.

A key is in the queue at most once however often it is added; no two workers
process one key at the same time (a key added while being processed comes back
once it is done); `add_after` delays a key; `add_rate_limited` delays it by a
per-key back-off that doubles with each failure until `forget`.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable

BASE_BACKOFF_SECONDS = 0.05
MAX_BACKOFF_SECONDS = 300.0


class WorkQueue:
    """Keys (`namespace/name`) waiting to be processed; see the module documentation."""

    def __init__(
        self,
        *,
        base_backoff: float = BASE_BACKOFF_SECONDS,
        max_backoff: float = MAX_BACKOFF_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base = base_backoff
        self._max = max_backoff
        self._clock = clock
        self._ready: deque[str] = deque()
        self._queued: set[str] = set()
        self._processing: set[str] = set()
        self._dirty: set[str] = set()
        self._delayed: list[tuple[float, int, str]] = []
        self._due: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._shut = False

    def add(self, key: str) -> None:
        with self._changed:
            self._add(key)

    def add_after(self, key: str, delay: float) -> None:
        """Add `key` in `delay` seconds (at once when not positive); the earliest time wins."""
        if delay <= 0:
            self.add(key)
            return
        with self._changed:
            due = self._clock() + delay
            if self._due.get(key, float("inf")) <= due:
                return
            self._due[key] = due
            heapq.heappush(self._delayed, (due, next(self._order), key))
            self._changed.notify()

    def add_rate_limited(self, key: str) -> float:
        """Add `key` after its back-off (doubled for each failure since `forget`); the delay."""
        with self._changed:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        delay = min(self._max, self._base * float(2**failures))
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        """`key` succeeded: its next failure backs off from the start."""
        with self._changed:
            self._failures.pop(key, None)

    def get(self, timeout: float | None = None) -> str | None:
        """The next ready key, now being processed (call `done`); None after `timeout` or
        `shutdown`."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._changed:
            while True:
                if self._shut:
                    return None
                self._release_due()
                if self._ready:
                    key = self._ready.popleft()
                    self._queued.discard(key)
                    self._processing.add(key)
                    return key
                waits = [due - self._clock() for due in (self._next_due(), deadline) if due]
                if deadline is not None and deadline - self._clock() <= 0:
                    return None
                self._changed.wait(max(0.0, min(waits)) if waits else None)

    def done(self, key: str) -> None:
        with self._changed:
            self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self._add(key)

    def shutdown(self) -> None:
        with self._changed:
            self._shut = True
            self._changed.notify_all()

    def __len__(self) -> int:
        with self._changed:
            return len(self._ready) + len(self._due)

    def _add(self, key: str) -> None:
        if key in self._processing:
            self._dirty.add(key)
            return
        self._due.pop(key, None)  # added now: an earlier delay is moot
        if key not in self._queued:
            self._queued.add(key)
            self._ready.append(key)
            self._changed.notify()

    def _release_due(self) -> None:
        now = self._clock()
        while self._delayed and self._delayed[0][0] <= now:
            due, _, key = heapq.heappop(self._delayed)
            if self._due.get(key) == due:
                del self._due[key]
                self._add(key)

    def _next_due(self) -> float | None:
        while self._delayed and self._due.get(self._delayed[0][2]) != self._delayed[0][0]:
            heapq.heappop(self._delayed)  # superseded by an earlier time or an add
        return self._delayed[0][0] if self._delayed else None
