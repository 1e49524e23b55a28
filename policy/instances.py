"""Views of the running VirtualMachineInstance and its migrations."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, final

from policy import paths
from policy.values import Value
from policy.views import Spec, array, mapping, parse_spec, text

FINAL_VMI_PHASES = frozenset({"Succeeded", "Failed"})
FINAL_MIGRATION_PHASES = frozenset({"Succeeded", "Failed"})
ORDINAL_POD_INTERFACE = re.compile(r"net[0-9]+")
MIGRATION_VMI_LABEL = "kubevirt.io/vmi-name"
"""The label KubeVirt puts on a migration: the name of the VMI it moves."""


@final
class StatusInterface(Value):
    """One `status.interfaces[]` entry of a VMI."""

    FIELDS = ("name", "pod_interface_name", "info_source")

    def __init__(self, *, name: str, pod_interface_name: str, info_source: frozenset[str]) -> None:
        self.name: Final = name
        self.pod_interface_name: Final = pod_interface_name
        self.info_source: Final = info_source


@final
class Condition(Value):
    """One `status.conditions[]` entry of a VMI."""

    FIELDS = ("status", "reason", "message")

    def __init__(self, *, status: str, reason: str, message: str) -> None:
        self.status: Final = status
        self.reason: Final = reason
        self.message: Final = message


class Instance:
    """A VirtualMachineInstance as the engine sees it.

    Only name, uid and phase are read up front; spec, status interfaces and
    conditions are parsed on first use and kept, since most requests need none
    of them.
    """

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        metadata = mapping(raw.get("metadata"))
        self.name = text(metadata.get("name"))
        self.uid = text(metadata.get("uid"))
        self.annotations = mapping(metadata.get("annotations"))
        self.phase = text(mapping(raw.get("status")).get("phase"))
        self._spec: Spec | None = None
        self._status_interfaces: dict[str, StatusInterface] | None = None
        self._conditions: dict[str, Condition] | None = None
        self._hotplugged_volumes: frozenset[str] | None = None

    @property
    def active(self) -> bool:
        """Not in a final phase: the VM is running (or starting) in this VMI."""
        return self.phase not in FINAL_VMI_PHASES

    @property
    def spec(self) -> Spec:
        if self._spec is None:
            self._spec = parse_spec(self.raw.get("spec"), base=paths.VMI_SPEC)
        return self._spec

    @property
    def status_interfaces(self) -> Mapping[str, StatusInterface]:
        """`status.interfaces` by name (the first entry of each name)."""
        if self._status_interfaces is not None:
            return self._status_interfaces
        interfaces: dict[str, StatusInterface] = {}
        for item in array(mapping(self.raw.get("status")).get("interfaces")):
            entry = mapping(item)
            name = text(entry.get("name"))
            sources = text(entry.get("infoSource")).split(",")
            interfaces.setdefault(
                name,
                StatusInterface(
                    name=name,
                    pod_interface_name=text(entry.get("podInterfaceName")),
                    info_source=frozenset(s.strip() for s in sources if s.strip()),
                ),
            )
        self._status_interfaces = interfaces
        return interfaces

    @property
    def conditions(self) -> Mapping[str, Condition]:
        """`status.conditions` by type (the first entry of each type)."""
        if self._conditions is not None:
            return self._conditions
        conditions: dict[str, Condition] = {}
        for item in array(mapping(self.raw.get("status")).get("conditions")):
            entry = mapping(item)
            conditions.setdefault(
                text(entry.get("type")),
                Condition(
                    status=text(entry.get("status")),
                    reason=text(entry.get("reason")),
                    message=text(entry.get("message")),
                ),
            )
        self._conditions = conditions
        return conditions

    @property
    def hotplugged_volumes(self) -> frozenset[str]:
        """Volumes hot plugged into this run (`status.volumeStatus[].hotplugVolume` set)."""
        if self._hotplugged_volumes is None:
            self._hotplugged_volumes = frozenset(
                [
                    text(mapping(item).get("name"))
                    for item in array(mapping(self.raw.get("status")).get("volumeStatus"))
                    if mapping(item).get("hotplugVolume") is not None
                ]
            )
        return self._hotplugged_volumes

    def legacy_naming(self) -> bool:
        """True when KubeVirt would refuse to hot unplug from this VMI.

        Mirrors `HasOrdinalSecondaryIfaces`: an ordinal pod interface name
        (`net1`...) on a secondary network, or secondary networks none of whose
        status entries carries a pod interface name yet.
        """
        secondaries = [net.name for net in self.spec.networks if net.secondary]
        if not secondaries:
            return False
        named = False
        for name in secondaries:
            status = self.status_interfaces.get(name)
            if status is None or not status.pod_interface_name:
                continue
            if ORDINAL_POD_INTERFACE.fullmatch(status.pod_interface_name):
                return True
            named = True
        return not named


def parse_instance(obj: object) -> Instance:
    """View of a VMI object of any shape."""
    return Instance(mapping(obj))


def unfinished_migrations(migrations: tuple[object, ...], vmi_name: str) -> list[tuple[str, str]]:
    """(name, phase) of migrations of `vmi_name` that are not Succeeded or Failed."""
    result = []
    for item in migrations:
        entry = mapping(item)
        metadata = mapping(entry.get("metadata"))
        target = text(mapping(entry.get("spec")).get("vmiName")) or text(
            mapping(metadata.get("labels")).get(MIGRATION_VMI_LABEL)
        )
        phase = text(mapping(entry.get("status")).get("phase"))
        if target == vmi_name and phase not in FINAL_MIGRATION_PHASES:
            result.append((text(metadata.get("name")) or text(metadata.get("generateName")), phase))
    return result
