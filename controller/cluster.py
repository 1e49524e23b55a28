"""The one module of the controller that talks to the API server.

Reads come from list+watch caches (`kubecache`) of VMs, VMIs, migrations and the
KubeVirt CR, each keeping only what the decisions read. Writes are few and each is
safe to repeat: the status annotation is a JSON patch conditional on the VM's
resourceVersion (a 409 means the VM changed since it was read, so the decision is
made again on the newer VM); a migration is created under a name fixed by VM,
request and attempt (409 AlreadyExists: it exists, which is what was wanted);
Events are best effort; the Lease is replaced conditionally.

RBAC this needs (the chart grants exactly this): virtualmachines get/list/watch/
patch; virtualmachineinstances and kubevirts get/list/watch;
virtualmachineinstancemigrations create/get/list/watch (KubeVirt's
`kubevirt.io:migrate` ClusterRole); events create; its Lease get/update (and
create in its namespace).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import urllib3.exceptions
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from controller.election import Conflict, LeaseRecord
from controller.migrations import vmi_of
from controller.objects import field, format_time, items, text
from kubecache import Change, Reflector, Resource
from kubecache.reflectors import identity
from policy.annotations import PREFIX, STATUS

LOG = logging.getLogger(f"hotplug_guard.{__name__}")

GROUP, VERSION = "kubevirt.io", "v1"
COMPONENT = "hotplug-guard-controller"
REQUEST_SECONDS = (5, 30)
"""Connect and read timeouts of every write: a hung call never holds a worker."""
HTTP_CONFLICT = 409
HTTP_TOO_MANY_REQUESTS = 429
HTTP_SERVER_ERROR = 500
HTTP_NOT_FOUND = 404
KEEP_MIGRATION_ANNOTATIONS = ("kubevirt.io/workloadUpdateMigration",)

Object = Mapping[str, Any]
CallCounter = Callable[[str, str], None]


class Retry(Exception):
    """A write to repeat later: a conflict (409), throttling (429), a server error (5xx) or
    no answer. `conflict` tells a 409 apart (the cache will bring the newer object)."""

    def __init__(self, message: str, *, conflict: bool = False) -> None:
        super().__init__(message)
        self.conflict = conflict


def _pick(data: object, *keys: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        return {}
    return {key: data[key] for key in keys if key in data}


def _interfaces(spec: object) -> list[dict[str, Any]]:
    return [
        _pick(entry, "name", "state")
        for entry in items(field(spec, "domain", "devices", "interfaces"))
    ]


def keep_vm(item: Object) -> dict[str, Any]:
    """Identity, version, the `hotplug-guard.io/` annotations and the interface names and states
    (what verifying a request needs); nothing of the guest."""
    metadata = _pick(
        item.get("metadata"), "name", "namespace", "uid", "generation", "resourceVersion"
    )
    annotations = field(item, "metadata", "annotations")
    if isinstance(annotations, Mapping):
        metadata["annotations"] = {
            key: value for key, value in annotations.items() if key.startswith(PREFIX)
        }
    template = field(item, "spec", "template", "spec")
    return {
        "metadata": metadata,
        "spec": {
            "template": {"spec": {"domain": {"devices": {"interfaces": _interfaces(template)}}}}
        },
        "status": _pick(item.get("status"), "printableStatus"),
    }


def keep_vmi(item: Object) -> dict[str, Any]:
    """Identity, the interfaces' names and states, phase, conditions, interface status."""
    return {
        "metadata": _pick(item.get("metadata"), "name", "namespace", "uid", "deletionTimestamp"),
        "spec": {"domain": {"devices": {"interfaces": _interfaces(item.get("spec"))}}},
        "status": _pick(item.get("status"), "phase", "conditions", "interfaces"),
    }


def keep_migration(item: Object) -> dict[str, Any]:
    """Identity, labels, KubeVirt's workload update mark, the VMI, phase and its times."""
    metadata = _pick(item.get("metadata"), "name", "namespace", "uid", "labels")
    annotations = field(item, "metadata", "annotations")
    if isinstance(annotations, Mapping):
        metadata["annotations"] = _pick(annotations, *KEEP_MIGRATION_ANNOTATIONS)
    status = _pick(item.get("status"), "phase", "phaseTransitionTimestamps", "conditions")
    state = _pick(field(item, "status", "migrationState"), "endTimestamp", "failureReason")
    if state:
        status["migrationState"] = state
    return {"metadata": metadata, "spec": _pick(item.get("spec"), "vmiName"), "status": status}


