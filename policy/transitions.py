"""Hot plug rules: what an UPDATE of a running VM may change, and how.

Each rule is a plain function `(Situation) -> list[Cause]`; the registry
(`policy/catalogue.py`) lists them in evaluation order with the kind of change each
judges (its phase). They only run for UPDATEs of running VMs by users who are not
exempt, and only when their kind of change occurs (`TRIGGERS`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, final

from policy import paths
from policy.annotations import REQUEST, STATUS, Ledger, parse_request, parse_status
from policy.capacity import Capacity, implicit_pod_interface, measure
from policy.changes import Changes, changed_fields
from policy.cluster import (
    EVICT,
    HOTPLUG_NICS_GATE,
    NAD_SWAP_GATE,
    Cluster,
    Release,
    parse_cluster,
)
from policy.config import Completion, PolicyConfig
from policy.ids import RuleId, RulePhase
from policy.instances import Instance, unfinished_migrations
from policy.paths import FieldPath
from policy.review import Context
from policy.slots import (
    FLAT_BUS_ARCHITECTURE,
    SLOT_COUNT_ANNOTATION,
    TOPOLOGY_ANNOTATION,
    estimate_pci,
    on_root_complex,
    supports_pcie_hotplug,
)
from policy.verdicts import Action, Cause, CauseType
from policy.views import ABSENT, Binding, Interface, Network, Spec, VirtualMachine, text

AUTO_RESTART_HINT = "stop the VM, make the change, then start it"


@final
class Situation:
    """Everything a hot plug rule may look at; `spec` is the new spec after mutation.

    Rules only read it; the facts several rules need are computed on first use
    and kept in the private fields. `ledger` is the old VM's ledger annotation.
    """

    def __init__(
        self,
        *,
        old: VirtualMachine,
        new: VirtualMachine,
        spec: Spec,
        changes: Changes,
        vmi: Instance | None,
        context: Context,
        config: PolicyConfig,
        namespace: str,
        ledger: Ledger,
    ) -> None:
        self.old: Final = old
        self.new: Final = new
        self.spec: Final = spec
        self.changes: Final = changes
        self.vmi: Final = vmi
        self.context: Final = context
        self.config: Final = config
        self.namespace: Final = namespace
        self.ledger: Final = ledger
        self._capacity: Capacity | None = None
        self._previous: tuple[bool | None] | None = None
        self._cluster: Cluster | None = None
        self._release: Release | None = None

    @property
    def cluster(self) -> Cluster:
        """The KubeVirt CR of the context."""
        if self._cluster is None:
            self._cluster = parse_cluster(self.context.kubevirt)
        return self._cluster

    @property
    def release(self) -> Release:
        """The cluster's release; without one, the lower bound the VMI's annotations give."""
        if self._release is None:
            release = self.cluster.release
            annotations = self.vmi.annotations if self.vmi is not None else {}
            if not release.known and (
                TOPOLOGY_ANNOTATION in annotations or SLOT_COUNT_ANNOTATION in annotations
            ):
                release = Release(version=(1, 6, 4), exact=False)  # both appeared in v1.6.4
            self._release = release
        return self._release

    @property
    def architecture(self) -> str:
        """The VM's architecture (the template's, else what the VMI runs)."""
        if self.spec.architecture or self.vmi is None:
            return self.spec.architecture
        return self.vmi.spec.architecture

    @property
    def flat_bus(self) -> bool:
        """An architecture without PCIe ports, where KubeVirt reserves none."""
        return self.architecture == FLAT_BUS_ARCHITECTURE

    @property
    def capacity(self) -> Capacity:
        if self._capacity is None:
            self._capacity = capacity(self)
        return self._capacity

    @property
    def previous_unfinished(self) -> bool | None:
        """Whether the VM's previous hot plug request is unfinished (None: cannot tell)."""
        if self._previous is None:  # a 1-tuple, because None is a valid answer
            self._previous = (previous_request_unfinished(self),)
        return self._previous[0]


