"""The controller against the real control plane: the chart's release, the KubeVirt simulator,
and the controller built as `hotplug-guard controller` builds it, with short timings.

The controller runs in this process (so that a test can crash it after any write),
authenticated with a real token of the chart's controller ServiceAccount: the
chart's RBAC is all it gets. Waiting is done on watches, never on fixed sleeps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import kubernetes.client
import kubernetes.config
import kubernetes.watch

from controller.cluster import ClusterApi, Retry
from controller.election import Timings
from controller.metrics import Metrics
from controller.runner import Controller
from controller.settings import Settings
from hotplug_guard.keys import read_keys
from policy.annotations import STATUS, HotplugStatus, Phase, parse_status
from tests.e2e.cluster import Cluster, plug_ops
from tests.kube.controlplane import ControlPlane
from tests.kube.release import Release
from tests.kube.simulator import Simulator

Manifest = dict[str, Any]
GROUP, VERSION = "kubevirt.io", "v1"
WAIT_SECONDS = 30.0
FAST = Settings(
    grace_seconds=0.3,
    retry_backoff_seconds=0.2,
    verify_seconds=3.0,
    apply_seconds=20.0,
)
FAST_ELECTION = Timings(lease_seconds=2.0, renew_deadline_seconds=1.5, retry_seconds=0.2)


def controller_settings(release: Release, **changes: Any) -> Settings:
    """FAST, labelling migrations as the release's controller does (its Lease name)."""
    return dataclasses.replace(FAST, name=f"{release.fullname}-controller", **changes)


def controller_api_client(release: Release) -> kubernetes.client.ApiClient:
    """A client with a token of the chart's controller ServiceAccount."""
    account = release.rendered.controller_pod()["serviceAccountName"]
    client: kubernetes.client.ApiClient = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(release.kubeconfigs[account])
    )
    return client


class Crashed(Retry):
    """The simulated process is dead: it makes no further call."""


class CrashingApi(ClusterApi):
    """The real API, until the `crash_after`-th write of a hot plug (status, migration or
    Event) has been made; every later write fails, as for a process killed right then."""

    def __init__(self, *args: Any, crash_after: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.crash_after = crash_after
        self.writes: list[str] = []
        self.crashed = threading.Event()
        self._lock = threading.Lock()

    def _write(self, what: str, call: Callable[[], Any]) -> Any:
        with self._lock:
            if self.crashed.is_set():
                raise Crashed(f"{what}: the process is dead")
            result = call()
            self.writes.append(what)
            if len(self.writes) >= self.crash_after:
                self.crashed.set()
            return result

    def patch_status(self, vm: Mapping[str, Any], value: str) -> None:
        self._write("status", lambda: super(CrashingApi, self).patch_status(vm, value))

    def create_migration(self, body: Mapping[str, Any]) -> bool:
        created: bool = self._write(
            "migration", lambda: super(CrashingApi, self).create_migration(body)
        )
        return created

    def record_event(
        self, vm: Mapping[str, Any], *, reason: str, message: str, warning: bool = False
    ) -> None:
        with contextlib.suppress(Crashed):  # Events are best effort, as in the real API
            self._write(
                "event",
                lambda: super(CrashingApi, self).record_event(
                    vm, reason=reason, message=message, warning=warning
                ),
            )


@contextlib.contextmanager
def running_controller(
    release: Release,
    *,
    settings: Settings | None = None,
    lease_name: str | None = None,
    api_type: type[ClusterApi] = ClusterApi,
    identity: str | None = None,
    release_lease: bool = True,
    **api_options: Any,
) -> Iterator[Controller]:
    """A started controller of `release`, leading and synced; stopped afterwards."""
    release.project("signing")
    metrics = Metrics()
    api = api_type(
        controller_api_client(release),
        lease_namespace=release.namespace,
        lease_name=lease_name or f"{release.fullname}-controller",
        identity=identity or f"test-{secrets.token_hex(3)}",
        on_call=metrics.count_call,
        **api_options,
    )
    controller = Controller(
        api,
        keys=read_keys(release.volume("signing")),
        settings=settings or controller_settings(release),
        timings=FAST_ELECTION,
        metrics=metrics,
        workers=2,
    ).start()
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while not (controller.elector.is_leader() and controller.synced()):
            assert time.monotonic() < deadline, "the controller did not lead with synced caches"
            time.sleep(0.05)
        yield controller
    finally:
        controller.stop(release=release_lease)
        api.close()


def status_of(vm: Mapping[str, Any]) -> HotplugStatus | None:
    return parse_status(((vm.get("metadata") or {}).get("annotations") or {}).get(STATUS))


def wait_for(
    plane: ControlPlane,
    plural: str,
    namespace: str,
    name: str,
    condition: Callable[[Manifest], bool],
    *,
    seconds: float = WAIT_SECONDS,
) -> Manifest:
    """The object once `condition` holds for it, watched (no polling); fails after `seconds`."""
    api = kubernetes.client.CustomObjectsApi(plane.api_client())
    deadline = time.monotonic() + seconds
    last: Manifest = {}
    while time.monotonic() < deadline:
        listing: Any = api.list_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, field_selector=f"metadata.name={name}"
        )
        for item in listing["items"]:
            last = item
            if condition(item):
                found: Manifest = item
                return found
        watch = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
        for event in watch.stream(  # type: ignore[no-untyped-call]
            api.list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            plural,
            field_selector=f"metadata.name={name}",
            resource_version=listing["metadata"]["resourceVersion"],
            timeout_seconds=max(1, int(deadline - time.monotonic())),
        ):
            if event["type"] in ("ADDED", "MODIFIED"):
                last = event["object"]
                if condition(last):
                    watch.stop()  # type: ignore[no-untyped-call]
                    return last
    raise AssertionError(f"{plural} {namespace}/{name} never met the condition; last: {last}")


