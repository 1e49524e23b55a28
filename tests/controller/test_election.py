"""Leader election round by round, against an in-memory Lease with the API server's
conflict rule, on injected clocks (each replica its own, as on separate nodes)."""

from __future__ import annotations

import dataclasses

import pytest

from controller.election import Conflict, Elector, LeaseRecord, Timings

TIMINGS = Timings(lease_seconds=15, renew_deadline_seconds=10, retry_seconds=2)


class Lease:
    """One Lease: writes must carry the resourceVersion last read (409 otherwise)."""

    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.version = 0
        self.down = False

    def read_lease(self) -> LeaseRecord | None:
        self._reachable()
        return self.record

    def create_lease(self, record: LeaseRecord) -> LeaseRecord:
        self._reachable()
        if self.record is not None:
            raise Conflict("exists")
        return self._store(record)

    def replace_lease(self, record: LeaseRecord) -> LeaseRecord:
        self._reachable()
        if self.record is None or record.version != self.record.version:
            raise Conflict("changed")
        return self._store(record)

    def _store(self, record: LeaseRecord) -> LeaseRecord:
        self.version += 1
        self.record = dataclasses.replace(record, version=str(self.version))
        return self.record

    def _reachable(self) -> None:
        if self.down:
            raise ConnectionError("the API server does not answer")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def replica(
    lease: Lease, identity: str, events: list[str], start: float = 1000.0
) -> tuple[Elector, Clock]:
    clock = Clock(start)
    elector = Elector(
        lease,
        identity=identity,
        timings=TIMINGS,
        on_started_leading=lambda: events.append(f"{identity} leads"),
        on_stopped_leading=lambda: events.append(f"{identity} stops"),
        clock=clock,
    )
    return elector, clock


def test_the_first_replica_takes_the_lease_and_keeps_renewing_it() -> None:
    lease, events = Lease(), list[str]()
    a, clock = replica(lease, "a", events)
    a.step()
    assert a.is_leader()
    assert lease.record is not None
    assert (lease.record.holder, lease.record.transitions, lease.record.lease_seconds) == (
        "a",
        1,
        15,
    )
    clock.now += 2
    a.step()
    assert lease.record.renewed == clock.now
    assert (lease.record.transitions, events) == (1, ["a leads"])


def test_a_standby_takes_over_only_after_the_lease_stays_unrenewed_for_its_duration() -> None:
    lease, events = Lease(), list[str]()
    a, _ = replica(lease, "a", events)
    b, clock_b = replica(lease, "b", events, start=50.0)  # clocks need not agree
    a.step()
    b.step()
    assert not b.is_leader()
    clock_b.now += 14  # a stops renewing: b sees the same record for 14 s
    b.step()
    assert not b.is_leader()
    clock_b.now += 1
    b.step()
    assert b.is_leader()
    assert lease.record is not None
    assert (lease.record.holder, lease.record.transitions) == ("b", 2)
    # a wakes up, reads b's lease and stops acting
    a.step()
    assert not a.is_leader()
    assert events == ["a leads", "b leads", "a stops"]


def test_a_renewing_leader_is_never_taken_over() -> None:
    lease, events = Lease(), list[str]()
    a, clock_a = replica(lease, "a", events)
    b, clock_b = replica(lease, "b", events)
    for _ in range(20):
        a.step()
        b.step()
        clock_a.now += 2
        clock_b.now += 2
    assert a.is_leader()
    assert not b.is_leader()


def test_a_leader_that_cannot_renew_stops_before_anyone_may_take_over() -> None:
    lease, events = Lease(), list[str]()
    a, clock = replica(lease, "a", events)
    a.step()
    lease.down = True
    clock.now += 9
    a.step()
    assert a.is_leader()  # within the renew deadline
    clock.now += 1
    a.step()
    assert not a.is_leader()  # 10 s: stopped, 5 s before the lease could expire for others
    assert events == ["a leads", "a stops"]


def test_two_candidates_for_an_empty_lease_never_both_win() -> None:
    lease, events = Lease(), list[str]()
    a, _ = replica(lease, "a", events)
    b, _ = replica(lease, "b", events)
    real_read = lease.read_lease
    lease.read_lease = lambda: None  # type: ignore[method-assign]  # both saw no Lease
    a.step()
    b.step()
    lease.read_lease = real_read  # type: ignore[method-assign]
    assert [a.is_leader(), b.is_leader()] == [True, False]


def test_a_released_lease_is_taken_at_once() -> None:
    lease, events = Lease(), list[str]()
    a, _ = replica(lease, "a", events)
    b, _ = replica(lease, "b", events)
    a.step()
    b.step()
    a.stop()  # graceful: the holder is emptied
    assert lease.record is not None
    assert lease.record.holder == ""
    b.step()
    assert b.is_leader()


@pytest.mark.parametrize(
    ("retry", "deadline", "duration"), [(2, 10, 10), (10, 10, 15), (0, 10, 15)]
)
def test_timings_out_of_order_are_refused(retry: float, deadline: float, duration: float) -> None:
    with pytest.raises(ValueError, match="retry period < renew deadline < lease duration"):
        Timings(lease_seconds=duration, renew_deadline_seconds=deadline, retry_seconds=retry)
