"""`decide` as a table: what is observed for one VM, what the controller does next."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import pytest

from controller.decisions import Decision, Observation, decide, waiting_message
from controller.objects import format_time
from controller.settings import Settings
from policy.annotations import HotplugStatus, Phase
from tests.controller.objects import (
    NOW,
    PLUG,
    SETTINGS,
    UNPLUG,
    migration,
    plugged_in_spec,
    vm,
    vmi,
)

SINCE = format_time(NOW - 20)
GRACE_OVER = NOW - SETTINGS.grace_seconds - 1
NAME = "fedora-hotplug-1f2e3d4c5b6a7988"
NOT_MIGRATABLE = {
    "type": "LiveMigratable",
    "status": "False",
    "reason": "InterfaceNotLiveMigratable",
    "message": "cannot migrate VMI which does not use masquerade",
}
MIGRATION_REQUIRED = {
    "type": "MigrationRequired",
    "status": "False",
    "reason": "AutoMigrationPending",
}
LIVE_MIGRATE = {"spec": {"workloadUpdateStrategy": {"workloadUpdateMethods": ["LiveMigrate"]}}}


def status(phase: Phase, *, attempts: int = 0, migration: str = "", **fields: Any) -> HotplugStatus:
    base: dict[str, Any] = {
        "id": PLUG.id,
        "phase": phase,
        "migration": migration,
        "attempts": attempts,
        "message": "",
        "generation": PLUG.generation,
        "since": SINCE,
    }
    return HotplugStatus(**(base | fields))


def observe(**fields: Any) -> Observation:
    base: dict[str, Any] = {
        "vm": vm(),
        "request": PLUG,
        "status": None,
        "vmi": plugged_in_spec(),
        "now": NOW,
    }
    return Observation(**(base | fields))


@dataclass(frozen=True)
class Row:
    observation: Observation
    phase: Phase | None
    message: str = ""
    attempt: int | None = None  # the attempt of the migration to create
    requeue: float | None = None
    settings: Settings = SETTINGS


ROWS: dict[str, Row] = {
    "a new request not yet in the VMI spec waits for KubeVirt": Row(
        observe(vmi=vmi()),
        Phase.WAITING,
        re.escape(waiting_message(SETTINGS)),
        requeue=SETTINGS.apply_seconds,
    ),
    "a change KubeVirt never applies fails after apply_seconds": Row(
        observe(
            vmi=vmi(),
            status=status(Phase.WAITING, since=format_time(NOW - SETTINGS.apply_seconds)),
        ),
        Phase.FAILED,
        r"KubeVirt did not apply the change to the VMI within 5m; see the VM's conditions",
    ),
    "a change just seen in the VMI spec gets the in-place grace period": Row(
        observe(),
        Phase.WAITING,
        re.escape(waiting_message(SETTINGS)),
        requeue=SETTINGS.grace_seconds,
    ),
    "after the grace period the first migration is created": Row(
        observe(reached_at=GRACE_OVER),
        Phase.MIGRATING,
        rf"migration '{NAME}-1' completes the change \(attempt 1 of 3\)",
        attempt=1,
    ),
    "every slot taken: the request waits, with the same words": Row(
        observe(reached_at=GRACE_OVER, in_flight=5),
        Phase.WAITING,
        re.escape(waiting_message(SETTINGS)),
    ),
    "a VMI that cannot migrate fails with KubeVirt's reason": Row(
        observe(
            reached_at=GRACE_OVER,
            vmi=vmi(spec={"default": "", "nic1": ""}, conditions=[NOT_MIGRATABLE]),
        ),
        Phase.FAILED,
        r"the VMI cannot be live migrated \(InterfaceNotLiveMigratable: cannot migrate VMI "
        r"which does not use masquerade\); restart the VM",
    ),
    "its own running migration is followed": Row(
        observe(
            status=status(Phase.MIGRATING, attempts=1, migration=f"{NAME}-1"),
            migrations=(migration(f"{NAME}-1", request=PLUG.id),),
        ),
        Phase.MIGRATING,
        rf"migration '{NAME}-1' completes the change \(attempt 1 of 3\)",
    ),
    "a succeeded migration gives the VMI verify_seconds to report the NIC": Row(
        observe(
            status=status(Phase.MIGRATING, attempts=1, migration=f"{NAME}-1"),
            migrations=(
                migration(f"{NAME}-1", phase="Succeeded", request=PLUG.id, ended=NOW - 10),
            ),
        ),
        Phase.MIGRATING,
        rf"migration '{NAME}-1' completes the change",
        requeue=SETTINGS.verify_seconds - 10,
    ),
    "a succeeded migration the VMI never confirms counts as failed": Row(
        observe(
            status=status(Phase.MIGRATING, attempts=1, migration=f"{NAME}-1"),
            migrations=(
                migration(
                    f"{NAME}-1",
                    phase="Succeeded",
                    request=PLUG.id,
                    ended=NOW - SETTINGS.verify_seconds - 1,
                ),
            ),
        ),
        Phase.WAITING,
        rf"migration '{NAME}-1' succeeded but after 2m the VMI does not report 'nic1' with "
        r"infoSource domain; attempt 2 of 3 in 30s",
        requeue=30 - 1,  # from when the VMI was due to report it
    ),
    "a failed migration is retried after the back-off": Row(
        observe(
            status=status(Phase.MIGRATING, attempts=1, migration=f"{NAME}-1"),
            migrations=(
                migration(
                    f"{NAME}-1", phase="Failed", request=PLUG.id, ended=NOW - 5, reason="boom"
                ),
            ),
        ),
        Phase.WAITING,
        rf"migration '{NAME}-1' failed: boom; attempt 2 of 3 in 30s",
        requeue=25,
    ),
    "once the back-off is over the next attempt is created": Row(
        observe(
            status=status(Phase.WAITING, attempts=1, migration=f"{NAME}-1"),
            migrations=(migration(f"{NAME}-1", phase="Failed", request=PLUG.id, ended=NOW - 31),),
        ),
        Phase.MIGRATING,
        rf"migration '{NAME}-2' completes the change \(attempt 2 of 3\)",
        attempt=2,
    ),
    "the back-off doubles with each attempt": Row(
        observe(
            status=status(Phase.MIGRATING, attempts=2, migration=f"{NAME}-2"),
            migrations=(
                migration(f"{NAME}-1", phase="Failed", request=PLUG.id, ended=NOW - 100),
                migration(f"{NAME}-2", phase="Failed", request=PLUG.id, attempt=2, ended=NOW - 31),
            ),
        ),
        Phase.WAITING,
        r"attempt 3 of 3 in 1m",
        requeue=60 - 31,
    ),
    "the last attempt failing fails the request": Row(
        observe(
            status=status(Phase.MIGRATING, attempts=3, migration=f"{NAME}-3"),
            migrations=(
                migration(
                    f"{NAME}-3",
                    phase="Failed",
                    request=PLUG.id,
                    attempt=3,
                    ended=NOW - 1,
                    reason="target pod unschedulable",
                ),
            ),
        ),
        Phase.FAILED,
        rf"3 of 3 migrations did not complete the change; the last: migration '{NAME}-3' "
        r"failed: target pod unschedulable; restart the VM to complete it",
    ),
    "attempts whose migrations were garbage collected still count": Row(
        observe(status=status(Phase.WAITING, attempts=2), reached_at=GRACE_OVER),
        Phase.MIGRATING,
        rf"migration '{NAME}-3' completes the change \(attempt 3 of 3\)",
        attempt=3,
    ),
    "no attempt beyond the last, even when its migrations are gone": Row(
        observe(status=status(Phase.WAITING, attempts=3), reached_at=GRACE_OVER),
        Phase.FAILED,
        r"3 of 3 migrations did not complete the change; the last: gone \(garbage collected\)",
    ),
    "the plugged NIC reported by the guest completes the request": Row(
        observe(
            status=status(Phase.MIGRATING, attempts=1, migration=f"{NAME}-1"),
            vmi=vmi(
                spec={"default": "", "nic1": ""},
                reported={"default": "domain", "nic1": "domain, guest-agent, multus-status"},
            ),
        ),
        Phase.SUCCEEDED,
        rf"completed by migration '{NAME}-1': the guest has 'nic1'",
    ),
    "a NIC plugged in place completes without a migration": Row(
        observe(
            status=status(Phase.WAITING),
            vmi=vmi(spec={"default": "", "nic1": ""}, reported={"nic1": "domain, multus-status"}),
        ),
        Phase.SUCCEEDED,
        r"completed in place: the guest has 'nic1'",
    ),
    "a NIC listed without domain is not plugged yet": Row(
        observe(vmi=vmi(spec={"default": "", "nic1": ""}, reported={"nic1": "multus-status"})),
        Phase.WAITING,
        re.escape(waiting_message(SETTINGS)),
        requeue=SETTINGS.grace_seconds,
    ),
    "no VMI: the change applies at the next start": Row(
        observe(vmi=None),
        Phase.SKIPPED,
        r"the VM does not run; the change applies when it starts",
    ),
    "a VMI that stopped mid-way": Row(
        observe(
            vmi=vmi(spec={"default": "", "nic1": ""}, phase="Succeeded"),
            status=status(Phase.MIGRATING, attempts=1, migration=f"{NAME}-1"),
        ),
        Phase.SKIPPED,
        r"the VM does not run",
    ),
    "a VM restarted since the request booted with the change": Row(
        observe(vm=vm(ledger_vmi="an-earlier-vmi")),
        Phase.SKIPPED,
        r"the VM restarted since the request; it booted with the change",
    ),
    "KubeVirt migrating by itself is only observed": Row(
        observe(
            reached_at=GRACE_OVER,
            vmi=vmi(spec={"default": "", "nic1": ""}, conditions=[MIGRATION_REQUIRED]),
            kubevirt=LIVE_MIGRATE,
        ),
        Phase.WAITING,
        r"KubeVirt migrates the VM by itself \(VMI condition MigrationRequired, LiveMigrate",
    ),
    "MigrationRequired without LiveMigrate in the CR: the controller migrates": Row(
        observe(
            reached_at=GRACE_OVER,
            vmi=vmi(spec={"default": "", "nic1": ""}, conditions=[MIGRATION_REQUIRED]),
            kubevirt={"spec": {"workloadUpdateStrategy": {"workloadUpdateMethods": ["Evict"]}}},
        ),
        Phase.MIGRATING,
        r"attempt 1 of 3",
        attempt=1,
    ),
    "KubeVirt's workload update migration is followed, not doubled": Row(
        observe(
            reached_at=GRACE_OVER,
            vmi=vmi(spec={"default": "", "nic1": ""}, conditions=[MIGRATION_REQUIRED]),
            kubevirt=LIVE_MIGRATE,
            migrations=(
                migration(
                    "kubevirt-workload-update-x7k2p",
                    annotations={"kubevirt.io/workloadUpdateMigration": ""},
                ),
            ),
        ),
        Phase.MIGRATING,
        r"KubeVirt's workload update migration 'kubevirt-workload-update-x7k2p' completes",
    ),
    "someone else's unfinished migration is waited for": Row(
        observe(reached_at=GRACE_OVER, migrations=(migration("kubevirt-evacuation-abc"),)),
        Phase.WAITING,
        r"migration 'kubevirt-evacuation-abc' of this VMI is unfinished; waiting for it",
    ),
    "another controller's migration is not counted as an attempt": Row(
        observe(
            reached_at=GRACE_OVER,
            migrations=(
                migration(f"{NAME}-1", phase="Failed", request=PLUG.id, controller="other"),
            ),
        ),
        Phase.MIGRATING,
        r"attempt 1 of 3",
        attempt=1,
    ),
    "an unplug waits while the pod still has the NIC": Row(
        observe(
            request=UNPLUG,
            vmi=vmi(
                spec={"default": "", "nic1": "absent"},
                reported={"default": "domain", "nic1": "multus-status"},
            ),
        ),
        Phase.WAITING,
        re.escape(waiting_message(SETTINGS)),
        requeue=SETTINGS.grace_seconds,
    ),
    "an unplug whose NIC is gone from the VMI completes": Row(
        observe(request=UNPLUG, vmi=vmi(spec={"default": ""}, reported={"default": "domain"})),
        Phase.SUCCEEDED,
        r"completed in place: 'nic1' is gone from the VMI",
    ),
    "an unplug not yet applied to the VMI waits": Row(
        observe(
            request=UNPLUG,
            vmi=vmi(spec={"default": "", "nic1": ""}, reported={"nic1": "domain, multus-status"}),
        ),
        Phase.WAITING,
        re.escape(waiting_message(SETTINGS)),
    ),
}


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
def test_decision(row: Row) -> None:
    decision = decide(row.observation, row.settings)
    if row.phase is None:
        assert decision.status is None
        return
    assert decision.status is not None
    assert decision.status.phase is row.phase, decision.status.message
    assert re.search(row.message, decision.status.message), decision.status.message
    assert (decision.status.id, decision.status.generation) == (
        row.observation.request.id,
        row.observation.request.generation,
    )
    if row.attempt is None:
        assert decision.migration is None
    else:
        assert decision.migration is not None
        assert decision.migration.attempt == row.attempt == decision.status.attempts
        assert decision.migration.name == decision.status.migration == f"{NAME}-{row.attempt}"
        assert (decision.migration.namespace, decision.migration.vmi) == ("team-a", "fedora")
    if row.requeue is not None:
        assert decision.requeue_after == pytest.approx(row.requeue)


def test_a_finished_request_needs_nothing_more() -> None:
    for phase in (Phase.SUCCEEDED, Phase.FAILED, Phase.SKIPPED):
        assert decide(observe(status=status(phase), vmi=None), SETTINGS) == Decision()


def test_an_older_request_written_back_is_refused() -> None:
    later = status(Phase.SUCCEEDED, id="9999999999999999", generation=PLUG.generation + 2)
    decision = decide(observe(status=later), SETTINGS)
    assert (decision.status, decision.migration) == (None, None)
    assert decision.refused == (
        "request '1f2e3d4c5b6a7988' (generation 7) is older than the last one handled, "
        "'9999999999999999' (generation 9)"
    )


def test_a_status_of_another_request_at_the_same_generation_is_refused() -> None:
    forged = status(Phase.WAITING, id="9999999999999999")
    assert decide(observe(status=forged), SETTINGS).refused


def test_the_status_of_an_earlier_request_is_replaced() -> None:
    earlier = status(Phase.SUCCEEDED, id="0000000000000001", generation=3, attempts=2)
    decision = decide(observe(status=earlier, vmi=vmi()), SETTINGS)
    assert decision.status is not None
    assert (decision.status.phase, decision.status.attempts) == (Phase.WAITING, 0)
    assert decision.status.since == format_time(NOW)


def test_since_and_attempts_are_kept_across_phases() -> None:
    current = status(Phase.WAITING, attempts=1)
    decision = decide(observe(status=current, reached_at=GRACE_OVER), SETTINGS)
    assert decision.status is not None
    assert (decision.status.since, decision.status.attempts) == (SINCE, 2)


def test_deciding_again_on_the_outcome_changes_nothing() -> None:
    """Idempotent: once the decided status is written, the same observation decides it again."""
    for row in ROWS.values():
        first = decide(row.observation, row.settings)
        if first.status is None or first.migration is not None:
            continue
        again = decide(replace(row.observation, status=first.status), row.settings)
        assert again.status == (None if first.status.finished else first.status)
        assert again.migration is None


def test_the_grace_period_is_skipped_for_retries() -> None:
    decision = decide(
        observe(
            status=status(Phase.WAITING, attempts=1),
            migrations=(migration(f"{NAME}-1", phase="Failed", request=PLUG.id, ended=NOW - 31),),
            reached_at=NOW,
        ),
        SETTINGS,
    )
    assert decision.migration is not None
    assert decision.migration.attempt == 2


def test_migration_names_stay_valid_for_long_vm_names() -> None:
    long_vm = vm()
    long_vm["metadata"]["name"] = "v" * 250 + ".-"
    decision = decide(observe(vm=long_vm, reached_at=GRACE_OVER), SETTINGS)
    assert decision.migration is not None
    assert len(decision.migration.name) <= 253
    assert decision.migration.name.endswith(f"-hotplug-{PLUG.id}-1")
    assert ".-" not in decision.migration.name
