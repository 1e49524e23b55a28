"""A real Kubernetes control plane for tests: etcd and kube-apiserver, started as envtest does.

etcd (`--unsafe-no-fsync`, data in a temporary directory) and kube-apiserver on
127.0.0.1 with free ports, its own serving CA, client-certificate authentication,
RBAC authorization and service-account token signing. There is no
kube-controller-manager, scheduler or kubelet: namespaces are never finalized,
nothing is garbage collected, no ServiceAccount is created by itself and no pod
runs. Tests create what they need and use fresh namespaces.

    with controlplane.running(tmp_path) as plane:
        plane.install_crds()
        namespace = plane.create_namespace("demo")
        plane.kubectl("get", "vm", "-n", namespace, user=ALICE)

Users are client certificates (CN = name, O = groups): `ADMIN` is in
`system:masters`; `ALICE` is in `developers`, which `create_namespace` binds to
the `vm-editor` ClusterRole. `token_kubeconfig` gives a ServiceAccount's real
token (TokenRequest), for requests that must come from a service account.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import ctypes
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
import kubernetes.dynamic
import requests
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.kube import binaries, crds
from tests.kube.pki import Authority, Pair, write_key
from tests.webhook.service import free_port

READY_SECONDS = 90.0
STOP_SECONDS = 15.0
PR_SET_PDEATHSIG = 1

Manifest = dict[str, Any]


@dataclass(frozen=True, slots=True)
class User:
    """A user as kube-apiserver sees it: a client certificate's CN and O."""

    name: str
    groups: tuple[str, ...] = ()


ADMIN = User("admin", ("system:masters",))
ALICE = User("alice", ("developers",))
DEVELOPERS = "developers"
VM_EDITOR = "vm-editor"

# What a VM owner needs, and no more: VMs read-write, what KubeVirt shows them read-only.
VM_EDITOR_ROLE: Manifest = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRole",
    "metadata": {"name": VM_EDITOR},
    "rules": [
        {
            "apiGroups": ["kubevirt.io"],
            "resources": ["virtualmachines"],
            "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
        },
        {
            "apiGroups": ["kubevirt.io"],
            "resources": ["virtualmachineinstances", "virtualmachineinstancemigrations"],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": ["k8s.cni.cncf.io"],
            "resources": ["network-attachment-definitions"],
            "verbs": ["get", "list", "watch"],
        },
    ],
}


@dataclass(slots=True)
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


