"""A fake Kubernetes API server in the test process, so the real `kubernetes` client can be tested.

No kube-apiserver can run here; this fake serves the REST paths, verbs and error
bodies the client relies on (see docs/testing-fake-apiserver.md for what it does
and does not emulate) over plain HTTP on 127.0.0.1. Tests seed and inspect objects
directly, read the request log, and inject failures.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import jsonpatch
import kubernetes.client
import yaml

Object = dict[str, Any]

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
# a watch event older than this many changes is gone: resuming from it answers 410
DEFAULT_HISTORY = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceType:
    """One REST resource the fake serves, with the API semantics that differ between kinds.

    `custom` marks resources served from a CustomResourceDefinition: they reject
    strategic merge patch (415), require metadata.resourceVersion on update, and
    answer DELETE with the object instead of a Status.
    """

    group: str  # "" for the core API
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    custom: bool = False
    status_subresource: bool = False
    generation: bool = False  # metadata.generation counts changes outside metadata and status
    field_selectors: tuple[str, ...] = ()  # besides metadata.name and metadata.namespace

    @property
    def api_version(self) -> str:
        """The apiVersion of the resource's objects: "v1" or "group/version"."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version_path(self) -> str:
        """The URL prefix of the resource's group version."""
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"


def _kubevirt(kind: str, plural: str) -> ResourceType:
    return ResourceType(
        group="kubevirt.io",
        version="v1",
        kind=kind,
        plural=plural,
        custom=True,
        status_subresource=True,
        generation=True,
    )


