"""What a user sees through the real kubectl and kube-apiserver, webhooks registered from the chart.

Every test acts as `alice` (group `developers`, allowed to edit VMs) on VMs that
the KubeVirt simulator runs, and checks exit code, output and the stored object.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable

import pytest
import yaml

from tests.e2e.cluster import REQUEST, Cluster, annotations_of, interfaces, plug_ops
from tests.kube import kubevirt

NAD_SYNC_SECONDS = 10.0


def assert_plugged(cluster: Cluster, name: str, interface: str) -> None:
    stored = cluster.vm(name)
    assert interfaces(stored)[interface]["bridge"] == {}
    request = json.loads(annotations_of(stored)[REQUEST])
    assert request["plug"] == [interface]
    assert request["unplug"] == []


def test_a_bridge_nic_plugged_with_kubectl_patch_is_stored_with_the_request(
    cluster: Cluster,
) -> None:
    cluster.running_vm("fedora")
    done = cluster.patch("fedora", plug_ops("nic1", "net1"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "virtualmachine.kubevirt.io/fedora patched"
    assert_plugged(cluster, "fedora", "nic1")


@pytest.mark.parametrize("server_side", [False, True], ids=["client-side", "server-side"])
def test_a_bridge_nic_plugged_with_kubectl_apply_is_stored_with_the_request(
    cluster: Cluster, server_side: bool
) -> None:
    manifest = kubevirt.virtual_machine("fedora", cluster.namespace)
    flags = ["--server-side"] if server_side else []
    created = cluster.kubectl("apply", *flags, "-f", "-", stdin=yaml.safe_dump(manifest))
    assert created.returncode == 0, created.stderr
    kubevirt.start(cluster.plane, cluster.namespace, "fedora")
    edited = copy.deepcopy(manifest)
    template = edited["spec"]["template"]["spec"]
    template["domain"]["devices"]["interfaces"].append({"name": "nic1", "bridge": {}})
    template["networks"].append({"name": "nic1", "multus": {"networkName": "net1"}})
    applied = cluster.kubectl("apply", *flags, "-f", "-", stdin=yaml.safe_dump(edited))
    assert applied.returncode == 0, applied.stderr
    assert "virtualmachine.kubevirt.io/fedora" in applied.stdout
    assert_plugged(cluster, "fedora", "nic1")


def test_a_bridge_nic_plugged_with_kubectl_edit_is_stored_with_the_request(
    cluster: Cluster,
) -> None:
    cluster.running_vm("fedora")
    done = cluster.edit("fedora", plug=[{"name": "nic1", "network": "net1"}])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "virtualmachine.kubevirt.io/fedora edited"
    assert_plugged(cluster, "fedora", "nic1")


def test_plugging_an_e1000_nic_is_denied_with_the_rule_and_the_fix(cluster: Cluster) -> None:
    before = cluster.running_vm("fedora")
    done = cluster.patch("fedora", plug_ops("nic1", "net1", model="e1000"))
    assert done.returncode == 1
    assert done.stderr.startswith(
        'The VirtualMachine "fedora" is invalid: '
        "spec.template.spec.domain.devices.interfaces[1].model: hotplug-guard: plug-model: "
        "'nic1' uses model 'e1000'"
    )
    assert "set model: virtio or remove the model" in done.stderr  # the fix
    assert done.stdout == ""
    assert (
        cluster.vm("fedora")["metadata"]["resourceVersion"]
        == (before["metadata"]["resourceVersion"])
    )


def test_an_interface_deleted_in_kubectl_edit_is_kept_absent_with_a_warning(
    cluster: Cluster,
) -> None:
    cluster.running_vm("fedora", secondary=(("nic1", "net1"),))
    done = cluster.edit("fedora", remove=["nic1"])
    assert done.returncode == 0, done.stderr
    assert "Warning: plain-removal: 'nic1' is hot unplugged (kept with state: absent)" in (
        done.stderr
    )
    stored = cluster.vm("fedora")
    assert interfaces(stored)["nic1"]["state"] == "absent"
    assert "nic1" in {n["name"] for n in stored["spec"]["template"]["spec"]["networks"]}
    assert json.loads(annotations_of(stored)[REQUEST])["unplug"] == ["nic1"]


def test_a_forged_request_annotation_is_denied(cluster: Cluster) -> None:
    cluster.running_vm("fedora")
    forged = json.dumps({"id": "0123456789abcdef", "plug": ["nic1"], "unplug": []})
    done = cluster.kubectl("annotate", "vm", "fedora", f"{REQUEST}={forged}")
    assert done.returncode == 1
    assert done.stderr.startswith(
        f'The VirtualMachine "fedora" is invalid: metadata.annotations[{REQUEST}]: '
        f"hotplug-guard: guarded-annotations: '{REQUEST}' is managed by hotplug-guard"
    )
    assert REQUEST not in annotations_of(cluster.vm("fedora"))


def test_a_server_side_dry_run_gets_the_same_verdict_and_stores_nothing(
    cluster: Cluster,
) -> None:
    before = cluster.running_vm("fedora")
    allowed = cluster.patch("fedora", plug_ops("nic1", "net1"), "--dry-run=server", "-o", "json")
    assert allowed.returncode == 0, allowed.stderr
    would_be = json.loads(allowed.stdout)
    assert json.loads(annotations_of(would_be)[REQUEST])["plug"] == ["nic1"]
    denied = cluster.patch("fedora", plug_ops("nic1", "net1", model="e1000"), "--dry-run=server")
    assert denied.returncode == 1
    assert "hotplug-guard: plug-model: 'nic1' uses model 'e1000'" in denied.stderr
    stored = cluster.vm("fedora")
    assert stored["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert "nic1" not in interfaces(stored)


def test_a_stopped_vm_takes_any_valid_interface_change(cluster: Cluster) -> None:
    cluster.create_vm("fedora")  # nothing runs it: no VMI, no status
    done = cluster.patch("fedora", plug_ops("nic1", "net1", model="e1000"))
    assert done.returncode == 0, done.stderr
    stored = cluster.vm("fedora")
    assert interfaces(stored)["nic1"]["model"] == "e1000"
    assert REQUEST not in annotations_of(stored)  # applied at the next start, not hot plugged


def test_kubevirts_controller_removes_an_absent_interface_users_cannot(
    cluster: Cluster,
) -> None:
    """KubeVirt drops an unplugged interface from the VM; a user doing the same is undone."""
    cluster.running_vm("fedora", secondary=(("nic1", "net1"),))
    unplug = [
        {
            "op": "test",
            "path": "/spec/template/spec/domain/devices/interfaces/1/name",
            "value": "nic1",
        },
        {
            "op": "add",
            "path": "/spec/template/spec/domain/devices/interfaces/1/state",
            "value": "absent",
        },
    ]
    assert cluster.patch("fedora", unplug).returncode == 0
    cleanup = [
        {"op": "remove", "path": "/spec/template/spec/domain/devices/interfaces/1"},
        {"op": "remove", "path": "/spec/template/spec/networks/1"},
    ]
    by_user = cluster.patch("fedora", cleanup)  # the VMI still has nic1
    assert by_user.returncode == 0, by_user.stderr
    assert "is hot unplugged (kept with state: absent)" in by_user.stderr
    assert interfaces(cluster.vm("fedora"))["nic1"]["state"] == "absent"

    cluster.plane.ensure_namespace("kubevirt")
    controller = cluster.plane.token_kubeconfig("kubevirt", "kubevirt-controller")
    cluster.plane.bind_vm_editor(
        cluster.namespace,
        {"kind": "ServiceAccount", "name": "kubevirt-controller", "namespace": "kubevirt"},
    )
    by_kubevirt = cluster.patch("fedora", cleanup, kubeconfig=controller)
    assert by_kubevirt.returncode == 0, by_kubevirt.stderr
    assert "Warning" not in by_kubevirt.stderr
    assert "nic1" not in interfaces(cluster.vm("fedora"))


def test_nad_existence_follows_the_webhooks_watch(cluster: Cluster) -> None:
    for name in ("before", "after"):
        cluster.running_vm(name)
    plug = plug_ops("nic1", "late-net")

    def verdict(vm: str) -> tuple[int, str]:
        done = cluster.patch(vm, plug, "--dry-run=server")
        return done.returncode, done.stderr

    code, message = verdict("before")
    assert code == 1
    assert (
        f"NetworkAttachmentDefinition '{cluster.namespace}/late-net' for 'nic1' does not exist"
        in (message)
    )
    cluster.nad("late-net")
    wait_for(lambda: verdict("before")[0] == 0)
    assert cluster.patch("before", plug).returncode == 0
    assert_plugged(cluster, "before", "nic1")

    cluster.plane.delete(
        "k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition", "late-net", namespace=cluster.namespace
    )
    wait_for(lambda: verdict("after")[0] == 1)
    assert "does not exist" in verdict("after")[1]


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + NAD_SYNC_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "the webhook's cache did not follow the change"
        time.sleep(0.1)
