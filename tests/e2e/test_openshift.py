"""On OpenShift: certificates from its service CA, and the chart's detection of OpenShift.

OpenShift does not run here. `tests/kube/serviceca.py` plays its service CA through
the API (it reads the chart's annotations, writes the serving Secret and injects
the CA bundle), and a CRD of OpenShift's security.openshift.io group makes the real
API server's discovery look like OpenShift's to Helm.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import socket
import ssl
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.chart import scc
from tests.chart.manifests import CHART, ROOT
from tests.chart.manifests import Release as Rendered
from tests.e2e.cluster import REQUEST, Cluster, annotations_of, interfaces, plug_ops
from tests.kube import release
from tests.kube.controlplane import ControlPlane
from tests.kube.release import WEBHOOK_KINDS, Release
from tests.kube.serviceca import BUNDLE_KEY, EXPIRY, ORIGINATING_SERVICE_NAME

ADMISSION = "admissionregistration.k8s.io/v1"
# KubeVirt runs in namespace kubevirt here (tests/kube/kubevirt.py), not openshift-cnv
SERVICE_CA = {
    "openshift": True,
    "certs": {"mode": "openshift-service-ca"},
    "kubevirt": {"namespace": "kubevirt"},
}
RENEWED_LIFETIME = timedelta(days=30)
WAIT_SECONDS = 20.0

SCC_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "securitycontextconstraints.security.openshift.io"},
    "spec": {
        "group": "security.openshift.io",
        "scope": "Cluster",
        "names": {
            "plural": "securitycontextconstraints",
            "singular": "securitycontextconstraints",
            "kind": "SecurityContextConstraints",
            "listKind": "SecurityContextConstraintsList",
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


@pytest.fixture(scope="module")
def on_openshift(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    """The chart with certs.mode=openshift-service-ca, certificates from the service CA."""
    with release.deployed(control_plane, tmp_path_factory.mktemp("openshift"), SERVICE_CA) as guard:
        yield guard


def served_certificate(guard: Release) -> bytes:
    """The DER certificate a fresh TLS handshake gets, verified against the service CA."""
    assert guard.service_ca is not None
    context = ssl.create_default_context(cadata=guard.service_ca.bundle.decode())
    with (
        socket.create_connection(("127.0.0.1", guard.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def days(seconds: float) -> float:
    return seconds / 86400


def test_the_service_ca_annotations_lead_to_a_working_webhook(
    control_plane: ControlPlane, on_openshift: Release
) -> None:
    guard = on_openshift
    assert guard.service_ca is not None
    # what the service CA did, led only by the chart's annotations
    secret = control_plane.get("v1", "Secret", f"{guard.fullname}-tls", namespace=guard.namespace)
    assert secret is not None
    assert secret["type"] == "kubernetes.io/tls"
    assert secret["metadata"]["annotations"][ORIGINATING_SERVICE_NAME] == guard.fullname
    encoded = base64.b64encode(guard.service_ca.bundle).decode()
    for kind in WEBHOOK_KINDS:
        configuration = control_plane.get(ADMISSION, kind, guard.fullname)
        assert configuration is not None
        assert [w["clientConfig"]["caBundle"] for w in configuration["webhooks"]] == [encoded]
    name = f"{guard.fullname}-ca"
    config_map = control_plane.get("v1", "ConfigMap", name, namespace=guard.namespace)
    assert config_map is not None
    assert config_map["data"] == {BUNDLE_KEY: guard.service_ca.bundle.decode()}
    # the server serves the service CA's certificate (tls.crt: it, then the CA)
    chain = base64.b64decode(secret["data"]["tls.crt"])
    leaf = x509.load_pem_x509_certificates(chain)[0]
    assert served_certificate(guard) == leaf.public_bytes(Encoding.DER)
    # and kube-apiserver, trusting the injected bundle, gets both webhooks' answers
    cluster = Cluster(
        plane=control_plane, release=guard, namespace=guard.namespace_for_tests("ocp")
    )
    cluster.nad("net1")
    cluster.running_vm("fedora")
    denied = cluster.patch("fedora", plug_ops("nic1", "net1", model="e1000"))
    assert denied.returncode == 1
    assert "plug-model" in denied.stderr
    allowed = cluster.patch("fedora", plug_ops("nic1", "net1"))
    assert allowed.returncode == 0, allowed.stderr
    assert "hotplug-guard.io/request" in cluster.vm("fedora")["metadata"]["annotations"]


def test_a_renewed_service_ca_certificate_is_served_without_a_restart_and_reported(
    on_openshift: Release,
) -> None:
    guard = on_openshift
    assert guard.service_ca is not None
    assert guard.server is not None
    pid = guard.server.process.pid
    ca_expiry = x509.load_pem_x509_certificate(guard.service_ca.bundle).not_valid_after_utc
    before = guard.metric("hotplug_guard_certificate_expiry_seconds", kind="serving")
    assert 1 < days(before) <= 2  # the first certificate's lifetime (tests/kube/pki.py)
    renewed = guard.service_ca.renew(guard.namespace, guard.fullname, lifetime=RENEWED_LIFETIME)
    guard.project("tls")  # the kubelet updates the mounted files
    deadline = time.monotonic() + WAIT_SECONDS
    while served_certificate(guard) != renewed.public_bytes(Encoding.DER):
        assert time.monotonic() < deadline, "the renewed certificate was not picked up"
        time.sleep(0.1)
    assert guard.server.process.poll() is None
    assert guard.server.process.pid == pid
    # the gauge follows the certificate now served; the CA's comes from the injected bundle
    while days(guard.metric("hotplug_guard_certificate_expiry_seconds", kind="serving")) < 29:
        assert time.monotonic() < deadline, "the expiry gauge still shows the old certificate"
        time.sleep(0.1)
    serving = guard.metric("hotplug_guard_certificate_expiry_seconds", kind="serving")
    ca = guard.metric("hotplug_guard_certificate_expiry_seconds", kind="ca")
    now = datetime.now(UTC)
    assert abs(serving - (renewed.not_valid_after_utc - now).total_seconds()) < 120
    assert abs(ca - (ca_expiry - now).total_seconds()) < 120
    secret = guard.plane.get("v1", "Secret", f"{guard.fullname}-tls", namespace=guard.namespace)
    assert secret is not None
    assert secret["metadata"]["annotations"][EXPIRY].startswith(
        renewed.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M")
    )
    guard.wait_until_called()  # kube-apiserver still trusts what is served


def rendered_by_helm(plane: ControlPlane, namespace: str, directory: Path) -> Rendered:
    """What `helm install --dry-run=server` renders: Helm asks the API server what it serves."""
    config = helm_python.Config(kubeconfig_path=plane.kubeconfig(), namespace=namespace)
    try:
        result = config.install(
            helm_python.Chart.load(CHART), "probe", {}, namespace=namespace, dry_run="server"
        )
    finally:
        config.close()
    manifest: str = result["manifest"]
    (directory / "manifest.yaml").write_text(manifest)
    return Rendered(objects=tuple(doc for doc in yaml.safe_load_all(manifest) if doc), notes="")


def fixed_identities(rendered: Rendered) -> set[str]:
    return {key for pod in rendered.pods() for key in scc.fixed_identities(pod)}


def test_helm_install_detects_openshift_from_what_the_api_server_serves(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    namespace = control_plane.create_namespace("helm", developers=False)
    kubernetes = rendered_by_helm(control_plane, namespace, tmp_path)
    assert len(kubernetes.pods()) == 3  # the webhook, certs ensure, the controller
    assert fixed_identities(kubernetes) == {"runAsUser", "runAsGroup", "fsGroup"}
    control_plane.create(SCC_CRD)
    try:
        control_plane.wait_served(SCC_CRD)
        openshift = rendered_by_helm(control_plane, namespace, tmp_path)
    finally:
        control_plane.delete(
            "apiextensions.k8s.io/v1", "CustomResourceDefinition", SCC_CRD["metadata"]["name"]
        )
    assert len(openshift.pods()) == 3
    assert fixed_identities(openshift) == set()
    policy = openshift.one("ConfigMap", "probe-hotplug-guard-policy")
    exemptions = yaml.safe_load(policy["data"]["policy.yaml"])["exemptions"]
    assert exemptions["kubevirtNamespace"] == "openshift-cnv"


# --- docs/openshift.md's first hot plug, as written ----------------------------------------------

GUIDE = (ROOT / "docs" / "openshift.md").read_text()


def guide_commands() -> list[list[str]]:
    """The shell commands of the guide's sh blocks, as words (quotes may span lines)."""
    commands: list[list[str]] = []
    for block in re.findall(r"^```sh\n(.*?)^```", GUIDE, re.M | re.S):
        pending = ""
        for line in block.replace("\\\n", " ").splitlines(keepends=True):
            pending += line
            if pending.count("'") % 2 == 0:  # not inside a quoted argument
                if pending.strip():
                    commands.append(shlex.split(pending, comments=True))
                pending = ""
    return commands


