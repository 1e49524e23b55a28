"""A simulator of KubeVirt's controllers for hot plug, acting only through the API server.

KubeVirt cannot run here (no nodes, no libvirt). This test double stands in for the
parts of virt-controller and virt-handler that a NIC hot plug meets, as
`/work/shared/design/kubevirt-hotplug-facts.md` describes them (§2.4, §4.3-§4.5),
reading what it needs from list+watch caches and writing through kube-apiserver as
KubeVirt's `kubevirt-controller` service account:

- network sync (virt-controller, `pkg/network/controllers/vm.go`): a bridge or SR-IOV
  interface added to a running VM's template is appended to the VMI spec with its
  network; a state change (`absent`) is copied unless the VMI has it absent already;
  an absent interface no status entry lists is removed from the VMI spec, and one in
  neither the VMI spec nor its status from the VM template;
- the guest side of an unplug (virt-launcher): an absent NIC leaves the domain at
  once, so its status entry keeps only `multus-status` until a migration;
- completion in place (the multus dynamic networks controller), only when
  `Timing.in_place` is set;
- the `MigrationRequired` evaluator (v1.6+): pending for a plugged NIC without a
  status entry or an unplugged one still in the pod, True after `Timing.grace`,
  removed when nothing is pending; not evaluated while the VMI migrates;
- the workload updater: with `LiveMigrate` in the KubeVirt CR, one migration
  (`kubevirt-workload-update-`, annotated) per VMI that requires one, none while one
  is unfinished, at most `parallelMigrationsPerCluster` (5) unfinished in all;
- migrations (the migration controller and virt-handler): `Scheduling`, `Running`,
  then `Succeeded` (each `Timing.step` apart) with the VMI's
  `status.migrationState`; on success the target pod has exactly the VMI spec's
  non-absent interfaces, so `status.interfaces` lists plugged NICs with
  `domain, guest-agent, multus-status` and no longer lists unplugged ones.

Faults, per VM: the next migrations fail, never finish, or the VM is stopped while
its migration runs. A migration created while another of the same VMI is unfinished
is a violation (KubeVirt's admitter would refuse it): it fails at once and is
recorded in `violations`.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import kubernetes.client
import kubernetes.config
from kubernetes.client.exceptions import ApiException

from controller.objects import condition, format_time, info_sources, parse_time
from controller.queue import WorkQueue
from kubecache import Change, Reflector, Resource
from kubecache.reflectors import identity
from tests.kube.controlplane import ControlPlane
from tests.kube.kubevirt import API_VERSION, FULL_INFO, status_entry

LOG = logging.getLogger("tests.kube.simulator")
GROUP, VERSION = "kubevirt.io", "v1"
ACCOUNT = ("kubevirt", "kubevirt-controller")
FINAL = frozenset({"Succeeded", "Failed"})
PARALLEL_MIGRATIONS = 5
EXPECT_SECONDS = 5.0

Object = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Timing:
    step: float = 0.05
    """Between a migration's phases."""
    grace: float = 0.3
    """DynamicNetworkControllerGracePeriod: MigrationRequired pending -> True."""
    in_place: float | None = None
    """None: no dynamic networks controller; else plugs and unplugs complete in place
    after this long."""


@dataclass(slots=True)
class Fault:
    fail: int = 0
    """The next this many migrations of the VM fail."""
    hang: bool = False
    """Its migrations never finish."""
    stop_while_migrating: bool = False
    """The VM is stopped while its next migration runs."""


def _whole(item: Mapping[str, Any]) -> Object:
    kept = copy.deepcopy(dict(item))
    kept.get("metadata", {}).pop("managedFields", None)
    return kept


def _resource(plural: str) -> Resource:
    return Resource(group=GROUP, version=VERSION, plural=plural, keep=_whole)


def _vmi_key(item: Mapping[str, Any]) -> str | None:
    namespace, _ = identity(item)
    vmi = (item.get("spec") or {}).get("vmiName")
    return f"{namespace}/{vmi}" if vmi else None


def interfaces_of(spec: Mapping[str, Any]) -> list[Object]:
    found: list[Object] = spec.get("domain", {}).get("devices", {}).get("interfaces") or []
    return found


