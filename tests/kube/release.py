"""A hotplug-guard release on the control plane: the chart rendered by Helm, its pods run locally.

`deployed(plane, directory, values)` renders the chart, creates what it renders
for the API server (the Service, ServiceAccounts, RBAC, the signing-key Secret,
the policy ConfigMap, both webhook configurations pointed at
`https://127.0.0.1:PORT/<path>` as envtest registers webhooks), then runs the pods'
containers as local processes with their own command lines from the render: the
certs pod's `certs ensure --once` init container (which creates the serving Secret
and writes the caBundle into both configurations; with certs.mode=openshift-service-ca
the service CA simulator of `tests/kube/serviceca.py` does) and the webhook pod's `serve`,
each authenticated with a real token of its pod's ServiceAccount, so the chart's
RBAC is what they get. Controller replicas start on request (`start_controller`),
as the controller pod's command with a token of its ServiceAccount. Only what a
kubelet gives differs: volumes are directories filled from their Secrets and
ConfigMaps (`project`, again after a Secret changes), `--in-cluster` is the
token's kubeconfig, `--bind` and `--probe-bind` are 127.0.0.1, and the serving
certificate also names 127.0.0.1.

Each release reviews only namespaces labelled with its id (`namespace()`), so
several releases can share one control plane.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes.client
import requests
from prometheus_client.parser import text_string_to_metric_families

from certs.directory import write_atomic
from tests.chart.manifests import Release as Rendered
from tests.chart.manifests import containers, merged, render
from tests.kube import kubevirt
from tests.kube.controlplane import ControlPlane
from tests.kube.kubevirt import virtual_machine
from tests.kube.serviceca import SERVING_CERT_SECRET, ServiceCA
from tests.webhook import service
from tests.webhook.service import Service, free_port

SELECTOR_KEY = "hotplug-guard.test/release"
# what the render holds for the API server, besides the pods and webhook configurations
CREATED_KINDS = (
    "Service",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Secret",
    "ConfigMap",
)
WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
ACTIVE_SECONDS = 30.0

Manifest = dict[str, Any]


@dataclass(slots=True)
class Release:
    """One deployed release; see the module documentation."""

    plane: ControlPlane
    directory: Path
    id: str
    rendered: Rendered
    namespace: str
    port: int
    kubeconfigs: dict[str, Path] = field(default_factory=dict)  # by ServiceAccount
    server: Service | None = None
    service_ca: ServiceCA | None = None  # certs.mode=openshift-service-ca
    webhooks: list[tuple[str, str]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # for the containers' processes
    replicas: list[Replica] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def fullname(self) -> str:
        name: str = self.rendered.deployment()["metadata"]["name"]
        return name

    @property
    def kubeconfig(self) -> Path:
        """The webhook pod's ServiceAccount's kubeconfig."""
        return self.kubeconfigs[self.rendered.deployment_pod()["serviceAccountName"]]

    def volume(self, name: str) -> Path:
        path = self.directory / "volumes" / name
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    # --- the pods -----------------------------------------------------------------------

    def pod_of(self, container: str) -> Manifest:
        [pod] = [
            pod for pod in self.rendered.pods() if container in {c["name"] for c in containers(pod)}
        ]
        return pod

    def project(self, volume: str | None = None) -> None:
        """Fill the pods' volumes (or one) from the API server, as a kubelet does."""
        for pod in self.rendered.pods():
            for spec in pod.get("volumes", ()):
                if volume in (None, spec["name"]):
                    _project(self.plane, self.namespace, spec, self.volume(spec["name"]))

    def command(self, container: str) -> list[str]:
        """The container's arguments as rendered, with local volumes and credentials."""
        spec = self.rendered.container(container)
        kubeconfig = self.kubeconfigs[self.pod_of(container)["serviceAccountName"]]
        mounts = {m["mountPath"]: self.volume(m["name"]) for m in spec.get("volumeMounts", ())}
        args: list[str] = []
        for argument in spec.get("args", ()):
            if argument == "--in-cluster":
                args.append(f"--kubeconfig={kubeconfig}")
                continue
            if argument.startswith("--bind="):
                args.append(f"--bind=127.0.0.1:{self.port}")
                continue
            if argument.startswith("--probe-bind="):
                args.append("--probe-bind=127.0.0.1:0")  # start_controller picks the port
                continue
            option, separator, value = argument.partition("=")
            local = next(
                (
                    f"{path}{value.removeprefix(mount)}"
                    for mount, path in mounts.items()
                    if separator and (value == mount or value.startswith(mount + "/"))
                ),
                None,
            )
            args.append(argument if local is None else f"{option}={local}")
        if args[:2] == ["certs", "ensure"]:
            # the API server calls 127.0.0.1, not the Service's DNS name
            args += [f"--kubeconfig={kubeconfig}", "--ip=127.0.0.1"]
        return args

    def run(self, container: str, *extra: str) -> subprocess.CompletedProcess[str]:
        """Run a container's command to its end (`certs ensure --once`)."""
        return subprocess.run(
            [sys.executable, "-m", "hotplug_guard", *self.command(container), *extra],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "PYTHONPATH": str(service.REPO), **self.env},
        )

    def start_server(self) -> Service:
        """Start the `webhook` container's `serve`; wait until every worker's caches are synced."""
        self.project()
        args = self.command("webhook")
        assert args[0] == "serve", args
        self.server = service.start(
            self.directory,
            args=args[1:],
            bare=True,
            port=self.port,
            ca=self.volume("tls") / "ca.crt",
            env=self.env,
        )
        deadline = time.monotonic() + ACTIVE_SECONDS
        while self.metric("hotplug_guard_context_ready") != 1:
            assert time.monotonic() < deadline, "the webhook's caches did not sync"
            time.sleep(0.1)
        return self.server

    def stop_server(self) -> None:
        if self.server is not None:
            service.stop(self.server)
            self.server = None

    def start_controller(self, identity: str, *extra: str) -> Replica:
        """Start a replica of the `controller` container as `identity` (the pod's name);
        `extra` options override the rendered ones (shorter timings for tests). Returns
        once its caches are synced."""
        self.project("signing")
        args = self.command("controller")
        assert args[0] == "controller", args
        port = free_port()
        args = [
            f"--probe-bind=127.0.0.1:{port}" if a.startswith("--probe-bind=") else a for a in args
        ]
        log = self.directory / f"controller-{identity}.log"
        with log.open("ab") as output:
            popen = subprocess.Popen(
                [sys.executable, "-m", "hotplug_guard", *args, *extra],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={
                    **os.environ,
                    "PYTHONPATH": str(service.REPO),
                    "POD_NAME": identity,
                    **self.env,
                },
            )
        replica = Replica(popen=popen, port=port, log=log)
        self.replicas.append(replica)
        replica.wait_ready()
        return replica

    def stop_controllers(self) -> None:
        for replica in self.replicas:
            replica.stop()
        self.replicas.clear()

    # --- what tests use -----------------------------------------------------------------------

    def namespace_for_tests(self, prefix: str) -> str:
        """A fresh namespace this release reviews, where `developers` may edit VMs."""
        return self.plane.create_namespace(prefix, labels={SELECTOR_KEY: self.id})

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric's samples (over all workers) whose labels include `labels`."""
        assert self.server is not None, "the webhook is not running"
        text = requests.get(self.server.url("/metrics"), verify=str(self.server.ca), timeout=5).text
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if (
                    sample.name in (name, f"{name}_total")
                    and labels.items() <= sample.labels.items()
                ):
                    total += sample.value
        return total

    def reviews(self, endpoint: str | None = None) -> float:
        """AdmissionReviews answered so far (by endpoint `mutate` or `validate`, or both)."""
        labels = {"endpoint": endpoint} if endpoint else {}
        return self.metric("hotplug_guard_admission_requests", **labels)

    def wait_until_called(self) -> None:
        """Until kube-apiserver calls both webhooks (its configuration informer is async)."""
        probe_namespace = self.namespace_for_tests("probe")
        probe = virtual_machine("probe", probe_namespace)
        resource = self.plane.resource(probe["apiVersion"], probe["kind"])
        deadline = time.monotonic() + ACTIVE_SECONDS
        before = {endpoint: self.reviews(endpoint) for endpoint in ("mutate", "validate")}
        while any(self.reviews(endpoint) <= count for endpoint, count in before.items()):
            assert time.monotonic() < deadline, "kube-apiserver never called both webhooks"
            # refused while kube-apiserver still has an older caBundle: try again
            with contextlib.suppress(kubernetes.client.ApiException):
                resource.create(body=probe, namespace=probe_namespace, dry_run="All")
            time.sleep(0.1)


