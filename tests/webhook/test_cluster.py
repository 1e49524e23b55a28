"""The real service with cluster context from kube-apiserver (`serve --kubeconfig`).

The fake API server remains for what a real one cannot show or do on cue: its
request log (no API call on the hot path) and a slow first list.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.harness.admission_emulator import AdmissionEmulator, Outcome, Webhook
from tests.harness.fake_apiserver import FakeApiServer
from tests.kube import kubevirt
from tests.kube.controlplane import ADMIN, ControlPlane
from tests.webhook import service
from tests.webhook.objects import (
    NAMESPACE,
    fixture,
    hotplug_review,
    running,
    uid_of,
    with_bridge_nics,
)
from tests.webhook.service import Service

Object = dict[str, Any]


def running_vmi() -> Object:
    """The VMI of vm-fedora before any hot plug: one masquerade interface, live migratable."""
    vmi = fixture("vmi-status-hotplug-pending")
    vmi["spec"]["domain"]["devices"]["interfaces"] = vmi["spec"]["domain"]["devices"]["interfaces"][
        :1
    ]
    vmi["spec"]["networks"] = vmi["spec"]["networks"][:1]
    vmi["status"]["conditions"] = [
        c for c in vmi["status"]["conditions"] if c["type"] != "MigrationRequired"
    ]
    return vmi


KUBEVIRT: Object = {
    "apiVersion": "kubevirt.io/v1",
    "kind": "KubeVirt",
    "metadata": {"name": "kubevirt", "namespace": "kubevirt"},
    "spec": {"configuration": {}},
    "status": {"phase": "Deployed"},
}


def context_objects() -> list[Object]:
    """What the webhook reads from the cluster: a NetworkAttachmentDefinition and the VMI.

    (The KubeVirt CR is one per cluster: on the real server, the simulator installs it.)
    """
    nad = fixture("nad-new-fancy-net")
    nad["metadata"]["namespace"] = NAMESPACE
    vmi = running_vmi()
    vmi["metadata"]["namespace"] = NAMESPACE
    return [nad, vmi]


def seeded(server: FakeApiServer) -> FakeApiServer:
    for obj in context_objects():
        server.put(obj)
    server.put(copy.deepcopy(KUBEVIRT))
    return server


def metric(served: Service, name: str) -> float:
    text = requests.get(served.url("/metrics"), verify=str(served.ca), timeout=5).text
    (line,) = [line for line in text.splitlines() if line.startswith(f"{name} ")]
    return float(line.rsplit(" ", 1)[1])


@pytest.fixture(scope="module")
def cluster(control_plane: ControlPlane) -> ControlPlane:
    """kube-apiserver with KubeVirt installed and the context objects in `default`."""
    kubevirt.install(control_plane)
    for obj in context_objects():
        name = obj["metadata"]["name"]
        if control_plane.get(obj["apiVersion"], obj["kind"], name, namespace=NAMESPACE) is None:
            control_plane.create(obj)
    return control_plane


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, cluster: ControlPlane) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("cluster")
    kubeconfig = cluster.kubeconfig(ADMIN)
    with service.serving(tmp, args=("--kubeconfig", str(kubeconfig))) as running:
        yield running


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeApiServer]:
    with FakeApiServer(bookmark_interval=0.5) as server:
        yield seeded(server)


@pytest.fixture(scope="module")
def served_by_fake(
    tmp_path_factory: pytest.TempPathFactory, fake: FakeApiServer
) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("cluster-fake")
    kubeconfig = fake.write_kubeconfig(tmp / "kubeconfig")
    with service.serving(tmp, args=("--kubeconfig", str(kubeconfig))) as running:
        yield running


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with service.serving(tmp_path_factory.mktemp("offline"), args=("--offline",)) as running:
        yield running


def plug(served: Service, network: str) -> Outcome:
    old = running(fixture("vm-fedora-masquerade-only"))
    new = with_bridge_nics(old, ["nic1"], network=network)
    emulator = AdmissionEmulator(
        mutating=(Webhook(name="mutate.hotplug-guard.io", url=served.url("/mutate")),),
        validating=(Webhook(name="validate.hotplug-guard.io", url=served.url("/validate")),),
        ca_file=served.ca,
    )
    return emulator.admit(operation="UPDATE", new=new, old=old)


def test_a_nad_that_does_not_exist_is_denied_when_the_caches_are_synced(served: Service) -> None:
    outcome = plug(served, "missing-net")
    assert not outcome.allowed
    assert "nad-exists: spec.template.spec" in outcome.message
    assert "NetworkAttachmentDefinition 'default/missing-net' for 'nic1' does not exist" in (
        outcome.message
    )


def test_a_nad_that_exists_is_allowed_without_a_warning(served: Service) -> None:
    outcome = plug(served, "new-fancy-net")
    assert outcome.allowed, outcome.message
    assert not any(text.startswith("nad-exists") for text in outcome.warnings)


def test_offline_the_same_missing_nad_is_only_a_warning(offline: Service) -> None:
    outcome = plug(offline, "missing-net")
    assert outcome.allowed, outcome.message
    assert any(text.startswith("nad-exists: cannot verify") for text in outcome.warnings)


def test_a_nad_created_later_is_seen_through_the_watch(
    served: Service, cluster: ControlPlane
) -> None:
    nad = fixture("nad-new-fancy-net")
    nad["metadata"].update(namespace=NAMESPACE, name="late-net")
    cluster.create(nad)
    deadline = time.monotonic() + 10
    while not plug(served, "late-net").allowed:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_reviews_make_no_api_call_once_the_caches_are_synced(
    served_by_fake: Service, fake: FakeApiServer
) -> None:
    """The fake's request log shows every call the webhook makes."""
    deadline = time.monotonic() + 10
    while metric(served_by_fake, "hotplug_guard_context_ready") != 1:  # every worker synced
        assert time.monotonic() < deadline
        time.sleep(0.05)
    fake.clear_requests()
    with served_by_fake.session() as session:
        for index in range(30):
            answer = session.post(
                served_by_fake.url("/validate"), json=hotplug_review(uid=uid_of(f"hot-{index}"))
            )
            assert answer.status_code == 200
    assert [r for r in fake.requests if r.verb != "watch"] == []


