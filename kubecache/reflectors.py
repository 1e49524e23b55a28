"""A store of one resource's objects, kept in step with the API server by a reflector thread.

Each `Reflector` (client-go's name for it) lists, then watches from the list's
resourceVersion, resumes from the last seen version when the watch ends, and
relists on 410 Gone or any other failure, with back-off. A relist replaces the
store at once and reports the objects that vanished meanwhile as deleted, so a
handler sees every change whatever happened to the connection.

A store keeps only what its `Resource.keep` projects (no managedFields, no user
data), optionally indexed by a key of the caller's choosing (migrations by the
VMI they move, say).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

LOG = logging.getLogger(f"hotplug_guard.{__name__}")

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

Projection = Callable[[Mapping[str, Any]], dict[str, Any]]
Index = Callable[[Mapping[str, Any]], str | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Resource:
    """A listable custom resource, and what of each object its cache keeps."""

    group: str
    version: str
    plural: str
    keep: Projection

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}"


@dataclass(frozen=True, slots=True)
class Change:
    """An object as now stored (`deleted`: as last stored, now gone)."""

    item: Mapping[str, Any]
    deleted: bool = False


def identity(item: Mapping[str, Any]) -> tuple[str, str]:
    """(namespace, name) of an object; empty strings when it has none."""
    metadata = item.get("metadata")
    if not isinstance(metadata, dict):
        return "", ""
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


class Store:
    """Objects of one resource by namespace and name; a relist replaces the content at once.

    With `index`, objects are also found by the key it gives them (None: not indexed).
    """

    def __init__(self, index: Index | None = None) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, dict[str, Mapping[str, Any]]] = {}
        self._keys: frozenset[str] | None = frozenset()
        self._index_of = index
        self._index: dict[str, dict[tuple[str, str], Mapping[str, Any]]] = {}

    def replace(self, items: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """Hold exactly `items` from now on; returns the objects that are gone."""
        objects: dict[str, dict[str, Mapping[str, Any]]] = {}
        for item in items:
            namespace, name = identity(item)
            objects.setdefault(namespace, {})[name] = item
        with self._lock:
            gone = [
                item
                for namespace, names in self._objects.items()
                for name, item in names.items()
                if name not in objects.get(namespace, {})
            ]
            self._objects = objects
            self._keys = None
            self._index = {}
            for item in items:
                self._add_to_index(item)
        return gone

    def put(self, item: Mapping[str, Any]) -> None:
        namespace, name = identity(item)
        with self._lock:
            previous = self._objects.setdefault(namespace, {}).get(name)
            if previous is not None:
                self._remove_from_index(previous)
            self._objects[namespace][name] = item
            self._add_to_index(item)
            self._keys = None

    def remove(self, item: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """Forget the object with `item`'s identity; returns what was stored."""
        namespace, name = identity(item)
        with self._lock:
            previous = self._objects.get(namespace, {}).pop(name, None)
            if previous is not None:
                self._remove_from_index(previous)
            self._keys = None
        return previous

    def get(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        with self._lock:
            return self._objects.get(namespace, {}).get(name)

    def in_namespace(self, namespace: str) -> list[Mapping[str, Any]]:
        with self._lock:
            return list(self._objects.get(namespace, {}).values())

    def all(self) -> list[Mapping[str, Any]]:
        with self._lock:
            return [item for names in self._objects.values() for item in names.values()]

    def indexed(self, key: str) -> list[Mapping[str, Any]]:
        """The objects the index gives `key`."""
        with self._lock:
            return list(self._index.get(key, {}).values())

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

    def _add_to_index(self, item: Mapping[str, Any]) -> None:
        key = self._index_of(item) if self._index_of is not None else None
        if key is not None:
            self._index.setdefault(key, {})[identity(item)] = item

    def _remove_from_index(self, item: Mapping[str, Any]) -> None:
        key = self._index_of(item) if self._index_of is not None else None
        if key is not None:
            bucket = self._index.get(key, {})
            bucket.pop(identity(item), None)
            if not bucket:
                self._index.pop(key, None)


def _ignore(change: Change) -> None:
    """The default handler: nothing to tell."""


class Reflector:
    """Keeps a `Store` in step with the API server for one resource (list, watch, relist).

    `on_change` hears of every object stored or removed, in the reflector's thread,
    after the store holds the change; `on_request` of every list and watch call
    made (`"list"`, `"watch"`), for whoever counts API calls.
    """

    def __init__(
        self,
        api: client.CustomObjectsApi,
        resource: Resource,
        *,
        index: Index | None = None,
        on_synced: Callable[[], None] = lambda: None,
        on_change: Callable[[Change], None] = _ignore,
        on_request: Callable[[str], None] = lambda verb: None,
        watch_seconds: int = WATCH_SECONDS,
    ) -> None:
        self.resource = resource
        self.store = Store(index)
        self.synced = threading.Event()
        self._api = api
        self._on_synced = on_synced
        self._on_change = on_change
        self._on_request = on_request
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

    def alive(self) -> bool:
        """True while the thread runs (it outlives every API error until stopped)."""
        return self._thread.is_alive()

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
                if self._stopped.is_set():
                    break  # stop() closed the watch under it
                LOG.warning("list/watch of %s failed: %s", self.resource, describe(error))
            # a watch that ran for a while was healthy: start the back-off again from the bottom
            failures = 1 if time.monotonic() - started > STABLE_SECONDS else failures + 1
            self._stopped.wait(RETRY_SECONDS[min(failures, len(RETRY_SECONDS)) - 1])

    def _list(self) -> str:
        self._on_request("list")
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
        self._replace(items)
        version = str((listing.get("metadata") or {}).get("resourceVersion") or "")
        if not self.synced.is_set():
            self.synced.set()
            LOG.info("cache of %s synced with %d objects", self.resource, len(items))
            self._on_synced()
        return version

    def _replace(self, items: list[Mapping[str, Any]]) -> None:
        for gone in self.store.replace(items):
            self._tell(Change(gone, deleted=True))
        for item in items:
            self._tell(Change(item))

    def _tell(self, change: Change) -> None:
        try:
            self._on_change(change)
        except Exception:  # a handler's bug must not stop the cache
            LOG.exception("the change handler of %s failed", self.resource)

    def _mark_absent(self) -> None:
        self._replace([])
        if not self.synced.is_set():
            self.synced.set()
            LOG.info("%s is not served by the API server; treating it as empty", self.resource)
            self._on_synced()

    def _follow(self, version: str) -> None:
        """Watch from `version` until stopped; raises on errors so `_run` relists."""
        while not self._stopped.is_set():
            self._watch = watch.Watch()  # type: ignore[no-untyped-call]
            self._on_request("watch")
            for event in self._events(self._watch, version):
                kind, item = event.get("type"), event.get("raw_object")
                if not isinstance(item, dict):
                    continue
                if kind in ("ADDED", "MODIFIED"):
                    kept = self.resource.keep(item)
                    self.store.put(kept)
                    self._tell(Change(kept))
                elif kind == "DELETED":
                    removed = self.store.remove(item)
                    self._tell(Change(removed or self.resource.keep(item), deleted=True))
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


def describe(error: Exception) -> str:
    """One bounded line naming an error, for logs."""
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}"[:300]