def removal_eligible(
    network: Network | None, iface: Interface | None, vmi: Instance | None
) -> bool:
    """True when KubeVirt can hot unplug this interface (bridge, secondary multus, hashed names)."""
    return (
        iface is not None
        and iface.binding is Binding.BRIDGE
        and network is not None
        and network.secondary
        and (vmi is None or not vmi.legacy_naming())
    )


def _add(
    causes: list[Cause],
    rule: RuleId,
    field: FieldPath,
    message: str,
    kind: CauseType = CauseType.FORBIDDEN,
) -> None:
    causes.append(Cause(rule=rule, type=kind, field=field.text, message=message))


def check_plug_binding(situation: Situation) -> list[Cause]:
    causes: list[Cause] = []
    for iface in situation.changes.plugged:
        binding = iface.binding
        if binding is Binding.BRIDGE or (
            binding is None and not _unbound_accepted(situation, iface)
        ):
            continue  # no or several bindings are kubevirt-spec findings
        if binding is Binding.SRIOV and situation.config.allow_sriov_plug:
            continue
        if binding is Binding.SRIOV:
            reason = (
                "SR-IOV hot plug is disabled by policy (it always needs a live migration; "
                "set allowSriovPlug to permit it)"
            )
        elif binding is None and iface.bindings:
            names = ", ".join(b.value for b in iface.bindings)
            reason = (
                f"it has several bindings ({names}); {situation.release.name} accepts that, "
                "but which "
                "one KubeVirt plugs is undefined (v1.9 refuses it): keep exactly one"
            )
        else:
            if binding is None:
                name = "no binding"
            elif binding is Binding.PLUGIN:
                name = "a binding plugin"
            else:
                name = f"{binding.value} binding"
            reason = f"KubeVirt never hot plugs interfaces with {name}, it would silently ignore it"
        _add(
            causes,
            RuleId.PLUG_BINDING,
            paths.interface(iface.position),
            f"'{iface.name}' cannot be hot plugged: {reason}; use 'bridge: {{}}' or "
            f"{AUTO_RESTART_HINT}",
        )
    return causes


def _unbound_accepted(situation: Situation, iface: Interface) -> bool:
    """No binding, or several binding methods: KubeVirt's webhook accepts both before v1.9
    (it refuses only a plugin beside a method, a kubevirt-spec finding), yet its
    controller never plugs the first and plugs the second with an undefined binding."""
    return situation.release.before(9) and Binding.PLUGIN not in iface.bindings


def check_plug_model(situation: Situation) -> list[Cause]:
    causes: list[Cause] = []
    for iface in situation.changes.plugged:
        if iface.model and iface.model != "virtio":
            _add(
                causes,
                RuleId.PLUG_MODEL,
                paths.interface(iface.position).child("model"),
                f"'{iface.name}' uses model '{iface.model}': only virtio interfaces can be hot "
                "plugged into the reserved PCIe ports; set model: virtio or remove the model",
                CauseType.NOT_SUPPORTED,
            )
    return causes


def check_plug_network(situation: Situation) -> list[Cause]:
    causes: list[Cause] = []
    for iface in situation.changes.plugged:
        net = situation.spec.network(iface.name)
        if net is None or not net.sources:
            continue  # pairing and source problems are kubevirt-spec findings
        if net.secondary and net.multus_name:
            continue
        if net.pod:
            what = "the pod network"
        elif net.multus and net.multus_default:
            what = "the default multus network"
        elif net.multus:
            what = "a multus network without networkName"
        else:
            what = f"a {'/'.join(net.sources)} network"
        _add(
            causes,
            RuleId.PLUG_NETWORK,
            paths.network(net.position),
            f"'{iface.name}' is on {what}: only secondary multus networks (networkName set, "
            "default not true) can be hot plugged",
        )
    return causes


