"""PCI(e) capacity: KubeVirt's reserved hot plug ports by release, and an estimate of bus 0.

KubeVirt reserves PCIe root ports for hot plug once, when virt-launcher defines
the domain at boot (`lookupOrCreateVirDomain` -> `allocateHotplugPorts` runs only
when the domain does not exist yet; a migration target receives the source's
domain). Three formulas have shipped:

- v1 (v1.0-v1.5): `max(0, 4 - interfaces)` placeholder ports, none without
  interfaces or with `kubevirt.io/placePCIDevicesOnRootComplex: "true"`.
- v2 (v1.6.0-v1.6.3, v1.7.0-v1.7.1): `max(total - ports in use, minimum free)`,
  total/minimum 16/6 for guests above 2 GiB and 8/3 otherwise, shared with disk
  hot plug.
- v3 (v1.6.4+, v1.7.2+, v1.8, v1.9): the v1 placeholders (or
  `max(0, slot total - interfaces)` with the VMI's
  `kubevirt.io/pci-interface-slot-count`), plus bare root ports up to the v2
  number of free ports, never beyond PCI bus index 31.

Hot unplug detaches only the interface device, so its root port stays free for
the rest of the run.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any, Final, final

from policy.cluster import Release
from policy.values import Value
from policy.views import Spec, array, mapping, text

SLOT_COUNT_ANNOTATION = "kubevirt.io/pci-interface-slot-count"
TOPOLOGY_ANNOTATION = "kubevirt.io/pci-topology-version"
ROOT_COMPLEX_ANNOTATION = "kubevirt.io/placePCIDevicesOnRootComplex"
HOTPLUG_ARCHITECTURES = frozenset({"", "amd64", "arm64"})
FLAT_BUS_ARCHITECTURE = "s390x"  # channel I/O: no PCIe ports to count
CHIPSET_SLOTS = 2  # q35 host bridge (00.0) and the ICH9 LPC/SATA/SMBus functions (1f.x)

V1_RESERVED_INTERFACES = 4
LARGE_GUEST = 2 * 1024 * 1024 * 1024  # bytes; strictly above it the larger v2 numbers apply
V2_PORTS = {False: (8, 3), True: (16, 6)}  # large guest -> (total, minimum free)
MAX_PCI_BUS_INDEX = 31  # each root port takes one of the 32 slots of bus 0

ATOI = re.compile(r"[+-]?[0-9]{1,9}")
QUANTITY = re.compile(
    r"([0-9]{1,18}(?:\.[0-9]{0,18})?|\.[0-9]{1,18})(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]{1,2})?"
)
BINARY_SUFFIXES = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


class Formula(enum.StrEnum):
    """KubeVirt's hot plug port formulas, named as KubeVirt's pci-topology-version does."""

    V1 = "v1"
    V2 = "v2"
    V3 = "v3"


def release_formula(release: Release) -> Formula:
    """The formula a release applies when it defines a domain (v1 when unknown)."""
    if not release.at_least(6):
        return Formula.V1
    if release.before(6, 4) or (release.at_least(7) and release.before(7, 2)):
        return Formula.V2
    return Formula.V3


@final
class Reservation(Value):
    """Free hot plug ports at boot: placeholder ports and bare extra root ports."""

    FIELDS = ("placeholders", "extra")

    def __init__(self, *, placeholders: int, extra: int = 0) -> None:
        self.placeholders: Final = placeholders
        self.extra: Final = extra

    @property
    def total(self) -> int:
        return self.placeholders + self.extra


def v1_placeholders(*, interfaces: int, root_complex: bool) -> int:
    """Formula v1 (`calculateHotplugPortCountV1`)."""
    if root_complex or interfaces == 0:
        return 0
    return max(0, V1_RESERVED_INTERFACES - interfaces)


def v2_free_ports(*, memory: int, ports_in_use: int, root_complex: bool) -> int:
    """Formula v2 (`calculateHotplugPortCount` in v1.6.0-v1.7.1, `...V2` later)."""
    if root_complex:
        return 0
    total, minimum = V2_PORTS[memory > LARGE_GUEST]
    return max(total - ports_in_use, minimum)


def reserve(
    formula: Formula,
    *,
    interfaces: int,
    memory: int,
    ports_in_use: int,
    slot_total: int | None = None,
    root_complex: bool = False,
) -> Reservation:
    """The ports KubeVirt reserves when it defines a domain, by formula.

    `interfaces`: entries in the VMI spec at boot; `memory`: guest memory in
    bytes; `ports_in_use`: PCI devices of the domain before the reservation
    (`converter.CountPCIDevices`); `slot_total`: the VMI's
    `kubevirt.io/pci-interface-slot-count` (read by v3 only).
    """
    if formula is Formula.V1:
        return Reservation(
            placeholders=v1_placeholders(interfaces=interfaces, root_complex=root_complex)
        )
    if formula is Formula.V2:
        return Reservation(
            placeholders=v2_free_ports(
                memory=memory, ports_in_use=ports_in_use, root_complex=root_complex
            )
        )
    if slot_total is not None:
        placeholders = max(0, slot_total - interfaces)
    else:
        placeholders = v1_placeholders(interfaces=interfaces, root_complex=root_complex)
    extra = extra_root_ports(
        memory=memory,
        ports_in_use=ports_in_use,
        placeholders=placeholders,
        root_complex=root_complex,
    )
    return Reservation(placeholders=placeholders, extra=extra)


def extra_root_ports(
    *, memory: int, ports_in_use: int, placeholders: int, root_complex: bool
) -> int:
    """Formula v3's bare root ports (`calculateExtraControllerCount`, capped as
    `appendPCIeRootPortControllers` caps them).

    They take the bus indexes after the root ports libvirt gave the devices and
    placeholders (one each, from index 1; an estimate, libvirt may need fewer) and
    stop at index 31.
    """
    desired = v2_free_ports(memory=memory, ports_in_use=ports_in_use, root_complex=root_complex)
    room = max(0, MAX_PCI_BUS_INDEX - (ports_in_use + placeholders))
    return min(max(0, desired - placeholders), room)


def slot_count(annotations: Mapping[str, Any]) -> int | None:
    """The VMI's frozen interface slot total, parsed as KubeVirt's `strconv.Atoi` does.

    None when absent or not a number (KubeVirt then refuses to define the domain,
    so no running VMI carries such a value).
    """
    value = annotations.get(SLOT_COUNT_ANNOTATION)
    if isinstance(value, str) and ATOI.fullmatch(value):
        return int(value)
    return None


def on_root_complex(annotations: Mapping[str, Any]) -> bool:
    """True when a VMI's annotations have KubeVirt place PCI devices on the root complex."""
    return annotations.get(ROOT_COMPLEX_ANNOTATION) == "true"


