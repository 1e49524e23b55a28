"""Hot plugs and unplugs completed by the controller, on the real control plane with the
KubeVirt simulator: one migration per change, KubeVirt's own auto-migration respected,
failures retried, stopped VMs skipped, and restarts after every single write."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Mapping
from typing import Any

import kubernetes.client
import kubernetes.watch
import pytest
import urllib3.exceptions

from controller.cluster import ClusterApi
from controller.migrations import ATTEMPT_LABEL, REQUEST_LABEL
from controller.objects import info_sources, status_interfaces
from controller.runner import Controller
from policy.annotations import REQUEST, Phase, parse_request
from tests.controller.scenario import (
    CrashingApi,
    Scenario,
    controller_settings,
    running_controller,
    status_of,
)
from tests.kube.release import Release
from tests.kube.simulator import Timing, stop

Manifest = dict[str, Any]


def request_of(vm: Mapping[str, Any]) -> str:
    request = parse_request(vm["metadata"]["annotations"][REQUEST])
    assert request is not None
    return request.id


def calls(controller: Controller, verb: str, resource: str) -> float:
    """API calls the controller made, by its own metric."""
    value = controller.metrics.registry.get_sample_value(
        "hotplug_guard_controller_api_requests_total", {"verb": verb, "resource": resource}
    )
    return value or 0.0


def attempts(migrations: list[Manifest]) -> list[str]:
    return sorted(m["metadata"].get("labels", {}).get(ATTEMPT_LABEL, "") for m in migrations)


def test_a_plug_completes_through_one_migration(scenario: Scenario, guard: Release) -> None:
    scenario.running_vm("fedora")
    with running_controller(guard) as controller:
        scenario.plug("fedora")
        status = scenario.wait_finished("fedora")
        writes = {
            verb: calls(controller, verb, resource)
            for verb, resource in (
                ("patch", "virtualmachines"),
                ("create", "virtualmachineinstancemigrations"),
            )
        }

    vm = scenario.cluster.vm("fedora")
    [migration] = scenario.migrations("fedora")
    assert status.phase is Phase.SUCCEEDED, status.message
    assert (status.migration, status.attempts) == (migration["metadata"]["name"], 1)
    assert status.message == f"completed by migration '{status.migration}': the guest has 'nic1'"
    assert migration["metadata"]["labels"][REQUEST_LABEL] == request_of(vm) == status.id
    assert migration["spec"] == {"vmiName": "fedora"}  # no priority: KubeVirt's alone
    reported = status_interfaces(scenario.vmi("fedora"))
    assert "domain" in info_sources(reported["nic1"])
    assert writes == {"patch": 3, "create": 1}  # Waiting, Migrating, Succeeded; one migration
    assert [e["reason"] for e in scenario.events("fedora")] == [
        "HotplugWaiting",
        "HotplugMigrating",
        "HotplugSucceeded",
    ]
    assert scenario.simulator.violations == []


def test_an_unplug_completes_and_survives_kubevirts_cleanup(
    scenario: Scenario, guard: Release
) -> None:
    scenario.running_vm("fedora", secondary=(("nic1", "net1"),))
    with running_controller(guard):
        scenario.unplug("fedora", "nic1")
        status = scenario.wait_finished("fedora")
        # KubeVirt then drops the interface from the VM template; nothing more happens
        vm = scenario.wait_vm(
            "fedora",
            lambda vm: (
                "nic1"
                not in {
                    i["name"]
                    for i in vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"]
                }
            ),
        )

    assert status.phase is Phase.SUCCEEDED, status.message
    assert status.message.endswith("'nic1' is gone from the VMI")
    assert "nic1" not in status_interfaces(scenario.vmi("fedora"))
    assert status_of(vm) == status
    assert len(scenario.migrations("fedora")) == 1
    assert scenario.simulator.violations == []


@pytest.mark.usefixtures("live_migrate")
def test_kubevirts_own_migration_is_observed_and_none_is_added(
    scenario: Scenario, guard: Release
) -> None:
    scenario.running_vm("fedora")
    with running_controller(guard, settings=controller_settings(guard, grace_seconds=0.0)):
        scenario.plug("fedora")
        status = scenario.wait_finished("fedora")

    [migration] = scenario.migrations("fedora")
    assert "kubevirt.io/workloadUpdateMigration" in migration["metadata"]["annotations"]
    assert status.phase is Phase.SUCCEEDED, status.message
    assert status.migration == migration["metadata"]["name"]
    reasons = [(e["reason"], e["message"]) for e in scenario.events("fedora")]
    assert any("KubeVirt migrates the VM by itself" in message for _, message in reasons)
    assert scenario.simulator.violations == []


def test_a_failed_migration_is_retried(scenario: Scenario, guard: Release) -> None:
    scenario.running_vm("fedora")
    scenario.simulator.fault(scenario.namespace, "fedora").fail = 1
    with running_controller(guard):
        scenario.plug("fedora")
        status = scenario.wait_finished("fedora")

    assert (status.phase, status.attempts) == (Phase.SUCCEEDED, 2), status.message
    assert attempts(scenario.migrations("fedora")) == ["1", "2"]


def test_a_migration_that_keeps_failing_fails_the_request(
    scenario: Scenario, guard: Release
) -> None:
    scenario.running_vm("fedora")
    scenario.simulator.fault(scenario.namespace, "fedora").fail = 3
    with running_controller(guard):
        scenario.plug("fedora")
        status = scenario.wait_finished("fedora")

    assert (status.phase, status.attempts) == (Phase.FAILED, 3)
    assert "3 of 3 migrations did not complete the change" in status.message
    assert "failed: simulated failure" in status.message
    assert attempts(scenario.migrations("fedora")) == ["1", "2", "3"]
    assert scenario.events("fedora")[-1]["type"] == "Warning"


def test_a_vm_stopped_mid_way_is_skipped(scenario: Scenario, guard: Release) -> None:
    scenario.running_vm("fedora")
    scenario.simulator.fault(scenario.namespace, "fedora").stop_while_migrating = True
    with running_controller(guard):
        scenario.plug("fedora")
        status = scenario.wait_finished("fedora")

    assert status.phase is Phase.SKIPPED, status.message
    assert status.message == "the VM does not run; the change applies when it starts"
    assert len(scenario.migrations("fedora")) == 1


def test_a_never_finishing_migration_is_followed_until_the_vmi_goes(
    scenario: Scenario, guard: Release
) -> None:
    scenario.running_vm("fedora")
    scenario.simulator.fault(scenario.namespace, "fedora").hang = True
    with running_controller(guard) as controller:
        scenario.plug("fedora")
        migrating = scenario.wait_phase("fedora", Phase.MIGRATING)
        scenario.wait_vm(
            "fedora", lambda vm: controller.slots.count() == 1 and status_of(vm) == migrating
        )
        # the VMI is deleted under the running migration
        stop(scenario.plane.api_client(), scenario.namespace, "fedora")
        status = scenario.wait_finished("fedora")

    assert status.phase is Phase.SKIPPED
    assert len(scenario.migrations("fedora")) == 1


def test_a_restart_after_every_write_still_makes_one_migration_per_attempt(
    scenario: Scenario, guard: Release
) -> None:
    """The controller is killed right after each of its writes in turn (status, migration,
    Event); a new one, knowing only what the API server holds, finishes the request."""
    settings = controller_settings(guard)
    crash_points = range(1, 8)  # a complete run writes 3 statuses, 1 migration, 3 Events
    for crash_after in crash_points:
        name = f"fedora-{crash_after}"
        scenario.running_vm(name)
        with running_controller(
            guard,
            settings=settings,
            api_type=CrashingApi,
            crash_after=crash_after,
            release_lease=False,
        ) as doomed:
            scenario.plug(name)
            api = doomed.api
            assert isinstance(api, CrashingApi)
            assert api.crashed.wait(30), f"no write number {crash_after}: {api.writes}"
            doomed.stop(release=False)  # dead: no further call
        # its Lease would expire after lease_seconds (the election is tested with two
        # replicas); the admin deletes it so the next controller leads at once
        scenario.plane.delete(
            "coordination.k8s.io/v1",
            "Lease",
            f"{guard.fullname}-controller",
            namespace=guard.namespace,
        )
        with running_controller(guard, settings=settings):
            status = scenario.wait_finished(name)
        assert status.phase is Phase.SUCCEEDED, (crash_after, api.writes, status.message)
        assert attempts(scenario.migrations(name)) == ["1"], (crash_after, api.writes)
    assert scenario.simulator.violations == []


def test_conflicts_throttling_and_server_errors_are_retried(
    scenario: Scenario, guard: Release
) -> None:
    """A VM changed between read and write gets a real 409 from kube-apiserver; 429 and 500,
    which it does not give on cue, are injected into the client's answers."""
    scenario.running_vm("fedora")
    answers = iter([429, 500])
    changed: list[str] = []

    class Flaky(ClusterApi):
        def patch_status(self, vm: Mapping[str, Any], value: str) -> None:
            if not changed:  # someone labels the VM after the controller read it
                changed.append(vm["metadata"]["resourceVersion"])
                scenario.merge_patch("fedora", {"metadata": {"labels": {"touched": "yes"}}})
            else:
                status = next(answers, None)
                if status is not None:
                    raise_from_client(self, status)
            super().patch_status(vm, value)

    with running_controller(guard, api_type=Flaky) as controller:
        scenario.plug("fedora")
        status = scenario.wait_finished("fedora")
        patches = calls(controller, "patch", "virtualmachines")

    assert status.phase is Phase.SUCCEEDED, status.message
    assert next(answers, None) is None  # both injected answers were met
    assert patches == 3 + 3  # each of the three statuses, plus the 409, the 429 and the 500


