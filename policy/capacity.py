"""How many interfaces fit into a running VM: KubeVirt's reservation for this run.

The VMI is the truth: its annotations say which formula its domain was built
with (`kubevirt.io/pci-interface-slot-count`, `kubevirt.io/pci-topology-version`),
its spec at boot gives the interface count, devices and memory the formula read.
The release the cluster runs fills in what the VMI does not say.
"""

from __future__ import annotations

from typing import Final, final

from policy.annotations import Ledger
from policy.cluster import Release
from policy.instances import Instance
from policy.slots import (
    TOPOLOGY_ANNOTATION,
    Formula,
    Reservation,
    count_pci_devices,
    guest_memory,
    hotplugged_virtio_disks,
    release_formula,
    reserve,
    slot_count,
)
from policy.values import Value
from policy.views import EMPTY, Spec, text

FROZEN_NOTE = "kubevirt.io/pci-interface-slot-count"


@final
class Capacity(Value):
    """KubeVirt's interface port reservation for the current run of the VM.

    booted: interfaces the VMI booted with; reservation: the free ports KubeVirt
    reserved at boot by `formula` (or by the VMI's frozen `slot_total`); disks:
    reserved ports hot plugged disks took since; site: the policy's
    `hotplugSlots` when set to a number; hotplugged: interfaces hot plugged in
    this run and still present; basis: what the formula was chosen from, for
    messages.
    """

    FIELDS = (
        "root_complex",
        "formula",
        "slot_total",
        "basis",
        "booted",
        "reservation",
        "disks",
        "site",
        "hotplugged",
    )

    def __init__(
        self,
        *,
        root_complex: bool,
        formula: Formula,
        slot_total: int | None,
        basis: str,
        booted: int,
        reservation: Reservation,
        disks: int,
        site: int | None,
        hotplugged: tuple[str, ...],
    ) -> None:
        self.root_complex: Final = root_complex
        self.formula: Final = formula
        self.slot_total: Final = slot_total
        self.basis: Final = basis
        self.booted: Final = booted
        self.reservation: Final = reservation
        self.disks: Final = disks
        self.site: Final = site
        self.hotplugged: Final = hotplugged

    @property
    def ports(self) -> int:
        """Interfaces KubeVirt has PCIe ports for in this run, existing ones included."""
        return max(0, self.booted + self.reservation.total - self.disks)

    @property
    def site_limit(self) -> int | None:
        """The site policy's limit; a VM that booted with more keeps what it has."""
        return None if self.site is None else max(self.site, self.booted)

    @property
    def limit(self) -> int:
        site = self.site_limit
        return self.ports if site is None else min(self.ports, site)

    def describe(self) -> str:
        """How KubeVirt's number came about, for messages."""
        if self.slot_total is not None:
            how = (
                f"the VMI's {FROZEN_NOTE}={self.slot_total} keeps the ports it booted with "
                "(formula v2, shared with disk hot plug)"
            )
        elif self.formula is Formula.V1:
            how = "formula v1: 4 minus the interfaces at boot"
        elif self.formula is Formula.V2:
            how = "formula v2, shared with disk hot plug"
        else:
            how = (
                f"formula v3: {self.reservation.placeholders} placeholder ports and "
                f"{self.reservation.extra} extra root ports, shared with disk hot plug"
            )
        disks = f"; hot plugged disks took {self.disks}" if self.disks else ""
        return (
            f"{self.basis} reserved {self.reservation.total} free PCIe ports for this VM at boot "
            f"({how}{disks}), room for {self.ports} interfaces including the {self.booted} it "
            "booted with"
        )