@dataclass(slots=True)
class ControlPlane:
    """A started etcd + kube-apiserver; see the module documentation."""

    directory: Path
    tools: binaries.Binaries
    port: int = 0
    etcd_log: Path = field(init=False)
    apiserver_log: Path = field(init=False)
    _processes: list[_Process] = field(default_factory=list)
    _kubeconfigs: dict[User, Path] = field(default_factory=dict)
    _clients: dict[User, kubernetes.client.ApiClient] = field(default_factory=dict)
    _dynamic: dict[User, kubernetes.dynamic.DynamicClient] = field(default_factory=dict)
    _crds_installed: bool = False
    pki: Path = field(init=False)
    _serving_ca: Authority = field(init=False)
    _client_ca: Authority = field(init=False)

    def __post_init__(self) -> None:
        self.etcd_log = self.directory / "etcd.log"
        self.apiserver_log = self.directory / "kube-apiserver.log"
        self.pki = self.directory / "pki"

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> ControlPlane:
        self.pki.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._serving_ca = Authority(self.pki, "serving-ca")
        self._client_ca = Authority(self.pki, "client-ca")
        etcd_url = self._start_etcd()
        self._start_apiserver(etcd_url)
        return self

    def stop(self) -> None:
        """Stop kube-apiserver, then etcd; never leave either behind."""
        for client in self._clients.values():
            client.close()  # type: ignore[no-untyped-call]
        self._clients.clear()
        for process in reversed(self._processes):
            _terminate(process.popen)
        self._processes.clear()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        """The CA that signed kube-apiserver's serving certificate."""
        return self._serving_ca.cert_file

    def _start_etcd(self) -> str:
        client_port, peer_port = free_port(), free_port()
        client_url = f"http://127.0.0.1:{client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        data = self.directory / "etcd-data"
        data.mkdir(mode=0o700)
        self._spawn(
            "etcd",
            [
                str(self.tools.etcd),
                "--name=control-plane",
                f"--data-dir={data}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=control-plane={peer_url}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
            self.etcd_log,
        )
        self._wait("etcd", lambda: _etcd_healthy(client_url))
        return client_url

    def _start_apiserver(self, etcd_url: str) -> None:
        self.port = free_port()
        serving = self._serving_ca.serving("apiserver", hosts=("127.0.0.1", "localhost"))
        signing_key = self.pki / "service-accounts.key"
        write_key(signing_key, rsa.generate_private_key(public_exponent=65537, key_size=2048))
        self._spawn(
            "kube-apiserver",
            [
                str(self.tools.kube_apiserver),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--cert-dir={self.pki}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={self._client_ca.cert_file}",
                "--authorization-mode=RBAC",
                f"--service-account-issuer={self.url}",
                f"--service-account-key-file={signing_key}",
                f"--service-account-signing-key-file={signing_key}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                # no controller-manager creates the default ServiceAccounts it would require
                "--disable-admission-plugins=ServiceAccount",
                # 127.0.0.1 cannot be the kubernetes Service's endpoint; nothing here needs it
                "--endpoint-reconciler-type=none",
            ],
            self.apiserver_log,
        )
        self.kubeconfig(ADMIN)
        self._wait("kube-apiserver", lambda: self.raw("GET", "/readyz") == 200)

    def raw(self, method: str, path: str) -> int | None:
        """One request as the admin, outside any client library; its status (None: no answer)."""
        admin = self.client_certificate(ADMIN)
        try:
            answer = requests.request(
                method,
                f"{self.url}{path}",
                cert=(str(admin.cert), str(admin.key)),
                verify=str(self.ca_file),
                timeout=5,
            )
        except requests.RequestException:
            return None
        return answer.status_code

    def _spawn(self, name: str, command: list[str], log: Path) -> None:
        with log.open("ab") as output:
            popen = subprocess.Popen(
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.directory,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only a prctl, no Python state
            )
        self._processes.append(_Process(name=name, popen=popen, log=log))

    def _wait(self, name: str, ready: Callable[[], bool]) -> None:
        process = next(p for p in self._processes if p.name == name)
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if process.popen.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {process.popen.returncode}; its log "
                    f"({process.log}) ends with:\n{tail(process.log)}"
                )
            if ready():
                return
            time.sleep(0.2)
        raise RuntimeError(f"{name} not ready after {READY_SECONDS}s; log:\n{tail(process.log)}")

    # --- users and clients ------------------------------------------------------------------

    def kubeconfig(self, user: User = ADMIN) -> Path:
        """A kubeconfig that authenticates as `user` with a client certificate."""
        if user not in self._kubeconfigs:
            pair = self.client_certificate(user)
            credentials = {"client-certificate": str(pair.cert), "client-key": str(pair.key)}
            self._kubeconfigs[user] = self._write_kubeconfig(_file_name(user), credentials)
        return self._kubeconfigs[user]

    def client_certificate(self, user: User = ADMIN) -> Pair:
        """`user`'s client certificate and key (CN = name, O = groups), for any HTTP client."""
        cert, key = self.pki / f"{_file_name(user)}.crt", self.pki / f"{_file_name(user)}.key"
        if cert.is_file() and key.is_file():
            return Pair(cert=cert, key=key)
        return self._client_ca.client(_file_name(user), user=user.name, groups=user.groups)

    def token_kubeconfig(self, namespace: str, service_account: str) -> Path:
        """A kubeconfig with a real token of ServiceAccount `namespace/service_account`.

        The ServiceAccount is created when missing; the token comes from the
        TokenRequest API, as a pod's projected token would.
        """
        if self.get("v1", "ServiceAccount", service_account, namespace=namespace) is None:
            self.create(
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": service_account, "namespace": namespace},
                }
            )
        core = kubernetes.client.CoreV1Api(self.api_client())
        request = kubernetes.client.AuthenticationV1TokenRequest(
            spec=kubernetes.client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
        )
        answer = core.create_namespaced_service_account_token(service_account, namespace, request)
        token = answer.status.token if answer.status is not None else None
        if not token:
            raise RuntimeError(f"no token for ServiceAccount {namespace}/{service_account}")
        return self._write_kubeconfig(f"sa-{namespace}-{service_account}", {"token": token})

    def _write_kubeconfig(self, name: str, credentials: Mapping[str, str]) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "control-plane",
                    "cluster": {"server": self.url, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": name, "user": dict(credentials)}],
            "contexts": [{"name": name, "context": {"cluster": "control-plane", "user": name}}],
            "current-context": name,
        }
        path = self.pki / f"{name}.kubeconfig"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            yaml.safe_dump(config, handle)
        return path

    def api_client(self, user: User = ADMIN) -> kubernetes.client.ApiClient:
        """A configured client of the real `kubernetes` package, one per user."""
        if user not in self._clients:
            self._clients[user] = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=str(self.kubeconfig(user))
            )
        return self._clients[user]

    def resource(
        self, api_version: str, kind: str = "", *, plural: str = "", user: User = ADMIN
    ) -> Any:
        """The dynamic client's resource by kind or plural (discovery refreshed for new CRDs)."""
        if user not in self._dynamic:
            self._dynamic[user] = kubernetes.dynamic.DynamicClient(  # type: ignore[no-untyped-call]
                self.api_client(user)
            )
        resources = self._dynamic[user].resources
        search = {"api_version": api_version, **({"name": plural} if plural else {"kind": kind})}
        try:
            return resources.get(**search)
        except kubernetes.dynamic.exceptions.ResourceNotFoundError:
            resources.invalidate_cache()
            return resources.get(**search)

    def kubectl(
        self,
        *args: str,
        user: User = ALICE,
        kubeconfig: Path | None = None,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl as `user` (or with `kubeconfig`); never raises on its exit code."""
        config = kubeconfig or self.kubeconfig(user)
        home = self.directory / "home"
        home.mkdir(exist_ok=True)
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),  # kubectl's discovery cache stays in the test's directory
            "KUBECONFIG": str(config),
            **(env or {}),
        }
        return subprocess.run(
            [str(self.tools.kubectl), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=environment,
            timeout=timeout,
            check=False,
        )

    # --- objects ------------------------------------------------------------------------------

    def create(self, manifest: Mapping[str, Any], *, user: User = ADMIN) -> Manifest:
        """Create any object (plain create, no last-applied annotation); the stored object."""
        resource = self.resource(manifest["apiVersion"], manifest["kind"], user=user)
        namespace = manifest.get("metadata", {}).get("namespace")
        created = resource.create(body=dict(manifest), namespace=namespace)
        stored: Manifest = created.to_dict()
        return stored

    def get(
        self, api_version: str, kind: str, name: str, *, namespace: str | None = None
    ) -> Manifest | None:
        resource = self.resource(api_version, kind)
        try:
            found: Manifest = resource.get(name=name, namespace=namespace).to_dict()
        except kubernetes.dynamic.exceptions.NotFoundError:
            return None
        return found

    def delete(
        self, api_version: str, kind: str, name: str, *, namespace: str | None = None
    ) -> None:
        resource = self.resource(api_version, kind)
        with contextlib.suppress(kubernetes.dynamic.exceptions.NotFoundError):
            resource.delete(name=name, namespace=namespace)

    def create_namespace(
        self, prefix: str, *, labels: Mapping[str, str] | None = None, developers: bool = True
    ) -> str:
        """A fresh namespace `<prefix>-<random>`; with `developers`, they may edit VMs in it."""
        name = f"{prefix}-{secrets.token_hex(3)}"
        metadata = {"name": name, "labels": dict(labels or {})}
        self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": metadata})
        if developers:
            self.bind_vm_editor(
                name, {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": DEVELOPERS}
            )
        return name

    def ensure_namespace(self, name: str) -> str:
        """Namespace `name` (fixed names such as `kubevirt`), created if missing."""
        if self.get("v1", "Namespace", name) is None:
            self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        return name

    def bind_vm_editor(self, namespace: str, subject: Mapping[str, str]) -> None:
        """Let `subject` (an RBAC subject) edit VMs in `namespace` (the `vm-editor` role)."""
        if self.get("rbac.authorization.k8s.io/v1", "ClusterRole", VM_EDITOR) is None:
            self.create(VM_EDITOR_ROLE)
        self.create(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"generateName": f"{VM_EDITOR}-", "namespace": namespace},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": VM_EDITOR,
                },
                "subjects": [dict(subject)],
            }
        )

    def install_crds(self) -> None:
        """Create KubeVirt's and the NAD CRD (once) and wait until each is served."""
        if self._crds_installed:
            return
        definitions = crds.load()
        for definition in definitions:
            name = definition["metadata"]["name"]
            if self.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name) is None:
                self.create(definition)
        for definition in definitions:
            self.wait_served(definition)
        self._crds_installed = True

    def wait_served(self, definition: Mapping[str, Any]) -> None:
        """Until the API server serves the CRD's storage version, and its discovery says so
        (discovery follows a moment later, and the dynamic client finds resources there)."""
        spec = definition["spec"]
        storage = next(v["name"] for v in spec["versions"] if v.get("storage"))
        plural = spec["names"]["plural"]
        path = f"/apis/{spec['group']}/{storage}/{plural}"
        deadline = time.monotonic() + READY_SECONDS
        while self.raw("GET", path) != 200 or not self._discovered(spec["group"], storage, plural):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{path} is not served after {READY_SECONDS}s")
            time.sleep(0.1)

    def _discovered(self, group: str, version: str, plural: str) -> bool:
        try:
            self.resource(f"{group}/{version}", plural=plural)
        except kubernetes.dynamic.exceptions.ResourceNotFoundError:
            return False
        return True

    # --- webhooks -------------------------------------------------------------------------------

    def register_webhooks(
        self,
        configurations: Iterable[Mapping[str, Any]],
        *,
        base_url: str,
        ca_bundle: bytes | None,
    ) -> list[tuple[str, str]]:
        """Create webhook configurations pointing at `base_url`, as envtest registers them.

        Each `clientConfig.service` becomes `url: <base_url><path>` with `caBundle`
        (None: left to whoever injects it); returns (kind, name) of each created
        configuration, for `delete_webhooks`.
        """
        created = []
        for configuration in configurations:
            pointed = with_url(configuration, base_url=base_url, ca_bundle=ca_bundle)
            self.create(pointed)
            created.append((pointed["kind"], pointed["metadata"]["name"]))
        return created

    def delete_webhooks(self, created: Iterable[tuple[str, str]]) -> None:
        for kind, name in created:
            self.delete("admissionregistration.k8s.io/v1", kind, name)