def _plugged_nads(situation: Situation) -> list[tuple[Interface, Network, str, str]]:
    """(interface, network, namespace, name) of the NAD each plugged interface refers to."""
    nads = []
    for iface in situation.changes.plugged:
        net = situation.spec.network(iface.name)
        if net is None or not net.multus or not net.multus_name:
            continue
        namespace, _, name = net.multus_name.rpartition("/")
        nads.append((iface, net, namespace or situation.namespace, name))
    return nads


def check_nad_namespace(situation: Situation) -> list[Cause]:
    causes: list[Cause] = []
    for iface, net, namespace, name in _plugged_nads(situation):
        if namespace != situation.namespace:
            _add(
                causes,
                RuleId.NAD_NAMESPACE,
                paths.network(net.position).child("multus").child("networkName"),
                f"'{iface.name}' refers to NetworkAttachmentDefinition '{namespace}/{name}' in "
                f"another namespace; create it in '{situation.namespace}' and use "
                f"networkName: {name}",
            )
    return causes


def check_nad_exists(situation: Situation) -> list[Cause]:
    causes: list[Cause] = []
    known = situation.context.nads
    if known is None:
        return causes  # the engine turns unknown existence into a warning, see engine._unknowns
    for iface, net, namespace, name in _plugged_nads(situation):
        if f"{namespace}/{name}" not in known:
            _add(
                causes,
                RuleId.NAD_EXISTS,
                paths.network(net.position).child("multus").child("networkName"),
                f"NetworkAttachmentDefinition '{namespace}/{name}' for '{iface.name}' does not "
                "exist; create it first (virt-controller would fail to render the pod)",
                CauseType.INVALID,
            )
    return causes


def check_machine_type(situation: Situation) -> list[Cause]:
    causes: list[Cause] = []
    if supports_pcie_hotplug(situation.spec) or situation.flat_bus:
        return causes  # s390x hot plugs without ports; engine notes say it is unverified
    machine = situation.spec.machine_type or "default"
    arch = situation.spec.architecture or "default"
    for iface in situation.changes.plugged:
        _add(
            causes,
            RuleId.MACHINE_TYPE,
            paths.SPEC.child("domain").child("machine").child("type"),
            f"'{iface.name}' cannot be hot plugged: machine type '{machine}' on architecture "
            f"'{arch}' has no PCIe hot plug ports (q35 or virt on amd64/arm64 only); "
            f"{AUTO_RESTART_HINT}",
        )
    return causes


NO_LEDGER = Ledger()


def current_run_ledger(situation: Situation) -> Ledger:
    """The ledger if it belongs to the VMI that runs now, else an empty one."""
    if (
        situation.vmi is not None
        and situation.vmi.uid
        and situation.ledger.vmi != situation.vmi.uid
    ):
        return NO_LEDGER
    return situation.ledger


def capacity(situation: Situation) -> Capacity:
    ledger = current_run_ledger(situation)
    vmi = situation.vmi
    return measure(
        vmi=vmi,
        boot_spec=vmi.spec if vmi is not None else situation.old.spec,
        release=situation.release,
        ledger=ledger,
        present=frozenset(situation.spec.present_names()) if ledger.interfaces else frozenset(),
        # KubeVirt reads the annotation from the VMI as it defines the domain, and the VMI
        # took its annotations from the template it started from: one set on the VM's own
        # metadata, or on the template after the start, changes nothing in this run. Without
        # the VMI, the template of the stored VM stands in for what it started from.
        root_complex=on_root_complex(
            vmi.annotations if vmi is not None else situation.old.template_annotations
        ),
        site=situation.config.hotplug_slots,
    )