def measure(
    *,
    vmi: Instance | None,
    boot_spec: Spec,
    release: Release,
    ledger: Ledger,
    present: frozenset[str],
    root_complex: bool,
    site: int | None,
) -> Capacity:
    """The capacity of the run the VMI is in (`boot_spec`: the VMI spec, else the old VM's).

    `ledger` is the VM's ledger for this run (empty when it belongs to another
    run); `present`: names of the non-absent interfaces after the update.
    """
    slot_total = slot_count(vmi.annotations if vmi is not None else EMPTY)
    formula, basis = _formula(vmi, release, frozen=slot_total is not None)
    booted = boot_count(vmi, boot_spec, ledger)
    skip = vmi.hotplugged_volumes if vmi is not None else frozenset()
    v1 = formula is Formula.V1  # needs neither memory nor devices
    reservation = reserve(
        formula,
        interfaces=booted,
        memory=0 if v1 else guest_memory(boot_spec) or 0,
        ports_in_use=0 if v1 else count_pci_devices(boot_spec, interfaces=booted, skip_disks=skip),
        slot_total=slot_total,
        root_complex=root_complex,
    )
    if slot_total is not None:
        # A VMI that KubeVirt found booted with formula v2 has exactly the frozen total;
        # one restarted with it also has extra root ports, but the two look alike.
        reservation = Reservation(placeholders=reservation.placeholders)
    return Capacity(
        root_complex=root_complex,
        formula=formula,
        slot_total=slot_total,
        basis=basis,
        booted=booted,
        reservation=reservation,
        disks=hotplugged_virtio_disks(vmi.spec, skip) if vmi is not None else 0,
        site=site,
        hotplugged=tuple([name for name in ledger.interfaces if name in present]),
    )


def recorded_boot_count(vmi: Instance | None, ledger: Ledger) -> int | None:
    """The interfaces this run booted with as far as the ledger and the VMI tell.

    The ledger's count wins: KubeVirt drops an unplugged interface from the VMI
    spec once it is gone from the status, while its port stays. Otherwise every
    VMI interface not hot plugged in this run counts, absent ones included
    (their ports were there at boot). None without either.
    """
    if ledger.booted is not None:
        return ledger.booted
    if vmi is None:
        return None
    return len([name for name in vmi.spec.raw_interfaces if name not in ledger.interfaces])


def boot_count(vmi: Instance | None, boot_spec: Spec, ledger: Ledger) -> int:
    """`recorded_boot_count`, else the old VM's non-absent interfaces not hot plugged in
    this run, or the pod interface KubeVirt adds to a VM that lists none."""
    recorded = recorded_boot_count(vmi, ledger)
    if recorded is not None:
        return recorded
    names = [name for name in boot_spec.present_names() if name not in ledger.interfaces]
    if not names and implicit_pod_interface(boot_spec):
        return 1
    return len(names)


def implicit_pod_interface(spec: Spec) -> bool:
    """True when KubeVirt adds the pod interface to the VMI by itself."""
    return (
        not spec.interfaces_listed
        and not spec.networks_listed
        and spec.devices.get("autoattachPodInterface") is not False
    )


def _formula(vmi: Instance | None, release: Release, *, frozen: bool) -> tuple[Formula, str]:
    """The formula the running VMI's domain was built with, and what says so."""
    if frozen:
        return Formula.V3, release.name if release.known else "KubeVirt"
    if vmi is not None and text(vmi.annotations.get(TOPOLOGY_ANNOTATION)) == "v3":
        return Formula.V3, release.name if release.known else "KubeVirt v1.6.4 or later"
    formula = release_formula(release)
    if formula is Formula.V3 and vmi is not None:
        # KubeVirt marks every VMI it creates with formula v3; one without the mark
        # booted before the cluster reached v3 and keeps the older ports until it
        # restarts. v1 is the smaller of the two older formulas.
        return Formula.V1, (
            f"{release.name} runs formula v3, but this VMI has no {TOPOLOGY_ANNOTATION} (it "
            "booted with an older release), so KubeVirt"
        )
    if not release.known:
        return formula, "KubeVirt (release unknown, assuming v1.0-v1.5)"
    return formula, release.name
