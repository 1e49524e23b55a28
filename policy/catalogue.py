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
    KUBEVIRT_RELEASE = "kubevirt-release"
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
    """What the README and `hotplug-guard rules` say about a rule.

    `releases`: how the rule's answer depends on the KubeVirt release, if it does.
    """

    id: RuleId
    default: Action
    summary: str
    releases: str = ""


CATALOGUE: tuple[RuleInfo, ...] = (
    RuleInfo(
        id=RuleId.KUBEVIRT_SPEC,
        default=Action.ENFORCE,
        summary="the network part of the spec breaks KubeVirt's own VM webhook rules "
        "(same messages, so an offline check answers like the cluster)",
        releases="state up/down (and its SR-IOV rule) from v1.5; v1.1-v1.8 only refuse a binding"
        " plugin together with a method, v1.9 wants exactly one binding and so refuses "
        "UPDATEs that still carry slirp, macvtap or passt; discontinued bindings on "
        "CREATE from v1.3; unknown release: exactly one binding, discontinued ones on "
        "CREATE only",
    ),
    RuleInfo(
        id=RuleId.GUARDED_ANNOTATIONS,
        default=Action.ENFORCE,
        summary="anyone but the engine (or the controller, for status) sets or changes a "
        "hotplug-guard.io/ annotation",
    ),
    RuleInfo(
        id=RuleId.KUBEVIRT_RELEASE,
        default=Action.ENFORCE,
        summary="plug or unplug the cluster's KubeVirt release does not perform from an edited "
        "VM (v1.0; v1.1-v1.3 without the HotplugNICs gate); a warning when the release is unknown",
        releases="v1.0 hot plugs only through virtctl addinterface; v1.1-v1.3 only with the "
        "HotplugNICs feature gate; from v1.4 always; unknown release: a warning, then "
        "the v1.0-v1.5 rules",
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
        releases="s390x is allowed with a warning (unverified: KubeVirt v1.9 labels its bridge "
        "hot plug tests for s390x, whose flat bus has no ports to count)",
    ),
    RuleInfo(
        id=RuleId.HOTPLUG_SLOTS,
        default=Action.ENFORCE,
        summary="hot plug beyond the PCIe ports KubeVirt reserved for interfaces",
        releases="the formula of the release the VMI booted with: v1 (v1.0-v1.5, unknown "
        "release, VMIs without kubevirt.io/pci-topology-version on v3 releases) 4 "
        "including existing; v2 (v1.6.0-v1.6.3, v1.7.0-v1.7.1) max(8 or 16 minus its "
        "PCI devices, 3 or 6) free ports, the larger numbers above 2 GiB; v3 (v1.6.4+, "
        "v1.7.2+, v1.8+) v1's placeholders plus root ports up to the v2 number; the "
        "VMI's kubevirt.io/pci-interface-slot-count freezes the total",
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
        releases="an unplug is refused only when the KubeVirt CR lists Evict (from v1.6 KubeVirt"
        " restarts a VM that cannot migrate to finish it)",
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
        releases="from v1.6 judged against the VMI (a change back to what runs clears it); a NAD"
        " swap is live on v1.9, and on v1.8 with LiveUpdateNADRef; before v1.6 also a "
        "warning that every plug, unplug and link state change sets RestartRequired",
    ),
    RuleInfo(
        id=RuleId.IMPLICIT_POD_NETWORK,
        default=Action.ENFORCE,
        summary="hot plug into a running VM whose template relies on the pod interface KubeVirt "
        "added to the VMI, unless the update declares it exactly as the VMI runs it",
    ),
    RuleInfo(
        id=RuleId.HOTPLUG_IN_PROGRESS,
        default=Action.ENFORCE,
        summary="a new plug or unplug while the previous one or a migration is unfinished",
    ),
)

ORDER: dict[str, int] = {info.id.value: index for index, info in enumerate(CATALOGUE)}