def check_hotplug_slots(situation: Situation) -> list[Cause]:
    causes: list[Cause] = []
    if situation.flat_bus:
        return causes
    cap = situation.capacity
    if cap.root_complex:
        spare = situation.config.root_complex_spare_slots
        for number, iface in enumerate(situation.changes.plugged, start=len(cap.hotplugged) + 1):
            if number > spare:
                _add(
                    causes,
                    RuleId.HOTPLUG_SLOTS,
                    paths.interface(iface.position),
                    f"'{iface.name}' would be hot plugged interface {number} in this run, but with "
                    "kubevirt.io/placePCIDevicesOnRootComplex KubeVirt reserves no ports and only "
                    f"{spare} spare PCIe port remains; {AUTO_RESTART_HINT}",
                )
        return causes
    present = sum(1 for iface in situation.spec.interfaces if not iface.absent)
    excess = present - cap.limit
    if excess <= 0:
        return causes
    site = cap.site_limit
    if site is not None and site < cap.ports:
        why = (
            f"the site policy allows {site} including existing ones (hotplugSlots={cap.site}, "
            f"booted with {cap.booted})"
        )
    else:
        why = cap.describe()
    for iface in situation.changes.plugged[-excess:]:
        _add(
            causes,
            RuleId.HOTPLUG_SLOTS,
            paths.interface(iface.position),
            f"'{iface.name}' would make {present} interfaces, but {why}; unplug one first "
            f"(state: absent) or {AUTO_RESTART_HINT}",
        )
    return causes


def check_pci_slots(situation: Situation) -> list[Cause]:
    causes: list[Cause] = []
    if situation.flat_bus:
        return causes
    cap = situation.capacity
    # A plug into a port KubeVirt reserved at boot takes no new slot; only plugs
    # beyond the free reserved ports add devices to the bus.
    reserved = 0 if cap.root_complex else max(0, cap.reservation.total - cap.disks)
    free_before = max(0, reserved - len(cap.hotplugged))
    free_after = max(0, free_before - len(situation.changes.plugged))
    added = len(situation.changes.plugged) - (free_before - free_after)
    if added <= 0:
        return causes
    estimate = estimate_pci(situation.spec, reserved_ports=free_after)
    if estimate.total <= situation.config.pci_slots:
        return causes
    iface = situation.changes.plugged[-1]
    _add(
        causes,
        RuleId.PCI_SLOTS,
        paths.interface(iface.position),
        f"'{iface.name}' needs a new PCI slot but the VM would use an estimated "
        f"{estimate.total} of {situation.config.pci_slots} ({estimate.describe()}); "
        "remove a device "
        f"or {AUTO_RESTART_HINT}",
    )
    return causes


def check_live_migratable(situation: Situation) -> list[Cause]:
    causes: list[Cause] = []
    if situation.vmi is None:
        return causes
    condition = situation.vmi.conditions.get("LiveMigratable")
    if condition is None or condition.status != "False":
        return causes
    detail = ": ".join(part for part in (condition.reason, condition.message) if part)
    why = f"the VMI is not live migratable ({detail or 'LiveMigratable=False'})"
    migration = situation.config.completion is Completion.MIGRATION
    plugged = situation.changes.plugged
    if plugged and (migration or any(Binding.SRIOV in iface.bindings for iface in plugged)):
        names = ", ".join(f"'{i.name}'" for i in plugged)
        _add(
            causes,
            RuleId.LIVE_MIGRATABLE,
            paths.interface(plugged[0].position),
            f"{names} would reach the guest only through a live migration, but {why}; "
            f"{AUTO_RESTART_HINT}",
        )
        return causes
    # An unplug leaves the guest at once (virt-launcher detaches an absent NIC on
    # sync); only the pod interface waits for a migration, and since v1.6 KubeVirt
    # restarts a VM that cannot migrate for it when the CR lists Evict.
    unplugged = situation.changes.unplugged
    if (
        unplugged
        and migration
        and EVICT in situation.cluster.workload_update_methods
        and not situation.release.before(6)
    ):
        names = ", ".join(f"'{i.name}'" for i in unplugged)
        _add(
            causes,
            RuleId.LIVE_MIGRATABLE,
            paths.interface(unplugged[0].position).child("state"),
            f"{names} would leave the guest at once, but its pod interface stays until a "
            f"migration; {why} and the KubeVirt CR lists Evict in "
            "spec.workloadUpdateStrategy.workloadUpdateMethods, so "
            f"{situation.release.name} would evict "
            f"(restart) the VM to finish; {AUTO_RESTART_HINT}",
        )
    return causes


