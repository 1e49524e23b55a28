"""The controller's VirtualMachineInstanceMigrations: names, labels, and reading any migration.

A migration of this controller is named from the VM, the request id and the attempt
(`<vm>-hotplug-<id>-<attempt>`), so that creating it twice (a restart, two replicas
for a moment) gives 409 AlreadyExists instead of a second migration. Its labels say
which request and attempt it serves and which controller made it: the attempts of a
request are counted from its migrations, and the parallel limit from the unfinished
ones of this controller.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.objects import (
    FINAL_MIGRATION_PHASES,
    SUCCEEDED,
    WORKLOAD_UPDATE,
    Object,
    field,
    items,
    labels_of,
    name_of,
    parse_time,
    text,
)
from policy.instances import MIGRATION_VMI_LABEL

API_VERSION = "kubevirt.io/v1"
KIND = "VirtualMachineInstanceMigration"
REQUEST_LABEL = "hotplug-guard.io/request"
ATTEMPT_LABEL = "hotplug-guard.io/attempt"
CONTROLLER_LABEL = "hotplug-guard.io/controller"
MANAGED_BY = {"app.kubernetes.io/managed-by": "hotplug-guard"}
MAX_NAME = 253
MAX_LABEL_VALUE = 63
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationPlan:
    """A migration to create: attempt `attempt` of request `request` for VMI `vmi`."""

    name: str
    namespace: str
    vmi: str
    request: str
    attempt: int


def migration_name(vm: str, request: str, attempt: int) -> str:
    """`<vm>-hotplug-<request id>-<attempt>`, the VM's part cut to keep a valid name."""
    suffix = f"-hotplug-{request}-{attempt}"
    return vm[: MAX_NAME - len(suffix)].rstrip("-.") + suffix


def label_value(text_value: str) -> str:
    """`text_value` as a valid label value (at most 63 of `[A-Za-z0-9._-]`, alphanumeric ends)."""
    cleaned = _LABEL_VALUE.sub("-", text_value)[:MAX_LABEL_VALUE]
    return cleaned.strip("-._")


def manifest(plan: MigrationPlan, *, controller: str) -> dict[str, Any]:
    """The object to create: `spec.vmiName` only (KubeVirt lets only itself set a priority)."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": plan.name,
            "namespace": plan.namespace,
            "labels": {
                **MANAGED_BY,
                REQUEST_LABEL: plan.request,
                ATTEMPT_LABEL: str(plan.attempt),
                CONTROLLER_LABEL: label_value(controller),
            },
        },
        "spec": {"vmiName": plan.vmi},
    }


def vmi_of(migration: Object) -> str:
    """The VMI a migration moves: `spec.vmiName`, else KubeVirt's label."""
    return text(field(migration, "spec", "vmiName")) or text(
        labels_of(migration).get(MIGRATION_VMI_LABEL)
    )


def phase_of(migration: Object) -> str:
    return text(field(migration, "status", "phase"))


def unfinished(migration: Object) -> bool:
    return phase_of(migration) not in FINAL_MIGRATION_PHASES


def succeeded(migration: Object) -> bool:
    return phase_of(migration) == SUCCEEDED


def by_workload_updater(migration: Object) -> bool:
    """KubeVirt's own migration for a workload update (hot plug on v1.6+)."""
    annotations = field(migration, "metadata", "annotations")
    return isinstance(annotations, Mapping) and WORKLOAD_UPDATE in annotations


def owned_by(migration: Object, controller: str) -> bool:
    return labels_of(migration).get(CONTROLLER_LABEL) == label_value(controller)


def attempt_of(migration: Object, *, request: str, controller: str) -> int:
    """The attempt number if this controller made `migration` for `request`, else 0."""
    labels = labels_of(migration)
    if labels.get(REQUEST_LABEL) != request or not owned_by(migration, controller):
        return 0
    value = labels.get(ATTEMPT_LABEL)
    return int(value) if isinstance(value, str) and value.isdigit() else 0


def ended_at(migration: Object) -> float | None:
    """When the migration reached its final phase (its phase transition, else its
    migrationState's endTimestamp, else None)."""
    phase = phase_of(migration)
    for entry in items(field(migration, "status", "phaseTransitionTimestamps")):
        if entry.get("phase") == phase:
            moment = parse_time(entry.get("phaseTransitionTimestamp"))
            if moment is not None:
                return moment
    return parse_time(field(migration, "status", "migrationState", "endTimestamp"))


def failure_reason(migration: Object) -> str:
    """Why KubeVirt says the migration failed (its migrationState, else its conditions)."""
    reason = text(field(migration, "status", "migrationState", "failureReason"))
    if reason:
        return reason
    for entry in items(field(migration, "status", "conditions")):
        message = text(entry.get("message")) or text(entry.get("reason"))
        if message:
            return message
    return "no reason given"


def describe(migration: Object) -> str:
    return f"'{name_of(migration)}'"
