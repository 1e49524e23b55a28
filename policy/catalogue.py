"""The rule catalogue: stable ids, default actions and one-line summaries.

The ids are part of the product's interface (config files, metrics labels, case
files and denial messages name them), so they never change once released.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from policy.verdicts import Action


class RuleId(enum.StrEnum):
    """Stable rule identifiers, in evaluation order."""

    KUBEVIRT_SPEC = "kubevirt-spec"
    GUARDED_ANNOTATIONS = "guarded-annotations"
    PLUG_BINDING = "plug-binding"
    PLUG_MODEL = "plug-model"
    PLUG_NETWORK = "plug-network"
    NAD_NAMESPACE = "nad-namespace"
    NAD_EXISTS = "nad-exists"
    MACHINE_TYPE = "machine-type"
    HOTPLUG_SLOTS = "hotplug-slots"
    PCI_SLOTS = "pci-slots"
    LIVE_MIGRATABLE = "live-migratable"
    UNPLUG_LEGACY_NAMING = "unplug-legacy-naming"
    UNPLUG_CANCEL = "unplug-cancel"
    PLAIN_REMOVAL = "plain-removal"
    RESTART_REQUIRED = "restart-required"
    IMPLICIT_POD_NETWORK = "implicit-pod-network"
    HOTPLUG_IN_PROGRESS = "hotplug-in-progress"


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleInfo:
    """What the README and `hotplug-guard rules` say about a rule."""

    id: RuleId
    default: Action
    summary: str


CATALOGUE: tuple[RuleInfo, ...] = (
    RuleInfo(
        id=RuleId.KUBEVIRT_SPEC,
        default=Action.ENFORCE,
        summary="the network part of the spec breaks KubeVirt's own VM webhook rules "
        "(same messages, so an offline check answers like the cluster)",
    ),
    RuleInfo(
        id=RuleId.GUARDED_ANNOTATIONS,
        default=Action.ENFORCE,
        summary="a user sets or changes a hotplug-guard.io/ annotation the engine did not produce",
    ),
    RuleInfo(
        id=RuleId.PLUG_BINDING,
        default=Action.ENFORCE,
        summary="a hot plugged interface does not use the bridge binding",
    ),
    RuleInfo(
        id=RuleId.PLUG_MODEL,
        default=Action.ENFORCE,
        summary="a hot plugged interface sets a model other than virtio",
    ),
    RuleInfo(
        id=RuleId.PLUG_NETWORK,
        default=Action.ENFORCE,
        summary="a hot plugged interface is not on a secondary (non-default) multus network",
    ),
    RuleInfo(
        id=RuleId.NAD_NAMESPACE,
        default=Action.ENFORCE,
        summary="a hot plugged interface refers to a NetworkAttachmentDefinition in another "
        "namespace",
    ),
    RuleInfo(
        id=RuleId.NAD_EXISTS,
        default=Action.ENFORCE,
        summary="a hot plugged interface refers to a NetworkAttachmentDefinition that does not "
        "exist (a warning when existence is unknown)",
    ),
    RuleInfo(
        id=RuleId.MACHINE_TYPE,
        default=Action.ENFORCE,
        summary="hot plug into a VM whose machine type or architecture has no PCIe hot plug ports",
    ),
    RuleInfo(
        id=RuleId.HOTPLUG_SLOTS,
        default=Action.ENFORCE,
        summary="hot plug beyond the PCIe ports KubeVirt reserved for interfaces",
    ),
    RuleInfo(
        id=RuleId.PCI_SLOTS,
        default=Action.ENFORCE,
        summary="hot plug takes the VM's estimated PCI devices over the 32 slots of the bus",
    ),
    RuleInfo(
        id=RuleId.LIVE_MIGRATABLE,
        default=Action.ENFORCE,
        summary="plug or unplug on a VMI that cannot live migrate, when completion needs one",
    ),
    RuleInfo(
        id=RuleId.UNPLUG_LEGACY_NAMING,
        default=Action.ENFORCE,
        summary="hot unplug on a VM whose pod uses legacy ordinal interface names (net1, ...)",
    ),
    RuleInfo(
        id=RuleId.UNPLUG_CANCEL,
        default=Action.ENFORCE,
        summary="bringing back an interface whose hot unplug is already underway",
    ),
    RuleInfo(
        id=RuleId.PLAIN_REMOVAL,
        default=Action.ENFORCE,
        summary="an interface or network deleted from a running VM instead of `state: absent`",
    ),
    RuleInfo(
        id=RuleId.RESTART_REQUIRED,
        default=Action.WARN,
        summary="an existing interface or network changed; it takes effect only after a restart",
    ),
    RuleInfo(
        id=RuleId.IMPLICIT_POD_NETWORK,
        default=Action.ENFORCE,
        summary="hot plug into a running VM whose template relies on the implicit pod network",
    ),
    RuleInfo(
        id=RuleId.HOTPLUG_IN_PROGRESS,
        default=Action.ENFORCE,
        summary="a new plug or unplug while the previous one or a migration is unfinished",
    ),
)

ORDER: dict[str, int] = {info.id.value: index for index, info in enumerate(CATALOGUE)}
