"""The fake API server's seeding calls (`put`, `get`, `api_client`, ...) on the real control plane.

Tests written against `FakeApiServer` seed and inspect objects with these calls;
`Seeding` gives them the same calls on the real kube-apiserver (as the admin), so
such a test moves to the real server by changing its fixture. Unlike the fake,
the real server validates and defaults what is put, keeps `status` apart when a
resource has a status subresource, and needs a namespace to exist: `put` creates
missing namespaces. `clean_up` deletes what was put and every Secret in the
namespaces used, so that fixed names can be reused by the next test.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import kubernetes.client

from tests.kube.controlplane import ADMIN, ControlPlane

Manifest = dict[str, Any]


class Seeding:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self._put: list[tuple[str, str, str | None, str]] = []
        self._namespaces: set[str] = set()

    def api_client(self) -> kubernetes.client.ApiClient:
        return self.plane.api_client()

    def write_kubeconfig(self, path: Path) -> Path:
        """The admin's kubeconfig, copied to `path`."""
        shutil.copyfile(self.plane.kubeconfig(ADMIN), path)
        path.chmod(0o600)
        return path

    def namespace(self, name: str) -> str:
        """Use namespace `name` (created if missing); `clean_up` empties its Secrets, ConfigMaps."""
        self._namespaces.add(self.plane.ensure_namespace(name))
        return name

    def put(self, obj: Manifest) -> Manifest:
        """Create `obj`, or replace the stored object of that name with it."""
        metadata = obj["metadata"]
        namespace = metadata.get("namespace")
        if namespace is not None:
            self.plane.ensure_namespace(namespace)
        resource = self.plane.resource(obj["apiVersion"], obj["kind"])
        key = (obj["apiVersion"], obj["kind"], namespace, metadata["name"])
        current = self.get(obj["apiVersion"], obj["kind"], namespace, metadata["name"])
        if current is None:
            stored: Manifest = resource.create(body=obj, namespace=namespace).to_dict()
            self._put.append(key)
            return stored
        replacement = {**obj, "metadata": {**metadata}}
        replacement["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        replaced: Manifest = resource.replace(body=replacement, namespace=namespace).to_dict()
        return replaced

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> Manifest | None:
        """The stored object or None; `kind` may be the Kind or the plural (as for the fake)."""
        if not kind[:1].isupper():
            kind = self.plane.resource(api_version, plural=kind).kind
        return self.plane.get(api_version, kind, name, namespace=namespace)

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> None:
        """Delete at once (finalizers aside: nothing here sets any)."""
        self.plane.delete(api_version, kind, name, namespace=namespace)

    def clean_up(self) -> None:
        for api_version, kind, namespace, name in reversed(self._put):
            self.plane.delete(api_version, kind, name, namespace=namespace)
        core = kubernetes.client.CoreV1Api(self.plane.api_client())
        for namespace in self._namespaces:
            core.delete_collection_namespaced_secret(namespace)
            core.delete_collection_namespaced_config_map(namespace)
        self._put.clear()