def vm_patches() -> list[list[str]]:
    """`oc -n vms patch vm fedora ...` of the guide: kubectl's arguments after the namespace."""
    found = [c[3:] for c in guide_commands() if c[:5] == ["oc", "-n", "vms", "patch", "vm"]]
    assert len(found) == 2, "the guide shows a plug and an unplug with oc patch"
    return found


def test_the_first_hot_plug_of_the_openshift_guide_works_as_written(
    control_plane: ControlPlane, on_openshift: Release
) -> None:
    cluster = Cluster(
        plane=control_plane,
        release=on_openshift,
        namespace=on_openshift.namespace_for_tests("guide"),
    )
    [nad_yaml] = re.findall(r"<<'EOF'\n(.*?)^EOF$", GUIDE, re.M | re.S)
    nad = yaml.safe_load(nad_yaml)
    nad["metadata"]["namespace"] = cluster.namespace
    control_plane.create(nad)
    network = nad["metadata"]["name"]
    plug, unplug = vm_patches()
    assert plug[:3] == ["patch", "vm", "fedora"]

    cluster.running_vm("fedora")
    done = cluster.kubectl(*plug)
    assert done.returncode == 0, done.stderr
    request = json.loads(annotations_of(cluster.vm("fedora"))[REQUEST])
    assert (request["plug"], request["unplug"]) == (["nic1"], [])
    assert request["signature"].startswith("v1:")
    assert interfaces(cluster.vm("fedora"))["nic1"] == {
        "name": "nic1",
        "bridge": {},
        "model": "virtio",
    }

    # the unplug, on a VM that booted with the interface (interfaces[1])
    cluster.running_vm("plugged", secondary=(("nic1", network),))
    done = cluster.kubectl(*[("plugged" if word == "fedora" else word) for word in unplug])
    assert done.returncode == 0, done.stderr
    assert interfaces(cluster.vm("plugged"))["nic1"]["state"] == "absent"
    assert json.loads(annotations_of(cluster.vm("plugged"))[REQUEST])["unplug"] == ["nic1"]

    # and the e1000 denial the guide shows
    e1000 = json.loads(plug[-1])
    e1000[0]["value"]["model"] = "e1000"
    cluster.running_vm("other")
    denied = cluster.kubectl("patch", "vm", "other", "--type=json", "-p", json.dumps(e1000))
    assert denied.returncode == 1
    shown = re.search(
        r'^The VirtualMachine "fedora" is invalid: (\S+)\nhotplug-guard: plug-model: (.*?) \.\.\.',
        GUIDE,
        re.M,
    )
    assert shown is not None
    assert denied.stderr.startswith(
        f'The VirtualMachine "other" is invalid: {shown.group(1)} hotplug-guard: plug-model: '
        f"{shown.group(2)}"
    )