def check_unplug_legacy_naming(situation: Situation) -> list[Cause]:
    causes: list[Cause] = []
    if situation.vmi is None or not situation.vmi.legacy_naming():
        return causes
    for iface in situation.changes.unplugged:
        _add(
            causes,
            RuleId.UNPLUG_LEGACY_NAMING,
            paths.interface(iface.position).child("state"),
            f"'{iface.name}' cannot be hot unplugged: the VM's pod uses ordinal interface names "
            "(started before KubeVirt v1.0 / OpenShift 4.14), which KubeVirt cannot unplug; "
            "restart the VM once, then unplug",
        )
    return causes


def check_unplug_cancel(situation: Situation) -> list[Cause]:
    causes: list[Cause] = []
    if situation.vmi is None:
        return causes  # without the VMI the engine can only warn, see engine._unknowns
    for iface in situation.changes.cancelled:
        running = situation.vmi.spec.interface(iface.name)
        if running is not None and running.absent:
            _add(
                causes,
                RuleId.UNPLUG_CANCEL,
                paths.interface(iface.position).child("state"),
                f"the hot unplug of '{iface.name}' is already underway and cannot be cancelled "
                "(KubeVirt ignores this change); wait until KubeVirt removes it, then plug it "
                "again",
            )
    return causes


def check_plain_removal(situation: Situation) -> list[Cause]:
    causes: list[Cause] = []
    for removal in situation.changes.removed:
        old_iface = situation.old.spec.interface(removal.name)
        old_net = situation.old.spec.network(removal.name)
        field = paths.INTERFACES if removal.interface is not None else paths.NETWORKS
        if removal_eligible(old_net, old_iface, situation.vmi):
            if situation.config.on_plain_removal.value == "allow":
                continue
            _add(
                causes,
                RuleId.PLAIN_REMOVAL,
                field,
                f"'{removal.name}' was deleted from a running VM, which forces a restart; to hot "
                "unplug it keep the interface and its network and set state: absent",
            )
            continue
        why = _ineligible_reason(old_iface, old_net, situation.vmi)
        _add(
            causes,
            RuleId.PLAIN_REMOVAL,
            field,
            f"'{removal.name}' cannot be hot unplugged ({why}); deleting it takes effect only "
            f"after a restart: {AUTO_RESTART_HINT}",
        )
    return causes


def _ineligible_reason(iface: Interface | None, net: Network | None, vmi: Instance | None) -> str:
    if net is not None and net.default:
        return "it is on the VM's default network"
    if iface is not None and iface.binding is not Binding.BRIDGE:
        binding = iface.binding.value if iface.binding is not None else "no single"
        return f"it uses {binding} binding, only bridge can be unplugged"
    if vmi is not None and vmi.legacy_naming():
        return "the VM's pod uses ordinal interface names from before KubeVirt v1.0"
    return "only bridge interfaces on secondary multus networks can be unplugged"


