"""The chart's matchConditions, evaluated by kube-apiserver: what never reaches the webhook."""

from __future__ import annotations

import json

from tests.e2e.cluster import Cluster, plug_ops
from tests.kube import kubevirt
from tests.kube.controlplane import ADMIN
from tests.kube.release import Release


def test_updates_of_nothing_it_judges_and_other_objects_never_reach_the_webhook(
    cluster: Cluster, guard: Release
) -> None:
    cluster.create_vm("fedora")
    before = guard.reviews()

    kubevirt.start(cluster.plane, cluster.namespace, "fedora")  # a VMI and the VM's status
    assert cluster.kubectl("label", "vm", "fedora", "team=blue").returncode == 0
    assert cluster.kubectl("annotate", "vm", "fedora", "example.com/owner=alice").returncode == 0
    memory = {"spec": {"template": {"spec": {"domain": {"memory": {"guest": "2Gi"}}}}}}
    done = cluster.kubectl("patch", "vm", "fedora", "--type=merge", "-p", json.dumps(memory))
    assert done.returncode == 0, done.stderr
    halted = cluster.kubectl(
        "patch", "vm", "fedora", "--type=merge", "-p", '{"spec": {"runStrategy": "Halted"}}'
    )
    assert halted.returncode == 0, halted.stderr
    config = cluster.kubectl("create", "configmap", "settings", "--from-literal=a=b", user=ADMIN)
    assert config.returncode == 0, config.stderr
    cluster.nad("other-net")

    assert guard.reviews() == before

    restarted = cluster.kubectl(
        "patch", "vm", "fedora", "--type=merge", "-p", '{"spec": {"runStrategy": "Always"}}'
    )
    assert restarted.returncode == 0
    assert cluster.patch("fedora", plug_ops("nic1", "net1")).returncode == 0
    assert guard.reviews() == before + 2  # the plug: /mutate, then /validate


def test_removing_a_guarded_annotation_reaches_the_mutating_webhook_which_restores_it(
    cluster: Cluster, guard: Release
) -> None:
    cluster.running_vm("fedora")
    assert cluster.patch("fedora", plug_ops("nic1", "net1")).returncode == 0
    before = {endpoint: guard.reviews(endpoint) for endpoint in ("mutate", "validate")}
    done = cluster.kubectl("annotate", "vm", "fedora", "hotplug-guard.io/request-")
    assert done.returncode == 0, done.stderr
    assert "hotplug-guard.io/request' is managed, restored" in done.stderr
    assert "hotplug-guard.io/request" in cluster.vm("fedora")["metadata"]["annotations"]
    # kube-apiserver evaluates each webhook's conditions on the object as it is by then:
    # restored, the update changes nothing the validating webhook judges, so it is skipped
    assert guard.reviews("mutate") == before["mutate"] + 1
    assert guard.reviews("validate") == before["validate"]
