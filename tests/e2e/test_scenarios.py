"""More of what users meet through kubectl: slots, bindings, half a registration down."""

from __future__ import annotations

import time
from pathlib import Path

from tests.e2e.cluster import Cluster, interfaces, plug_ops
from tests.kube import release
from tests.kube.controlplane import ControlPlane
from tests.kube.release import Release
from tests.webhook.service import free_port

REMOVE_NIC1 = [
    {"op": "test", "path": "/spec/template/spec/domain/devices/interfaces/1/name", "value": "nic1"},
    {"op": "remove", "path": "/spec/template/spec/domain/devices/interfaces/1"},
    {"op": "remove", "path": "/spec/template/spec/networks/1"},
]


def test_a_fifth_nic_is_denied_by_hotplug_slots(cluster: Cluster) -> None:
    nics = tuple((f"nic{index}", "net1") for index in range(1, 4))
    cluster.running_vm("fedora", secondary=nics)  # four interfaces with the pod network's
    done = cluster.patch("fedora", plug_ops("nic4", "net1"))
    assert done.returncode == 1
    assert "spec.template.spec.domain.devices.interfaces[4]: hotplug-guard: hotplug-slots: " in (
        done.stderr
    )
    assert "'nic4' would make 5 interfaces" in done.stderr
    assert "unplug one first (state: absent)" in done.stderr


def test_a_masquerade_nic_is_denied_by_plug_binding(cluster: Cluster) -> None:
    cluster.running_vm("fedora")
    ops = plug_ops("nic1", "net1")
    ops[0]["value"] = {"name": "nic1", "masquerade": {}}
    done = cluster.patch("fedora", ops)
    assert done.returncode == 1
    assert "hotplug-guard: plug-binding: " in done.stderr
    assert "use 'bridge: {}'" in done.stderr


def without_mutating_webhook(plane: ControlPlane, guard: Release) -> Cluster:
    """A running VM with bridge NIC `nic1`; the release's mutating configuration deleted."""
    cluster = Cluster(plane, guard, guard.namespace_for_tests("half"))
    cluster.nad("net1")
    cluster.running_vm("fedora", secondary=(("nic1", "net1"),))
    mutating = [w for w in guard.webhooks if w[0] == "MutatingWebhookConfiguration"]
    plane.delete_webhooks(mutating)
    guard.webhooks = [w for w in guard.webhooks if w not in mutating]
    return cluster


def test_without_the_mutating_webhook_validation_denies_a_plain_removal(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    with release.deployed(control_plane, tmp_path) as guard:
        cluster = without_mutating_webhook(control_plane, guard)
        done = denied_removal(cluster)
    assert "hotplug-guard: plain-removal: " in done
    assert "set state: absent" in done
    assert "nic1" in interfaces(cluster.vm("fedora"))


def test_an_unreachable_mutating_webhook_fails_open_and_validation_still_guards(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    with release.deployed(control_plane, tmp_path) as guard:
        cluster = without_mutating_webhook(control_plane, guard)
        nowhere = f"https://127.0.0.1:{free_port()}"
        guard.webhooks += control_plane.register_webhooks(
            guard.rendered.all("MutatingWebhookConfiguration"), base_url=nowhere, ca_bundle=None
        )
        done = denied_removal(cluster)
    assert "hotplug-guard: plain-removal: " in done
    assert "nic1" in interfaces(cluster.vm("fedora"))


def denied_removal(cluster: Cluster) -> str:
    """kubectl's error for a plain removal of nic1, judged by the validating webhook alone.

    kube-apiserver picks up a changed registration asynchronously; while it still
    calls the mutating webhook, the removal is turned into an unplug and allowed
    (a server-side dry run keeps that from being stored).
    """
    deadline = time.monotonic() + 15
    while cluster.patch("fedora", REMOVE_NIC1, "--dry-run=server").returncode == 0:
        assert time.monotonic() < deadline, "kube-apiserver kept calling the mutating webhook"
        time.sleep(0.1)
    guard = cluster.release
    before = {endpoint: guard.reviews(endpoint) for endpoint in ("mutate", "validate")}
    denied = cluster.patch("fedora", REMOVE_NIC1)
    assert denied.returncode == 1
    assert guard.reviews("mutate") == before["mutate"]
    assert guard.reviews("validate") == before["validate"] + 1
    message: str = denied.stderr
    return message