@dataclass(slots=True)
class Replica:
    """A running `hotplug-guard controller` process and its probe port."""

    popen: subprocess.Popen[bytes]
    port: int
    log: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + ACTIVE_SECONDS
        while True:
            if self.popen.poll() is not None:
                output = self.log.read_text()[-4000:]
                raise RuntimeError(f"controller exited with {self.popen.returncode}:\n{output}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.url("/readyz"), timeout=2).status_code == 200:
                    return
            assert time.monotonic() < deadline, f"controller not ready:\n{self.log.read_text()}"
            time.sleep(0.1)

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric's samples whose labels include `labels`."""
        text = requests.get(self.url("/metrics"), timeout=5).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name in (name, f"{name}_total") and labels.items() <= sample.labels.items()
        )

    def kill(self) -> None:
        """SIGKILL: the replica dies without handing its Lease back."""
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=10)

    def stop(self) -> int:
        """SIGTERM (hands the Lease back), then SIGKILL if it lingers; the exit code."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        return self.popen.returncode


def _project(plane: ControlPlane, namespace: str, spec: Mapping[str, Any], target: Path) -> None:
    """Write the keys of a volume's Secrets and ConfigMaps (their `items`, if listed) as files,
    as a kubelet does; a projected volume gathers several into one directory."""
    if "projected" in spec:
        sources = spec["projected"]["sources"]
        mode = spec["projected"].get("defaultMode", 0o644)
    elif "secret" in spec or "configMap" in spec:
        sources = [spec]
        mode = (spec.get("secret") or spec["configMap"]).get("defaultMode", 0o644)
    else:
        return  # an emptyDir: the directory is all
    for source in sources:
        if "secret" in source:
            reference = source["secret"]
            name = reference.get("secretName") or reference["name"]
            found = plane.get("v1", "Secret", name, namespace=namespace)
            data = {k: base64.b64decode(v) for k, v in ((found or {}).get("data") or {}).items()}
        else:
            reference = source["configMap"]
            found = plane.get("v1", "ConfigMap", reference["name"], namespace=namespace)
            data = {k: v.encode() for k, v in ((found or {}).get("data") or {}).items()}
        if found is None:
            raise RuntimeError(f"volume {spec['name']}: its source does not exist yet")
        items = reference.get("items") or [{"key": key, "path": key} for key in sorted(data)]
        for item in items:
            if item["key"] not in data:
                raise RuntimeError(f"volume {spec['name']}: no key {item['key']} in its source yet")
            # | 0600: this process must read what it wrote
            write_atomic(target / item["path"], data[item["key"]], mode=(mode | 0o600) & 0o777)


def deploy(
    plane: ControlPlane,
    directory: Path,
    values: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> Release:
    """Render, create and start a release (see the module documentation); `remove` undoes it.

    `env` is added to the environment of the containers' processes (e.g. a
    PYTHONPATH with another build of the engine).
    """
    kubevirt.install(plane)  # hotplug-guard runs where KubeVirt does
    release_id = secrets.token_hex(3)
    scoped = {
        "webhooks": {
            "namespaceSelectorExpressions": [
                {"key": SELECTOR_KEY, "operator": "In", "values": [release_id]}
            ]
        }
    }
    namespace = plane.create_namespace(f"hotplug-guard-{release_id}", developers=False)
    rendered = render(merged(scoped, values or {}), name=f"g{release_id}", namespace=namespace)
    release = Release(
        plane=plane,
        directory=directory,
        id=release_id,
        rendered=rendered,
        namespace=namespace,
        port=free_port(),
        env=dict(env or {}),
    )
    for kind in CREATED_KINDS:
        for manifest in rendered.all(kind):
            plane.create(manifest)
    for pod in rendered.pods():
        account = pod["serviceAccountName"]
        release.kubeconfigs[account] = plane.token_kubeconfig(namespace, account)
    release.webhooks = plane.register_webhooks(
        (m for kind in WEBHOOK_KINDS for m in rendered.all(kind)),
        base_url=release.base_url,
        ca_bundle=None,
    )
    try:
        _issue_certificates(release)
        release.start_server()
        release.wait_until_called()
    except BaseException:
        remove(release)
        raise
    return release


def _issue_certificates(release: Release) -> None:
    """What the release's certs.mode has issue the serving certificate: the certs pod's init
    container (`certs ensure --once`), or OpenShift's service CA (simulated)."""
    service = release.rendered.one("Service", release.fullname)
    if SERVING_CERT_SECRET in (service["metadata"].get("annotations") or {}):
        release.service_ca = ServiceCA(release.plane, release.directory / "service-ca")
        release.service_ca.sync(release.namespace)
        return
    init = release.run("certs-init")
    if init.returncode != 0:
        raise RuntimeError(f"certs-init failed:\n{init.stdout}\n{init.stderr}")


def remove(release: Release) -> None:
    """Stop the processes and delete the webhook configurations (namespaces stay: no GC here)."""
    release.stop_controllers()
    release.stop_server()
    release.plane.delete_webhooks(release.webhooks)


@contextlib.contextmanager
def deployed(
    plane: ControlPlane,
    directory: Path,
    values: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> Iterator[Release]:
    release = deploy(plane, directory, values, env=env)
    try:
        yield release
    finally:
        remove(release)
