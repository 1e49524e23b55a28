"""Two replicas of the real `hotplug-guard controller` process, as the chart runs them: one
leads and acts, the other only watches; killed, the leader is replaced by the standby."""

from __future__ import annotations

import time
from typing import Any

from policy.annotations import Phase
from tests.controller.scenario import Scenario
from tests.kube.release import Release, Replica

FAST = (
    "--grace-seconds=0.3",
    "--verify-seconds=3",
    "--lease-duration-seconds=2",
    "--renew-deadline-seconds=1.5",
    "--retry-period-seconds=0.2",
)


def holder(scenario: Scenario, guard: Release) -> str:
    lease: Any = scenario.plane.get(
        "coordination.k8s.io/v1", "Lease", f"{guard.fullname}-controller", namespace=guard.namespace
    )
    return str((lease or {}).get("spec", {}).get("holderIdentity") or "")


def wait_holder(scenario: Scenario, guard: Release, prefix: str) -> str:
    deadline = time.monotonic() + 30
    while not holder(scenario, guard).startswith(prefix):
        assert time.monotonic() < deadline, (
            f"{prefix} never took the lease: {holder(scenario, guard)}"
        )
        time.sleep(0.1)
    return holder(scenario, guard)


def reporters(scenario: Scenario, vm: str) -> set[str]:
    return {event["reportingInstance"] for event in scenario.events(vm)}


def writes(replica: Replica) -> float:
    return sum(
        replica.metric("hotplug_guard_controller_api_requests", verb=verb, resource=resource)
        for verb, resource in (
            ("patch", "virtualmachines"),
            ("create", "virtualmachineinstancemigrations"),
            ("create", "events"),
        )
    )


def test_only_the_leader_acts_and_a_standby_takes_over_when_it_dies(
    scenario: Scenario, guard: Release
) -> None:
    first = guard.start_controller("replica-a", *FAST)
    wait_holder(scenario, guard, "replica-a")
    second = guard.start_controller("replica-b", *FAST)

    scenario.running_vm("before")
    scenario.plug("before")
    assert scenario.wait_finished("before").phase is Phase.SUCCEEDED
    leader = holder(scenario, guard)
    assert reporters(scenario, "before") == {leader}
    assert first.metric("hotplug_guard_controller_leader") == 1
    assert second.metric("hotplug_guard_controller_leader") == 0
    assert writes(first) >= 7  # three statuses, one migration, three Events
    assert writes(second) == 0  # the standby only watched

    first.kill()  # no graceful hand-over: the standby waits for the Lease to expire
    scenario.running_vm("after")
    scenario.plug("after")
    assert scenario.wait_finished("after").phase is Phase.SUCCEEDED
    successor = wait_holder(scenario, guard, "replica-b")
    assert reporters(scenario, "after") == {successor}
    assert len(scenario.migrations("after")) == 1

    assert second.stop() == 0  # SIGTERM: it hands the Lease back
    assert holder(scenario, guard) == ""
