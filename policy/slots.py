"""PCI(e) capacity: KubeVirt's reserved hot plug ports and an estimate of bus-0 slots.

KubeVirt (formula v1, still used for placeholders by v3) reserves
`max(0, C - len(interfaces))` PCIe root ports for interfaces, C = 4 or the
`kubevirt.io/pci-interface-slot-count` annotation; with
`kubevirt.io/placePCIDevicesOnRootComplex: "true"` it reserves none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, final

from policy.values import Value
from policy.views import Spec, mapping

SLOT_COUNT_ANNOTATION = "kubevirt.io/pci-interface-slot-count"
ROOT_COMPLEX_ANNOTATION = "kubevirt.io/placePCIDevicesOnRootComplex"
HOTPLUG_ARCHITECTURES = frozenset({"", "amd64", "arm64"})
CHIPSET_SLOTS = 2  # q35 host bridge (00.0) and the ICH9 LPC/SATA/SMBus functions (1f.x)


def slot_count(*annotation_sets: Mapping[str, Any]) -> int | None:
    """The frozen interface slot total from the first set that carries a valid one."""
    for values in annotation_sets:
        value = values.get(SLOT_COUNT_ANNOTATION)
        if isinstance(value, str) and value.isascii() and value.isdigit():
            return int(value)
    return None


def on_root_complex(*annotation_sets: Mapping[str, Any]) -> bool:
    """True when any set asks KubeVirt to place PCI devices on the root complex."""
    return any(a.get(ROOT_COMPLEX_ANNOTATION) == "true" for a in annotation_sets)


def supports_pcie_hotplug(spec: Spec) -> bool:
    """Machine type and architecture with PCIe hot plug ports (q35 and virt)."""
    machine = spec.machine_type
    machine_ok = machine in ("", "q35") or machine.startswith(("pc-q35", "virt"))
    return machine_ok and spec.architecture in HOTPLUG_ARCHITECTURES


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
    disks = _virtio_disks(devices.get("disks"))
    scsi = 1 if _uses_scsi(devices.get("disks")) else 0
    inputs = _list(devices.get("inputs"))
    classes = (
        ("chipset", CHIPSET_SLOTS),
        ("interfaces", sum(1 for iface in spec.interfaces if not iface.absent)),
        ("reserved hot plug ports", reserved_ports),
        ("virtio disks", disks),
        ("scsi controller", scsi),
        ("host devices", len(_list(devices.get("hostDevices"))) + len(_list(devices.get("gpus")))),
        ("filesystems", len(_list(devices.get("filesystems")))),
        ("virtio inputs", sum(1 for i in inputs if mapping(i).get("bus") == "virtio")),
        ("rng", 1 if devices.get("rng") is not None else 0),
        ("watchdog", 1 if devices.get("watchdog") is not None else 0),
        ("memory balloon", 0 if devices.get("autoattachMemBalloon") is False else 1),
        ("video", 0 if devices.get("autoattachGraphicsDevice") is False else 1),
        ("virtio-serial", 1),
        ("vsock", 1 if devices.get("autoattachVSOCK") is True else 0),
    )
    return PciEstimate(classes=classes)


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _virtio_disks(disks: object) -> int:
    count = 0
    for disk in _list(disks):
        target = mapping(mapping(disk).get("disk"))
        if mapping(disk).get("disk") is not None and target.get("bus", "virtio") == "virtio":
            count += 1
    return count


def _uses_scsi(disks: object) -> bool:
    for disk in _list(disks):
        entry = mapping(disk)
        for kind in ("disk", "lun", "cdrom"):
            if mapping(entry.get(kind)).get("bus") == "scsi":
                return True
        if entry.get("lun") is not None and mapping(entry.get("lun")).get("bus") is None:
            return True
    return False