DEFAULT_RESOURCES: tuple[ResourceType, ...] = (
    ResourceType(group="", version="v1", kind="Namespace", plural="namespaces", namespaced=False),
    ResourceType(
        group="", version="v1", kind="Secret", plural="secrets", field_selectors=("type",)
    ),
    ResourceType(group="", version="v1", kind="ConfigMap", plural="configmaps"),
    ResourceType(
        group="",
        version="v1",
        kind="Event",
        plural="events",
        field_selectors=(
            "involvedObject.kind",
            "involvedObject.name",
            "involvedObject.namespace",
            "involvedObject.uid",
            "reason",
            "type",
        ),
    ),
    ResourceType(group="events.k8s.io", version="v1", kind="Event", plural="events"),
    ResourceType(group="coordination.k8s.io", version="v1", kind="Lease", plural="leases"),
    ResourceType(
        group="admissionregistration.k8s.io",
        version="v1",
        kind="MutatingWebhookConfiguration",
        plural="mutatingwebhookconfigurations",
        namespaced=False,
        generation=True,
    ),
    ResourceType(
        group="admissionregistration.k8s.io",
        version="v1",
        kind="ValidatingWebhookConfiguration",
        plural="validatingwebhookconfigurations",
        namespaced=False,
        generation=True,
    ),
    _kubevirt("VirtualMachine", "virtualmachines"),
    _kubevirt("VirtualMachineInstance", "virtualmachineinstances"),
    _kubevirt("VirtualMachineInstanceMigration", "virtualmachineinstancemigrations"),
    _kubevirt("KubeVirt", "kubevirts"),
    ResourceType(
        group="k8s.cni.cncf.io",
        version="v1",
        kind="NetworkAttachmentDefinition",
        plural="network-attachment-definitions",
        custom=True,
    ),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedRequest:
    """One request the fake received, named by its Kubernetes verb."""

    verb: str  # get, list, watch, create, update, patch, delete, discovery
    method: str
    path: str
    query: Mapping[str, str]
    resource: str = ""  # plural, "" for discovery
    namespace: str = ""
    name: str = ""
    subresource: str = ""


@dataclass(slots=True, kw_only=True)
class Fault:
    """An injected failure: the next `times` matching requests wait `delay` seconds, then fail.

    `status` None only delays the request, which then proceeds normally.
    """

    verb: str | None = None
    resource: str | None = None
    name: str | None = None
    status: int | None = 500
    times: int = 1
    delay: float = 0.0
    hits: int = 0

    def matches(self, request: RecordedRequest) -> bool:
        """Whether this fault applies to `request` and has uses left."""
        return (
            self.hits < self.times
            and self.verb in (None, request.verb)
            and self.resource in (None, request.resource)
            and self.name in (None, request.name)
        )


class ApiError(Exception):
    """A failed request, answered with a metav1.Status body."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        resource: ResourceType | None = None,
        name: str = "",
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.resource = resource
        self.name = name

    def status(self) -> Object:
        """The metav1.Status the API server sends for this error."""
        body: Object = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.resource is not None:
            details: Object = {"kind": self.resource.plural}
            if self.name:
                details["name"] = self.name
            if self.resource.group:
                details["group"] = self.resource.group
            body["details"] = details
        return body


_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Gone",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def _not_found(resource: ResourceType, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{resource.plural} "{name}" not found', resource=resource, name=name
    )


def _conflict(resource: ResourceType, name: str, why: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(resource)} "{name}": {why}',
        resource=resource,
        name=name,
    )


def _bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def _qualified(resource: ResourceType) -> str:
    return f"{resource.plural}.{resource.group}" if resource.group else resource.plural


STALE = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Event:
    revision: int
    type: str  # ADDED, MODIFIED, DELETED
    resource: ResourceType
    object: Object


@dataclass(frozen=True, slots=True, kw_only=True)
class _LabelRequirement:
    """One requirement of a labelSelector: `key=v`, `key!=v`, `key in (..)`, `key notin (..)`,
    `key` or `!key`."""

    key: str
    operator: str  # in, notin, exists, doesnotexist
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        match self.operator:
            case "in":
                return labels.get(self.key) in self.values
            case "notin":
                return labels.get(self.key) not in self.values
            case "exists":
                return self.key in labels
            case _:
                return self.key not in labels


@dataclass(frozen=True, slots=True, kw_only=True)
class _Selector:
    """A parsed labelSelector and fieldSelector, and the namespace of the URL."""

    labels: tuple[_LabelRequirement, ...] = ()
    fields: tuple[tuple[str, str, bool], ...] = ()  # (field path, value, equal)
    namespace: str = ""

    def matches(self, obj: Object) -> bool:
        metadata = obj.get("metadata", {})
        if self.namespace and metadata.get("namespace") != self.namespace:
            return False
        labels = metadata.get("labels") or {}
        if not all(requirement.matches(labels) for requirement in self.labels):
            return False
        return all((_field(obj, path) == value) == equal for path, value, equal in self.fields)


def _field(obj: Object, path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


_LABEL_REQUIREMENT = re.compile(
    r"\s*(?P<not>!)?\s*(?P<key>[A-Za-z0-9][-A-Za-z0-9_./]*)\s*"
    r"(?:(?P<op>==|=|!=)\s*(?P<value>[-A-Za-z0-9_.]*)"
    r"|\s(?P<setop>in|notin)\s*\((?P<values>[^)]*)\))?\s*"
)


def _parse_label_selector(text: str) -> tuple[_LabelRequirement, ...]:
    """Equality- and set-based label requirements, as apimachinery's labels.Parse reads them."""
    requirements: list[_LabelRequirement] = []
    for part in re.split(r",(?![^(]*\))", text):
        if not part.strip():
            continue
        match = _LABEL_REQUIREMENT.fullmatch(part)
        if match is None or (match["not"] and (match["op"] or match["setop"])):
            raise _bad_request(f"unable to parse requirement: invalid label selector {part!r}")
        key = match["key"]
        if match["not"]:
            requirements.append(_LabelRequirement(key=key, operator="doesnotexist"))
        elif match["op"]:
            # key=v is "in (v)"; key!=v is "notin (v)", which also matches a missing key
            operator = "notin" if match["op"] == "!=" else "in"
            values = frozenset({match["value"]})
            requirements.append(_LabelRequirement(key=key, operator=operator, values=values))
        elif match["setop"]:
            values = frozenset(v.strip() for v in match["values"].split(",") if v.strip())
            requirements.append(_LabelRequirement(key=key, operator=match["setop"], values=values))
        else:
            requirements.append(_LabelRequirement(key=key, operator="exists"))
    return tuple(requirements)


def _parse_field_selector(text: str, resource: ResourceType) -> tuple[tuple[str, str, bool], ...]:
    supported = {"metadata.name", "metadata.namespace", *resource.field_selectors}
    fields: list[tuple[str, str, bool]] = []
    for part in text.split(","):
        if not part.strip():
            continue
        match = re.fullmatch(r"\s*([^!=\s]+)\s*(==|=|!=)\s*(.*?)\s*", part)
        if match is None:
            raise _bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        path, op, value = match.groups()
        if path not in supported:
            raise _bad_request(f'field label "{path}" not supported for {resource.kind}')
        fields.append((path, value, op != "!="))
    return tuple(fields)


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_GENERATED_SUFFIX = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's alphabet, no vowels


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _without(obj: Object, *keys: str) -> Object:
    return {key: value for key, value in obj.items() if key not in keys}


class FakeApiServer:
    """An in-process Kubernetes API server fake over HTTP on 127.0.0.1, for the real client.

    Use as a context manager (or call `start()`/`stop()`). Thread-safe: every
    change happens under one lock and gets the next resourceVersion, as in etcd.
    """

    def __init__(
        self,
        resources: Iterable[ResourceType] = DEFAULT_RESOURCES,
        *,
        history: int = DEFAULT_HISTORY,
        bookmark_interval: float = 1.0,
    ) -> None:
        self._resources: dict[tuple[str, str, str], ResourceType] = {}
        self._objects: dict[tuple[ResourceType, str, str], Object] = {}
        self._events: deque[_Event] = deque()
        self._history = history
        self._compacted = 0  # watches from a resourceVersion below this get 410 Gone
        self._revision = 1
        self._changed = threading.Condition()
        self._requests: list[RecordedRequest] = []
        self._faults: list[Fault] = []
        self._stopping = False
        self.bookmark_interval = bookmark_interval
        for resource in resources:
            self.register(resource)
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._http.daemon_threads = True
        self._thread: threading.Thread | None = None

    # lifecycle

    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:41234."""
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeApiServer:
        """Serve requests on a background thread."""
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.05},  # how long stop() waits
            name="fake-apiserver",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """End open watches and stop serving."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._http.shutdown()
        self._http.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # clients

    def api_client(self) -> kubernetes.client.ApiClient:
        """A real `kubernetes.client.ApiClient` configured for this server."""
        configuration = kubernetes.client.Configuration()
        configuration.host = self.url
        configuration.api_key = {"authorization": "fake-token"}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        return kubernetes.client.ApiClient(configuration)

    def write_kubeconfig(self, path: Path, *, namespace: str = "default") -> Path:
        """Write a kubeconfig that points at this server and return its path."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [
                {
                    "name": "fake",
                    "context": {"cluster": "fake", "user": "fake", "namespace": namespace},
                }
            ],
            "current-context": "fake",
        }
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    # resource types

    def register(self, resource: ResourceType) -> None:
        """Serve one more resource type (e.g. another CRD)."""
        self._resources[(resource.group, resource.version, resource.plural)] = resource

    def resource(self, api_version: str, kind_or_plural: str) -> ResourceType:
        """The registered resource for an apiVersion and a kind or plural name."""
        group, _, version = api_version.rpartition("/")
        for resource in self._resources.values():
            if (resource.group, resource.version) == (group, version) and kind_or_plural in (
                resource.kind,
                resource.plural,
            ):
                return resource
        raise KeyError(f"no resource {kind_or_plural!r} registered in {api_version!r}")

    # test-side access, bypassing the REST semantics

    def put(self, obj: Object) -> Object:
        """Store `obj` as is (create or replace, status included) and notify watches."""
        resource = self.resource(obj["apiVersion"], obj["kind"])
        metadata = obj.get("metadata", {})
        key = self._key(resource, metadata.get("namespace", ""), metadata["name"])
        with self._changed:
            old = self._objects.get(key)
            stored = copy.deepcopy(obj)
            stored_metadata = stored.setdefault("metadata", {})
            if old is None:
                stored_metadata.setdefault("uid", str(uuid.uuid4()))
                stored_metadata.setdefault("creationTimestamp", _now())
                if resource.generation:
                    stored_metadata.setdefault("generation", 1)
            return self._commit(resource, key, stored, "ADDED" if old is None else "MODIFIED")

    def get(
        self, api_version: str, kind_or_plural: str, namespace: str | None, name: str
    ) -> Object | None:
        """A copy of the stored object, or None."""
        resource = self.resource(api_version, kind_or_plural)
        with self._changed:
            found = self._objects.get(self._key(resource, namespace or "", name))
            return copy.deepcopy(found) if found is not None else None

    def objects(
        self, api_version: str, kind_or_plural: str, namespace: str | None = None
    ) -> list[Object]:
        """Copies of the stored objects of one type (in one namespace, when given)."""
        resource = self.resource(api_version, kind_or_plural)
        with self._changed:
            return [
                copy.deepcopy(obj)
                for obj in self._stored(resource, _Selector(namespace=namespace or ""))
            ]

    def delete(
        self, api_version: str, kind_or_plural: str, namespace: str | None, name: str
    ) -> None:
        """Remove an object at once (finalizers ignored) and notify watches."""
        resource = self.resource(api_version, kind_or_plural)
        with self._changed:
            self._remove(resource, self._key(resource, namespace or "", name))

    @property
    def resource_version(self) -> int:
        """The latest resourceVersion handed out."""
        with self._changed:
            return self._revision

    def compact(self) -> None:
        """Forget the watch history, as etcd compaction does: older resourceVersions get 410."""
        with self._changed:
            self._events.clear()
            self._compacted = self._revision

    # request log and failure injection

    @property
    def requests(self) -> tuple[RecordedRequest, ...]:
        """Every request received so far, oldest first."""
        with self._changed:
            return tuple(self._requests)

    def clear_requests(self) -> None:
        """Forget the request log."""
        with self._changed:
            self._requests.clear()

    def inject(
        self,
        *,
        verb: str | None = None,
        resource: str | None = None,
        name: str | None = None,
        status: int | None = 500,
        times: int = 1,
        delay: float = 0.0,
    ) -> Fault:
        """Make the next `times` requests matching verb/resource(plural)/name fail or wait."""
        fault = Fault(
            verb=verb, resource=resource, name=name, status=status, times=times, delay=delay
        )
        with self._changed:
            self._faults.append(fault)
        return fault

    # request handling (called by the HTTP handler)

    def record(self, request: RecordedRequest) -> Fault | None:
        """Log a request and return the fault it triggers, if any."""
        with self._changed:
            self._requests.append(request)
            fault = next((f for f in self._faults if f.matches(request)), None)
            if fault is not None:
                fault.hits += 1
            return fault

    @property
    def resource_types(self) -> tuple[ResourceType, ...]:
        """Every resource type served."""
        return tuple(self._resources.values())

    def lookup(self, group: str, version: str, plural: str) -> ResourceType:
        """The resource a URL names; 404 when it is not served."""
        resource = self._resources.get((group, version, plural))
        if resource is None:
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource ({plural})"
            )
        return resource

    def read(self, resource: ResourceType, namespace: str, name: str) -> Object:
        """GET one object."""
        with self._changed:
            found = self._objects.get(self._key(resource, namespace, name))
            if found is None:
                raise _not_found(resource, name)
            return copy.deepcopy(found)

    def read_collection(self, resource: ResourceType, selector: _Selector) -> Object:
        """GET a collection."""
        with self._changed:
            items = [self._listed(resource, obj) for obj in self._stored(resource, selector)]
            revision = self._revision
        return {
            "kind": f"{resource.kind}List",
            "apiVersion": resource.api_version,
            "metadata": {"resourceVersion": str(revision)},
            "items": items,
        }

    def create(self, resource: ResourceType, namespace: str, body: Any, *, dry_run: bool) -> Object:
        """POST a new object."""
        obj = self._checked_body(resource, namespace, body)
        metadata = obj["metadata"]
        if metadata.get("resourceVersion"):
            raise ApiError(
                500, "InternalError", "resourceVersion should not be set on objects to be created"
            )
        if not metadata.get("name") and metadata.get("generateName"):
            suffix = "".join(secrets.choice(_GENERATED_SUFFIX) for _ in range(5))
            metadata["name"] = f"{metadata['generateName']}{suffix}"
        name = metadata.get("name", "")
        if not name:
            raise ApiError(
                422,
                "Invalid",
                f'{resource.kind} "" is invalid: metadata.name: Required value: '
                "name or generateName is required",
                resource=resource,
            )
        _check_name(resource, name)
        if resource.status_subresource:
            obj.pop("status", None)  # status is written through /status only
        metadata.update(uid=str(uuid.uuid4()), creationTimestamp=_now())
        if resource.generation:
            metadata["generation"] = 1
        key = self._key(resource, namespace, name)
        with self._changed:
            if key in self._objects:
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{_qualified(resource)} "{name}" already exists',
                    resource=resource,
                    name=name,
                )
            if dry_run:
                return obj
            return self._commit(resource, key, obj, "ADDED")

    def update(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        *,
        subresource: str,
        dry_run: bool,
        require_version: bool,
    ) -> Object:
        """PUT a whole object (or its status); a resourceVersion in the body must be current."""
        obj = self._checked_body(resource, namespace, body)
        if obj["metadata"].get("name") != name:
            raise _bad_request(
                f"the name of the object ({obj['metadata'].get('name')}) does not match the "
                f"name on the URL ({name})"
            )
        key = self._key(resource, namespace, name)
        with self._changed:
            current = self._objects.get(key)
            if current is None:
                raise _not_found(resource, name)
            sent_version = obj["metadata"].get("resourceVersion")
            if not sent_version and require_version:
                raise ApiError(
                    422,
                    "Invalid",
                    f'{resource.kind}.{resource.group} "{name}" is invalid: '
                    "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
                    resource=resource,
                    name=name,
                )
            if sent_version and sent_version != current["metadata"]["resourceVersion"]:
                raise _conflict(resource, name, STALE)
            updated = self._merged_update(resource, current, obj, subresource=subresource)
            if updated == current or dry_run:
                return copy.deepcopy(updated)
            if updated["metadata"].get("deletionTimestamp") and not updated["metadata"].get(
                "finalizers"
            ):
                return self._remove(resource, key)
            return self._commit(resource, key, updated, "MODIFIED")

    def patch(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        patch: Any,
        *,
        content_type: str,
        subresource: str,
        dry_run: bool,
    ) -> Object:
        """PATCH an object (or its status) with a JSON, merge or strategic merge patch."""
        with self._changed:
            current = self.read(resource, namespace, name)
            patched = _apply_patch(resource, current, patch, content_type)
            # the patched object keeps the current resourceVersion unless the patch set one
            return self.update(
                resource,
                namespace,
                name,
                patched,
                subresource=subresource,
                dry_run=dry_run,
                require_version=False,
            )

    def remove(
        self, resource: ResourceType, namespace: str, name: str, options: Any, *, dry_run: bool
    ) -> Object:
        """DELETE an object, honouring preconditions and finalizers."""
        key = self._key(resource, namespace, name)
        with self._changed:
            current = self._objects.get(key)
            if current is None:
                raise _not_found(resource, name)
            preconditions = (options or {}).get("preconditions") or {}
            metadata = current["metadata"]
            for field_name, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
                wanted = preconditions.get(field_name)
                if wanted and wanted != metadata.get(field_name):
                    raise _conflict(
                        resource,
                        name,
                        f"Precondition failed: {label} in precondition: {wanted}, "
                        f"{label} in object meta: {metadata.get(field_name)}",
                    )
            if dry_run:
                return copy.deepcopy(current)
            if metadata.get("finalizers"):
                if metadata.get("deletionTimestamp"):
                    return copy.deepcopy(current)
                marked = copy.deepcopy(current)
                marked["metadata"].update(deletionTimestamp=_now(), deletionGracePeriodSeconds=0)
                return self._commit(resource, key, marked, "MODIFIED")
            return self._remove(resource, key)

    def watch(
        self,
        resource: ResourceType,
        selector: _Selector,
        *,
        resource_version: str,
        timeout: float | None,
        bookmarks: bool,
    ) -> Iterator[Object]:
        """Watch events as they happen, until `timeout`, the server stops, or the client leaves."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            if resource_version in ("", "0"):
                # "get state and start at most recent": synthetic ADDED for what exists
                pending = [
                    {"type": "ADDED", "object": self._listed(resource, obj, full=True)}
                    for obj in self._stored(resource, selector)
                ]
                seen = self._revision
            else:
                seen = _parse_revision(resource_version)
                pending = []
                if seen < self._compacted:
                    too_old = ApiError(
                        410, "Expired", f"too old resource version: {seen} ({self._compacted})"
                    )
                    pending = [{"type": "ERROR", "object": too_old.status()}]
                    deadline = time.monotonic()
        finished = False
        while not finished:
            yield from pending
            pending, seen, finished = self._next_events(
                resource, selector, seen=seen, deadline=deadline, bookmarks=bookmarks
            )
        yield from pending

    def _next_events(
        self,
        resource: ResourceType,
        selector: _Selector,
        *,
        seen: int,
        deadline: float | None,
        bookmarks: bool,
    ) -> tuple[list[Object], int, bool]:
        """Events after revision `seen`, waiting for some: (events, new `seen`, watch finished)."""
        with self._changed:
            remaining = None if deadline is None else deadline - time.monotonic()
            if self._stopping or (remaining is not None and remaining <= 0):
                # the API server sends a last bookmark when a watch times out
                return ([self._bookmark(resource, seen)] if bookmarks else []), seen, True
            wait = remaining
            if bookmarks:
                wait = self.bookmark_interval if wait is None else min(wait, self.bookmark_interval)
            self._changed.wait_for(lambda: self._stopping or self._revision > seen, timeout=wait)
            fresh = [event for event in self._events if event.revision > seen]
            events = [
                {"type": event.type, "object": copy.deepcopy(event.object)}
                for event in fresh
                if event.resource == resource and selector.matches(event.object)
            ]
            if not events and bookmarks and not fresh:
                events = [self._bookmark(resource, seen)]
            return events, max([seen, *(event.revision for event in fresh)]), False

    # internals

    def _stored(self, resource: ResourceType, selector: _Selector) -> list[Object]:
        """Stored objects of `resource` matching `selector`, in etcd key order (lock held)."""
        return [
            obj
            for (kind, _, _), obj in sorted(self._objects.items(), key=lambda item: item[0][1:])
            if kind == resource and selector.matches(obj)
        ]

    def _key(
        self, resource: ResourceType, namespace: str, name: str
    ) -> tuple[ResourceType, str, str]:
        return (resource, namespace if resource.namespaced else "", name)

    def _commit(
        self, resource: ResourceType, key: tuple[ResourceType, str, str], obj: Object, kind: str
    ) -> Object:
        """Store `obj` with the next resourceVersion and record the watch event (lock held)."""
        self._revision += 1
        obj.setdefault("apiVersion", resource.api_version)
        obj.setdefault("kind", resource.kind)
        obj["metadata"]["resourceVersion"] = str(self._revision)
        self._objects[key] = obj
        self._record_event(resource, kind, obj)
        return copy.deepcopy(obj)

    def _remove(self, resource: ResourceType, key: tuple[ResourceType, str, str]) -> Object:
        """Delete the object at `key` and record the watch event (lock held)."""
        obj = self._objects.pop(key, None)
        if obj is None:
            raise _not_found(resource, key[2])
        self._revision += 1
        obj["metadata"]["resourceVersion"] = str(self._revision)
        self._record_event(resource, "DELETED", obj)
        return copy.deepcopy(obj)

    def _record_event(self, resource: ResourceType, kind: str, obj: Object) -> None:
        self._events.append(
            _Event(revision=self._revision, type=kind, resource=resource, object=copy.deepcopy(obj))
        )
        while len(self._events) > self._history:
            self._compacted = self._events.popleft().revision
        self._changed.notify_all()

    def _bookmark(self, resource: ResourceType, revision: int) -> Object:
        return {
            "type": "BOOKMARK",
            "object": {
                "kind": resource.kind,
                "apiVersion": resource.api_version,
                "metadata": {"resourceVersion": str(revision)},
            },
        }

    def _listed(self, resource: ResourceType, obj: Object, *, full: bool = False) -> Object:
        """An object as a list item: typed lists of built-in types omit kind and apiVersion."""
        item = copy.deepcopy(obj)
        if not (full or resource.custom):
            item.pop("kind", None)
            item.pop("apiVersion", None)
        return item

    def _checked_body(self, resource: ResourceType, namespace: str, body: Any) -> Object:
        if not isinstance(body, dict):
            raise _bad_request("the request body must be a JSON object")
        obj = copy.deepcopy(body)
        for field_name, expected in (("apiVersion", resource.api_version), ("kind", resource.kind)):
            sent = obj.setdefault(field_name, expected)
            if sent != expected:
                raise _bad_request(
                    f"{field_name} {sent!r} does not match the expected {expected!r}"
                )
        metadata = obj.setdefault("metadata", {})
        if not isinstance(metadata, dict):
            raise _bad_request("metadata must be an object")
        if resource.namespaced:
            if metadata.setdefault("namespace", namespace) != namespace:
                raise _bad_request(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request"
                )
        else:
            metadata.pop("namespace", None)
        return obj

    def _merged_update(
        self, resource: ResourceType, current: Object, sent: Object, *, subresource: str
    ) -> Object:
        """The object an update stores: system metadata kept, status only through /status."""
        if subresource == "status":
            updated = copy.deepcopy(current)
            if "status" in sent:
                updated["status"] = copy.deepcopy(sent["status"])
            else:
                updated.pop("status", None)
            return updated
        updated = copy.deepcopy(sent)
        if resource.status_subresource:
            updated.pop("status", None)
            if "status" in current:
                updated["status"] = copy.deepcopy(current["status"])
        metadata = updated["metadata"]
        for system_field in (
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "resourceVersion",
        ):
            if system_field in current["metadata"]:
                metadata[system_field] = current["metadata"][system_field]
            else:
                metadata.pop(system_field, None)
        if resource.generation and _without(updated, "metadata", "status") != _without(
            current, "metadata", "status"
        ):
            metadata["generation"] = current["metadata"].get("generation", 0) + 1
        return updated


def _check_name(resource: ResourceType, name: str) -> None:
    if len(name) > 253 or not _NAME.fullmatch(name):
        raise ApiError(
            422,
            "Invalid",
            f'{resource.kind} "{name}" is invalid: metadata.name: Invalid value: "{name}": a '
            "lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character",
            resource=resource,
            name=name,
        )


def _parse_revision(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _bad_request(f"invalid resource version: {text!r}") from None


def _apply_patch(resource: ResourceType, current: Object, patch: Any, content_type: str) -> Object:
    """The patched object; errors as the API server reports them."""
    media_type = content_type.split(";", maxsplit=1)[0].strip()
    accepted = (
        [JSON_PATCH, MERGE_PATCH]
        if resource.custom
        else [JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH]
    )
    if media_type not in accepted:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: "
            + ", ".join(accepted),
        )
    if media_type == JSON_PATCH:
        if not isinstance(patch, list):
            raise _bad_request("json patch must be a list of operations")
        try:
            operations = jsonpatch.JsonPatch(patch)
        except (jsonpatch.InvalidJsonPatch, TypeError) as error:
            raise _bad_request(f"invalid json patch: {error}") from None
        try:
            result: Any = operations.apply(current)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
            raise ApiError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our request: {error}",
            ) from None
    else:
        # strategic merge patch is treated as a merge patch: lists are replaced, not merged by key
        if not isinstance(patch, dict):
            raise _bad_request("merge patch must be a JSON object")
        result = _merge_patch(current, patch)
    if not isinstance(result, dict):
        raise _bad_request("the patched object is not a JSON object")
    return result