def raise_from_client(api: ClusterApi, status: int) -> None:
    """An answer of `status` as the kubernetes client raises it, through the API's mapping."""
    with api._calling("patch", "virtualmachines"):  # the mapping under test
        raise kubernetes.client.ApiException(status=status, reason=json.dumps("injected"))


def test_never_more_migrations_in_flight_than_the_limit(scenario: Scenario, guard: Release) -> None:
    names = [f"vm-{n}" for n in range(5)]
    for name in names:
        scenario.running_vm(name)
    seen = MigrationsInFlight(scenario)
    slow, scenario.simulator.timing = scenario.simulator.timing, Timing(step=0.3)
    try:
        with (
            seen,
            running_controller(
                guard, settings=controller_settings(guard, max_parallel_migrations=2)
            ),
        ):
            for name in names:
                scenario.plug(name)
            statuses = [scenario.wait_finished(name) for name in names]
    finally:
        scenario.simulator.timing = slow

    assert {status.phase for status in statuses} == {Phase.SUCCEEDED}
    assert seen.most == 2  # the limit was reached, never passed
    assert sum(len(scenario.migrations(name)) for name in names) == 5


class MigrationsInFlight:
    """Watches a namespace's migrations; `most`: the most ever unfinished at once."""

    def __init__(self, scenario: Scenario) -> None:
        self.most = 0
        self._scenario = scenario
        self._watch = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)

    def __enter__(self) -> MigrationsInFlight:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopping.set()
        self._watch.stop()  # type: ignore[no-untyped-call]
        self._thread.join(10)

    def _follow(self) -> None:
        with contextlib.suppress(urllib3.exceptions.ProtocolError):  # stop() closes the stream
            self._count()

    def _count(self) -> None:
        api = kubernetes.client.CustomObjectsApi(self._scenario.plane.api_client())
        unfinished: set[str] = set()
        for event in self._watch.stream(  # type: ignore[no-untyped-call]
            api.list_namespaced_custom_object,
            "kubevirt.io",
            "v1",
            self._scenario.namespace,
            "virtualmachineinstancemigrations",
            timeout_seconds=120,
        ):
            name = event["object"]["metadata"]["name"]
            phase = (event["object"].get("status") or {}).get("phase")
            if event["type"] == "DELETED" or phase in ("Succeeded", "Failed"):
                unfinished.discard(name)
            else:
                unfinished.add(name)
            self.most = max(self.most, len(unfinished))
