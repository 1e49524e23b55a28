"""`certs ensure` against the real kube-apiserver, as the release's ServiceAccount (chart RBAC)."""

from __future__ import annotations

import base64
import concurrent.futures
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certs.cluster import ClusterTarget, ensure_cluster
from certs.issuance import BACKDATE, DEFAULT_KEYS
from certs.material import Material, parse_material
from certs.names import parse_hosts, service_hosts
from certs.rotation import RotationPolicy
from tests.certs.chains import ManualClock
from tests.e2e.cluster import Cluster, plug_ops
from tests.kube import release
from tests.kube.controlplane import ALICE, ControlPlane
from tests.kube.release import WEBHOOK_KINDS, Release

ADMISSION = "admissionregistration.k8s.io/v1"


def stored_material(guard: Release) -> Material:
    secret = guard.plane.get("v1", "Secret", f"{guard.fullname}-tls", namespace=guard.namespace)
    assert secret is not None
    data = secret["data"]
    return parse_material({key: base64.b64decode(value) for key, value in data.items()})


def bundles(guard: Release) -> list[bytes]:
    """The caBundle of every webhook of the release's two configurations."""
    found = []
    for kind in WEBHOOK_KINDS:
        configuration = guard.plane.get(ADMISSION, kind, guard.fullname)
        assert configuration is not None
        found += [
            base64.b64decode(w["clientConfig"]["caBundle"]) for w in configuration["webhooks"]
        ]
    return found


def pem(certificates: tuple[x509.Certificate, ...]) -> bytes:
    return b"".join(c.public_bytes(Encoding.PEM) for c in certificates)


def test_the_init_container_keeps_the_secret_and_publishes_its_ca_to_both_webhooks(
    guard: Release,
) -> None:
    material = stored_material(guard)
    secret = guard.plane.get("v1", "Secret", f"{guard.fullname}-tls", namespace=guard.namespace)
    assert secret is not None
    assert secret["type"] == "kubernetes.io/tls"
    assert sorted(secret["data"]) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]
    assert len(material.authorities) == 1
    authority = pem(material.authorities)
    assert bundles(guard) == [authority] * 2
    name = f"{guard.fullname}-ca"
    configmap = guard.plane.get("v1", "ConfigMap", name, namespace=guard.namespace)
    assert configmap is not None
    assert configmap["data"] == {"ca.crt": authority.decode()}  # the CA, never a key
    served = guard.volume("tls")  # the webhook pod's volume of the Secret
    assert (served / "tls.crt").read_bytes() == base64.b64decode(secret["data"]["tls.crt"])


def test_concurrent_ensure_runs_converge_on_one_ca(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    """Every replica's init container at once, the Secret not there yet."""
    with release.deployed(control_plane, tmp_path) as guard:
        guard.stop_server()
        guard.plane.delete("v1", "Secret", f"{guard.fullname}-tls", namespace=guard.namespace)
        outs = [tmp_path / f"replica-{index}" for index in range(4)]
        with concurrent.futures.ThreadPoolExecutor(len(outs)) as pool:
            runs = list(pool.map(lambda out: guard.run("certs-init", f"--out={out}"), outs))
        assert [run.returncode for run in runs] == [0] * len(outs), [r.stderr for r in runs]
        material = stored_material(guard)
        assert len(material.authorities) == 1
        authority = pem(material.authorities)
        assert {(out / "ca.crt").read_bytes() for out in outs} == {authority}
        assert bundles(guard) == [authority] * 2


# --- a CA rotation under traffic ---------------------------------------------------------------

# Lifetimes short enough to rotate within minutes of a manual clock, with production's rules
# (renewal at 2/3, the overlap on each side of the switch). Certificates start BACKDATE (5 min)
# early, so those issued by a manual clock up to 5 minutes ahead are valid in real time too.
POLICY = RotationPolicy(
    authority_lifetime=timedelta(minutes=240),
    serving_lifetime=timedelta(minutes=60),
    overlap=timedelta(minutes=8),
)
CA_DUE = (POLICY.authority_lifetime + BACKDATE) * 2 / 3 - BACKDATE  # after issuing it
STEP = timedelta(seconds=15)
STEP_SECONDS = 0.25  # real time between steps: the API server and the server follow


@dataclass(slots=True)
class Traffic:
    """Users' dry-run hot plugs through kube-apiserver, both webhooks called for each."""

    cluster: Cluster
    stop: threading.Event = field(default_factory=threading.Event)
    answered: int = 0
    failures: list[str] = field(default_factory=list)

    def run(self) -> None:
        client: Any = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.cluster.plane.kubeconfig(ALICE))
        )
        api = kubernetes.client.CustomObjectsApi(client)
        while not self.stop.is_set():
            try:
                api.patch_namespaced_custom_object(
                    "kubevirt.io",
                    "v1",
                    self.cluster.namespace,
                    "virtualmachines",
                    "fedora",
                    plug_ops("nic1", "net1"),
                    dry_run="All",
                    _content_type="application/json-patch+json",
                )
                self.answered += 1
            except kubernetes.client.ApiException as error:
                self.failures.append(f"{error.status}: {error.body}")
        client.close()


def test_a_ca_rotation_under_traffic_from_the_api_server_loses_no_request(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    with release.deployed(control_plane, tmp_path) as guard:
        target = ClusterTarget(
            namespace=guard.namespace,
            secret_name=f"{guard.fullname}-tls",
            hosts=parse_hosts([*service_hosts(guard.fullname, guard.namespace), "127.0.0.1"]),
            mutating_webhook_configuration=guard.fullname,
            validating_webhook_configuration=guard.fullname,
            ca_configmap=f"{guard.fullname}-ca",
        )
        # as the certs pod's ServiceAccount, with the chart's RBAC
        api = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(guard.kubeconfigs[guard.rendered.certs_pod()["serviceAccountName"]])
        )
        real_now = datetime.now(UTC)
        # a CA of this policy that is due a minute before real time: rotated during the traffic
        clock = ManualClock(real_now - timedelta(minutes=1) - CA_DUE)
        guard.plane.delete("v1", "Secret", target.secret_name, namespace=guard.namespace)

        def ensure() -> Material:
            result = ensure_cluster(api, target, clock=clock, policy=POLICY, key_spec=DEFAULT_KEYS)
            guard.project("tls")  # the kubelet updates the webhook pod's volume of the Secret
            return result.material

        ensure()
        clock.time = real_now - timedelta(minutes=10)
        first = ensure()  # the first serving certificate has expired by then: a fresh one
        guard.wait_until_called()
        cluster = Cluster(control_plane, guard, guard.namespace_for_tests("rotation"))
        cluster.nad("net1")
        cluster.running_vm("fedora")
        traffic = Traffic(cluster)
        threads = [threading.Thread(target=traffic.run) for _ in range(2)]
        for thread in threads:
            thread.start()
        seen: list[int] = []
        try:
            # new CA at -1 min, new serving certificate at +2, old CA dropped at +5
            while clock.now() <= real_now + timedelta(minutes=5):
                clock.advance(STEP)
                seen.append(len(ensure().authorities))
                threading.Event().wait(STEP_SECONDS)
        finally:
            traffic.stop.set()
            for thread in threads:
                thread.join(timeout=30)
        final = stored_material(guard)

    assert traffic.failures == []
    assert traffic.answered > 50
    assert 2 in seen  # both CAs were published together for a while
    assert final.authorities != first.authorities
    assert len(final.authorities) == 1
    assert final.serving is not None
    assert final.serving.issuer == final.authorities[0].subject
