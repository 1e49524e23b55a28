"""Field paths (for causes) and JSON pointers (for patches), built in one place.

A field path is a `FieldPath` value, built the way KubeVirt builds its own with
`k8sfield.Path`: from a root by `child(name)`, `index(i)` and `key(k)`, never by
joining strings, and rendered the way `k8sfield.Path.String()` renders, e.g.
`spec.template.spec.domain.devices.interfaces[0].name` or
`metadata.annotations[hotplug-guard.io/request]`.
"""

from __future__ import annotations

from typing import Final, final

from policy.values import Value


@final
class FieldPath(Value):
    """An immutable field path; `text` is its rendering (a cause's `field`).

    The rendering is kept rather than the segments: a path is built for a finding
    and read only as text, and one string per step costs what the concatenation
    it replaces did.
    """

    FIELDS = ("text",)

    def __init__(self, text: str) -> None:
        self.text: Final = text

    def child(self, name: str) -> FieldPath:
        """The field `name` of the object at this path."""
        return FieldPath(f"{self.text}.{name}")

    def index(self, index: int) -> FieldPath:
        """Entry `index` of the list at this path."""
        return FieldPath(f"{self.text}[{index}]")

    def key(self, key: str) -> FieldPath:
        """The value under `key` of the map at this path (keys may hold dots and slashes)."""
        return FieldPath(f"{self.text}[{key}]")

    def __str__(self) -> str:
        return self.text


def new_path(name: str, *more: str) -> FieldPath:
    """A path from its root field down through `more` children (`k8sfield.NewPath`)."""
    path = FieldPath(name)
    for child in more:
        path = path.child(child)
    return path


SPEC: Final = new_path("spec", "template", "spec")
INTERFACES: Final = SPEC.child("domain").child("devices").child("interfaces")
NETWORKS: Final = SPEC.child("networks")
ANNOTATIONS: Final = new_path("metadata", "annotations")
VMI_SPEC: Final = new_path("spec")

POINTER_SPEC = "/spec/template/spec"
POINTER_DEVICES = POINTER_SPEC + "/domain/devices"
POINTER_INTERFACES = POINTER_DEVICES + "/interfaces"
POINTER_NETWORKS = POINTER_SPEC + "/networks"
POINTER_ANNOTATIONS = "/metadata/annotations"


def interface(index: int) -> FieldPath:
    """`spec.template.spec.domain.devices.interfaces[i]`"""
    return INTERFACES.index(index)


def network(index: int) -> FieldPath:
    """`spec.template.spec.networks[i]`"""
    return NETWORKS.index(index)


def annotation(key: str) -> FieldPath:
    """A VM annotation, e.g. `metadata.annotations[hotplug-guard.io/request]`."""
    return ANNOTATIONS.key(key)


def escape(token: str) -> str:
    """RFC 6901 escaping of one reference token (`~` then `/`)."""
    return token.replace("~", "~0").replace("/", "~1")
