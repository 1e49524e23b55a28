"""The work queue: each key once, never twice at a time, delays and per-key back-off."""

from __future__ import annotations

import threading

from controller.queue import WorkQueue


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def queue() -> tuple[WorkQueue, Clock]:
    clock = Clock()
    return WorkQueue(base_backoff=1.0, max_backoff=8.0, clock=clock), clock


def test_a_key_added_twice_is_processed_once() -> None:
    work, _ = queue()
    work.add("ns/a")
    work.add("ns/a")
    work.add("ns/b")
    assert len(work) == 2
    assert [work.get(timeout=0), work.get(timeout=0), work.get(timeout=0)] == ["ns/a", "ns/b", None]


def test_a_key_added_while_processed_comes_back_when_done() -> None:
    work, _ = queue()
    work.add("ns/a")
    assert work.get(timeout=0) == "ns/a"
    work.add("ns/a")
    assert work.get(timeout=0) is None  # no second worker gets it meanwhile
    work.done("ns/a")
    assert work.get(timeout=0) == "ns/a"
    work.done("ns/a")
    assert work.get(timeout=0) is None


def test_delayed_keys_come_when_due_and_the_earliest_time_wins() -> None:
    work, clock = queue()
    work.add_after("ns/a", 10)
    work.add_after("ns/a", 5)
    work.add_after("ns/a", 20)
    assert work.get(timeout=0) is None
    clock.now += 5
    assert work.get(timeout=0) == "ns/a"
    work.done("ns/a")
    clock.now += 20
    assert work.get(timeout=0) is None


def test_adding_now_replaces_a_pending_delay() -> None:
    work, clock = queue()
    work.add_after("ns/a", 10)
    work.add("ns/a")
    assert work.get(timeout=0) == "ns/a"
    work.done("ns/a")
    clock.now += 10
    assert work.get(timeout=0) is None


def test_failures_back_off_per_key_until_forgotten() -> None:
    work, _ = queue()
    assert [work.add_rate_limited("ns/a") for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert work.add_rate_limited("ns/b") == 1.0
    work.forget("ns/a")
    assert work.add_rate_limited("ns/a") == 1.0


def test_a_waiting_worker_wakes_for_a_new_key_and_at_shutdown() -> None:
    work = WorkQueue()
    got: list[str | None] = []
    worker = threading.Thread(target=lambda: got.append(work.get(timeout=10)))
    worker.start()
    work.add("ns/a")
    worker.join(5)
    assert got == ["ns/a"]
    stopper = threading.Thread(target=lambda: got.append(work.get(timeout=10)))
    stopper.start()
    work.shutdown()
    stopper.join(5)
    assert got == ["ns/a", None]


def test_a_delay_wakes_a_waiting_worker_in_real_time() -> None:
    work = WorkQueue()
    work.add_after("ns/a", 0.05)
    assert work.get(timeout=5) == "ns/a"
