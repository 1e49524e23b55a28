"""What end-to-end tests do on the control plane: VMs run by the KubeVirt simulator, kubectl."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.kube import kubevirt
from tests.kube.controlplane import ALICE, ControlPlane, User
from tests.kube.release import Release

EDITOR = Path(__file__).with_name("editor.py")
REQUEST = "hotplug-guard.io/request"
VM = kubevirt.API_VERSION, "VirtualMachine"

Manifest = dict[str, Any]


def plug_ops(name: str, network: str, *, model: str | None = None) -> list[Manifest]:
    """The JSON patch a user writes to hot plug a bridge interface `name` on `network`."""
    interface: Manifest = {"name": name, "bridge": {}}
    if model:
        interface["model"] = model
    return [
        {
            "op": "add",
            "path": "/spec/template/spec/domain/devices/interfaces/-",
            "value": interface,
        },
        {
            "op": "add",
            "path": "/spec/template/spec/networks/-",
            "value": {"name": name, "multus": {"networkName": network}},
        },
    ]


def interfaces(vm: Manifest) -> dict[str, Manifest]:
    """The VM template's interfaces by name."""
    found = vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"]
    return {interface["name"]: interface for interface in found}


def annotations_of(vm: Manifest) -> dict[str, str]:
    found: dict[str, str] = vm["metadata"].get("annotations") or {}
    return found


@dataclass(frozen=True, slots=True)
class Cluster:
    """One namespace reviewed by `release`, where `alice` edits VMs."""

    plane: ControlPlane
    release: Release
    namespace: str

    def vm(self, name: str) -> Manifest:
        found = self.plane.get(*VM, name, namespace=self.namespace)
        assert found is not None, f"VirtualMachine {name} does not exist"
        return found

    def create_vm(self, name: str, *, secondary: tuple[tuple[str, str], ...] = ()) -> Manifest:
        """Alice creates a VM (stopped: nothing runs it yet)."""
        manifest = kubevirt.virtual_machine(name, self.namespace, secondary=secondary)
        return self.plane.create(manifest, user=ALICE)

    def running_vm(self, name: str, *, secondary: tuple[tuple[str, str], ...] = ()) -> Manifest:
        """Alice creates a VM and the KubeVirt simulator runs it."""
        self.create_vm(name, secondary=secondary)
        kubevirt.start(self.plane, self.namespace, name)
        return self.vm(name)

    def nad(self, name: str) -> None:
        """The cluster admin creates a NetworkAttachmentDefinition in this namespace."""
        self.plane.create(kubevirt.network_attachment_definition(name, self.namespace))

    def kubectl(
        self, *args: str, user: User = ALICE, **options: Any
    ) -> subprocess.CompletedProcess[str]:
        return self.plane.kubectl(*args, "--namespace", self.namespace, user=user, **options)

    def patch(self, name: str, ops: list[Manifest], *extra: str, **options: Any) -> Any:
        return self.kubectl(
            "patch", "vm", name, "--type=json", "-p", json.dumps(ops), *extra, **options
        )

    def edit(self, name: str, **edit: Any) -> subprocess.CompletedProcess[str]:
        """`kubectl edit` with a scripted editor making `edit` (see editor.py)."""
        editor = f"{sys.executable} {EDITOR}"
        return self.kubectl(
            "edit", "vm", name, env={"KUBE_EDITOR": editor, "EDIT": json.dumps(edit)}
        )