def finished(vm: Manifest) -> bool:
    status = status_of(vm)
    return status is not None and status.finished


@dataclass
class Scenario:
    """A namespace the release reviews and the simulator runs, where `alice` edits VMs."""

    cluster: Cluster
    simulator: Simulator
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    @property
    def plane(self) -> ControlPlane:
        return self.cluster.plane

    @property
    def namespace(self) -> str:
        return self.cluster.namespace

    def running_vm(self, name: str, *, secondary: tuple[tuple[str, str], ...] = ()) -> Manifest:
        return self.cluster.running_vm(name, secondary=secondary)

    def plug(self, vm: str, nic: str = "nic1", network: str = "net1") -> None:
        done = self.cluster.patch(vm, plug_ops(nic, network))
        assert done.returncode == 0, done.stderr

    def unplug(self, vm: str, nic: str) -> None:
        interfaces = self.cluster.vm(vm)["spec"]["template"]["spec"]["domain"]["devices"][
            "interfaces"
        ]
        index = next(i for i, entry in enumerate(interfaces) if entry["name"] == nic)
        ops = [
            {
                "op": "add",
                "path": f"/spec/template/spec/domain/devices/interfaces/{index}/state",
                "value": "absent",
            }
        ]
        done = self.cluster.patch(vm, ops)
        assert done.returncode == 0, done.stderr

    def merge_patch(self, name: str, body: Mapping[str, Any]) -> None:
        """The admin changes VM `name` (a JSON merge patch), as someone else would."""
        self.plane.resource("kubevirt.io/v1", "VirtualMachine").patch(
            body=dict(body),
            name=name,
            namespace=self.namespace,
            content_type="application/merge-patch+json",
        )

    def wait_vm(self, name: str, condition: Callable[[Manifest], bool], **options: Any) -> Manifest:
        return wait_for(self.plane, "virtualmachines", self.namespace, name, condition, **options)

    def wait_phase(self, name: str, phase: Phase, **options: Any) -> HotplugStatus:
        def reached(vm: Manifest) -> bool:
            status = status_of(vm)
            return status is not None and status.phase is phase

        vm = self.wait_vm(name, reached, **options)
        status = status_of(vm)
        assert status is not None
        return status

    def wait_finished(self, name: str, **options: Any) -> HotplugStatus:
        status = status_of(self.wait_vm(name, finished, **options))
        assert status is not None
        return status

    def vmi(self, name: str) -> Manifest:
        found = self.plane.get(
            "kubevirt.io/v1", "VirtualMachineInstance", name, namespace=self.namespace
        )
        assert found is not None
        return found

    def migrations(self, vmi: str) -> list[Manifest]:
        api = kubernetes.client.CustomObjectsApi(self.plane.api_client())
        listing: Any = api.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "virtualmachineinstancemigrations"
        )
        return [item for item in listing["items"] if item["spec"].get("vmiName") == vmi]

    def events(self, name: str) -> list[Manifest]:
        core = kubernetes.client.CoreV1Api(self.plane.api_client())
        listing = core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name}"
        )
        return sorted(
            (core.api_client.sanitize_for_serialization(event) for event in listing.items),
            key=lambda event: event["metadata"]["name"],
        )
