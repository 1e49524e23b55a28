"""The parallel limit: this controller's unfinished migrations, and VMs waiting in line."""

from __future__ import annotations

from typing import Any

from controller.migrations import MigrationPlan, manifest
from controller.runner import EXPECT_SECONDS, MigrationSlots
from kubecache import Change

CONTROLLER = "guard-controller"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def migration(name: str, phase: str = "Running", controller: str = CONTROLLER) -> dict[str, Any]:
    plan = MigrationPlan(name=name, namespace="ns", vmi=name, request="r", attempt=1)
    found = manifest(plan, controller=controller)
    found["status"] = {"phase": phase}
    return found


def slot(name: str) -> tuple[str, str]:
    return ("ns", name)


def test_reservations_and_unfinished_migrations_share_the_limit() -> None:
    slots = MigrationSlots(limit=2, controller=CONTROLLER, clock=Clock())
    assert slots.reserve(slot("a"), migration("a"))
    slots.observe(Change(migration("b")))
    assert slots.count() == 2
    assert not slots.reserve(slot("c"), migration("c"))
    assert slots.reserve(slot("a"), migration("a"))  # already counted: no second slot
    slots.observe(Change(migration("a")))  # the cache shows the reserved one
    assert slots.count() == 2


def test_other_controllers_migrations_do_not_count() -> None:
    slots = MigrationSlots(limit=1, controller=CONTROLLER, clock=Clock())
    slots.observe(Change(migration("theirs", controller="other")))
    slots.observe(Change(migration("kubevirt-workload-update-x", controller="")))
    assert slots.count() == 0


def test_a_finished_migration_wakes_the_first_in_line() -> None:
    slots = MigrationSlots(limit=1, controller=CONTROLLER, clock=Clock())
    slots.observe(Change(migration("a")))
    slots.wait("ns/first")
    slots.wait("ns/second")
    assert slots.observe(Change(migration("a", phase="Running"))) == []
    assert slots.observe(Change(migration("a", phase="Succeeded"))) == ["ns/first"]
    slots.observe(Change(migration("b")))
    assert slots.observe(Change(migration("b"), deleted=True)) == ["ns/second"]


def test_a_failed_create_gives_the_slot_back() -> None:
    slots = MigrationSlots(limit=1, controller=CONTROLLER, clock=Clock())
    assert slots.reserve(slot("a"), migration("a"))
    slots.wait("ns/next")
    assert slots.cancel(slot("a")) == ["ns/next"]
    assert slots.count() == 0


def test_a_created_migration_the_cache_never_shows_stops_counting() -> None:
    clock = Clock()
    slots = MigrationSlots(limit=1, controller=CONTROLLER, clock=clock)
    assert slots.reserve(slot("a"), migration("a"))
    assert [m["metadata"]["name"] for m in slots.expected_for("ns", "a")] == ["a"]
    clock.now += EXPECT_SECONDS + 1
    assert slots.count() == 0
    assert slots.expected_for("ns", "a") == []