def _handler_for(server: FakeApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        fake = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    """Routes REST requests to the fake; speaks HTTP/1.1 with keep-alive like the real server."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    fake: ClassVar[FakeApiServer]

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean; the fake has its own request log."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        body = self._read_body()
        try:
            route = _route(self.fake, method, url.path, query)
            request = RecordedRequest(
                verb=route.verb,
                method=method,
                path=url.path,
                query=query,
                resource=route.resource.plural if route.resource else "",
                namespace=route.namespace,
                name=route.name,
                subresource=route.subresource,
            )
            fault = self.fake.record(request)
            if fault is not None:
                time.sleep(fault.delay)
                if fault.status is not None:
                    raise _injected(fault.status, route)
            if route.verb == "watch":
                self._stream(route, query)
                return
            status, answer = _answer(
                self.fake, route, query, body, self.headers.get("Content-Type", "")
            )
        except ApiError as error:
            status, answer = error.code, error.status()
        self._send_json(status, answer)

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return None
        raw = self.rfile.read(length)
        try:
            return json.loads(raw)
        except ValueError:
            return raw  # rejected by the verb as not a JSON object

    def _send_json(self, status: int, answer: Object) -> None:
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, route: _Route, query: Mapping[str, str]) -> None:
        assert route.resource is not None
        timeout = float(query["timeoutSeconds"]) if "timeoutSeconds" in query else None
        events = self.fake.watch(
            route.resource,
            route.selector,
            resource_version=query.get("resourceVersion", ""),
            timeout=timeout,
            bookmarks=query.get("allowWatchBookmarks") == "true",
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for event in events:
                line = json.dumps(event).encode() + b"\n"
                self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


@dataclass(frozen=True, slots=True, kw_only=True)
class _Route:
    verb: str
    resource: ResourceType | None = None
    namespace: str = ""
    name: str = ""
    subresource: str = ""
    selector: _Selector = field(default_factory=_Selector)
    discovery: Object | None = None


def _route(fake: FakeApiServer, method: str, path: str, query: Mapping[str, str]) -> _Route:
    """Which verb on which resource a request means."""
    parts = [part for part in path.split("/") if part]
    if parts in (["version"], ["api"], ["apis"]) or _is_group_version(parts):
        return _Route(verb="discovery", discovery=_discovery(fake, parts))
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] in _plurals(fake, group, version):
        namespace, rest = rest[1], rest[2:]
    resource = fake.lookup(group, version, rest[0])
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if subresource and not (subresource == "status" and resource.status_subresource):
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    if resource.namespaced and name and not namespace:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    verb = _verb(method, collection=not name, watch=query.get("watch") in ("true", "1"))
    selector = _Selector(
        labels=_parse_label_selector(query.get("labelSelector", "")),
        fields=_parse_field_selector(query.get("fieldSelector", ""), resource),
        namespace=namespace,
    )
    return _Route(
        verb=verb,
        resource=resource,
        namespace=namespace,
        name=name,
        subresource=subresource,
        selector=selector,
    )


def _verb(method: str, *, collection: bool, watch: bool) -> str:
    verbs = {
        ("GET", True): "watch" if watch else "list",
        ("GET", False): "get",
        ("POST", True): "create",
        ("PUT", False): "update",
        ("PATCH", False): "patch",
        ("DELETE", False): "delete",
    }
    verb = verbs.get((method, collection))
    if verb is None:
        raise ApiError(
            405,
            "MethodNotAllowed",
            f"the server does not allow this method on the requested resource ({method})",
        )
    return verb


def _answer(
    fake: FakeApiServer, route: _Route, query: Mapping[str, str], body: Any, content_type: str
) -> tuple[int, Object]:
    """The HTTP status and JSON body for a non-watch request."""
    if route.discovery is not None:
        return 200, route.discovery
    resource = route.resource
    assert resource is not None
    dry_run = query.get("dryRun") == "All"
    match route.verb:
        case "get":
            return 200, fake.read(resource, route.namespace, route.name)
        case "list":
            return 200, fake.read_collection(resource, route.selector)
        case "create":
            return 201, fake.create(resource, route.namespace, body, dry_run=dry_run)
        case "update":
            return 200, fake.update(
                resource,
                route.namespace,
                route.name,
                body,
                subresource=route.subresource,
                dry_run=dry_run,
                require_version=resource.custom,  # CRDs do not allow unconditional updates
            )
        case "patch":
            return 200, fake.patch(
                resource,
                route.namespace,
                route.name,
                body,
                content_type=content_type,
                subresource=route.subresource,
                dry_run=dry_run,
            )
        case _:
            deleted = fake.remove(resource, route.namespace, route.name, body, dry_run=dry_run)
            if resource.custom or deleted["metadata"].get("deletionTimestamp"):
                return 200, deleted
            return 200, {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {
                    "name": route.name,
                    "group": resource.group,
                    "kind": resource.plural,
                    "uid": deleted["metadata"].get("uid", ""),
                },
            }


def _injected(status: int, route: _Route) -> ApiError:
    reason = _REASONS.get(status, "InternalError")
    if status == 409 and route.resource is not None:
        return _conflict(route.resource, route.name, STALE)
    message = f"injected failure: {reason}"
    return ApiError(status, reason, message, resource=route.resource, name=route.name)


def _plurals(fake: FakeApiServer, group: str, version: str) -> set[str]:
    return {r.plural for r in fake.resource_types if (r.group, r.version) == (group, version)}


def _is_group_version(parts: list[str]) -> bool:
    return (parts[:1] == ["api"] and len(parts) == 2) or (parts[:1] == ["apis"] and len(parts) == 3)


def _discovery(fake: FakeApiServer, parts: list[str]) -> Object:
    """Discovery documents (/version, /api, /apis, /api/v1, /apis/g/v) for the served types."""
    resources = fake.resource_types
    if parts == ["version"]:
        return {
            "major": "1",
            "minor": "31",
            "gitVersion": "v1.31.0-fake",
            "platform": "linux/amd64",
        }
    if parts == ["api"]:
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if parts == ["apis"]:
        groups: dict[str, set[str]] = {}
        for resource in resources:
            if resource.group:
                groups.setdefault(resource.group, set()).add(resource.version)
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": group,
                    "versions": [
                        {"groupVersion": f"{group}/{version}", "version": version}
                        for version in sorted(versions)
                    ],
                    "preferredVersion": {
                        "groupVersion": f"{group}/{max(versions)}",
                        "version": max(versions),
                    },
                }
                for group, versions in sorted(groups.items())
            ],
        }
    group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
    served = [r for r in resources if (r.group, r.version) == (group, version)]
    if not served:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
    listed: list[Object] = []
    for resource in served:
        listed.append(
            {
                "name": resource.plural,
                "singularName": resource.kind.lower(),
                "namespaced": resource.namespaced,
                "kind": resource.kind,
                "verbs": verbs,
            }
        )
        if resource.status_subresource:
            listed.append(
                {
                    "name": f"{resource.plural}/status",
                    "singularName": "",
                    "namespaced": resource.namespaced,
                    "kind": resource.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": served[0].api_version,
        "resources": listed,
    }