def _file_name(user: User) -> str:
    return user.name.replace(":", "-")


WEBHOOK_KINDS = frozenset({"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"})


def with_url(
    configuration: Mapping[str, Any], *, base_url: str, ca_bundle: bytes | None
) -> Manifest:
    """A webhook configuration whose webhooks call `base_url` + their service path."""
    if configuration.get("kind") not in WEBHOOK_KINDS:
        raise ValueError(f"not a webhook configuration: {configuration.get('kind')}")
    result: Manifest = copy.deepcopy(dict(configuration))
    for hook in result["webhooks"]:
        service = hook["clientConfig"].get("service") or {}
        hook["clientConfig"] = {"url": base_url.rstrip("/") + service.get("path", "/")}
        if ca_bundle is not None:
            hook["clientConfig"]["caBundle"] = base64.b64encode(ca_bundle).decode()
    return result


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, or a note that there is none."""
    if not path.is_file():
        return f"({path} does not exist)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def running(directory: Path) -> Iterator[ControlPlane]:
    """A started control plane for a `with` block, always stopped afterwards.

    The binaries must have been built (`python -m tests.kube.binaries`, which the
    README's test command runs first).
    """
    missing = binaries.missing()
    if missing:
        raise RuntimeError(
            f"the control plane's binaries are not built ({', '.join(missing)}); "
            "run `python -m tests.kube.binaries` (scripts/check does) and try again"
        )
    plane = ControlPlane(directory=directory, tools=binaries.located())
    try:
        yield plane.start()
    finally:
        plane.stop()


def _etcd_healthy(url: str) -> bool:
    try:
        answer = requests.get(f"{url}/health", timeout=2)
    except requests.RequestException:
        return False
    return answer.status_code == 200 and answer.json().get("health") == "true"


def _terminate(popen: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL it if it lingers, and reap it."""
    if popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGTERM)
        try:
            popen.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGKILL)
            popen.wait(timeout=STOP_SECONDS)


def _die_with_parent() -> None:
    """In the child: be killed when the test process dies, however it dies (Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
