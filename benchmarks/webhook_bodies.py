"""The AdmissionReview the webhook load benchmark sends: a running 4-NIC VM gets its 4th NIC.

Built from the shared KubeVirt fixture `vm-fedora-masquerade-only` (the user
guide's hot plug example) with two more bridge NICs and a cloud-init disk, as a
`kubectl edit` of a real VM would send it: full object and old object.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

FIXTURE = (
    Path(__file__).resolve().parents[1] / "tests/fixtures/kubevirt/vm-fedora-masquerade-only.yaml"
)

Object = dict[str, Any]


def _add_bridge(vm: Object, name: str) -> None:
    spec = vm["spec"]["template"]["spec"]
    spec["domain"]["devices"]["interfaces"].append({"name": name, "bridge": {}, "model": "virtio"})
    spec["networks"].append({"name": name, "multus": {"networkName": "new-fancy-net"}})


def four_nic_update() -> Object:
    """UPDATE of a running VM with 3 NICs (masquerade + 2 bridge) that hot plugs a 4th."""
    old: Object = yaml.safe_load(FIXTURE.read_text(encoding="utf-8"))
    old["metadata"].update(
        namespace="default",
        uid="0d7c56a2-5f0e-4c59-9a4f-7a1de0b3c2f1",
        resourceVersion="123456",
        generation=7,
        labels={"app": "fedora", "team": "platform"},
        annotations={"kubevirt.io/latest-observed-api-version": "v1"},
    )
    old["status"] = {"printableStatus": "Running", "ready": True, "created": True}
    spec = old["spec"]["template"]["spec"]
    spec["volumes"].append(
        {
            "name": "cloudinitdisk",
            "cloudInitNoCloud": {"userData": "#cloud-config\npassword: fedora\n"},
        }
    )
    spec["domain"]["devices"]["disks"].append({"name": "cloudinitdisk", "disk": {"bus": "virtio"}})
    for name in ("nic1", "nic2"):
        _add_bridge(old, name)
    new = copy.deepcopy(old)
    _add_bridge(new, "nic3")
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "kubevirt.io", "version": "v1", "kind": "VirtualMachine"},
            "resource": {"group": "kubevirt.io", "version": "v1", "resource": "virtualmachines"},
            "requestKind": {"group": "kubevirt.io", "version": "v1", "kind": "VirtualMachine"},
            "requestResource": {
                "group": "kubevirt.io",
                "version": "v1",
                "resource": "virtualmachines",
            },
            "name": "vm-fedora",
            "namespace": "default",
            "operation": "UPDATE",
            "userInfo": {
                "username": "jane@example.com",
                "uid": "b3f1c1d2",
                "groups": ["system:authenticated", "platform-team"],
            },
            "object": new,
            "oldObject": old,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "UpdateOptions"},
        },
    }


def four_nic_update_bytes() -> bytes:
    return json.dumps(four_nic_update(), separators=(",", ":")).encode()
