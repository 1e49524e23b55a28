"""Field paths (for causes) and JSON pointers (for patches), built in one place."""

from __future__ import annotations

SPEC = "spec.template.spec"
INTERFACES = SPEC + ".domain.devices.interfaces"
NETWORKS = SPEC + ".networks"
ANNOTATIONS = "metadata.annotations"

POINTER_SPEC = "/spec/template/spec"
POINTER_DEVICES = POINTER_SPEC + "/domain/devices"
POINTER_INTERFACES = POINTER_DEVICES + "/interfaces"
POINTER_NETWORKS = POINTER_SPEC + "/networks"
POINTER_ANNOTATIONS = "/metadata/annotations"


def interface(index: int, child: str = "") -> str:
    """`spec.template.spec.domain.devices.interfaces[i]` plus an optional child."""
    return f"{INTERFACES}[{index}].{child}" if child else f"{INTERFACES}[{index}]"


def network(index: int, child: str = "") -> str:
    """`spec.template.spec.networks[i]` plus an optional child."""
    return f"{NETWORKS}[{index}].{child}" if child else f"{NETWORKS}[{index}]"


def annotation(key: str) -> str:
    """Field path of a VM annotation, e.g. `metadata.annotations[hotplug-guard.io/request]`."""
    return f"{ANNOTATIONS}[{key}]"


def escape(token: str) -> str:
    """RFC 6901 escaping of one reference token (`~` then `/`)."""
    return token.replace("~", "~0").replace("/", "~1")
