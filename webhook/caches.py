"""List+watch caches of the cluster objects a review needs, one set per worker process.

Each resource has a `Reflector` thread (client-go's name for it): list, then
watch from the list's resourceVersion, resume from the last seen version when
the watch ends, and relist on 410 Gone or any other failure. Reviews read the
in-memory `Store`s only, so no API call happens on the hot path once synced.

Each cache keeps only the fields the engine reads (`Resource.keep`): a VMI's cloud-init
user data and every object's managedFields never sit in a worker's memory.

Least privilege: the service account needs get/list/watch on
virtualmachineinstances, virtualmachineinstancemigrations and kubevirts
(`kubevirt.io`) and network-attachment-definitions (`k8s.cni.cncf.io`), nothing else.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from policy import Context
from webhook.context import ContextLookup, ContextState

LOG = logging.getLogger("hotplug_guard.webhook.caches")

WATCH_SECONDS = 290
"""Server-side watch timeout; the watch is resumed from the last resourceVersion after it."""
READ_SLACK_SECONDS = 30
"""Client-side read timeout beyond WATCH_SECONDS, so a dead connection is noticed."""
CONNECT_SECONDS = 5
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0)
"""Back-off between failed list/watch attempts."""
STABLE_SECONDS = 30.0
HTTP_GONE = 410
HTTP_NOT_FOUND = 404
ABSENT_RETRY_SECONDS = 60.0
"""How often a resource the API server does not serve (CRD not installed) is listed again."""
MIGRATION_VMI_LABEL = "kubevirt.io/vmi-name"


class ConfigurationError(Exception):
    """The kubeconfig or in-cluster environment cannot be used."""


def load_client_configuration(
    *, kubeconfig: Path | None = None, in_cluster: bool = False
) -> client.Configuration:
    """A Kubernetes client configuration from a kubeconfig file or the pod's service account."""
    configuration = client.Configuration()
    try:
        if in_cluster:
            config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        else:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=None if kubeconfig is None else str(kubeconfig),
                client_configuration=configuration,
                persist_config=False,
            )
    except (config.ConfigException, OSError, ValueError, TypeError) as error:
        raise ConfigurationError(str(error) or type(error).__name__) from None
    return configuration


Projection = Callable[[Mapping[str, Any]], dict[str, Any]]


def _pick(data: object, *keys: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        return {}
    return {key: data[key] for key in keys if key in data}


def _metadata(item: Mapping[str, Any], *extra: str) -> dict[str, Any]:
    return _pick(item.get("metadata"), "name", "namespace", "uid", *extra)


def keep_vmi(item: Mapping[str, Any]) -> dict[str, Any]:
    """What the engine reads of a VMI: identity, `kubevirt.io/` annotations, the domain and
    networks, phase, interface status, conditions and which volumes were hot plugged. Not
    kept: volumes (cloud-init user data, secret references), managedFields and the rest of
    the status.
    """
    metadata = _metadata(item)
    annotations = (item.get("metadata") or {}).get("annotations")
    if isinstance(annotations, dict):
        metadata["annotations"] = {
            key: value for key, value in annotations.items() if key.startswith("kubevirt.io/")
        }
    status = _pick(item.get("status"), "phase", "interfaces", "conditions")
    volumes = (item.get("status") or {}).get("volumeStatus")
    if isinstance(volumes, list):  # which volumes were hot plugged (they take PCIe ports)
        status["volumeStatus"] = [_pick(volume, "name", "hotplugVolume") for volume in volumes]
    return {
        "metadata": metadata,
        "spec": _pick(item.get("spec"), "domain", "networks", "architecture"),
        "status": status,
    }


def keep_migration(item: Mapping[str, Any]) -> dict[str, Any]:
    """Which VMI a migration moves and its phase."""
    metadata = _metadata(item, "generateName")
    labels = (item.get("metadata") or {}).get("labels")
    if isinstance(labels, dict) and MIGRATION_VMI_LABEL in labels:
        metadata["labels"] = {MIGRATION_VMI_LABEL: labels[MIGRATION_VMI_LABEL]}
    return {
        "metadata": metadata,
        "spec": _pick(item.get("spec"), "vmiName"),
        "status": _pick(item.get("status"), "phase"),
    }


def keep_kubevirt(item: Mapping[str, Any]) -> dict[str, Any]:
    """The KubeVirt CR's spec and status (one small object), without managedFields."""
    return {"metadata": _metadata(item), **_pick(item, "spec", "status")}


def keep_name(item: Mapping[str, Any]) -> dict[str, Any]:
    """Only that the object exists."""
    return {"metadata": _metadata(item)}


@dataclass(frozen=True, slots=True, kw_only=True)
class Resource:
    """A listable custom resource, and what of each object its cache keeps."""

    group: str
    version: str
    plural: str
    keep: Projection

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}"


