"""Hot plug rules: what an UPDATE of a running VM may change, and how.

Each rule is a plain function `(Situation) -> Iterator[Cause]`; `RULES` lists
them in evaluation order with the kind of change each judges. They only run for
UPDATEs of running VMs by users who are not exempt, and only when their kind of
change occurs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Final, final

from policy import paths
from policy.annotations import REQUEST, STATUS, Ledger, parse_request, parse_status
from policy.catalogue import RuleId
from policy.changes import Changes
from policy.config import Completion, PolicyConfig
from policy.instances import Instance, unfinished_migrations
from policy.review import Context
from policy.slots import estimate_pci, on_root_complex, slot_count, supports_pcie_hotplug
from policy.values import Value
from policy.verdicts import Cause, CauseType
from policy.views import Binding, Interface, Network, Spec, VirtualMachine

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


def _cause(rule: RuleId, field: str, message: str, kind: CauseType = CauseType.FORBIDDEN) -> Cause:
    return Cause(rule=rule, type=kind, field=field, message=message)


def check_plug_binding(s: Situation) -> Iterator[Cause]:
    for iface in s.changes.plugged:
        binding = iface.binding
        if binding is Binding.BRIDGE or binding is None:
            continue  # no binding at all is a kubevirt-spec finding
        if binding is Binding.SRIOV and s.config.allow_sriov_plug:
            continue
        if binding is Binding.SRIOV:
            reason = (
                "SR-IOV hot plug is disabled by policy (it always needs a live migration; "
                "set allowSriovPlug to permit it)"
            )
        else:
            name = "a binding plugin" if binding is Binding.PLUGIN else f"{binding.value} binding"
            reason = f"KubeVirt never hot plugs interfaces with {name}, it would silently ignore it"
        yield _cause(
            RuleId.PLUG_BINDING,
            paths.interface(iface.position),
            f"'{iface.name}' cannot be hot plugged: {reason}; use 'bridge: {{}}' or "
            f"{AUTO_RESTART_HINT}",
        )


def check_plug_model(s: Situation) -> Iterator[Cause]:
    for iface in s.changes.plugged:
        if iface.model and iface.model != "virtio":
            yield _cause(
                RuleId.PLUG_MODEL,
                paths.interface(iface.position, "model"),
                f"'{iface.name}' uses model '{iface.model}': only virtio interfaces can be hot "
                "plugged into the reserved PCIe ports; set model: virtio or remove the model",
                CauseType.NOT_SUPPORTED,
            )


def check_plug_network(s: Situation) -> Iterator[Cause]:
    for iface in s.changes.plugged:
        net = s.spec.network(iface.name)
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
        yield _cause(
            RuleId.PLUG_NETWORK,
            paths.network(net.position),
            f"'{iface.name}' is on {what}: only secondary multus networks (networkName set, "
            "default not true) can be hot plugged",
        )


def _plugged_nads(s: Situation) -> Iterator[tuple[Interface, Network, str, str]]:
    """(interface, network, namespace, name) of the NAD each plugged interface refers to."""
    for iface in s.changes.plugged:
        net = s.spec.network(iface.name)
        if net is None or not net.multus or not net.multus_name:
            continue
        namespace, _, name = net.multus_name.rpartition("/")
        yield iface, net, namespace or s.namespace, name


def check_nad_namespace(s: Situation) -> Iterator[Cause]:
    for iface, net, namespace, name in _plugged_nads(s):
        if namespace != s.namespace:
            yield _cause(
                RuleId.NAD_NAMESPACE,
                paths.network(net.position, "multus.networkName"),
                f"'{iface.name}' refers to NetworkAttachmentDefinition '{namespace}/{name}' in "
                f"another namespace; create it in '{s.namespace}' and use networkName: {name}",
            )


def check_nad_exists(s: Situation) -> Iterator[Cause]:
    known = s.context.nads
    if known is None:
        return  # the engine turns unknown existence into a warning, see engine._unknowns
    for iface, net, namespace, name in _plugged_nads(s):
        if f"{namespace}/{name}" not in known:
            yield _cause(
                RuleId.NAD_EXISTS,
                paths.network(net.position, "multus.networkName"),
                f"NetworkAttachmentDefinition '{namespace}/{name}' for '{iface.name}' does not "
                "exist; create it first (virt-controller would fail to render the pod)",
                CauseType.INVALID,
            )


def check_machine_type(s: Situation) -> Iterator[Cause]:
    if supports_pcie_hotplug(s.spec):
        return
    machine = s.spec.machine_type or "default"
    arch = s.spec.architecture or "default"
    for iface in s.changes.plugged:
        yield _cause(
            RuleId.MACHINE_TYPE,
            f"{paths.SPEC}.domain.machine.type",
            f"'{iface.name}' cannot be hot plugged: machine type '{machine}' on architecture "
            f"'{arch}' has no PCIe hot plug ports (q35 or virt on amd64/arm64 only); "
            f"{AUTO_RESTART_HINT}",
        )


@final
class Capacity(Value):
    """KubeVirt's interface port reservation for the current run of the VM.

    configured: kubevirt.io/pci-interface-slot-count, when set; slots: C, the
    configured count or the policy's hotplugSlots; booted: N_boot, non-absent
    interfaces the VM booted with; hotplugged: hot plugged earlier in this run
    and still present.
    """

    FIELDS = ("root_complex", "configured", "slots", "booted", "hotplugged")

    def __init__(
        self,
        *,
        root_complex: bool,
        configured: int | None,
        slots: int,
        booted: int,
        hotplugged: tuple[str, ...],
    ) -> None:
        self.root_complex: Final = root_complex
        self.configured: Final = configured
        self.slots: Final = slots
        self.booted: Final = booted
        self.hotplugged: Final = hotplugged

    @property
    def limit(self) -> int:
        return max(self.slots, self.booted)


def current_run_ledger(s: Situation) -> tuple[str, ...]:
    """Interfaces the ledger says were hot plugged in the VMI that runs now."""
    if s.vmi is not None and s.vmi.uid and s.ledger.vmi != s.vmi.uid:
        return ()
    return s.ledger.interfaces


def capacity(s: Situation) -> Capacity:
    vmi_annotations = s.vmi.annotations if s.vmi is not None else {}
    annotation_sets = (s.new.template_annotations, vmi_annotations, s.new.annotations)
    configured = slot_count(*annotation_sets)
    ledger = current_run_ledger(s)
    boot_spec = s.vmi.spec if s.vmi is not None else s.old.spec
    present = set(s.spec.present_names()) if ledger else set()
    return Capacity(
        root_complex=on_root_complex(*annotation_sets),
        configured=configured,
        slots=configured if configured is not None else s.config.hotplug_slots,
        booted=len([name for name in boot_spec.present_names() if name not in ledger]),
        hotplugged=tuple([name for name in ledger if name in present]),
    )


def check_hotplug_slots(s: Situation) -> Iterator[Cause]:
    cap = s.capacity
    if cap.root_complex:
        spare = s.config.root_complex_spare_slots
        for number, iface in enumerate(s.changes.plugged, start=len(cap.hotplugged) + 1):
            if number > spare:
                yield _cause(
                    RuleId.HOTPLUG_SLOTS,
                    paths.interface(iface.position),
                    f"'{iface.name}' would be hot plugged interface {number} in this run, but with "
                    "kubevirt.io/placePCIDevicesOnRootComplex KubeVirt reserves no ports and only "
                    f"{spare} spare PCIe port remains; {AUTO_RESTART_HINT}",
                )
        return
    present = sum(1 for iface in s.spec.interfaces if not iface.absent)
    excess = present - cap.limit
    if excess <= 0:
        return
    source = (
        "kubevirt.io/pci-interface-slot-count" if cap.configured is not None else "hotplugSlots"
    )
    for iface in s.changes.plugged[-excess:]:
        yield _cause(
            RuleId.HOTPLUG_SLOTS,
            paths.interface(iface.position),
            f"'{iface.name}' would make {present} interfaces, but KubeVirt reserved PCIe ports "
            f"for {cap.limit} including existing ones ({source}={cap.slots}, booted with "
            f"{cap.booted}); unplug one first (state: absent) or {AUTO_RESTART_HINT}",
        )


def check_pci_slots(s: Situation) -> Iterator[Cause]:
    cap = s.capacity
    # A plug into a port KubeVirt reserved at boot takes no new slot; only plugs
    # beyond the free reserved ports add devices to the bus.
    reserved = 0 if cap.root_complex or not cap.booted else max(0, cap.slots - cap.booted)
    free_before = max(0, reserved - len(cap.hotplugged))
    free_after = max(0, free_before - len(s.changes.plugged))
    added = len(s.changes.plugged) - (free_before - free_after)
    if added <= 0:
        return
    estimate = estimate_pci(s.spec, reserved_ports=free_after)
    if estimate.total <= s.config.pci_slots:
        return
    iface = s.changes.plugged[-1]
    yield _cause(
        RuleId.PCI_SLOTS,
        paths.interface(iface.position),
        f"'{iface.name}' needs a new PCI slot but the VM would use an estimated "
        f"{estimate.total} of {s.config.pci_slots} ({estimate.describe()}); remove a device "
        f"or {AUTO_RESTART_HINT}",
    )


def check_live_migratable(s: Situation) -> Iterator[Cause]:
    if s.vmi is None:
        return
    needs_migration = s.config.completion is Completion.MIGRATION or any(
        Binding.SRIOV in iface.bindings for iface in s.changes.plugged
    )
    condition = s.vmi.conditions.get("LiveMigratable")
    if not needs_migration or condition is None or condition.status != "False":
        return
    first = (s.changes.plugged + s.changes.unplugged)[0]
    names = ", ".join(f"'{i.name}'" for i in s.changes.plugged + s.changes.unplugged)
    detail = ": ".join(part for part in (condition.reason, condition.message) if part)
    yield _cause(
        RuleId.LIVE_MIGRATABLE,
        paths.interface(first.position),
        f"{names} would reach the guest only through a live migration, but the VMI is not live "
        f"migratable ({detail or 'LiveMigratable=False'}); {AUTO_RESTART_HINT}",
    )


def check_unplug_legacy_naming(s: Situation) -> Iterator[Cause]:
    if s.vmi is None or not s.vmi.legacy_naming():
        return
    for iface in s.changes.unplugged:
        yield _cause(
            RuleId.UNPLUG_LEGACY_NAMING,
            paths.interface(iface.position, "state"),
            f"'{iface.name}' cannot be hot unplugged: the VM's pod uses ordinal interface names "
            "(started before KubeVirt v1.0 / OpenShift 4.14), which KubeVirt cannot unplug; "
            "restart the VM once, then unplug",
        )


def check_unplug_cancel(s: Situation) -> Iterator[Cause]:
    if s.vmi is None:
        return  # without the VMI the engine can only warn, see engine._unknowns
    for iface in s.changes.cancelled:
        running = s.vmi.spec.interface(iface.name)
        if running is not None and running.absent:
            yield _cause(
                RuleId.UNPLUG_CANCEL,
                paths.interface(iface.position, "state"),
                f"the hot unplug of '{iface.name}' is already underway and cannot be cancelled "
                "(KubeVirt ignores this change); wait until KubeVirt removes it, then plug it "
                "again",
            )


def check_plain_removal(s: Situation) -> Iterator[Cause]:
    for removal in s.changes.removed:
        old_iface = s.old.spec.interface(removal.name)
        old_net = s.old.spec.network(removal.name)
        field = paths.INTERFACES if removal.interface is not None else paths.NETWORKS
        if removal_eligible(old_net, old_iface, s.vmi):
            if s.config.on_plain_removal.value == "allow":
                continue
            yield _cause(
                RuleId.PLAIN_REMOVAL,
                field,
                f"'{removal.name}' was deleted from a running VM, which forces a restart; to hot "
                "unplug it keep the interface and its network and set state: absent",
            )
            continue
        why = _ineligible_reason(old_iface, old_net, s.vmi)
        yield _cause(
            RuleId.PLAIN_REMOVAL,
            field,
            f"'{removal.name}' cannot be hot unplugged ({why}); deleting it takes effect only "
            f"after a restart: {AUTO_RESTART_HINT}",
        )


def _ineligible_reason(iface: Interface | None, net: Network | None, vmi: Instance | None) -> str:
    if net is not None and net.default:
        return "it is on the VM's default network"
    if iface is not None and iface.binding is not Binding.BRIDGE:
        binding = iface.binding.value if iface.binding is not None else "no single"
        return f"it uses {binding} binding, only bridge can be unplugged"
    if vmi is not None and vmi.legacy_naming():
        return "the VM's pod uses ordinal interface names from before KubeVirt v1.0"
    return "only bridge interfaces on secondary multus networks can be unplugged"


def check_restart_required(s: Situation) -> Iterator[Cause]:
    for change in s.changes.modified:
        if change.interface is not None:
            yield _cause(
                RuleId.RESTART_REQUIRED,
                paths.interface(change.interface.position),
                f"interface '{change.name}' changed ({', '.join(change.fields)}); KubeVirt "
                "applies this only after a restart",
                CauseType.INVALID,
            )
        elif change.network is not None:
            note = (
                " (KubeVirt v1.8+ swaps networkName with a live migration)"
                if change.fields == ("multus",)
                else ""
            )
            yield _cause(
                RuleId.RESTART_REQUIRED,
                paths.network(change.network.position),
                f"network '{change.name}' changed ({', '.join(change.fields)}); KubeVirt applies "
                f"this only after a restart{note}",
                CauseType.INVALID,
            )


def check_implicit_pod_network(s: Situation) -> Iterator[Cause]:
    old = s.old.spec
    if old.interfaces_listed or old.networks_listed:
        return
    if any(net.pod for net in s.spec.networks):
        return
    iface = s.changes.plugged[0]
    yield _cause(
        RuleId.IMPLICIT_POD_NETWORK,
        paths.INTERFACES,
        f"the VM relies on the pod network KubeVirt adds implicitly; plugging '{iface.name}' "
        "would drop it at the next restart; also declare it: interfaces: [{name: default, "
        "masquerade: {}}] and networks: [{name: default, pod: {}}]",
    )


def check_hotplug_in_progress(s: Situation) -> Iterator[Cause]:
    field = paths.interface((s.changes.plugged + s.changes.unplugged)[0].position)
    vmi = s.vmi
    vmi_name = vmi.name if vmi is not None and vmi.name else s.new.name
    for name, phase in unfinished_migrations(s.context.migrations, vmi_name):
        yield _cause(
            RuleId.HOTPLUG_IN_PROGRESS,
            field,
            f"migration '{name}' of this VM is unfinished (phase {phase or 'new'}); wait until it "
            "succeeds or fails, then retry",
        )
    if s.previous_unfinished is True:
        yield _cause(
            RuleId.HOTPLUG_IN_PROGRESS,
            field,
            "the previous hot plug request of this VM is not finished yet (see annotation "
            "hotplug-guard.io/status); wait until it completes, then retry",
        )


def previous_request_unfinished(s: Situation) -> bool | None:
    """True/False when known; None when neither the controller nor the VMI can tell."""
    request = parse_request(s.old.annotations.get(REQUEST))
    if request is None:
        return False
    status = parse_status(s.old.annotations.get(STATUS))
    if status is not None and status.id == request.id and status.finished:
        return False
    if s.vmi is not None:
        if s.ledger.vmi and s.vmi.uid and s.ledger.vmi != s.vmi.uid:
            return False  # the VM restarted since: hot plugged NICs are ordinary now
        plugged_done = all(
            (entry := s.vmi.status_interfaces.get(name)) is not None
            and "domain" in entry.info_source
            for name in request.plug
        )
        unplugged_done = all(name not in s.vmi.status_interfaces for name in request.unplug)
        return not (plugged_done and unplugged_done)
    if status is not None and status.id == request.id:
        return True
    return None


Rule = Callable[[Situation], Iterator[Cause]]
Trigger = Callable[[Changes], bool]


def _plugs(c: Changes) -> bool:
    return bool(c.plugged)


def _hotplug(c: Changes) -> bool:
    return bool(c.plugged or c.unplugged)


def _unplugs(c: Changes) -> bool:
    return bool(c.unplugged)


def _cancels(c: Changes) -> bool:
    return bool(c.cancelled)


def _removals(c: Changes) -> bool:
    return bool(c.removed)


def _modifications(c: Changes) -> bool:
    return bool(c.modified)


# (rule, check, the kind of change it judges): a rule runs only when its kind occurs.
RULES: tuple[tuple[RuleId, Rule, Trigger], ...] = (
    (RuleId.PLUG_BINDING, check_plug_binding, _plugs),
    (RuleId.PLUG_MODEL, check_plug_model, _plugs),
    (RuleId.PLUG_NETWORK, check_plug_network, _plugs),
    (RuleId.NAD_NAMESPACE, check_nad_namespace, _plugs),
    (RuleId.NAD_EXISTS, check_nad_exists, _plugs),
    (RuleId.MACHINE_TYPE, check_machine_type, _plugs),
    (RuleId.HOTPLUG_SLOTS, check_hotplug_slots, _plugs),
    (RuleId.PCI_SLOTS, check_pci_slots, _plugs),
    (RuleId.LIVE_MIGRATABLE, check_live_migratable, _hotplug),
    (RuleId.UNPLUG_LEGACY_NAMING, check_unplug_legacy_naming, _unplugs),
    (RuleId.UNPLUG_CANCEL, check_unplug_cancel, _cancels),
    (RuleId.PLAIN_REMOVAL, check_plain_removal, _removals),
    (RuleId.RESTART_REQUIRED, check_restart_required, _modifications),
    (RuleId.IMPLICIT_POD_NETWORK, check_implicit_pod_network, _plugs),
    (RuleId.HOTPLUG_IN_PROGRESS, check_hotplug_in_progress, _hotplug),
)