def supports_pcie_hotplug(spec: Spec) -> bool:
    """Machine type and architecture with PCIe hot plug ports (q35 and virt)."""
    machine = spec.machine_type
    machine_ok = machine in ("", "q35") or machine.startswith(("pc-q35", "virt"))
    return machine_ok and spec.architecture in HOTPLUG_ARCHITECTURES


def count_pci_devices(spec: Spec, *, interfaces: int, skip_disks: frozenset[str]) -> int:
    """PCI devices of the domain KubeVirt builds from `spec`, before it reserves ports.

    Mirrors `converter.CountPCIDevices` over the devices the converter adds:
    `interfaces` (SR-IOV ones become PCI host devices), PCI host devices and
    GPUs, the USB controller (also with model none), the SCSI controller (unless
    `disableHotplug` without SCSI disks), the virtio-serial controller, virtio
    disks (but `skip_disks`), virtio inputs, watchdog, rng and the memory balloon
    (present with model none too). Counting every host device as PCI errs towards
    fewer free ports.
    """
    devices = spec.devices
    disks = array(devices.get("disks"))
    scsi_disks = any(_bus(mapping(disk)) == "scsi" for disk in disks)
    count = interfaces + len(array(devices.get("hostDevices"))) + len(array(devices.get("gpus")))
    count += 1  # usb controller
    if devices.get("disableHotplug") is not True or scsi_disks:
        count += 1  # scsi controller
    if devices.get("autoattachSerialConsole") is not False:
        count += 1  # virtio-serial controller
    count += sum(
        1
        for disk in disks
        if _bus(mapping(disk)) == "virtio" and text(mapping(disk).get("name")) not in skip_disks
    )
    count += sum(1 for item in array(devices.get("inputs")) if mapping(item).get("bus") == "virtio")
    count += 1 if devices.get("watchdog") is not None else 0
    count += 1 if devices.get("rng") is not None else 0
    return count + 1  # memory balloon


