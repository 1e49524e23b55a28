"""Turning user files (objects, contexts, case files) into engine inputs.

Objects may be given inline or as references `{fixture: PATH, change: [RFC 6902
ops]}` resolved relative to the file that mentions them, so case files can
build on shared fixtures without copying them.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonpatch

from hotplug_guard.errors import UsageError
from hotplug_guard.files import line_of, load_yaml, read_text
from policy import Context, Operation, Review, UserInfo, parse_version
from webhook import reviews

REFERENCE_KEYS = frozenset({"fixture", "change"})
DEFAULT_NAMESPACE = "default"  # as kubectl assumes for objects without one


class Source:
    """A YAML file being read: its path, text and data, for errors with line numbers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.text = read_text(path)
        self.data: Any = load_yaml(path, text=self.text)

    def error(self, keys: tuple[str | int, ...], message: str) -> UsageError:
        line = line_of(self.text, keys)
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        dotted = ".".join(str(k) for k in keys)
        return UsageError(f"{where}: {dotted + ': ' if dotted else ''}{message}")

    def object(self, value: Any, keys: tuple[str | int, ...]) -> dict[str, Any]:
        """A Kubernetes object given inline or as a fixture reference."""
        if isinstance(value, Mapping) and value and set(value) <= REFERENCE_KEYS:
            return self._reference(value, keys)
        if not isinstance(value, Mapping):
            raise self.error(keys, "must be a Kubernetes object (a mapping)")
        return dict(value)

    def _reference(self, ref: Mapping[str, Any], keys: tuple[str | int, ...]) -> dict[str, Any]:
        base: dict[str, Any] = {}
        if "fixture" in ref:
            if not isinstance(ref["fixture"], str):
                raise self.error((*keys, "fixture"), "must be a file path")
            fixture = Source(self.path.parent / ref["fixture"])
            if not isinstance(fixture.data, Mapping):
                raise UsageError(f"{fixture.path}: must hold one Kubernetes object")
            base = dict(fixture.data)
        if "change" in ref:
            return self.changed(base, ref["change"], (*keys, "change"))
        return base

    def changed(self, obj: Any, ops: Any, keys: tuple[str | int, ...]) -> dict[str, Any]:
        """`obj` with the RFC 6902 `ops` applied (the input stays untouched)."""
        if not isinstance(ops, list):
            raise self.error(keys, "must be a list of RFC 6902 operations")
        try:
            result = jsonpatch.apply_patch(copy.deepcopy(obj), ops)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
            raise self.error(keys, f"does not apply: {error}") from None
        except (TypeError, KeyError, AttributeError) as error:
            raise self.error(keys, f"is not a valid RFC 6902 patch: {error}") from None
        if not isinstance(result, dict):
            raise self.error(keys, "must leave a Kubernetes object (a mapping)")
        return result

    def context(self, value: Any, keys: tuple[str | int, ...]) -> Context:
        """The cluster context: vmi, networkAttachmentDefinitions, kubevirt, migrations."""
        if value is None:
            return Context()
        if not isinstance(value, Mapping):
            raise self.error(keys, "must be a mapping")
        known = {"vmi", "networkAttachmentDefinitions", "kubevirt", "migrations"}
        for key in value:
            if key not in known:
                raise self.error(
                    (*keys, key), f"unknown key; known keys: {', '.join(sorted(known))}"
                )
        nads: frozenset[str] | None = None
        if value.get("networkAttachmentDefinitions") is not None:
            entries = value["networkAttachmentDefinitions"]
            nad_keys = (*keys, "networkAttachmentDefinitions")
            if not isinstance(entries, list):
                raise self.error(nad_keys, "must be a list of 'namespace/name'")
            for index, entry in enumerate(entries):
                if not isinstance(entry, str) or entry.count("/") != 1 or "" in entry.split("/"):
                    raise self.error((*nad_keys, index), "must be 'namespace/name'")
            nads = frozenset(entries)
        migrations = value.get("migrations") or []
        if not isinstance(migrations, list):
            raise self.error((*keys, "migrations"), "must be a list of migration objects")
        return Context(
            vmi=self.object(value["vmi"], (*keys, "vmi")) if value.get("vmi") is not None else None,
            nads=nads,
            kubevirt=(
                self.object(value["kubevirt"], (*keys, "kubevirt"))
                if value.get("kubevirt") is not None
                else None
            ),
            migrations=tuple(
                self.object(m, (*keys, "migrations", i)) for i, m in enumerate(migrations)
            ),
        )