def keep_kubevirt(item: Object) -> dict[str, Any]:
    """The workload update strategy (does KubeVirt migrate by itself?) and the release."""
    return {
        "metadata": _pick(item.get("metadata"), "name", "namespace", "uid"),
        "spec": _pick(item.get("spec"), "workloadUpdateStrategy"),
        "status": _pick(item.get("status"), "observedKubeVirtVersion"),
    }


VMS = Resource(group=GROUP, version=VERSION, plural="virtualmachines", keep=keep_vm)
VMIS = Resource(group=GROUP, version=VERSION, plural="virtualmachineinstances", keep=keep_vmi)
MIGRATIONS = Resource(
    group=GROUP, version=VERSION, plural="virtualmachineinstancemigrations", keep=keep_migration
)
KUBEVIRTS = Resource(group=GROUP, version=VERSION, plural="kubevirts", keep=keep_kubevirt)


def migration_index(item: Object) -> str | None:
    """Migrations are looked up by the VMI they move: `namespace/vmi`."""
    namespace, _ = identity(item)
    vmi = vmi_of(item)
    return f"{namespace}/{vmi}" if vmi else None


class ClusterApi:
    """Caches and writes of one controller process; see the module documentation."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        lease_namespace: str,
        lease_name: str,
        identity: str,
        on_call: CallCounter = lambda verb, resource: None,
    ) -> None:
        self.identity = identity
        self.lease_namespace = lease_namespace
        self.lease_name = lease_name
        self._client = api_client
        self._objects = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)
        self._leases = client.CoordinationV1Api(api_client)
        self._on_call = on_call

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]

    # --- caches --------------------------------------------------------------------------

    def reflector(
        self,
        resource: Resource,
        *,
        on_change: Callable[[Change], None],
        on_synced: Callable[[], None],
        index: Callable[[Object], str | None] | None = None,
    ) -> Reflector:
        return Reflector(
            self._objects,
            resource,
            index=index,
            on_change=on_change,
            on_synced=on_synced,
            on_request=lambda verb: self._on_call(verb, resource.plural),
        )

    # --- writes --------------------------------------------------------------------------

    def patch_status(self, vm: Object, value: str) -> None:
        """Set `hotplug-guard.io/status` on `vm` if it is still at the resourceVersion read."""
        namespace, name = identity(vm)
        version = text(field(vm, "metadata", "resourceVersion"))
        patch = [
            # replacing resourceVersion with the one read makes the patch conditional
            {"op": "replace", "path": "/metadata/resourceVersion", "value": version},
            {
                "op": "add",
                "path": f"/metadata/annotations/{STATUS.replace('/', '~1')}",
                "value": value,
            },
        ]
        with self._calling("patch", "virtualmachines"):
            self._objects.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                "virtualmachines",
                name,
                patch,
                _content_type="application/json-patch+json",
                _request_timeout=REQUEST_SECONDS,
            )

    def create_migration(self, body: Object) -> bool:
        """Create a migration; False when one of that name exists already (an earlier run)."""
        namespace, _ = identity(body)
        try:
            with self._calling("create", "virtualmachineinstancemigrations"):
                self._objects.create_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    namespace,
                    "virtualmachineinstancemigrations",
                    dict(body),
                    _request_timeout=REQUEST_SECONDS,
                )
        except Retry as retry:
            if retry.conflict:  # 409 on create: AlreadyExists
                return False
            raise
        return True

    def record_event(self, vm: Object, *, reason: str, message: str, warning: bool = False) -> None:
        """An Event on the VM (`kubectl describe vm`); failures are logged, never raised."""
        namespace, name = identity(vm)
        now = datetime.now(UTC)
        body: Any = {  # the typed client sends a plain mapping as it is
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{name}.{time.time_ns():x}{secrets.token_hex(2)}",
                "namespace": namespace,
            },
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "VirtualMachine",
                "namespace": namespace,
                "name": name,
                "uid": text(field(vm, "metadata", "uid")),
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT},
            "reportingComponent": f"hotplug-guard.io/{COMPONENT}",
            "reportingInstance": self.identity,
            "firstTimestamp": format_time(now.timestamp()),
            "lastTimestamp": format_time(now.timestamp()),
            "count": 1,
        }
        try:
            with self._calling("create", "events"):
                self._core.create_namespaced_event(
                    namespace, body, _request_timeout=REQUEST_SECONDS
                )
        except Retry as error:
            LOG.warning("could not record event %s on %s/%s: %s", reason, namespace, name, error)

    # --- the Lease (controller.election.LeaseApi) --------------------------------------

    def read_lease(self) -> LeaseRecord | None:
        try:
            with self._calling("get", "leases"):
                lease = self._leases.read_namespaced_lease(
                    self.lease_name, self.lease_namespace, _request_timeout=REQUEST_SECONDS
                )
        except ApiException as error:  # raised by _calling for 404 only
            if error.status == HTTP_NOT_FOUND:
                return None
            raise
        return _record(lease)

    def create_lease(self, record: LeaseRecord) -> LeaseRecord:
        body = client.V1Lease(
            metadata=client.V1ObjectMeta(name=self.lease_name, namespace=self.lease_namespace),
            spec=_lease_spec(record),
        )
        try:
            with self._calling("create", "leases"):
                created = self._leases.create_namespaced_lease(
                    self.lease_namespace, body, _request_timeout=REQUEST_SECONDS
                )
        except Retry as retry:
            if retry.conflict:
                raise Conflict(str(retry)) from None
            raise
        return _record(created)

    def replace_lease(self, record: LeaseRecord) -> LeaseRecord:
        body = client.V1Lease(
            metadata=client.V1ObjectMeta(
                name=self.lease_name,
                namespace=self.lease_namespace,
                resource_version=record.version,
            ),
            spec=_lease_spec(record),
        )
        try:
            with self._calling("update", "leases"):
                replaced = self._leases.replace_namespaced_lease(
                    self.lease_name, self.lease_namespace, body, _request_timeout=REQUEST_SECONDS
                )
        except Retry as retry:
            if retry.conflict:
                raise Conflict(str(retry)) from None
            raise
        return _record(replaced)

    # --- every call --------------------------------------------------------------------

    @contextlib.contextmanager
    def _calling(self, verb: str, resource: str) -> Iterator[None]:
        """Count the call; map its failure onto `Retry` (409, 429, 5xx, no answer). Other API
        errors (403 forbidden, 404 not found, 422 invalid) pass through as `ApiException`."""
        self._on_call(verb, resource)
        what = f"{verb} {resource}"
        try:
            yield
        except ApiException as error:
            status = error.status or 0
            if status == HTTP_CONFLICT:
                raise Retry(f"{what}: 409 conflict", conflict=True) from None
            if status == HTTP_TOO_MANY_REQUESTS or status >= HTTP_SERVER_ERROR:
                raise Retry(f"{what}: {status} {error.reason}") from None
            raise
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise Retry(f"{what}: no answer from the API server: {error}") from None


def _lease_spec(record: LeaseRecord) -> client.V1LeaseSpec:
    return client.V1LeaseSpec(
        holder_identity=record.holder,
        lease_duration_seconds=record.lease_seconds,
        acquire_time=datetime.fromtimestamp(record.acquired, UTC),
        renew_time=datetime.fromtimestamp(record.renewed, UTC),
        lease_transitions=record.transitions,
    )


def _record(lease: client.V1Lease) -> LeaseRecord:
    spec = lease.spec or client.V1LeaseSpec()

    def seconds(moment: datetime | None) -> float:
        return moment.timestamp() if moment is not None else 0.0

    return LeaseRecord(
        holder=spec.holder_identity or "",
        lease_seconds=spec.lease_duration_seconds or 0,
        acquired=seconds(spec.acquire_time),
        renewed=seconds(spec.renew_time),
        transitions=spec.lease_transitions or 0,
        version=(lease.metadata.resource_version if lease.metadata else "") or "",
    )