VMIS = Resource(group="kubevirt.io", version="v1", plural="virtualmachineinstances", keep=keep_vmi)
MIGRATIONS = Resource(
    group="kubevirt.io",
    version="v1",
    plural="virtualmachineinstancemigrations",
    keep=keep_migration,
)
KUBEVIRTS = Resource(group="kubevirt.io", version="v1", plural="kubevirts", keep=keep_kubevirt)
NADS = Resource(
    group="k8s.cni.cncf.io", version="v1", plural="network-attachment-definitions", keep=keep_name
)


class Store:
    """Objects of one resource by namespace and name; a relist replaces the content at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, dict[str, Mapping[str, Any]]] = {}
        self._keys: frozenset[str] | None = frozenset()

    def replace(self, items: list[Mapping[str, Any]]) -> None:
        objects: dict[str, dict[str, Mapping[str, Any]]] = {}
        for item in items:
            namespace, name = _identity(item)
            objects.setdefault(namespace, {})[name] = item
        with self._lock:
            self._objects = objects
            self._keys = None

    def put(self, item: Mapping[str, Any]) -> None:
        namespace, name = _identity(item)
        with self._lock:
            self._objects.setdefault(namespace, {})[name] = item
            self._keys = None

    def remove(self, item: Mapping[str, Any]) -> None:
        namespace, name = _identity(item)
        with self._lock:
            self._objects.get(namespace, {}).pop(name, None)
            self._keys = None

    def get(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        with self._lock:
            return self._objects.get(namespace, {}).get(name)

    def in_namespace(self, namespace: str) -> list[Mapping[str, Any]]:
        with self._lock:
            return list(self._objects.get(namespace, {}).values())

    def first(self) -> Mapping[str, Any] | None:
        """The object with the smallest namespace/name, for singletons like the KubeVirt CR."""
        with self._lock:
            for namespace in sorted(self._objects):
                names = self._objects[namespace]
                if names:
                    return names[min(names)]
        return None

    def keys(self) -> frozenset[str]:
        """`namespace/name` of every object; rebuilt only after a change."""
        with self._lock:
            if self._keys is None:
                self._keys = frozenset(
                    f"{namespace}/{name}"
                    for namespace, names in self._objects.items()
                    for name in names
                )
            return self._keys


class Reflector:
    """Keeps a `Store` in step with the API server for one resource (list, watch, relist)."""

    def __init__(
        self,
        api: client.CustomObjectsApi,
        resource: Resource,
        *,
        on_synced: Callable[[], None] = lambda: None,
        watch_seconds: int = WATCH_SECONDS,
    ) -> None:
        self.resource = resource
        self.store = Store()
        self.synced = threading.Event()
        self._api = api
        self._on_synced = on_synced
        self._watch_seconds = watch_seconds
        self._stopped = threading.Event()
        self._watch: watch.Watch | None = None
        self._thread = threading.Thread(target=self._run, name=f"reflector-{resource}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        current = self._watch
        if current is not None:
            current.stop()  # type: ignore[no-untyped-call]

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        failures = 0
        while not self._stopped.is_set():
            started = time.monotonic()
            try:
                self._follow(self._list())
            except ApiException as error:
                if error.status == HTTP_GONE:
                    LOG.info("watch of %s expired (410 Gone); relisting", self.resource)
                    continue
                if error.status == HTTP_NOT_FOUND:
                    # The CRD is not installed (no Multus, say): nothing of this kind can
                    # exist, so an empty cache is the truth, not a reason to stay unready.
                    self._mark_absent()
                    self._stopped.wait(ABSENT_RETRY_SECONDS)
                    continue
                LOG.warning(
                    "list/watch of %s failed: %s %s", self.resource, error.status, error.reason
                )
            except Exception as error:  # the thread must outlive any client or network error
                LOG.warning("list/watch of %s failed: %s", self.resource, _describe(error))
            # a watch that ran for a while was healthy: start the back-off again from the bottom
            failures = 1 if time.monotonic() - started > STABLE_SECONDS else failures + 1
            self._stopped.wait(RETRY_SECONDS[min(failures, len(RETRY_SECONDS)) - 1])

    def _list(self) -> str:
        listing = self._api.list_cluster_custom_object(
            self.resource.group,
            self.resource.version,
            self.resource.plural,
            _request_timeout=(CONNECT_SECONDS, READ_SLACK_SECONDS),
        )
        if not isinstance(listing, dict):
            raise TypeError(f"list of {self.resource} is not an object")
        items: list[Mapping[str, Any]] = [
            self.resource.keep(item)
            for item in listing.get("items") or []
            if isinstance(item, dict)
        ]
        self.store.replace(items)
        version = str((listing.get("metadata") or {}).get("resourceVersion") or "")
        if not self.synced.is_set():
            self.synced.set()
            LOG.info("cache of %s synced with %d objects", self.resource, len(items))
            self._on_synced()
        return version

    def _mark_absent(self) -> None:
        self.store.replace([])
        if not self.synced.is_set():
            self.synced.set()
            LOG.info("%s is not served by the API server; treating it as empty", self.resource)
            self._on_synced()

    def _follow(self, version: str) -> None:
        """Watch from `version` until stopped; raises on errors so `_run` relists."""
        while not self._stopped.is_set():
            self._watch = watch.Watch()  # type: ignore[no-untyped-call]
            for event in self._events(self._watch, version):
                kind, item = event.get("type"), event.get("raw_object")
                if not isinstance(item, dict):
                    continue
                if kind in ("ADDED", "MODIFIED"):
                    self.store.put(self.resource.keep(item))
                elif kind == "DELETED":
                    self.store.remove(item)
            version = self._watch.resource_version or version
            self._watch = None

    def _events(self, current: watch.Watch, version: str) -> Iterator[dict[str, Any]]:
        stream: Iterator[dict[str, Any]] = current.stream(  # type: ignore[no-untyped-call]
            self._api.list_cluster_custom_object,
            self.resource.group,
            self.resource.version,
            self.resource.plural,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=self._watch_seconds,
            _request_timeout=(CONNECT_SECONDS, self._watch_seconds + READ_SLACK_SECONDS),
        )
        return stream


class ClusterContext:
    """Cluster context from four reflectors: VMIs, NADs, the KubeVirt CR and migrations."""

    def __init__(
        self,
        configuration: client.Configuration,
        *,
        on_ready_change: Callable[[bool], None] = lambda ready: None,
        watch_seconds: int = WATCH_SECONDS,
    ) -> None:
        self._api_client = client.ApiClient(configuration)
        api = client.CustomObjectsApi(self._api_client)
        self._on_ready_change = on_ready_change

        def reflector(resource: Resource) -> Reflector:
            return Reflector(api, resource, on_synced=self._synced, watch_seconds=watch_seconds)

        self.vmis = reflector(VMIS)
        self.nads = reflector(NADS)
        self.kubevirts = reflector(KUBEVIRTS)
        self.migrations = reflector(MIGRATIONS)
        self._reflectors = (self.vmis, self.nads, self.kubevirts, self.migrations)

    def start(self) -> ClusterContext:
        self._on_ready_change(False)
        for reflector in self._reflectors:
            reflector.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        for reflector in self._reflectors:
            reflector.stop()
        deadline = time.monotonic() + timeout
        for reflector in self._reflectors:
            reflector.join(max(0.0, deadline - time.monotonic()))
        self._api_client.close()  # type: ignore[no-untyped-call]

    def ready(self) -> bool:
        return all(reflector.synced.is_set() for reflector in self._reflectors)

    def lookup(self, namespace: str, name: str, *, deadline: float) -> ContextLookup:
        for reflector in self._reflectors:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            reflector.synced.wait(remaining)
        return ContextLookup(
            context=Context(
                vmi=self.vmis.store.get(namespace, name) if self.vmis.synced.is_set() else None,
                nads=self.nads.store.keys() if self.nads.synced.is_set() else None,
                kubevirt=self.kubevirts.store.first() if self.kubevirts.synced.is_set() else None,
                migrations=tuple(
                    migration
                    for migration in self.migrations.store.in_namespace(namespace)
                    if _migrates(migration, name)
                ),
            ),
            state=ContextState.SYNCED if self.ready() else ContextState.UNSYNCED,
        )

    def kubevirt_runs_in(self, namespace: str) -> bool | None:
        if not self.kubevirts.synced.is_set():
            return None
        return bool(self.kubevirts.store.in_namespace(namespace))

    def _synced(self) -> None:
        if self.ready():
            self._on_ready_change(True)


def _migrates(migration: Mapping[str, Any], vmi_name: str) -> bool:
    spec = migration.get("spec")
    if isinstance(spec, dict) and spec.get("vmiName") == vmi_name:
        return True
    labels = (migration.get("metadata") or {}).get("labels")
    return isinstance(labels, dict) and labels.get(MIGRATION_VMI_LABEL) == vmi_name


def _identity(item: Mapping[str, Any]) -> tuple[str, str]:
    metadata = item.get("metadata")
    if not isinstance(metadata, dict):
        return "", ""
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


def _describe(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}"[:300]