def ensure_identity(plane: ControlPlane) -> kubernetes.client.ApiClient:
    """KubeVirt's controller service account, bound to cluster-admin for the simulator."""
    plane.ensure_namespace(ACCOUNT[0])
    kubeconfig = plane.token_kubeconfig(*ACCOUNT)
    name = "kubevirt-controller-simulated"
    if plane.get("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", name) is None:
        plane.create(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": name},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": ACCOUNT[1], "namespace": ACCOUNT[0]}
                ],
            }
        )
    api: kubernetes.client.ApiClient = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig)
    )
    return api


class Simulator:
    """KubeVirt's hot plug controllers for the VMs in `namespaces` (see the module docs)."""

    def __init__(
        self,
        plane: ControlPlane,
        *,
        namespaces: Iterable[str] | None = None,
        timing: Timing = Timing(),
        workers: int = 2,
    ) -> None:
        self.timing = timing
        self.faults: dict[str, Fault] = {}
        self.violations: list[str] = []
        self.writes = 0
        self._namespaces = None if namespaces is None else set(namespaces)
        self._api = ensure_identity(plane)
        self._objects = kubernetes.client.CustomObjectsApi(self._api)
        self._queue = WorkQueue(base_backoff=0.02, max_backoff=1.0)
        self._since: dict[str, float] = {}  # uid or uid/name -> when (monotonic)
        self._fates: dict[str, str] = {}  # migration uid -> "fail" or ""
        self._created: dict[str, float] = {}  # VMI key -> when the updater created one
        self._unfinished: set[str] = set()  # unfinished migrations (namespace/name)
        self._waiting: dict[str, str] = {}  # VMIs waiting for a free slot, in order
        self._lock = threading.Lock()
        self._stopping = threading.Event()

        def reflector(plural: str, handler: Any, index: Any = None) -> Reflector:
            return Reflector(self._objects, _resource(plural), index=index, on_change=handler)

        self.vms = reflector("virtualmachines", self._vmi_changed)
        self.vmis = reflector("virtualmachineinstances", self._vmi_changed)
        self.migrations = reflector(
            "virtualmachineinstancemigrations", self._migration_changed, _vmi_key
        )
        self.kubevirts = reflector("kubevirts", self._kubevirt_changed)
        self._reflectors = (self.vms, self.vmis, self.migrations, self.kubevirts)
        self._threads = [
            threading.Thread(target=self._work, name=f"simulator-{n}", daemon=True)
            for n in range(workers)
        ]

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> Simulator:
        for reflector in self._reflectors:
            reflector.start()
        for reflector in self._reflectors:
            assert reflector.synced.wait(30), f"{reflector.resource} did not sync"
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._queue.shutdown()
        for reflector in self._reflectors:
            reflector.stop()
        for thread in self._threads:
            thread.join(5)
        self._api.close()  # type: ignore[no-untyped-call]

    def watch(self, namespace: str) -> None:
        """Simulate KubeVirt in `namespace` too."""
        with self._lock:
            if self._namespaces is not None:
                self._namespaces.add(namespace)
        for vmi in self.vmis.store.in_namespace(namespace):
            self._queue.add("/".join(identity(vmi)))

    def fault(self, namespace: str, name: str) -> Fault:
        """The faults of VM `namespace/name` (created empty), to set before acting."""
        with self._lock:
            return self.faults.setdefault(f"{namespace}/{name}", Fault())

    # --- what changed ---------------------------------------------------------------------

    def _watched(self, namespace: str) -> bool:
        return self._namespaces is None or namespace in self._namespaces

    def _vmi_changed(self, change: Change) -> None:
        """A VM or VMI: the VMI of the same name is looked at."""
        namespace, name = identity(change.item)
        if self._watched(namespace):
            self._queue.add(f"{namespace}/{name}")

    def _migration_changed(self, change: Change) -> None:
        key = _vmi_key(change.item)
        if key is None or not self._watched(identity(change.item)[0]):
            return
        with self._lock:
            self._created.pop(key, None)
            slot = "/".join(identity(change.item))
            if change.deleted or _phase(change.item) in FINAL:
                self._unfinished.discard(slot)
            else:
                self._unfinished.add(slot)
            free = PARALLEL_MIGRATIONS - len(self._unfinished) - len(self._created)
            woken = [
                self._waiting.pop(next(iter(self._waiting)))
                for _ in range(min(free, len(self._waiting)))
            ]
        self._queue.add(key)
        for waiting in woken:
            self._queue.add(waiting)

    def _kubevirt_changed(self, change: Change) -> None:
        for vmi in self.vmis.store.all():
            namespace, name = identity(vmi)
            if self._watched(namespace):
                self._queue.add(f"{namespace}/{name}")

    def _work(self) -> None:
        while not self._stopping.is_set():
            key = self._queue.get(timeout=0.5)
            if key is None:
                continue
            try:
                delay = self._reconcile(key)
                if delay is not None:
                    self._queue.add_after(key, delay)
                self._queue.forget(key)
            except ApiException as error:
                if error.status not in (404, 409):
                    LOG.warning("simulator %s: %s %s", key, error.status, error.reason)
                self._queue.add_rate_limited(key)
            except Exception:
                LOG.exception("simulator %s failed", key)
                self._queue.add_rate_limited(key)
            finally:
                self._queue.done(key)

    # --- one VMI ------------------------------------------------------------------------

    def _reconcile(self, key: str) -> float | None:
        """Bring VMI `key` one step further; seconds until the next timed step (or None)."""
        namespace, _, name = key.partition("/")
        vm = self.vms.store.get(namespace, name)
        vmi = self.vmis.store.get(namespace, name)
        migrations: list[Object] = sorted(
            (dict(item) for item in self.migrations.store.indexed(key)),
            key=lambda item: (
                item["metadata"].get("creationTimestamp", ""),
                item["metadata"]["name"],
            ),
        )
        if vmi is None or (vmi.get("status") or {}).get("phase") != "Running":
            for migration in migrations:
                if _phase(migration) not in FINAL:
                    self._finish(migration, failed="the VMI does not run")
            return None
        delays: list[float] = []
        new_vmi = copy.deepcopy(dict(vmi))
        if vm is not None:
            self._sync_networks(vm, new_vmi)
        delays += self._guest(new_vmi)
        running = [item for item in migrations if _phase(item) not in FINAL]
        if running:
            delays += self._migrate(running, new_vmi)
        else:
            delays += self._evaluate(new_vmi)
        if new_vmi != vmi and self.vmis.store.get(namespace, name) is not None:
            self._replace_vmi(new_vmi)
            return 0.0  # look again once the write is in the cache
        if vm is not None:
            self._clean_vm(vm, vmi)
        if not running:
            delays += self._update_workloads(vmi)
        return min(delays) if delays else None

    def _sync_networks(self, vm: Mapping[str, Any], vmi: Object) -> None:
        template = vm["spec"]["template"]["spec"]
        spec = vmi["spec"]
        vmi_interfaces = interfaces_of(spec)
        by_name = {entry["name"]: entry for entry in vmi_interfaces}
        networks = {entry["name"]: entry for entry in template.get("networks") or ()}
        reported = {entry["name"] for entry in vmi.get("status", {}).get("interfaces") or ()}
        for entry in interfaces_of(template):
            name, state = entry["name"], entry.get("state", "")
            current = by_name.get(name)
            if current is None:
                if (
                    state != "absent"
                    and ("bridge" in entry or "sriov" in entry)
                    and name in networks
                ):
                    vmi_interfaces.append(copy.deepcopy(entry))
                    spec.setdefault("networks", []).append(copy.deepcopy(networks[name]))
            elif current.get("state", "") != state and current.get("state") != "absent":
                current["state"] = state
        # an absent interface no status entry lists any more leaves the VMI spec
        gone = {
            entry["name"]
            for entry in vmi_interfaces
            if entry.get("state") == "absent" and entry["name"] not in reported
        }
        if gone:
            spec["domain"]["devices"]["interfaces"] = [
                entry for entry in vmi_interfaces if entry["name"] not in gone
            ]
            spec["networks"] = [n for n in spec.get("networks") or () if n["name"] not in gone]

    def _guest(self, vmi: Object) -> list[float]:
        """virt-launcher's part: absent NICs leave the domain; in place, the pod follows."""
        status = vmi.setdefault("status", {})
        entries: list[Object] = status.setdefault("interfaces", [])
        states = {entry["name"]: entry.get("state", "") for entry in interfaces_of(vmi["spec"])}
        for entry in entries:
            if states.get(entry["name"]) == "absent" and "domain" in info_sources(entry):
                entry["infoSource"] = "multus-status"
        if self.timing.in_place is None:
            return []
        delays: list[float] = []
        uid = vmi["metadata"]["uid"]
        listed = {entry["name"] for entry in entries}
        networks = {n["name"]: n for n in vmi["spec"].get("networks") or ()}
        pending = [
            name for name, state in states.items() if state != "absent" and name not in listed
        ] + [name for name, state in states.items() if state == "absent" and name in listed]
        for name in pending:
            waited = self._elapsed(f"{uid}/in-place/{name}")
            if waited < self.timing.in_place:
                delays.append(self.timing.in_place - waited)
            elif states[name] == "absent":
                status["interfaces"] = [e for e in entries if e["name"] != name]
                entries = status["interfaces"]
            else:
                entries.append(status_entry(networks[name], len(entries)))
        return delays

    def _evaluate(self, vmi: Object) -> list[float]:
        """The MigrationRequired evaluator (v1.6+), for a VMI that is not migrating."""
        networks = {n["name"]: n for n in vmi["spec"].get("networks") or ()}
        reported = {e["name"]: e for e in vmi["status"].get("interfaces") or ()}
        pending = False
        for entry in interfaces_of(vmi["spec"]):
            network = networks.get(entry["name"], {})
            if "multus" not in network or network["multus"].get("default"):
                continue
            status = reported.get(entry["name"])
            if entry.get("state") != "absent" and status is None:
                pending = True
            elif entry.get("state") == "absent" and status is not None:
                sources = info_sources(status)
                pending |= "multus-status" in sources and "domain" not in sources
        conditions: list[Object] = vmi["status"].setdefault("conditions", [])
        current = condition(vmi, "MigrationRequired")
        key = f"{vmi['metadata']['uid']}/migration-required"
        if not pending:
            if current is not None:
                conditions.remove(current)  # type: ignore[arg-type]
            with self._lock:
                self._since.pop(key, None)
            return []
        if current is None:
            self._elapsed(key)
            conditions.append(
                {
                    "type": "MigrationRequired",
                    "status": "False",
                    "reason": "AutoMigrationPending",
                    "lastTransitionTime": format_time(time.time()),
                }
            )
            return [self.timing.grace]
        if current.get("status") == "False":
            waited = self._elapsed(key)
            if waited < self.timing.grace:
                return [self.timing.grace - waited]
            current.update(  # type: ignore[attr-defined]
                status="True",
                reason="AutoMigrationDueToLiveUpdate",
                lastTransitionTime=format_time(time.time()),
            )
        return []

    def _update_workloads(self, vmi: Mapping[str, Any]) -> list[float]:
        """The workload updater: migrate a VMI that requires it, with LiveMigrate in the CR;
        when every slot is taken, the VMI waits in line until a migration finishes."""
        kubevirt = self.kubevirts.store.first() or {}
        methods = (kubevirt.get("spec") or {}).get("workloadUpdateStrategy", {}).get(
            "workloadUpdateMethods"
        ) or []
        required = condition(vmi, "MigrationRequired")
        migratable = condition(vmi, "LiveMigratable")
        if (
            "LiveMigrate" not in methods
            or required is None
            or required.get("status") != "True"
            or migratable is None
            or migratable.get("status") != "True"
        ):
            return []
        namespace, name = identity(vmi)
        key = f"{namespace}/{name}"
        with self._lock:  # created, not in the cache yet: as KubeVirt's expectations
            now = time.monotonic()
            self._created = {k: t for k, t in self._created.items() if now - t < EXPECT_SECONDS}
            if key in self._created:
                return []
            if len(self._unfinished) + len(self._created) >= PARALLEL_MIGRATIONS:
                self._waiting[key] = key  # woken when a migration finishes
                return []
            self._created[key] = now
        self._write(
            lambda: self._objects.create_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                "virtualmachineinstancemigrations",
                {
                    "apiVersion": API_VERSION,
                    "kind": "VirtualMachineInstanceMigration",
                    "metadata": {
                        "generateName": "kubevirt-workload-update-",
                        "namespace": namespace,
                        "annotations": {"kubevirt.io/workloadUpdateMigration": ""},
                    },
                    "spec": {"vmiName": name},
                },
            )
        )
        return []

    def _migrate(self, running: list[Object], vmi: Object) -> list[float]:
        """Move the oldest unfinished migration on; fail any other (a double migration)."""
        current, *doubles = running
        for double in doubles:
            name = double["metadata"]["name"]
            first = current["metadata"]["name"]
            message = f"{'/'.join(identity(double))}: a second migration while {first} runs"
            with self._lock:
                if message not in self.violations:
                    self.violations.append(message)
            self._finish(double, failed=f"in-flight migration detected ({name})")
        namespace, vm_name = identity(vmi)
        uid = current["metadata"]["uid"]
        phase = _phase(current)
        fault = self.faults.get(f"{namespace}/{vm_name}", Fault())
        if phase in ("", "Pending"):
            with self._lock:
                if uid not in self._fates:  # decided once, however often this is retried
                    self._fates[uid] = "fail" if fault.fail > 0 else ""
                    fault.fail = max(0, fault.fail - 1)
            self._label(current, vm_name)
            self._set_phase(current, "Scheduling")
            return []
        state = vmi["status"].get("migrationState") or {}
        if state.get("migrationUid") != uid:
            state = {
                "migrationUid": uid,
                "sourceNode": vmi["status"].get("nodeName", "node-a"),
                "targetNode": _other_node(vmi),
                "startTimestamp": format_time(time.time()),
                "mode": "PreCopy",
            }
            vmi["status"]["migrationState"] = state  # written first, then the phase moves on
            return []
        if state.get("completed") or state.get("failed"):
            # virt-handler reported the end on the VMI: the migration controller follows
            self._finish(
                current, failed=str(state.get("failureReason") or "") if state.get("failed") else ""
            )
            return []
        waited = self._elapsed(f"{uid}/{phase}")
        if waited < self.timing.step:
            return [self.timing.step - waited]
        if phase == "Scheduling":
            self._set_phase(current, "Running")
            return []
        if fault.hang:
            return []
        if fault.stop_while_migrating:
            fault.stop_while_migrating = False
            stop(self._api, namespace, vm_name)
            return []
        state["endTimestamp"] = format_time(time.time())
        if self._fates.get(uid) == "fail":
            state.update(failed=True, completed=False, failureReason="simulated failure")
            return []
        state.update(completed=True, failed=False)
        vmi["status"]["nodeName"] = state["targetNode"]
        vmi["status"]["interfaces"] = _target_interfaces(vmi)
        migration_required = condition(vmi, "MigrationRequired")
        if migration_required is not None:
            vmi["status"]["conditions"].remove(migration_required)
        return []

    def _clean_vm(self, vm: Mapping[str, Any], vmi: Mapping[str, Any]) -> None:
        """Remove absent interfaces the VMI no longer has from the VM template (KubeVirt's
        controller does, through the webhook, as an exempt user)."""
        in_vmi = {e["name"] for e in interfaces_of(vmi["spec"])} | {
            e["name"] for e in (vmi.get("status") or {}).get("interfaces") or ()
        }
        template = vm["spec"]["template"]["spec"]
        gone = {
            e["name"]
            for e in interfaces_of(template)
            if e.get("state") == "absent" and e["name"] not in in_vmi
        }
        if not gone:
            return
        new = copy.deepcopy(dict(vm))
        spec = new["spec"]["template"]["spec"]
        spec["domain"]["devices"]["interfaces"] = [
            e for e in interfaces_of(spec) if e["name"] not in gone
        ]
        spec["networks"] = [n for n in spec.get("networks") or () if n["name"] not in gone]
        namespace, name = identity(new)
        self._write(
            lambda: self._objects.replace_namespaced_custom_object(
                GROUP, VERSION, namespace, "virtualmachines", name, new
            )
        )

    # --- writes -------------------------------------------------------------------------

    def _write(self, call: Any) -> Any:
        with self._lock:
            self.writes += 1
        return call()

    def _replace_vmi(self, vmi: Object) -> None:
        namespace, name = identity(vmi)
        self._write(
            lambda: self._objects.replace_namespaced_custom_object(
                GROUP, VERSION, namespace, "virtualmachineinstances", name, vmi
            )
        )

    def _label(self, migration: Object, vmi: str) -> None:
        if (migration["metadata"].get("labels") or {}).get("kubevirt.io/vmi-name") == vmi:
            return
        namespace, name = identity(migration)
        self._write(
            lambda: self._objects.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                "virtualmachineinstancemigrations",
                name,
                {"metadata": {"labels": {"kubevirt.io/vmi-name": vmi}}},
            )
        )

    def _set_phase(self, migration: Object, phase: str, *, reason: str = "") -> None:
        new = copy.deepcopy(migration)
        status = new.setdefault("status", {})
        status["phase"] = phase
        status.setdefault("phaseTransitionTimestamps", []).append(
            {"phase": phase, "phaseTransitionTimestamp": format_time(time.time())}
        )
        if phase in FINAL:
            status["migrationState"] = {
                "endTimestamp": format_time(time.time()),
                "completed": phase == "Succeeded",
                "failed": phase == "Failed",
                **({"failureReason": reason} if reason else {}),
            }
        namespace, name = identity(new)
        self._elapsed(f"{new['metadata']['uid']}/{phase}")
        self._write(
            lambda: self._objects.replace_namespaced_custom_object_status(
                GROUP, VERSION, namespace, "virtualmachineinstancemigrations", name, new
            )
        )

    def _finish(self, migration: Object, *, failed: str = "") -> None:
        self._set_phase(migration, "Failed" if failed else "Succeeded", reason=failed)

    def _elapsed(self, key: str) -> float:
        """Seconds since `key` was first asked about."""
        now = time.monotonic()
        with self._lock:
            return now - self._since.setdefault(key, now)


