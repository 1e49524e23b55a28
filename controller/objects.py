"""What the controller reads of KubeVirt's objects (VMI, migration, KubeVirt CR), and times.

Pure functions over the raw mappings the caches keep; every shape is tolerated (a
missing or mistyped field reads as absent), since these objects are written by
other programs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from policy.annotations import HotplugRequest

ABSENT = "absent"
RUNNING = "Running"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
FINAL_MIGRATION_PHASES = frozenset({SUCCEEDED, FAILED})
LIVE_MIGRATABLE = "LiveMigratable"
MIGRATION_REQUIRED = "MigrationRequired"
LIVE_MIGRATE = "LiveMigrate"
WORKLOAD_UPDATE = "kubevirt.io/workloadUpdateMigration"
DOMAIN = "domain"

Object = Mapping[str, Any]


def field(obj: object, *path: str) -> Any:
    """obj[path[0]][path[1]]...; None as soon as a step is missing or not a mapping."""
    current: Any = obj
    for key in path:
        if not isinstance(current, Mapping):
            return None
        current = current.get(key)
    return current


def text(value: object) -> str:
    return value if isinstance(value, str) else ""


def items(value: object) -> list[Mapping[str, Any]]:
    """The mappings of a JSON list (anything else: none)."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def name_of(obj: Object) -> str:
    return text(field(obj, "metadata", "name"))


def uid_of(obj: Object) -> str:
    return text(field(obj, "metadata", "uid"))


def labels_of(obj: Object) -> Mapping[str, Any]:
    labels = field(obj, "metadata", "labels")
    return labels if isinstance(labels, Mapping) else {}


# --- time -----------------------------------------------------------------------------------


def parse_time(value: object) -> float | None:
    """Seconds since the epoch of an RFC 3339 time (`2026-01-02T03:04:05Z`), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def format_time(seconds: float) -> str:
    """RFC 3339 in UTC with whole seconds, as Kubernetes writes metav1.Time."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_seconds(seconds: float) -> str:
    """A duration for messages: `15s`, `0.5s`, `2m`."""
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


# --- the VMI --------------------------------------------------------------------------------


def condition(vmi: Object, kind: str) -> Mapping[str, Any] | None:
    for entry in items(field(vmi, "status", "conditions")):
        if entry.get("type") == kind:
            return entry
    return None


def running(vmi: Object) -> bool:
    """The VMI runs and is not being deleted."""
    return field(vmi, "status", "phase") == RUNNING and not field(
        vmi, "metadata", "deletionTimestamp"
    )


def spec_states(vmi: Object) -> dict[str, str]:
    """State of each interface in the VMI spec by name (`""`, `absent`, `up`, `down`)."""
    return {
        text(entry.get("name")): text(entry.get("state"))
        for entry in items(field(vmi, "spec", "domain", "devices", "interfaces"))
    }


def status_interfaces(vmi: Object) -> dict[str, Mapping[str, Any]]:
    """The VMI's `status.interfaces` entries by name (entries without a name are left out)."""
    return {
        text(entry.get("name")): entry
        for entry in items(field(vmi, "status", "interfaces"))
        if text(entry.get("name"))
    }


def info_sources(entry: Mapping[str, Any]) -> frozenset[str]:
    """The set in `infoSource` (`"domain, guest-agent, multus-status"`)."""
    return frozenset(part.strip() for part in text(entry.get("infoSource")).split(","))


def change_reached(vmi: Object, request: HotplugRequest) -> bool:
    """KubeVirt applied the request to the VMI spec: plugs present, unplugs absent (or gone,
    once KubeVirt removed them after completing)."""
    states = spec_states(vmi)
    return all(name in states and states[name] != ABSENT for name in request.plug) and all(
        states.get(name, ABSENT) == ABSENT for name in request.unplug
    )


def change_verified(vmi: Object, request: HotplugRequest) -> bool:
    """The VMI reports the change done: every plugged NIC with `domain` in its
    `infoSource` (the guest has it), every unplugged NIC gone from `status.interfaces`."""
    reported = status_interfaces(vmi)
    return all(
        name in reported and DOMAIN in info_sources(reported[name]) for name in request.plug
    ) and all(name not in reported for name in request.unplug)


def missing_report(vmi: Object, request: HotplugRequest) -> str:
    """What the VMI does not report yet, for messages."""
    reported = status_interfaces(vmi)
    missing = [
        f"'{name}' with infoSource domain"
        for name in request.plug
        if name not in reported or DOMAIN not in info_sources(reported[name])
    ]
    lingering = [f"'{name}' still listed" for name in request.unplug if name in reported]
    return ", ".join(missing + lingering) or "nothing"


def migratable(vmi: Object) -> tuple[bool, str]:
    """Whether the VMI can be live migrated, and KubeVirt's reason when it cannot."""
    entry = condition(vmi, LIVE_MIGRATABLE)
    if entry is None or entry.get("status") == "True":
        return True, ""
    reason = text(entry.get("reason")) or "LiveMigratable is not True"
    message = text(entry.get("message"))
    return False, f"{reason}: {message}" if message else reason


# --- the KubeVirt CR ------------------------------------------------------------------------


def lists_live_migrate(kubevirt: Object | None) -> bool:
    """The CR lists `LiveMigrate` in `spec.workloadUpdateStrategy.workloadUpdateMethods`."""
    methods = field(kubevirt, "spec", "workloadUpdateStrategy", "workloadUpdateMethods")
    return isinstance(methods, list) and LIVE_MIGRATE in methods


def kubevirt_migrates(vmi: Object, kubevirt: Object | None) -> bool:
    """KubeVirt (v1.6+) migrates this VMI by itself: its evaluator set `MigrationRequired`
    (pending or due) and the workload updater may live migrate."""
    return condition(vmi, MIGRATION_REQUIRED) is not None and lists_live_migrate(kubevirt)
