"""VMs, VMIs and migrations as the controller's caches keep them, for decision tables."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.migrations import ATTEMPT_LABEL, CONTROLLER_LABEL, REQUEST_LABEL
from controller.objects import format_time
from controller.settings import Settings
from policy.annotations import LEDGER, HotplugRequest

Object = dict[str, Any]
NOW = 1_800_000_000.0
VM_UID = "0f6c1a4e-0d55-4a8e-9d42-5a9f0b1c7e10"
VMI_UID = "7a2b3c4d-0000-4000-8000-000000000001"
SETTINGS = Settings(name="guard-controller")
PLUG = HotplugRequest(id="1f2e3d4c5b6a7988", plug=("nic1",), generation=7, signature="v1:x")
UNPLUG = HotplugRequest(id="aa00bb11cc22dd33", unplug=("nic1",), generation=9, signature="v1:x")


def vm(*, ledger_vmi: str = VMI_UID) -> Object:
    return {
        "metadata": {
            "name": "fedora",
            "namespace": "team-a",
            "uid": VM_UID,
            "generation": 7,
            "annotations": {LEDGER: f'{{"vmi":"{ledger_vmi}","interfaces":[],"booted":1}}'},
        }
    }


def vmi(
    *,
    spec: Mapping[str, str] | None = None,
    reported: Mapping[str, str] | None = None,
    phase: str = "Running",
    conditions: list[Object] | None = None,
) -> Object:
    """A VMI with `spec` interfaces by name -> state and `reported` status entries by
    name -> infoSource."""
    interfaces = spec if spec is not None else {"default": ""}
    entries = reported if reported is not None else {"default": "domain, guest-agent"}
    return {
        "metadata": {"name": "fedora", "namespace": "team-a", "uid": VMI_UID},
        "spec": {
            "domain": {
                "devices": {
                    "interfaces": [
                        {"name": name, **({"state": state} if state else {})}
                        for name, state in interfaces.items()
                    ]
                }
            }
        },
        "status": {
            "phase": phase,
            "conditions": conditions
            if conditions is not None
            else [{"type": "LiveMigratable", "status": "True"}],
            "interfaces": [
                {"name": name, "infoSource": source} for name, source in entries.items()
            ],
        },
    }


def plugged_in_spec() -> Object:
    """A VMI whose spec has the plugged NIC that no status entry reports yet."""
    return vmi(spec={"default": "", "nic1": ""})


def migration(
    name: str,
    *,
    phase: str = "Running",
    request: str | None = None,
    attempt: int = 1,
    ended: float | None = None,
    controller: str = SETTINGS.name,
    annotations: Mapping[str, str] | None = None,
    reason: str = "",
) -> Object:
    labels = {"kubevirt.io/vmi-name": "fedora"}
    if request:
        labels |= {
            REQUEST_LABEL: request,
            ATTEMPT_LABEL: str(attempt),
            CONTROLLER_LABEL: controller,
        }
    status: Object = {"phase": phase}
    if ended is not None:
        status["phaseTransitionTimestamps"] = [
            {"phase": phase, "phaseTransitionTimestamp": format_time(ended)}
        ]
    if reason:
        status["migrationState"] = {"failed": True, "failureReason": reason}
    return {
        "metadata": {
            "name": name,
            "namespace": "team-a",
            "labels": labels,
            "annotations": dict(annotations or {}),
        },
        "spec": {"vmiName": "fedora"},
        "status": status,
    }