def hotplugged_virtio_disks(spec: Spec, volumes: frozenset[str]) -> int:
    """Virtio disks of a VMI spec whose volumes were hot plugged (each took a root port)."""
    if not volumes:
        return 0
    return sum(
        1
        for disk in array(spec.devices.get("disks"))
        if text(mapping(disk).get("name")) in volumes and _bus(mapping(disk)) == "virtio"
    )


def guest_memory(spec: Spec) -> int | None:
    """Guest memory in bytes as virt-launcher sizes the domain, None when not given."""
    memory = mapping(spec.domain.get("memory"))
    resources = mapping(spec.domain.get("resources"))
    requests, limits = mapping(resources.get("requests")), mapping(resources.get("limits"))
    for value in (memory.get("guest"), requests.get("memory"), limits.get("memory")):
        parsed = parse_quantity(value)
        if parsed is not None:
            return parsed
    return None


def parse_quantity(value: object) -> int | None:
    """Bytes of a Kubernetes quantity (`4Gi`, `2048M`, `2.1Gi`), rounded down; None if invalid."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    digits, binary = (text[:-2], BINARY_SUFFIXES.get(text[-2:])) if text[-1:] == "i" else (text, 0)
    if binary is not None and digits.isascii() and digits.isdigit() and len(digits) <= 18:
        return int(digits) << (10 * binary)  # the common case: `4Gi`, `1024`
    match = QUANTITY.fullmatch(text)
    if match is None:
        return None
    digits, suffix = match.group(1), match.group(2) or ""
    binary = BINARY_SUFFIXES.get(suffix)
    number = Fraction(digits)
    if binary is not None:
        number *= 1024**binary
    elif suffix in DECIMAL_SUFFIXES:
        number *= Fraction(10) ** DECIMAL_SUFFIXES[suffix]
    elif suffix:
        number *= Fraction(10) ** int(suffix[1:])
    return int(number)


def _bus(disk: dict[str, Any]) -> str:
    """A disk's bus with KubeVirt's defaults (virtio for disks, scsi for LUNs, sata for CD-ROMs)."""
    for kind, default in (("disk", "virtio"), ("lun", "scsi"), ("cdrom", "sata")):
        if disk.get(kind) is not None:
            return text(mapping(disk.get(kind)).get("bus")) or default
    return ""


@final
class PciEstimate(Value):
    """Estimated bus-0 slots by device class; `total` is their sum."""

    FIELDS = ("classes",)

    def __init__(self, *, classes: tuple[tuple[str, int], ...]) -> None:
        self.classes: Final = classes

    @property
    def total(self) -> int:
        return sum(count for _, count in self.classes)

    def describe(self) -> str:
        return ", ".join(f"{name} {count}" for name, count in self.classes if count)


def estimate_pci(spec: Spec, *, reserved_ports: int) -> PciEstimate:
    """Estimate the PCI slots the VM's devices take (each device behind its own root port)."""
    devices = spec.devices
    disks = sum(1 for disk in array(devices.get("disks")) if _bus(mapping(disk)) == "virtio")
    scsi = 1 if any(_bus(mapping(disk)) == "scsi" for disk in array(devices.get("disks"))) else 0
    inputs = array(devices.get("inputs"))
    classes = (
        ("chipset", CHIPSET_SLOTS),
        ("interfaces", sum(1 for iface in spec.interfaces if not iface.absent)),
        ("reserved hot plug ports", reserved_ports),
        ("virtio disks", disks),
        ("scsi controller", scsi),
        ("host devices", len(array(devices.get("hostDevices"))) + len(array(devices.get("gpus")))),
        ("filesystems", len(array(devices.get("filesystems")))),
        ("virtio inputs", sum(1 for i in inputs if mapping(i).get("bus") == "virtio")),
        ("rng", 1 if devices.get("rng") is not None else 0),
        ("watchdog", 1 if devices.get("watchdog") is not None else 0),
        ("memory balloon", 0 if devices.get("autoattachMemBalloon") is False else 1),
        ("video", 0 if devices.get("autoattachGraphicsDevice") is False else 1),
        ("virtio-serial", 1),
        ("vsock", 1 if devices.get("autoattachVSOCK") is True else 0),
    )
    return PciEstimate(classes=classes)
