"""List+watch caches of the cluster objects a review needs, one set per worker process.

Each resource has a `kubecache.Reflector` thread: list, then watch, relist on
failure. Reviews read the in-memory stores only, so no API call happens on the
hot path once synced.

Each cache keeps only the fields the engine reads (`Resource.keep`): a VMI's cloud-init
user data and every object's managedFields never sit in a worker's memory.

Least privilege: the service account needs get/list/watch on
virtualmachineinstances, virtualmachineinstancemigrations and kubevirts
(`kubevirt.io`) and network-attachment-definitions (`k8s.cni.cncf.io`), nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client

from kubecache import Reflector, Resource
from kubecache.reflectors import WATCH_SECONDS
from policy import Context
from policy.instances import MIGRATION_VMI_LABEL
from webhook.context import ContextLookup, ContextState


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
