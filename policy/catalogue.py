"""The rule registry: one record per rule, the source of everything said about it.

A record holds the rule's stable id, its default action, the summary and release
notes `hotplug-guard rules` prints, the phase it runs in (which requests it
judges, and what its check is given) and the check itself. The engine runs the
records in this order; the config's defaults, the rule list of the CLI and the
order of findings derive from it. The shipped config (`policy/default-config.yaml`),
the chart's values and schema and the README's rule table are written by hand,
with comments and prose a record has no place for; tests hold them to this list.
Adding a rule: docs/architecture.md, "Adding a rule".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar, final

from policy import transitions
from policy.guard import Guarded, check_guarded_annotations
from policy.ids import RuleId, RulePhase
from policy.specrules import Submission, check_kubevirt_spec
from policy.transitions import Situation
from policy.values import Value
from policy.verdicts import Action, Cause

Subject = TypeVar("Subject")


@final
class Rule(Value, Generic[Subject]):
    """One rule: what it is called, what it does by default, when it runs, how it checks.

    `releases`: how the rule's answer depends on the KubeVirt release, if it does.
    `check` gets what its phase judges (`RulePhase`) and returns the causes it finds, as a
    list (compiled, a list is built and read natively; a generator is an object per call).
    """

    FIELDS = ("id", "default", "summary", "phase", "check", "releases")

    def __init__(
        self,
        *,
        id: RuleId,
        default: Action,
        summary: str,
        phase: RulePhase,
        check: Callable[[Subject], list[Cause]],
        releases: str = "",
    ) -> None:
        self.id: Final = id
        self.default: Final = default
        self.summary: Final = summary
        self.phase: Final = phase
        self.check: Final = check
        self.releases: Final = releases


SPEC_RULES: Final[tuple[Rule[Submission], ...]] = (
    Rule(
        id=RuleId.KUBEVIRT_SPEC,
        phase=RulePhase.SPEC,
        check=check_kubevirt_spec,
        default=Action.ENFORCE,
        summary="the network part of the spec breaks KubeVirt's own VM webhook rules "
        "(same messages, so an offline check answers like the cluster)",
        releases="state up/down (and its SR-IOV rule) from v1.5; v1.1-v1.8 only refuse a binding"
        " plugin together with a method, v1.9 wants exactly one binding and so refuses "
        "UPDATEs that still carry slirp, macvtap or passt; discontinued bindings on "
        "CREATE from v1.3; unknown release: exactly one binding, discontinued ones on "
        "CREATE only",
    ),
)
ANNOTATION_RULES: Final[tuple[Rule[Guarded], ...]] = (
    Rule(
        id=RuleId.GUARDED_ANNOTATIONS,
        phase=RulePhase.ANNOTATIONS,
        check=check_guarded_annotations,
        default=Action.ENFORCE,
        summary="anyone but the engine (or the controller, for status) sets or changes a "
        "hotplug-guard.io/ annotation",
    ),
)
HOTPLUG_RULES: Final[tuple[Rule[Situation], ...]] = (
    Rule(
        id=RuleId.KUBEVIRT_RELEASE,
        phase=RulePhase.HOTPLUG,
        check=transitions.check_kubevirt_release,
        default=Action.ENFORCE,
        summary="plug or unplug the cluster's KubeVirt release does not perform from an edited "
        "VM (v1.0; v1.1-v1.3 without the HotplugNICs gate); a warning when the release is unknown",
        releases="v1.0 hot plugs only through virtctl addinterface; v1.1-v1.3 only with the "
        "HotplugNICs feature gate; from v1.4 always; unknown release: a warning, then "
        "the v1.0-v1.5 rules",
    ),
    Rule(
        id=RuleId.PLUG_BINDING,
        phase=RulePhase.PLUG,
        check=transitions.check_plug_binding,
        default=Action.ENFORCE,
        summary="a hot plugged interface does not use the bridge binding",
    ),
    Rule(
        id=RuleId.PLUG_MODEL,
        phase=RulePhase.PLUG,
        check=transitions.check_plug_model,
        default=Action.ENFORCE,
        summary="a hot plugged interface sets a model other than virtio",
    ),
    Rule(
        id=RuleId.PLUG_NETWORK,
        phase=RulePhase.PLUG,
        check=transitions.check_plug_network,
        default=Action.ENFORCE,
        summary="a hot plugged interface is not on a secondary (non-default) multus network",
    ),
    Rule(
        id=RuleId.NAD_NAMESPACE,
        phase=RulePhase.PLUG,
        check=transitions.check_nad_namespace,
        default=Action.ENFORCE,
        summary="a hot plugged interface refers to a NetworkAttachmentDefinition in another "
        "namespace",
    ),
    Rule(
        id=RuleId.NAD_EXISTS,
        phase=RulePhase.PLUG,
        check=transitions.check_nad_exists,
        default=Action.ENFORCE,
        summary="a hot plugged interface refers to a NetworkAttachmentDefinition that does not "
        "exist (a warning when existence is unknown)",
    ),
    Rule(
        id=RuleId.MACHINE_TYPE,
        phase=RulePhase.PLUG,
        check=transitions.check_machine_type,
        default=Action.ENFORCE,
        summary="hot plug into a VM whose machine type or architecture has no PCIe hot plug ports",
        releases="s390x is allowed with a warning (unverified: KubeVirt v1.9 labels its bridge "
        "hot plug tests for s390x, whose flat bus has no ports to count)",
    ),
    Rule(
        id=RuleId.HOTPLUG_SLOTS,
        phase=RulePhase.PLUG,
        check=transitions.check_hotplug_slots,
        default=Action.ENFORCE,
        summary="hot plug beyond the PCIe ports KubeVirt reserved for interfaces",
        releases="the formula of the release the VMI booted with: v1 (v1.0-v1.5, unknown "
        "release, VMIs without kubevirt.io/pci-topology-version on v3 releases) 4 "
        "including existing; v2 (v1.6.0-v1.6.3, v1.7.0-v1.7.1) max(8 or 16 minus its "
        "PCI devices, 3 or 6) free ports, the larger numbers above 2 GiB; v3 (v1.6.4+, "
        "v1.7.2+, v1.8+) v1's placeholders plus root ports up to the v2 number; the "
        "VMI's kubevirt.io/pci-interface-slot-count freezes the total",
    ),
    Rule(
        id=RuleId.PCI_SLOTS,
        phase=RulePhase.PLUG,
        check=transitions.check_pci_slots,
        default=Action.ENFORCE,
        summary="hot plug takes the VM's estimated PCI devices over the 32 slots of the bus",
    ),
    Rule(
        id=RuleId.LIVE_MIGRATABLE,
        phase=RulePhase.HOTPLUG,
        check=transitions.check_live_migratable,
        default=Action.ENFORCE,
        summary="plug or unplug on a VMI that cannot live migrate, when completion needs one",
        releases="an unplug is refused only when the KubeVirt CR lists Evict (from v1.6 KubeVirt"
        " restarts a VM that cannot migrate to finish it)",
    ),
    Rule(
        id=RuleId.UNPLUG_LEGACY_NAMING,
        phase=RulePhase.UNPLUG,
        check=transitions.check_unplug_legacy_naming,
        default=Action.ENFORCE,
        summary="hot unplug on a VM whose pod uses legacy ordinal interface names (net1, ...)",
    ),
    Rule(
        id=RuleId.UNPLUG_CANCEL,
        phase=RulePhase.CANCEL,
        check=transitions.check_unplug_cancel,
        default=Action.ENFORCE,
        summary="bringing back an interface whose hot unplug is already underway",
    ),
    Rule(
        id=RuleId.PLAIN_REMOVAL,
        phase=RulePhase.REMOVAL,
        check=transitions.check_plain_removal,
        default=Action.ENFORCE,
        summary="an interface or network deleted from a running VM instead of `state: absent`",
    ),
    Rule(
        id=RuleId.RESTART_REQUIRED,
        phase=RulePhase.MODIFICATION,
        check=transitions.check_restart_required,
        default=Action.WARN,
        summary="an existing interface or network changed; it takes effect only after a restart",
        releases="from v1.6 judged against the VMI (a change back to what runs clears it); a NAD"
        " swap is live on v1.9, and on v1.8 with LiveUpdateNADRef; before v1.6 also a "
        "warning that every plug, unplug and link state change sets RestartRequired",
    ),
    Rule(
        id=RuleId.IMPLICIT_POD_NETWORK,
        phase=RulePhase.PLUG,
        check=transitions.check_implicit_pod_network,
        default=Action.ENFORCE,
        summary="hot plug into a running VM whose template relies on the pod interface KubeVirt "
        "added to the VMI, unless the update declares it exactly as the VMI runs it",
    ),
    Rule(
        id=RuleId.HOTPLUG_IN_PROGRESS,
        phase=RulePhase.HOTPLUG,
        check=transitions.check_hotplug_in_progress,
        default=Action.ENFORCE,
        summary="a new plug or unplug while the previous one or a migration is unfinished",
    ),
)
CATALOGUE: Final[tuple[Rule[Any], ...]] = (*SPEC_RULES, *ANNOTATION_RULES, *HOTPLUG_RULES)
"""Every rule, in evaluation order."""

ORDER: Final[dict[str, int]] = {rule.id.value: index for index, rule in enumerate(CATALOGUE)}