def _phase(migration: Mapping[str, Any]) -> str:
    return str((migration.get("status") or {}).get("phase") or "")


def _other_node(vmi: Mapping[str, Any]) -> str:
    return "node-b" if (vmi.get("status") or {}).get("nodeName", "node-a") == "node-a" else "node-a"


def _target_interfaces(vmi: Mapping[str, Any]) -> list[Object]:
    """The VMI's interfaces as the target pod has them: the spec's non-absent ones."""
    networks = {n["name"]: n for n in vmi["spec"].get("networks") or ()}
    before = {e["name"]: e for e in (vmi.get("status") or {}).get("interfaces") or ()}
    result = []
    for index, entry in enumerate(interfaces_of(vmi["spec"])):
        if entry.get("state") == "absent" or entry["name"] not in networks:
            continue
        kept = before.get(entry["name"])
        if kept is not None:
            result.append({**kept, "infoSource": FULL_INFO})
        else:
            result.append(status_entry(networks[entry["name"]], index))
    return result


def stop(api: kubernetes.client.ApiClient, namespace: str, name: str) -> None:
    """Stop VM `namespace/name` as a user's `virtctl stop` and KubeVirt would: run strategy
    Halted, the VMI deleted, the VM reported Stopped."""
    objects = kubernetes.client.CustomObjectsApi(api)
    objects.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "virtualmachines", name, {"spec": {"runStrategy": "Halted"}}
    )
    try:
        objects.delete_namespaced_custom_object(
            GROUP, VERSION, namespace, "virtualmachineinstances", name
        )
    except ApiException as error:
        if error.status != 404:
            raise
    objects.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        "virtualmachines",
        name,
        {"status": {"printableStatus": "Stopped", "ready": False, "created": False}},
    )


def elapsed_since(text_value: str) -> float:
    moment = parse_time(text_value)
    return 0.0 if moment is None else time.time() - moment
