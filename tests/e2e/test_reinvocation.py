"""`reinvocationPolicy: IfNeeded` with another mutating webhook that also changes the VM."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

from tests.e2e import servers
from tests.e2e.cluster import REQUEST, Cluster, annotations_of, interfaces, plug_ops
from tests.kube import kubevirt
from tests.kube.release import SELECTOR_KEY, Release

INTERFACES = "/spec/template/spec/domain/devices/interfaces"


def assign_macs(review: dict[str, Any]) -> dict[str, Any]:
    """Like KubeMacPool: a MAC address for every interface that has none."""
    vm = review["request"]["object"]
    found = vm["spec"]["template"]["spec"]["domain"]["devices"].get("interfaces", [])
    ops = [
        {
            "op": "add",
            "path": f"{INTERFACES}/{index}/macAddress",
            "value": f"02:aa:00:00:00:{index:02x}",
        }
        for index, interface in enumerate(found)
        if "macAddress" not in interface
    ]
    patch = base64.b64encode(json.dumps(ops).encode()) if ops else None
    return servers.allowed(review, patch=patch)


def mac_pool_configuration(guard: Release) -> dict[str, Any]:
    """A mutating webhook ordered after hotplug-guard's (configurations run by name)."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": f"zz-mac-pool-{guard.id}"},
        "webhooks": [
            {
                "name": "mac-pool.example.com",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "reinvocationPolicy": "Never",
                "clientConfig": {
                    "service": {"name": "mac-pool", "namespace": "default", "path": "/"}
                },
                "rules": [
                    {
                        "apiGroups": ["kubevirt.io"],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["virtualmachines"],
                    }
                ],
                "namespaceSelector": {"matchLabels": {SELECTOR_KEY: guard.id}},
            }
        ],
    }


def test_a_later_mutation_reinvokes_hotplug_guard_whose_patch_stays_the_same(
    cluster: Cluster, guard: Release, tmp_path: Path
) -> None:
    with servers.serving(tmp_path, assign_macs) as (url, ca):
        registered = cluster.plane.register_webhooks(
            [mac_pool_configuration(guard)], base_url=url, ca_bundle=ca
        )
        try:
            wait_for_macs(cluster)
            cluster.running_vm("fedora")
            before = {endpoint: guard.reviews(endpoint) for endpoint in ("mutate", "validate")}
            logged = fedora_mutations(guard, count=int(before["mutate"]))
            done = cluster.patch("fedora", plug_ops("nic1", "net1"))
            after = {endpoint: guard.reviews(endpoint) for endpoint in ("mutate", "validate")}
        finally:
            cluster.plane.delete_webhooks(registered)

    assert done.returncode == 0, done.stderr
    stored = cluster.vm("fedora")
    assert interfaces(stored)["nic1"]["macAddress"] == "02:aa:00:00:00:01"
    assert json.loads(annotations_of(stored)[REQUEST])["plug"] == ["nic1"]
    # reinvoked once after the MAC pool changed the object, then validated once
    assert after["mutate"] - before["mutate"] == 2
    assert after["validate"] - before["validate"] == 1
    mutations = fedora_mutations(guard, count=int(after["mutate"]))[len(logged) :]
    assert [entry["patched"] for entry in mutations] == [True, False]  # idempotent


def fedora_mutations(guard: Release, *, count: int) -> list[dict[str, Any]]:
    """The mutating review lines of VM `fedora`, once `count` mutating reviews are logged."""
    logged = guard.server.wait_for_logs(  # type: ignore[union-attr]
        lambda entry: entry.get("message") == "review" and entry.get("endpoint") == "mutate",
        count=count,
    )
    return [entry for entry in logged if str(entry.get("vm", "")).endswith("/fedora")]


def wait_for_macs(cluster: Cluster) -> None:
    """Until kube-apiserver calls the new configuration (it watches configurations)."""
    probe = kubevirt.virtual_machine("probe", cluster.namespace)
    resource = cluster.plane.resource(probe["apiVersion"], probe["kind"])
    deadline = time.monotonic() + 15
    while True:
        created = resource.create(body=probe, namespace=cluster.namespace, dry_run="All")
        if "macAddress" in interfaces(created.to_dict())["default"]:
            return
        assert time.monotonic() < deadline, "the MAC pool webhook was never called"
        time.sleep(0.1)
