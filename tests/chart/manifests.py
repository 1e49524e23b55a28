"""The Helm chart rendered by Helm itself (helm-python-sdk's Helm v4 SDK), as objects to inspect.

Releases are rendered as `guard` in namespace `virt-guard`, so that nothing that
should follow the release can pass by matching the chart's own name.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "hotplug-guard"
RELEASE = "guard"
NAMESPACE = "virt-guard"
FULLNAME = "guard-hotplug-guard"
KUBE_VERSIONS = ("1.30", "1.33")

Manifest = dict[str, Any]

CLUSTER_SCOPED = frozenset(
    {
        "ClusterRole",
        "ClusterRoleBinding",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    }
)


# where each workload kind keeps its pod spec
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


@dataclass(frozen=True, slots=True)
class Release:
    """What `helm template` would print: the objects and NOTES.txt."""

    objects: tuple[Manifest, ...]
    notes: str

    def all(self, kind: str) -> list[Manifest]:
        return [item for item in self.objects if item["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> Manifest:
        found = [item for item in self.all(kind) if name in (None, item["metadata"]["name"])]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    def kinds(self) -> set[str]:
        return {item["kind"] for item in self.objects}

    def deployment(self) -> Manifest:
        """The webhook's Deployment (the release's fullname)."""
        return self._deployment_running("webhook")

    def deployment_pod(self) -> Manifest:
        """The webhook's pod."""
        pod: Manifest = self.deployment()["spec"]["template"]["spec"]
        return pod

    def certs_pod(self) -> Manifest:
        """The pod of `certs ensure` (self-managed certificates)."""
        pod: Manifest = self._deployment_running("certs")["spec"]["template"]["spec"]
        return pod

    def controller_pod(self) -> Manifest:
        """The pod of the companion controller."""
        pod: Manifest = self._deployment_running("controller")["spec"]["template"]["spec"]
        return pod

    def _deployment_running(self, container: str) -> Manifest:
        found = [
            d
            for d in self.all("Deployment")
            if container in {c["name"] for c in d["spec"]["template"]["spec"]["containers"]}
        ]
        assert len(found) == 1, f"expected one Deployment running {container}, found {len(found)}"
        return found[0]

    def pods(self) -> list[Manifest]:
        """The spec of every pod the release renders, whatever workload kind holds it."""
        found = []
        for item in self.objects:
            path = POD_SPEC_PATHS.get(item["kind"])
            if path is not None:
                spec = item
                for key in path:
                    spec = spec[key]
                found.append(spec)
        return found

    def container(self, name: str) -> Manifest:
        found = [c for pod in self.pods() for c in containers(pod) if c["name"] == name]
        assert len(found) == 1, f"expected one container {name}, found {len(found)}"
        return found[0]


@functools.cache
def chart() -> helm_python.Chart:
    return helm_python.Chart.load(CHART)


def render(
    values: Mapping[str, Any] | None = None,
    *,
    name: str = RELEASE,
    namespace: str = NAMESPACE,
) -> Release:
    """Render the chart with `values` (schema-checked by Helm) into objects."""
    rendered = chart().render(dict(values or {}), name=name, namespace=namespace)
    objects: list[Manifest] = []
    notes = ""
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc is not None)
    return Release(objects=tuple(objects), notes=notes)


def merged(base: Mapping[str, Any], *layers: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with each layer merged in, maps recursively (as Helm merges values files)."""
    result = copy.deepcopy(dict(base))
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
                result[key] = merged(result[key], value)
            else:
                result[key] = copy.deepcopy(value)
    return result


def containers(pod: Mapping[str, Any]) -> Iterator[Manifest]:
    """Init containers, then containers."""
    yield from pod.get("initContainers") or ()
    yield from pod["containers"]


def mount_path(container: Mapping[str, Any], volume: str) -> Path:
    """Where `container` mounts `volume`."""
    paths = [m["mountPath"] for m in container.get("volumeMounts", ()) if m["name"] == volume]
    assert len(paths) == 1, f"{container['name']} mounts {volume} {len(paths)} times"
    return Path(paths[0])
