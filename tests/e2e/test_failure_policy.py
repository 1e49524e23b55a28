"""kube-apiserver with the webhook down or slow: the chart's failurePolicy and timeout."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import servers
from tests.e2e.cluster import REQUEST, Cluster, annotations_of, interfaces, plug_ops
from tests.kube import release
from tests.kube.controlplane import ControlPlane
from tests.webhook.service import free_port


@pytest.mark.parametrize(
    ("mutating", "validating", "refused_by"),
    [
        ("Ignore", "Fail", "validate.hotplug-guard.io"),  # the chart's defaults
        ("Ignore", "Ignore", None),
        ("Fail", "Ignore", "mutate.hotplug-guard.io"),
    ],
)
def test_a_stopped_webhook_gives_what_the_failure_policies_promise(
    control_plane: ControlPlane,
    tmp_path: Path,
    mutating: str,
    validating: str,
    refused_by: str | None,
) -> None:
    values = {
        "webhooks": {
            "mutating": {"failurePolicy": mutating},
            "validating": {"failurePolicy": validating},
        }
    }
    with release.deployed(control_plane, tmp_path, values) as guard:
        cluster = Cluster(control_plane, guard, guard.namespace_for_tests("down"))
        cluster.nad("net1")
        cluster.running_vm("fedora")
        guard.stop_server()

        done = cluster.patch("fedora", plug_ops("nic1", "net1"))

    stored = cluster.vm("fedora")
    if refused_by is None:
        assert done.returncode == 0, done.stderr
        assert "nic1" in interfaces(stored)  # unguarded: stored as sent
        assert REQUEST not in annotations_of(stored)
    else:
        assert done.returncode == 1
        assert f'failed calling webhook "{refused_by}"' in done.stderr
        assert "connection refused" in done.stderr
        assert "nic1" not in interfaces(stored)


def test_a_webhook_slower_than_the_charts_timeout_is_cut_off_and_its_policy_applies(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    """The chart's timeoutSeconds reaches kube-apiserver: a stalled review ends after it."""
    values = {"webhooks": {"timeoutSeconds": 1}}

    def stall(review: dict[str, Any]) -> dict[str, Any]:
        time.sleep(5)
        return servers.allowed(review)

    with release.deployed(control_plane, tmp_path / "release", values) as guard:
        cluster = Cluster(control_plane, guard, guard.namespace_for_tests("slow"))
        cluster.nad("net1")
        cluster.running_vm("fedora")
        guard.stop_server()
        with servers.serving(tmp_path / "stall", stall) as (url, ca):
            # the same configurations, now calling a server that never answers in time
            control_plane.delete_webhooks(guard.webhooks)
            guard.webhooks = control_plane.register_webhooks(
                (m for kind in release.WEBHOOK_KINDS for m in guard.rendered.all(kind)),
                base_url=url,
                ca_bundle=ca,
            )
            wait_for_timeouts(cluster)
            started = time.monotonic()
            done = cluster.patch("fedora", plug_ops("nic1", "net1"))
            elapsed = time.monotonic() - started

    assert done.returncode == 1
    assert 'failed calling webhook "validate.hotplug-guard.io"' in done.stderr
    assert "context deadline exceeded" in done.stderr
    # mutate (Ignore) and validate (Fail) each waited their 1 s, not kube-apiserver's 10 s
    assert elapsed < 5
    assert "nic1" not in interfaces(cluster.vm("fedora"))


def wait_for_timeouts(cluster: Cluster) -> None:
    """Until kube-apiserver calls the re-registered configurations (it watches them)."""
    deadline = time.monotonic() + 15
    while "context deadline exceeded" not in (
        cluster.patch("fedora", plug_ops("nic1", "net1"), "--dry-run=server").stderr
    ):
        assert time.monotonic() < deadline, "the re-registered webhooks were never called"


def test_a_plug_the_mutating_webhook_missed_is_admitted_with_why_and_what_to_do(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    """Mutating unreachable (it fails open), validating up: kubectl shows the cause and step."""
    with release.deployed(control_plane, tmp_path) as guard:
        cluster = Cluster(control_plane, guard, guard.namespace_for_tests("missed"))
        cluster.nad("net1")
        cluster.running_vm("fedora")
        mutating = [(k, n) for k, n in guard.webhooks if k == "MutatingWebhookConfiguration"]
        control_plane.delete_webhooks(mutating)
        guard.webhooks = [w for w in guard.webhooks if w not in mutating]
        guard.webhooks += control_plane.register_webhooks(
            guard.rendered.all("MutatingWebhookConfiguration"),
            base_url=f"https://127.0.0.1:{free_port()}",  # nothing listens there
            ca_bundle=(guard.volume("tls") / "ca.crt").read_bytes(),
        )
        warning = (
            "Warning: guarded-annotations: no request for this hot plug: the mutating webhook "
            "did not answer (it fails open); migrate the VM"
        )
        deadline = time.monotonic() + 15
        while warning not in (
            cluster.patch("fedora", plug_ops("nic1", "net1"), "--dry-run=server").stderr
        ):
            assert time.monotonic() < deadline, "kube-apiserver kept calling the mutating webhook"
            time.sleep(0.2)

        done = cluster.patch("fedora", plug_ops("nic1", "net1"))

    assert done.returncode == 0, done.stderr
    assert warning in done.stderr
    stored = cluster.vm("fedora")
    assert "nic1" in interfaces(stored)
    assert REQUEST not in annotations_of(stored)