def check_restart_required(situation: Situation) -> list[Cause]:
    causes: list[Cause] = []
    # From v1.6 KubeVirt compares the VM template with the VMI (`IsRestartRequired`):
    # a change back to what runs clears RestartRequired, and an entry the VMI does
    # not have yet is hot plugged as it is. Before, and without a VMI, the old VM
    # is the best picture of what runs.
    vmi = (
        situation.vmi.spec if situation.vmi is not None and situation.release.at_least(6) else None
    )
    release = situation.release.name if situation.release.known else "KubeVirt"
    when = f"{release} applies this only after a restart"
    for change in situation.changes.modified:
        fields = change.fields
        if change.interface is not None:
            if vmi is not None:
                running = vmi.raw_interfaces.get(change.name)
                if running is None:
                    continue
                fields = changed_fields(running[1], change.interface.raw, ignore="state")
                if not fields:
                    continue
            _add(
                causes,
                RuleId.RESTART_REQUIRED,
                paths.interface(change.interface.position),
                f"interface '{change.name}' changed ({', '.join(fields)}); {when}",
                CauseType.INVALID,
            )
        elif change.network is not None:
            before = situation.old.spec.raw_networks.get(change.name)
            if vmi is not None:
                before = vmi.raw_networks.get(change.name)
                if before is None:
                    continue
                fields = changed_fields(before[1], change.network.raw)
                if not fields:
                    continue
            swap = before is not None and _only_nad_changed(before[1], change.network.raw)
            if swap and _nad_swap_live(situation):
                continue
            _add(
                causes,
                RuleId.RESTART_REQUIRED,
                paths.network(change.network.position),
                f"network '{change.name}' changed ({', '.join(fields)}); {when}"
                f"{_nad_swap_note(situation) if swap else ''}",
                CauseType.INVALID,
            )
    if (
        situation.changes.declared and not situation.changes.plugged
    ):  # with a plug, implicit-pod-network judges
        pod = running_pod_interface(situation)
        problem = declaration_problem(situation, pod) if pod is not None else None
        if problem is not None:
            _add(
                causes,
                RuleId.RESTART_REQUIRED,
                paths.interface(situation.changes.declared[0].position),
                f"{problem}; {when}",
                CauseType.INVALID,
            )
    return causes


def _only_nad_changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Only `multus.networkName` differs (a NAD swap)."""
    old, new = before.get("multus"), after.get("multus")
    if (
        not isinstance(old, dict)
        or not isinstance(new, dict)
        or changed_fields(before, after) != ("multus",)
    ):
        return False
    return changed_fields(old, new) == ("networkName",)


def _nad_swap_live(situation: Situation) -> bool:
    """KubeVirt swaps the NAD of a running VM: always from v1.9, with its gate in v1.8."""
    return situation.release.at_least(9) or (
        situation.release.at_least(8) and NAD_SWAP_GATE in situation.cluster.feature_gates
    )


def _nad_swap_note(situation: Situation) -> str:
    if situation.release.at_least(8):
        return f" (enable the {NAD_SWAP_GATE} feature gate to swap it with a live migration)"
    return " (KubeVirt v1.8+ swaps networkName with a live migration)"


def running_pod_interface(situation: Situation) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The pod interface and network KubeVirt added by itself (None: there is none).

    Only for a VM whose old template lists no interfaces and networks. The VMI's
    entries when known; else what KubeVirt adds: `{name: default, <the CR's
    defaultNetworkInterface, bridge upstream>: {}}` on `{name: default, pod: {}}`.
    """
    if not implicit_pod_interface(situation.old.spec):
        return None
    if situation.vmi is not None:
        spec = situation.vmi.spec
        for net in spec.networks:
            if net.pod:
                entry = spec.raw_interfaces.get(net.name)
                return (entry[1] if entry is not None else {"name": net.name}), net.raw
        return None  # autoattachPodInterface: false, or a multus default network
    return {"name": "default", situation.cluster.default_interface: {}}, {
        "name": "default",
        "pod": {},
    }


def declaration_problem(
    situation: Situation, running: tuple[dict[str, Any], dict[str, Any]]
) -> str | None:
    """How the new template's pod interface differs from the one that runs; None if it matches."""
    iface, net = running
    name = text(iface.get("name"))
    declared = situation.spec.raw_interfaces.get(name)
    declared_net = situation.spec.raw_networks.get(name)
    if declared is None or declared_net is None or declared_net[1].get("pod") is None:
        return f"the template does not declare '{name}' as it runs: {flow(iface)} on {flow(net)}"
    runs = "the VMI runs" if situation.vmi is not None else "KubeVirt adds"
    if changed_fields(net, declared_net[1]):
        return f"the template declares {flow(declared_net[1])} but {runs} {flow(net)}"
    if not changed_fields(iface, declared[1], ignore="state"):
        return None
    if situation.vmi is None and not situation.cluster.known and _default_binding_only(declared[1]):
        return None  # without the CR, either binding KubeVirt can be configured with may run
    return f"the template declares {flow(declared[1])} but {runs} {flow(iface)}"


