"""What the user commands ask of the API server about VMs: read, patch, list and watch.

Each call runs as the user of the kubeconfig, so RBAC and the admission webhooks
judge it as they judge kubectl. A patch's answer keeps the `Warning` headers the
webhooks sent (the Python client drops them otherwise), and a refusal becomes a
`Refused` that carries the API server's own message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import kubernetes.client
import kubernetes.watch
from kubernetes.client.exceptions import ApiException

from hotplug_guard import kubeconfig
from hotplug_guard.kubeconfig import Cluster

GROUP, VERSION = "kubevirt.io", "v1"
VMS, VMIS = "virtualmachines", "virtualmachineinstances"
REQUEST_SECONDS = (5, 30)
HTTP_NOT_FOUND = 404
# RFC 7234 warn-value: code, agent, quoted text (kube-apiserver escapes quotes inside)
_WARNING = re.compile(r'^\d{3} \S+ "((?:[^"\\]|\\.)*)"')

Object = dict[str, Any]


class Refused(Exception):
    """The API server refused the request (404, 403, a webhook's denial, ...)."""

    def __init__(self, status: int, message: str, warnings: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.warnings = tuple(warnings)


@dataclass(frozen=True, slots=True)
class Patched:
    """The object as stored (or as it would be, on a dry run) and the webhooks' warnings."""

    object: Object
    warnings: tuple[str, ...]


def warnings_of(headers: Any) -> tuple[str, ...]:
    """The texts of the `Warning` headers of a response."""
    if headers is None:
        return ()
    values = headers.getlist("Warning") if hasattr(headers, "getlist") else []
    found = []
    for value in values:
        match = _WARNING.match(value)
        text = match.group(1) if match else value
        found.append(re.sub(r"\\(.)", r"\1", text))
    return tuple(found)


def _refused(error: ApiException) -> Refused:
    try:
        status = json.loads(error.body or "")
    except ValueError:
        status = {}
    message = status.get("message") if isinstance(status, dict) else None
    return Refused(
        error.status or 0,
        str(message or f"{error.status} {error.reason}"),
        warnings_of(error.headers),
    )


class VirtualMachines:
    """VMs and VMIs of one cluster, as the kubeconfig's user sees them."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._client = kubeconfig.connect(cluster)
        self._objects = kubernetes.client.CustomObjectsApi(self._client)

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]

    def get(self, plural: str, namespace: str, name: str) -> Object | None:
        """The object, or None when it does not exist."""
        try:
            with kubeconfig.api_errors(self.cluster):
                found: Any = self._objects.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, name, _request_timeout=REQUEST_SECONDS
                )
        except ApiException as error:
            if error.status == HTTP_NOT_FOUND:
                return None
            raise _refused(error) from None
        return dict(found)

    def listed(
        self, plural: str, namespace: str | None, *, name: str | None = None
    ) -> tuple[list[Object], str]:
        """The objects in `namespace` (None: all namespaces; `name`: only that one) and the
        list's resourceVersion, to watch from."""
        options: dict[str, Any] = {"_request_timeout": REQUEST_SECONDS}
        if name is not None:
            options["field_selector"] = f"metadata.name={name}"
        try:
            with kubeconfig.api_errors(self.cluster):
                if namespace is None:
                    listing: Any = self._objects.list_cluster_custom_object(
                        GROUP, VERSION, plural, **options
                    )
                else:
                    listing = self._objects.list_namespaced_custom_object(
                        GROUP, VERSION, namespace, plural, **options
                    )
        except ApiException as error:
            raise _refused(error) from None
        return list(listing.get("items") or []), str(listing["metadata"].get("resourceVersion"))

    def patch(
        self, namespace: str, name: str, operations: list[Object], *, dry_run: bool = False
    ) -> Patched:
        """Apply a JSON patch to VM `namespace/name` as the user."""
        options: dict[str, Any] = {"dry_run": "All"} if dry_run else {}
        try:
            with kubeconfig.api_errors(self.cluster):
                answer: Any = self._objects.patch_namespaced_custom_object_with_http_info(
                    GROUP,
                    VERSION,
                    namespace,
                    VMS,
                    name,
                    operations,
                    _content_type="application/json-patch+json",
                    _request_timeout=REQUEST_SECONDS,
                    **options,
                )
        except ApiException as error:
            raise _refused(error) from None
        data, _, headers = answer
        return Patched(object=dict(data), warnings=warnings_of(headers))

    def watch(
        self, plural: str, namespace: str | None, version: str, *, name: str | None = None
    ) -> Iterator[Mapping[str, Any]]:
        """Events (`type`, `object`) from `version` on, until the server ends the watch."""
        selector = {"field_selector": f"metadata.name={name}"} if name else {}
        watch = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
        if namespace is None:
            arguments: tuple[Any, ...] = (
                self._objects.list_cluster_custom_object,
                GROUP,
                VERSION,
                plural,
            )
        else:
            arguments = (
                self._objects.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                plural,
            )
        with kubeconfig.api_errors(self.cluster):
            yield from watch.stream(  # type: ignore[no-untyped-call]
                *arguments, resource_version=version, timeout_seconds=300, **selector
            )