def load_review(
    new: Path,
    old: Path | None = None,
    *,
    username: str = "",
    groups: tuple[str, ...] = (),
    dry_run: bool = False,
) -> Review:
    """The request `check` judges: `new` is a VirtualMachine (with `old`, an UPDATE) or an
    AdmissionReview of one, which brings the old object, user, dry run and operation itself.

    UsageError for any other kind, and for what the webhook would not judge.
    """
    source = Source(new)
    if isinstance(source.data, Mapping) and source.data.get("kind") == reviews.KIND:
        if old is not None or username or groups or dry_run:
            raise UsageError(
                f"{new}: an {reviews.KIND} brings the old object, the user and dryRun itself; "
                "leave out --old, --user, --group and --dry-run"
            )
        return _admission_review(source)
    vm = _virtual_machine(source)
    return build_review(
        new=vm,
        old=_virtual_machine(Source(old)) if old is not None else None,
        username=username,
        groups=groups,
        dry_run=dry_run,
    )


def _virtual_machine(source: Source) -> dict[str, Any]:
    obj = source.object(source.data, ())
    group = str(obj.get("apiVersion", "")).partition("/")[0]
    if (group, obj.get("kind")) != (reviews.VM_GROUP, reviews.VM_KIND):
        raise source.error(
            ("kind",),
            f"{obj.get('kind')!r} (apiVersion {obj.get('apiVersion')!r}): expected a "
            f"{reviews.VM_GROUP} {reviews.VM_KIND} or an {reviews.KIND} of one",
        )
    return obj


def _admission_review(source: Source) -> Review:
    """The VirtualMachine CREATE or UPDATE of an AdmissionReview, read as the webhook reads it."""
    try:
        envelope, raw = reviews.parse_envelope(json.dumps(source.data).encode())
        request = reviews.parse_admission_request(envelope, raw)
    except reviews.RequestError as error:
        raise source.error((), f"the webhook would refuse this review: {error}") from None
    if not request.is_virtual_machine:
        sub = f"/{request.sub_resource}" if request.sub_resource else ""
        raise source.error(
            ("request", "kind"),
            f"a review of {request.group or 'core'} {request.kind} ({request.resource}{sub}): "
            f"hotplug-guard judges {reviews.VM_GROUP} {reviews.VM_KIND}s only",
        )
    if request.operation not in (Operation.CREATE, Operation.UPDATE):
        raise source.error(
            ("request", "operation"),
            f"{request.operation}: the webhook lets DELETE and CONNECT through untouched, so "
            "there is nothing to check",
        )
    return request.review()


def load_context(path: Path) -> Context:
    """The cluster context in a YAML file (see `Source.context`)."""
    source = Source(path)
    return source.context(source.data, ())


def with_kubevirt_version(context: Context, version: object) -> Context:
    """`context` whose KubeVirt CR reports `version` as its release (made up when absent).

    Raises UsageError when `version` is not a KubeVirt version such as `v1.7.2`.
    """
    if not isinstance(version, str) or parse_version(version) is None:
        raise UsageError(f"not a KubeVirt version: {version!r} (expected one like v1.7.2)")
    kubevirt: dict[str, Any] = (
        copy.deepcopy(dict(context.kubevirt))
        if context.kubevirt is not None
        else {"apiVersion": "kubevirt.io/v1", "kind": "KubeVirt"}
    )
    status = kubevirt.get("status")
    kubevirt["status"] = {
        **(status if isinstance(status, dict) else {}),
        "observedKubeVirtVersion": version,
    }
    return Context(
        vmi=context.vmi, nads=context.nads, kubevirt=kubevirt, migrations=context.migrations
    )


def build_review(
    *,
    new: dict[str, Any],
    old: dict[str, Any] | None,
    username: str = "",
    groups: tuple[str, ...] = (),
    dry_run: bool = False,
) -> Review:
    """A review of `new` (CREATE without `old`, UPDATE with it) by the given user."""
    metadata = new.get("metadata")
    namespace = metadata.get("namespace") if isinstance(metadata, dict) else None
    return Review(
        operation=Operation.UPDATE if old is not None else Operation.CREATE,
        new=new,
        old=old,
        user=UserInfo(username=username, groups=groups),
        dry_run=dry_run,
        namespace=namespace if isinstance(namespace, str) and namespace else DEFAULT_NAMESPACE,
    )