def _default_binding_only(iface: Mapping[str, Any]) -> bool:
    keys = set(iface) - {"name", "state"}
    return keys in ({"bridge"}, {"masquerade"}) and all(iface[k] == {} for k in keys)


def flow(value: object) -> str:
    """`value` in YAML flow style, `name` first: `{name: default, bridge: {}}`."""
    if isinstance(value, dict):
        keys = sorted(value, key=lambda key: key != "name")
        return "{" + ", ".join([f"{key}: {flow(value[key])}" for key in keys]) + "}"
    if isinstance(value, list):
        return "[" + ", ".join([flow(item) for item in value]) + "]"
    if isinstance(value, bool) or value is None:
        return "null" if value is None else str(value).lower()
    return str(value)


def check_implicit_pod_network(situation: Situation) -> list[Cause]:
    causes: list[Cause] = []
    running = running_pod_interface(situation)
    if running is None:
        return causes
    iface, net = running
    name = text(iface.get("name"))
    if name in situation.spec.raw_interfaces or name in situation.spec.raw_networks:
        problem = declaration_problem(situation, running)
        if problem is None:
            return causes
        what = f"{problem}, which changes it at the next restart; declare it as it runs"
    else:
        plugged = situation.changes.plugged[0].name
        what = f"plugging '{plugged}' would drop it at the next restart; also declare it"
    _add(
        causes,
        RuleId.IMPLICIT_POD_NETWORK,
        paths.INTERFACES,
        f"the VM relies on the pod network KubeVirt adds implicitly; {what}: interfaces: "
        f"[{flow(iface)}] and networks: [{flow(net)}]",
    )
    return causes


def check_kubevirt_release(situation: Situation) -> list[Cause]:
    causes: list[Cause] = []
    release = situation.release
    if release.before(1):
        reason = (
            f"{release.name} hot plugs interfaces only through virtctl addinterface and "
            "removeinterface; an edited VM changes at its next restart"
        )
        fix = "use virtctl"
    elif release.before(4) and HOTPLUG_NICS_GATE not in situation.cluster.feature_gates:
        reason = (
            f"{release.name} hot plugs interfaces only with the {HOTPLUG_NICS_GATE} feature gate, "
            "which the KubeVirt CR does not list in "
            "spec.configuration.developerConfiguration.featureGates, so the change would wait "
            "for a restart"
        )
        fix = "enable the gate"
    else:
        return causes
    for iface in situation.changes.plugged:
        _add(
            causes,
            RuleId.KUBEVIRT_RELEASE,
            paths.interface(iface.position),
            f"'{iface.name}' cannot be hot plugged: {reason}; {fix} or {AUTO_RESTART_HINT}",
        )
    for iface in situation.changes.unplugged:
        _add(
            causes,
            RuleId.KUBEVIRT_RELEASE,
            paths.interface(iface.position).child("state"),
            f"'{iface.name}' cannot be hot unplugged: {reason}; {fix} or {AUTO_RESTART_HINT}",
        )
    return causes


def notes(situation: Situation) -> list[str]:
    """Warnings about how the release affects an allowed change (each rule can mute its own)."""
    changes = situation.changes
    release = situation.release
    actions = situation.config.rules
    warnings = []
    if changes.hotplug and actions[RuleId.KUBEVIRT_RELEASE] is not Action.OFF and not release.known:
        warnings.append(
            f"{RuleId.KUBEVIRT_RELEASE}: the KubeVirt release is unknown (no "
            "status.observedKubeVirtVersion in a KubeVirt CR); judged by the rules of "
            "v1.0-v1.5: PCIe ports for 4 interfaces including existing ones"
        )
    if release.before(6) and actions[RuleId.RESTART_REQUIRED] is not Action.OFF:
        names = [iface.name for iface in changes.plugged + changes.unplugged]
        names.extend(_link_state_changes(situation))
        if names:
            warnings.append(
                f"{RuleId.RESTART_REQUIRED}: {release.name} also marks the VM RestartRequired "
                f"for {', '.join(repr(n) for n in names)} until it restarts (before v1.6 every "
                "interface change does)"
            )
    if changes.plugged and situation.flat_bus and actions[RuleId.MACHINE_TYPE] is not Action.OFF:
        warnings.append(
            f"{RuleId.MACHINE_TYPE}: hot plug on s390x is unverified: KubeVirt v1.9 runs its "
            "bridge hot plug tests there (earlier releases do not) and its flat bus has no PCIe "
            "ports to count"
        )
    return warnings


