"""Leader election through a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does.

Every replica runs an `Elector`. Every `retry_seconds` it reads the Lease: the
holder renews it; another replica takes it over once it has seen the same record
unchanged for `lease_seconds` (measured on its own clock from when it saw the record
change, so clocks need not agree); nobody holds it: the first to write it wins.
Every write carries the resourceVersion read, so two replicas never both win.

A leader that cannot renew for `renew_deadline_seconds` (shorter than the lease)
stops acting before anyone may take over; on a graceful stop it empties the holder
so that a standby takes over at once. What to do then is the caller's: the
controller's process exits, so that it restarts with a clean state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

LOG = logging.getLogger(f"hotplug_guard.{__name__}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Timings:
    lease_seconds: float = 15.0
    renew_deadline_seconds: float = 10.0
    retry_seconds: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_seconds < self.renew_deadline_seconds < self.lease_seconds:
            raise ValueError(
                "leader election needs 0 < retry period < renew deadline < lease duration, got "
                f"{self.retry_seconds}, {self.renew_deadline_seconds}, {self.lease_seconds}"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseRecord:
    """The Lease's spec as this module reads and writes it (times as the API server keeps them)."""

    holder: str = ""
    lease_seconds: int = 0
    acquired: float = 0.0
    renewed: float = 0.0
    transitions: int = 0
    version: str = ""
    """The resourceVersion read; writes are conditional on it."""


class Conflict(Exception):
    """The Lease changed since it was read (409), or was created meanwhile."""


class LeaseApi(Protocol):
    """Reads and writes one Lease; `cluster.ClusterApi` is the real one."""

    def read_lease(self) -> LeaseRecord | None: ...

    def create_lease(self, record: LeaseRecord) -> LeaseRecord: ...

    def replace_lease(self, record: LeaseRecord) -> LeaseRecord: ...


class Elector:
    """Campaigns for the Lease in a thread; `is_leader()` says whether to act now."""

    def __init__(
        self,
        api: LeaseApi,
        *,
        identity: str,
        timings: Timings,
        on_started_leading: Callable[[], None] = lambda: None,
        on_stopped_leading: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.identity = identity
        self._api = api
        self._timings = timings
        self._started = on_started_leading
        self._stopped_leading = on_stopped_leading
        self._clock = clock
        self._leader = threading.Event()
        self._stop = threading.Event()
        self._observed: tuple[str, float] | None = None
        self._observed_at = 0.0
        self._renewed_at = 0.0
        self._record: LeaseRecord | None = None
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)

    def start(self) -> Elector:
        self._thread.start()
        return self

    def is_leader(self) -> bool:
        return self._leader.is_set()

    def wait_leading(self, timeout: float | None = None) -> bool:
        return self._leader.wait(timeout)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, *, release: bool = True) -> None:
        """Stop campaigning; as the leader, hand the Lease back (unless `release` is False)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self._timings.retry_seconds + 5)
        if release and self._leader.is_set() and self._record is not None:
            try:
                self._api.replace_lease(replace(self._record, holder="", lease_seconds=1))
                LOG.info("released the lease")
            except Exception as error:  # the lease then simply expires
                LOG.warning("could not release the lease: %s", error)
        self._leader.clear()

    def step(self) -> None:
        """One round: read the Lease, then renew, take over or wait (tests call it directly)."""
        now = self._clock()
        try:
            record = self._api.read_lease()
            if record is None:
                self._won(self._api.create_lease(self._claim(None, now)), now)
                return
            key = (record.holder, record.renewed)
            if key != self._observed:
                self._observed, self._observed_at = key, now
            if record.holder == self.identity:
                self._won(self._api.replace_lease(self._claim(record, now)), now)
            elif not record.holder or self._observed_at + record.lease_seconds <= now:
                LOG.info("taking over the lease from %r", record.holder or "nobody")
                self._won(self._api.replace_lease(self._claim(record, now)), now)
            else:
                self._lost(f"{record.holder!r} holds the lease")
        except Conflict:
            self._lost_if_overdue(now, "the lease changed under it")
        except Exception as error:  # the API server may be unreachable for a while
            LOG.warning("leader election: %s", error)
            self._lost_if_overdue(now, f"cannot renew the lease: {error}")

    def _claim(self, record: LeaseRecord | None, now: float) -> LeaseRecord:
        ours = record is not None and record.holder == self.identity
        return LeaseRecord(
            holder=self.identity,
            lease_seconds=max(1, round(self._timings.lease_seconds)),
            acquired=record.acquired if ours and record is not None else now,
            renewed=now,
            transitions=(record.transitions if record is not None else 0) + (0 if ours else 1),
            version=record.version if record is not None else "",
        )

    def _won(self, record: LeaseRecord, now: float) -> None:
        self._record, self._renewed_at = record, now
        self._observed, self._observed_at = (record.holder, record.renewed), now
        if not self._leader.is_set():
            LOG.info("became the leader", extra={"identity": self.identity})
            self._leader.set()
            self._started()

    def _lost_if_overdue(self, now: float, why: str) -> None:
        if self._leader.is_set() and now - self._renewed_at >= self._timings.renew_deadline_seconds:
            self._lost(why)

    def _lost(self, why: str) -> None:
        if self._leader.is_set():
            LOG.warning("stopped leading: %s", why, extra={"identity": self.identity})
            self._leader.clear()
            self._stopped_leading()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.step()
            self._stop.wait(self._timings.retry_seconds)
