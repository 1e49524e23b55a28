"""A KubeVirt simulator acting through the API, and the KubeVirt objects users create.

KubeVirt itself cannot run here (no nodes, no kubelet, no libvirt). This
simulator stands in for it, acting only through the real kube-apiserver as
KubeVirt's service accounts would: `install` creates the KubeVirt CR as
virt-operator reports a deployed release, and the `kubevirt.io:migrate`
ClusterRole virt-operator installs; `start` creates the VirtualMachineInstance
of a VM (its spec from the VM template, status Running with one status entry
per interface named as KubeVirt names pod interfaces, LiveMigratable) and sets
the VM's status through the status subresource. What happens to a running VM
afterwards (hot plug, migrations, the guest) is `tests.kube.simulator`'s part.

`virtual_machine` and `network_attachment_definition` build the objects a user
or cluster admin would create.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from tests.kube import crds
from tests.kube.controlplane import ControlPlane

API_VERSION = "kubevirt.io/v1"
Manifest = dict[str, Any]


def pod_interface_name(network: Mapping[str, Any]) -> str:
    """KubeVirt's name for a network's pod interface: eth0, or `pod` + sha256(name)[:11]."""
    if "pod" in network or (network.get("multus") or {}).get("default"):
        return "eth0"
    return "pod" + hashlib.sha256(network["name"].encode()).hexdigest()[:11]


FULL_INFO = "domain, guest-agent, multus-status"


def mac_of(name: str) -> str:
    """A locally administered MAC address, the same for the same interface name."""
    digest = hashlib.sha256(name.encode()).digest()
    return "02:" + ":".join(f"{byte:02x}" for byte in digest[:5])


def status_entry(network: Mapping[str, Any], index: int, info: str = FULL_INFO) -> Manifest:
    """A status interface as virt-handler reports a NIC the guest agent sees."""
    address = f"10.{100 + index}.0.{10 + index}"
    return {
        "name": network["name"],
        "podInterfaceName": pod_interface_name(network),
        "interfaceName": f"eth{index}",
        "mac": mac_of(network["name"]),
        "ipAddress": address,
        "ipAddresses": [address],
        "infoSource": info,
        "queueCount": 1,
    }


def instance_of(vm: Mapping[str, Any]) -> Manifest:
    """The VMI virt-controller would create for `vm`, as virt-handler reports it running."""
    template = copy.deepcopy(vm["spec"]["template"])
    metadata = vm["metadata"]
    spec = template["spec"]
    status_interfaces = [
        status_entry(network, index) for index, network in enumerate(spec.get("networks") or ())
    ]
    return {
        "apiVersion": API_VERSION,
        "kind": "VirtualMachineInstance",
        "metadata": {
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "labels": (template.get("metadata") or {}).get("labels") or {},
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "VirtualMachine",
                    "name": metadata["name"],
                    "uid": metadata["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
        "status": {
            "phase": "Running",
            "nodeName": "node-a",
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "LiveMigratable", "status": "True"},
            ],
            "interfaces": status_interfaces,
        },
    }


# virt-operator's `kubevirt.io:migrate` (pkg/virt-operator/resource/generate/rbac/cluster.go)
MIGRATE_ROLE: Manifest = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRole",
    "metadata": {"name": "kubevirt.io:migrate", "labels": {"kubevirt.io": ""}},
    "rules": [
        {
            "apiGroups": ["subresources.kubevirt.io"],
            "resources": ["virtualmachines/migrate"],
            "verbs": ["update"],
        },
        {
            "apiGroups": ["kubevirt.io"],
            "resources": ["virtualmachineinstancemigrations"],
            "verbs": [
                "get",
                "delete",
                "create",
                "update",
                "patch",
                "list",
                "watch",
                "deletecollection",
            ],
        },
    ],
}


def install(plane: ControlPlane) -> Manifest:
    """The KubeVirt CR (`kubevirt/kubevirt`) as virt-operator reports a deployed install.

    One per cluster; its `status.observedKubeVirtVersion` is the release whose
    CRDs the control plane serves, which is what the engine judges hot plugs by.
    Created once; later calls return it.
    """
    plane.install_crds()
    if plane.get("rbac.authorization.k8s.io/v1", "ClusterRole", "kubevirt.io:migrate") is None:
        plane.create(MIGRATE_ROLE)
    found = plane.get(API_VERSION, "KubeVirt", "kubevirt", namespace="kubevirt")
    if found is not None:
        return found
    plane.ensure_namespace("kubevirt")
    plane.create(
        {
            "apiVersion": API_VERSION,
            "kind": "KubeVirt",
            "metadata": {"name": "kubevirt", "namespace": "kubevirt"},
            "spec": {"configuration": {}},
        }
    )
    version = crds.kubevirt_version()
    status = {
        "phase": "Deployed",
        "observedKubeVirtVersion": version,
        "targetKubeVirtVersion": version,
    }
    resource = plane.resource(API_VERSION, "KubeVirt")
    installed: Manifest = resource.status.patch(
        body={"metadata": {"name": "kubevirt", "namespace": "kubevirt"}, "status": status},
        name="kubevirt",
        namespace="kubevirt",
        content_type="application/merge-patch+json",
    ).to_dict()
    return installed


def workload_update_methods(plane: ControlPlane, methods: Sequence[str]) -> None:
    """Set `spec.workloadUpdateStrategy.workloadUpdateMethods` of the KubeVirt CR."""
    install(plane)
    resource = plane.resource(API_VERSION, "KubeVirt")
    resource.patch(
        body={"spec": {"workloadUpdateStrategy": {"workloadUpdateMethods": list(methods)}}},
        name="kubevirt",
        namespace="kubevirt",
        content_type="application/merge-patch+json",
    )


def start(plane: ControlPlane, namespace: str, name: str) -> Manifest:
    """Run VM `namespace/name` as KubeVirt would show it; returns the VMI."""
    vm = plane.get(API_VERSION, "VirtualMachine", name, namespace=namespace)
    if vm is None:
        raise LookupError(f"no VirtualMachine {namespace}/{name}")
    # VMIs have no status subresource: the status is part of the created object
    vmi = plane.create(instance_of(vm))
    resource = plane.resource(API_VERSION, "VirtualMachine")
    status = {"created": True, "ready": True, "printableStatus": "Running"}
    body = {"metadata": {"name": name, "namespace": namespace}, "status": status}
    resource.status.patch(
        body=body, name=name, namespace=namespace, content_type="application/merge-patch+json"
    )
    return vmi


def virtual_machine(
    name: str, namespace: str, *, secondary: Sequence[tuple[str, str]] = ()
) -> Manifest:
    """A Fedora VM on the pod network (masquerade) with bridge NICs on (name, NAD) networks."""
    interfaces: list[Manifest] = [{"name": "default", "masquerade": {}}]
    networks: list[Manifest] = [{"name": "default", "pod": {}}]
    for interface, nad in secondary:
        interfaces.append({"name": interface, "bridge": {}, "model": "virtio"})
        networks.append({"name": interface, "multus": {"networkName": nad}})
    return {
        "apiVersion": API_VERSION,
        "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "runStrategy": "Always",
            "template": {
                "metadata": {"labels": {"kubevirt.io/vm": name}},
                "spec": {
                    "domain": {
                        "devices": {
                            "disks": [{"name": "containerdisk", "disk": {"bus": "virtio"}}],
                            "interfaces": interfaces,
                            "rng": {},
                        },
                        "resources": {"requests": {"memory": "1024M"}},
                    },
                    "networks": networks,
                    "terminationGracePeriodSeconds": 0,
                    "volumes": [
                        {
                            "name": "containerdisk",
                            "containerDisk": {
                                "image": "quay.io/kubevirt/fedora-with-test-tooling-container-disk"
                            },
                        }
                    ],
                },
            },
        },
    }


def network_attachment_definition(name: str, namespace: str) -> Manifest:
    """A bridge CNI NetworkAttachmentDefinition, as a cluster admin would create one."""
    config = json.dumps(
        {"cniVersion": "0.3.1", "name": name, "type": "bridge", "bridge": "br1", "ipam": {}}
    )
    return {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"config": config},
    }