def _link_state_changes(situation: Situation) -> list[str]:
    """Interfaces whose link state (up, down or unset) changed."""
    names = []
    for iface in situation.spec.interfaces:
        entry = situation.old.spec.raw_interfaces.get(iface.name)
        if entry is None or iface.absent:
            continue
        before = text(entry[1].get("state"))
        if before not in (ABSENT, iface.state):
            names.append(iface.name)
    return names


def check_hotplug_in_progress(situation: Situation) -> list[Cause]:
    causes: list[Cause] = []
    field = paths.interface((situation.changes.plugged + situation.changes.unplugged)[0].position)
    vmi = situation.vmi
    vmi_name = vmi.name if vmi is not None and vmi.name else situation.new.name
    for name, phase in unfinished_migrations(situation.context.migrations, vmi_name):
        _add(
            causes,
            RuleId.HOTPLUG_IN_PROGRESS,
            field,
            f"migration '{name}' of this VM is unfinished (phase {phase or 'new'}); wait until it "
            "succeeds or fails, then retry",
        )
    if situation.previous_unfinished is True:
        _add(
            causes,
            RuleId.HOTPLUG_IN_PROGRESS,
            field,
            "the previous hot plug request of this VM is not finished yet (see annotation "
            "hotplug-guard.io/status); wait until it completes, then retry",
        )
    return causes


def previous_request_unfinished(situation: Situation) -> bool | None:
    """True/False when known; None when neither the controller nor the VMI can tell."""
    request = parse_request(situation.old.annotations.get(REQUEST))
    if request is None:
        return False
    status = parse_status(situation.old.annotations.get(STATUS))
    if status is not None and status.id == request.id and status.finished:
        return False
    if situation.vmi is not None:
        if situation.ledger.vmi and situation.vmi.uid and situation.ledger.vmi != situation.vmi.uid:
            return False  # the VM restarted since: hot plugged NICs are ordinary now
        plugged_done = all(
            (entry := situation.vmi.status_interfaces.get(name)) is not None
            and "domain" in entry.info_source
            for name in request.plug
        )
        unplugged_done = all(name not in situation.vmi.status_interfaces for name in request.unplug)
        return not (plugged_done and unplugged_done)
    if status is not None and status.id == request.id:
        return True
    return None


Trigger = Callable[[Changes], bool]


def _plugs(changes: Changes) -> bool:
    return bool(changes.plugged)


def _hotplug(changes: Changes) -> bool:
    return bool(changes.plugged or changes.unplugged)


def _unplugs(changes: Changes) -> bool:
    return bool(changes.unplugged)


def _cancels(changes: Changes) -> bool:
    return bool(changes.cancelled)


def _removals(changes: Changes) -> bool:
    return bool(changes.removed)


def _modifications(changes: Changes) -> bool:
    return bool(changes.modified or changes.declared)


# The kind of change each hot plug phase is named after: its rules run only when it occurs.
TRIGGERS: Final[dict[RulePhase, Trigger]] = {
    RulePhase.PLUG: _plugs,
    RulePhase.UNPLUG: _unplugs,
    RulePhase.HOTPLUG: _hotplug,
    RulePhase.CANCEL: _cancels,
    RulePhase.REMOVAL: _removals,
    RulePhase.MODIFICATION: _modifications,
}
