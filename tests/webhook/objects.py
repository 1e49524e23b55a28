"""VirtualMachine objects and AdmissionReview bodies for the webhook tests."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kubevirt"
NAMESPACE = "default"
VM_UID = "6a1f3f7e-3a5b-4a39-9d7e-2f0c8b1d5e11"

Object = dict[str, Any]


def uid_of(label: str) -> str:
    """A request uid as kube-apiserver sends it (a UUID), the same for the same label."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"hotplug-guard-test/{label}"))


def fixture(name: str) -> Object:
    """A shared KubeVirt fixture by file name (without .yaml)."""
    loaded: Object = yaml.safe_load((FIXTURES / f"{name}.yaml").read_text(encoding="utf-8"))
    return loaded


def running(vm: Mapping[str, Any]) -> Object:
    """`vm` as stored for a running VM: namespace, uid and status.printableStatus Running."""
    result = copy.deepcopy(dict(vm))
    result.setdefault("metadata", {}).update(namespace=NAMESPACE, uid=VM_UID)
    result["status"] = {"printableStatus": "Running"}
    return result


def edited(old: Mapping[str, Any], template_spec_from: Mapping[str, Any]) -> Object:
    """What `kubectl edit` sends: `old` with the spec of another VM (metadata, status kept)."""
    new = copy.deepcopy(dict(old))
    new["spec"] = copy.deepcopy(dict(template_spec_from["spec"]))
    return new


def interfaces(vm: Mapping[str, Any]) -> list[Object]:
    found: list[Object] = vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"]
    return found


def networks(vm: Mapping[str, Any]) -> list[Object]:
    found: list[Object] = vm["spec"]["template"]["spec"]["networks"]
    return found


def with_bridge_nics(vm: Mapping[str, Any], names: Sequence[str], *, network: str) -> Object:
    """`vm` with extra bridge interfaces on multus network `network`."""
    result = copy.deepcopy(dict(vm))
    for name in names:
        interfaces(result).append({"name": name, "bridge": {}})
        networks(result).append({"name": name, "multus": {"networkName": network}})
    return result


def review(
    operation: str,
    *,
    new: Mapping[str, Any] | None,
    old: Mapping[str, Any] | None = None,
    uid: str | None = None,
    dry_run: bool = False,
    username: str = "jane@example.com",
    groups: Sequence[str] = ("system:authenticated",),
    kind: Mapping[str, str] | None = None,
    resource: Mapping[str, str] | None = None,
    sub_resource: str = "",
    namespace: str = NAMESPACE,
) -> Object:
    """An AdmissionReview v1 request as kube-apiserver sends it."""
    source = new if new is not None else old
    request: Object = {
        "uid": uid or str(uuid.uuid4()),
        "kind": dict(kind or {"group": "kubevirt.io", "version": "v1", "kind": "VirtualMachine"}),
        "resource": dict(
            resource or {"group": "kubevirt.io", "version": "v1", "resource": "virtualmachines"}
        ),
        "name": ((source or {}).get("metadata") or {}).get("name", ""),
        "namespace": namespace,
        "operation": operation,
        "userInfo": {"username": username, "groups": list(groups)},
        "object": new,
        "oldObject": old,
        "dryRun": dry_run,
    }
    if sub_resource:
        request["subResource"] = sub_resource
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def hotplug_review(**options: Any) -> Object:
    """UPDATE of the running vm-fedora that hot plugs bridge NIC `dyniface1`."""
    old = running(fixture("vm-fedora-masquerade-only"))
    new = edited(old, fixture("vm-fedora-hotplug-bridge"))
    return review("UPDATE", new=new, old=old, **options)