def test_context_ready_is_reported_by_metrics_and_readyz(served: Service, offline: Service) -> None:
    assert metric(served, "hotplug_guard_context_ready") == 1.0
    assert metric(offline, "hotplug_guard_context_ready") == 0.0
    assert requests.get(served.url("/readyz"), verify=str(served.ca), timeout=5).status_code == 200


def test_a_bad_kubeconfig_is_a_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-kubeconfig"
    with pytest.raises(RuntimeError, match="exited with 2"):
        service.start(tmp_path, args=("--kubeconfig", str(missing)))
    (log,) = tmp_path.glob("serve-*.err")
    assert f"--kubeconfig {missing}: no such file" in log.read_text()


def test_in_cluster_outside_a_pod_is_a_usage_error(tmp_path: Path) -> None:
    outside = {"KUBERNETES_SERVICE_HOST": "", "KUBERNETES_SERVICE_PORT": ""}
    with pytest.raises(RuntimeError, match="exited with 2"):
        service.start(tmp_path, args=("--in-cluster",), env=outside)
    (log,) = tmp_path.glob("serve-*.err")
    assert "--in-cluster: not running in a pod" in log.read_text()


@pytest.fixture
def slow_fake() -> Iterator[FakeApiServer]:
    with FakeApiServer(bookmark_interval=0.5) as server:
        seeded(server)
        server.inject(
            verb="list", resource="network-attachment-definitions", status=None, delay=4.0, times=4
        )
        yield server


@pytest.mark.parametrize("policy", ["warn", "deny"])
def test_while_caches_sync_reviews_follow_context_unavailable_within_their_timeout(
    tmp_path: Path, slow_fake: FakeApiServer, policy: str
) -> None:
    kubeconfig = slow_fake.write_kubeconfig(tmp_path / "kubeconfig")
    config = tmp_path / "policy.yaml"
    config.write_text(f"contextUnavailable: {policy}\n", encoding="utf-8")
    served = service.start(
        tmp_path,
        args=("--kubeconfig", str(kubeconfig), "--config", str(config)),
        ready_path="/healthz",
    )
    try:
        assert (
            requests.get(served.url("/readyz"), verify=str(served.ca), timeout=5).status_code == 503
        )
        body = hotplug_review(uid=uid_of("early"))
        started = time.monotonic()
        answer = requests.post(
            served.url("/validate?timeout=1s"), json=body, verify=str(served.ca), timeout=5
        )
        elapsed = time.monotonic() - started
        response = answer.json()["response"]
        assert elapsed < 1.5
        if policy == "warn":
            assert response["allowed"] is True
            assert any("cluster context is not available" in w for w in response["warnings"])
            assert response["auditAnnotations"] == {"context": "unavailable"}
        else:
            assert response["allowed"] is False
            assert response["status"]["code"] == 503
            assert "context-unavailable" in response["status"]["message"]
        unchanged = copy.deepcopy(body)
        unchanged["request"]["object"] = unchanged["request"]["oldObject"]
        assert (
            requests.post(
                served.url("/validate?timeout=1s"),
                json=unchanged,
                verify=str(served.ca),
                timeout=5,
            ).json()["response"]["allowed"]
            is True
        )
    finally:
        service.stop(served)


def test_a_worker_is_not_ready_while_kubevirt_does_not_run_where_its_exemption_points(
    tmp_path: Path, fake: FakeApiServer
) -> None:
    # anyone who can create namespace openshift-cnv (and impersonate a service account in
    # it) could act as the exempt controller there: the replica says so instead of serving
    config = tmp_path / "policy.yaml"
    config.write_text("exemptions:\n  kubevirtNamespace: openshift-cnv\n")
    kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")
    args = ("--kubeconfig", str(kubeconfig), "--config", str(config))
    with service.serving(tmp_path, args=args, ready_path="/healthz") as running:
        deadline = time.monotonic() + 10
        while True:
            answer = requests.get(running.url("/readyz"), verify=str(running.ca), timeout=5)
            if "openshift-cnv" in answer.text or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert answer.status_code == 503
        assert "no KubeVirt CR in namespace 'openshift-cnv'" in answer.text
        assert any(
            "no KubeVirt CR in namespace" in str(entry.get("message"))
            for entry in running.json_logs()
        )
