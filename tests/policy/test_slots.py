"""KubeVirt's hot plug port formulas, checked against KubeVirt's own test tables.

The tables are those quoted in the design facts (§3): `manager_test.go` of
`pkg/virt-launcher/virtwrap` at the release tags, and the e2e test
`tests/hotplug/pci-ports.go` (v1.6.0-v1.9.0).
"""

from __future__ import annotations

from typing import Any

import pytest

from policy.cluster import Release, parse_cluster, parse_version
from policy.slots import (
    Formula,
    count_pci_devices,
    estimate_pci,
    extra_root_ports,
    guest_memory,
    parse_quantity,
    release_formula,
    reserve,
    slot_count,
    v1_placeholders,
    v2_free_ports,
)
from policy.views import parse_spec

GIB = 1024**3


@pytest.mark.parametrize(
    ("interfaces", "root_complex", "expected"),
    [
        (1, True, 0),  # kubevirt.io/placePCIDevicesOnRootComplex: "true"
        (0, False, 0),
        (1, False, 3),
        (2, False, 2),
        (3, False, 1),
        (4, False, 0),
        (5, False, 0),
    ],
)
def test_v1_placeholders_follow_kubevirts_table(
    interfaces: int, root_complex: bool, expected: int
) -> None:
    assert v1_placeholders(interfaces=interfaces, root_complex=root_complex) == expected


@pytest.mark.parametrize(
    ("annotation", "interfaces", "expected"),
    [("11", 1, 10), ("2", 3, 0), (None, 1, 3)],
)
def test_v3_placeholders_follow_the_slot_count_annotation(
    annotation: str | None, interfaces: int, expected: int
) -> None:
    annotations = {} if annotation is None else {"kubevirt.io/pci-interface-slot-count": annotation}
    reservation = reserve(
        Formula.V3,
        interfaces=interfaces,
        memory=GIB,
        ports_in_use=2,
        slot_total=slot_count(annotations),
    )
    assert reservation.placeholders == expected


def test_an_invalid_slot_count_is_not_a_slot_count() -> None:
    # KubeVirt refuses to define the domain with it, so no running VMI has one
    assert slot_count({"kubevirt.io/pci-interface-slot-count": "eight"}) is None
    assert slot_count({"kubevirt.io/pci-interface-slot-count": "+8"}) == 8


@pytest.mark.parametrize(
    ("memory", "ports_in_use", "placeholders", "expected"),
    [
        (3 * GIB, 4, 3, 9),
        (3 * GIB, 10, 3, 3),
        (3 * GIB, 4, 0, 12),
        (1 * GIB, 2, 3, 3),
        (1 * GIB, 5, 3, 0),
        (1 * GIB, 2, 0, 6),
        (2 * GIB, 4, 2, 2),
        (1 * GIB, 7, 3, 0),
    ],
)
def test_v3_extra_root_ports_follow_kubevirts_table(
    memory: int, ports_in_use: int, placeholders: int, expected: int
) -> None:
    assert (
        extra_root_ports(
            memory=memory, ports_in_use=ports_in_use, placeholders=placeholders, root_complex=False
        )
        == expected
    )


def test_extra_root_ports_stop_at_bus_index_31() -> None:
    # KubeVirt's table: root ports up to index 29 exist, five more are asked, two fit
    assert (
        extra_root_ports(memory=3 * GIB, ports_in_use=26, placeholders=3, root_complex=False) == 2
    )
    assert extra_root_ports(memory=3 * GIB, ports_in_use=4, placeholders=3, root_complex=True) == 0
    # a bus already full to index 31 takes none
    assert (
        extra_root_ports(memory=3 * GIB, ports_in_use=29, placeholders=3, root_complex=False) == 0
    )


@pytest.mark.parametrize("formula", list(Formula))
def test_no_formula_reserves_ports_for_devices_on_the_root_complex(formula: Formula) -> None:
    reservation = reserve(
        formula, interfaces=1, memory=3 * GIB, ports_in_use=4, slot_total=None, root_complex=True
    )
    assert reservation.total == 0


def cirros(memory: str, extra_disks: int) -> dict[str, Any]:
    """The VMI of KubeVirt's e2e test: one interface, root and cloud-init disks, more disks."""
    disks = [{"name": "containerdisk", "disk": {"bus": "virtio"}}]
    disks.append({"name": "cloudinitdisk", "disk": {"bus": "virtio"}})
    disks += [{"name": f"emptydisk{i}", "disk": {"bus": "virtio"}} for i in range(extra_disks)]
    return {
        "domain": {
            "memory": {"guest": memory},
            "devices": {"disks": disks, "interfaces": [{"name": "default", "masquerade": {}}]},
        },
        "networks": [{"name": "default", "pod": {}}],
    }


@pytest.mark.parametrize(
    ("memory", "extra_disks", "free"),
    [("1Gi", 0, 3), ("2.1Gi", 0, 9), ("2.1Gi", 6, 6)],
)
@pytest.mark.parametrize("formula", [Formula.V2, Formula.V3])
def test_free_ports_match_kubevirts_e2e_test(
    memory: str, extra_disks: int, free: int, formula: Formula
) -> None:
    spec = parse_spec(cirros(memory, extra_disks))
    in_use = count_pci_devices(spec, interfaces=1, skip_disks=frozenset())
    assert in_use == 7 + extra_disks  # network, SCSI, USB, serial, balloon, two disks
    bytes_ = guest_memory(spec)
    assert bytes_ is not None
    reservation = reserve(formula, interfaces=1, memory=bytes_, ports_in_use=in_use)
    assert reservation.total == free


def test_v2_counts_ports_in_use_against_the_total() -> None:
    assert v2_free_ports(memory=GIB, ports_in_use=2, root_complex=False) == 6
    assert v2_free_ports(memory=2 * GIB, ports_in_use=7, root_complex=False) == 3
    assert v2_free_ports(memory=2 * GIB + 1, ports_in_use=7, root_complex=False) == 9
    assert v2_free_ports(memory=16 * GIB, ports_in_use=20, root_complex=False) == 6
    assert v2_free_ports(memory=16 * GIB, ports_in_use=2, root_complex=True) == 0


def test_devices_counted_as_kubevirts_converter_adds_them() -> None:
    spec = parse_spec(
        {
            "domain": {
                "devices": {
                    "disks": [
                        {"name": "a", "disk": {}},
                        {"name": "b", "disk": {"bus": "sata"}},
                        {"name": "c", "cdrom": {}},
                        {"name": "d", "lun": {}},
                        {"name": "hot", "disk": {"bus": "virtio"}},
                    ],
                    "inputs": [{"bus": "virtio"}, {"bus": "usb"}],
                    "hostDevices": [{"name": "gpu"}],
                    "watchdog": {"name": "w"},
                    "rng": {},
                    "autoattachSerialConsole": False,
                    "autoattachMemBalloon": False,  # the balloon stays, with model none
                    "disableHotplug": True,  # but a LUN needs the SCSI controller
                }
            }
        }
    )
    # 2 interfaces, host device, usb, scsi, disk a, virtio input, watchdog, rng, balloon
    assert count_pci_devices(spec, interfaces=2, skip_disks=frozenset({"hot"})) == 10


def test_devices_without_scsi_disks_and_hotplug_disabled_need_no_scsi_controller() -> None:
    spec = parse_spec(
        {
            "domain": {
                "devices": {
                    "disks": [{"name": "a", "disk": {"bus": "virtio"}}, {"name": "c", "cdrom": {}}],
                    "inputs": [{"bus": "virtio"}, {"bus": "usb"}, {"type": "tablet"}],
                    "gpus": [{"name": "g1"}, {"name": "g2"}],
                    "disableHotplug": True,
                }
            }
        }
    )
    # 1 interface, 2 GPUs, usb, virtio-serial, disk a, virtio input, balloon
    assert count_pci_devices(spec, interfaces=1, skip_disks=frozenset()) == 8
    with_scsi_cdrom = parse_spec(
        {
            "domain": {
                "devices": {
                    "disks": [{"name": "c", "cdrom": {"bus": "scsi"}}],
                    "disableHotplug": True,
                }
            }
        }
    )
    # 1 interface, usb, scsi (the CD-ROM's), virtio-serial, balloon
    assert count_pci_devices(with_scsi_cdrom, interfaces=1, skip_disks=frozenset()) == 5


def test_the_estimate_counts_every_device_class() -> None:
    spec = parse_spec(
        {
            "domain": {
                "devices": {
                    "interfaces": [
                        {"name": "a", "bridge": {}},
                        {"name": "b", "bridge": {}},
                        {"name": "c", "bridge": {}, "state": "absent"},
                    ],
                    "disks": [
                        {"name": "d1", "disk": {}},
                        {"name": "d2", "disk": {"bus": "virtio"}},
                        {"name": "l", "lun": {}},
                    ],
                    "inputs": [{"bus": "virtio"}, {"bus": "virtio"}, {"bus": "usb"}],
                    "hostDevices": [{"name": "h"}],
                    "gpus": [{"name": "g1"}, {"name": "g2"}],
                    "filesystems": [{"name": "f"}],
                    "watchdog": {"name": "w"},
                    "rng": {},
                    "autoattachMemBalloon": False,
                    "autoattachGraphicsDevice": False,
                    "autoattachVSOCK": True,
                }
            }
        }
    )
    estimate = estimate_pci(spec, reserved_ports=4)
    assert estimate.describe() == (
        "chipset 2, interfaces 2, reserved hot plug ports 4, virtio disks 2, scsi controller 1, "
        "host devices 3, filesystems 1, virtio inputs 2, rng 1, watchdog 1, virtio-serial 1, "
        "vsock 1"
    )
    assert estimate.total == 21
    bare = estimate_pci(parse_spec({}), reserved_ports=0)
    assert bare.describe() == "chipset 2, memory balloon 1, video 1, virtio-serial 1"
    assert bare.total == 5


@pytest.mark.parametrize(
    ("resources", "bytes_"),
    [
        ({"memory": {"guest": "1Gi"}, "resources": {"requests": {"memory": "2Gi"}}}, GIB),
        ({"resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "4Gi"}}}, 2 * GIB),
        ({"resources": {"limits": {"memory": "4Gi"}}}, 4 * GIB),
        ({"resources": {"requests": {"cpu": "2"}}}, None),
    ],
)
def test_guest_memory_is_the_guest_size_else_the_request_else_the_limit(
    resources: dict[str, Any], bytes_: int | None
) -> None:
    assert guest_memory(parse_spec({"domain": resources})) == bytes_


@pytest.mark.parametrize(
    ("version", "formula"),
    [
        ("v1.0.0", Formula.V1),
        ("v1.5.3", Formula.V1),
        ("v1.6.0", Formula.V2),
        ("v1.6.3", Formula.V2),
        ("v1.6.4", Formula.V3),
        ("v1.6.6", Formula.V3),
        ("v1.7.0", Formula.V2),
        ("v1.7.1", Formula.V2),
        ("v1.7.2", Formula.V3),
        ("v1.8.0", Formula.V3),
        ("v1.9.0", Formula.V3),
        ("v1.10.0", Formula.V3),
        (None, Formula.V1),
    ],
)
def test_each_release_has_its_formula(version: str | None, formula: Formula) -> None:
    assert release_formula(Release(version=parse_version(version))) is formula


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("v1.7.2", (1, 7, 2)),
        ("v1.8.0-rc.1", (1, 8, 0)),
        ("1.9", (1, 9, 0)),
        (" v1.6.4+abc ", (1, 6, 4)),
        ("main", None),
        ("v¹.2.3", None),
        ("v1.²", None),
        ("v1.6.4-rc.1", (1, 6, 4)),
        ("v1.9.0:beta", (1, 9, 0)),
        ("v1.2.123456A", (1, 2, 123456)),
        ("v123456.1.0", (123456, 1, 0)),
        ("v1.2.1234567", None),
        ("v1.2.1000000", None),
        ("v1.2.9999999", None),
        ("v1234567.1.0", None),
        ("v1x.2.3", None),
        ("main.1", None),
        ("", None),
        (7, None),
    ],
)
def test_versions_parse_like_kubevirt_writes_them(text: object, version: object) -> None:
    assert parse_version(text) == version


def test_the_cluster_release_comes_from_the_kubevirt_cr_status() -> None:
    cr = {"status": {"observedKubeVirtVersion": "v1.7.2"}, "spec": {"configuration": {}}}
    assert parse_cluster(cr).release.name == "KubeVirt v1.7.2"
    assert not parse_cluster(None).release.known
    assert not parse_cluster(None).known
    assert not parse_cluster(["not", "a", "CR"]).known
    assert parse_cluster({}).known
    assert not parse_cluster({"status": {"targetKubeVirtVersion": "v1.7.2"}}).release.known
    floor = Release(version=(1, 6, 4), exact=False)
    assert floor.name == "KubeVirt v1.6.4 or later"
    assert floor.at_least(6)
    assert not floor.before(9)
    assert not floor.at_least(8)


@pytest.mark.parametrize(
    ("quantity", "bytes_"),
    [
        ("4Gi", 4 * GIB),
        ("2048M", 2_048_000_000),
        ("2.1Gi", 2254857830),
        ("1e3", 1000),
        ("2e3", 2000),
        ("1500m", 1),
        (".5Ki", 512),
        (1024, 1024),
        ("4 GiB", None),
        ("-1Gi", None),
        (True, None),
        ("1e999", None),
        ("128Mi", 128 * 1024**2),
        ("1024", 1024),
        ("2.5", 2),
        (0, 0),
        (-1024, None),
        ("4Xi", None),
        ("1234567890123456789", None),  # 19 digits: on both paths, no more than 18 are read
    ],
)
def test_quantities_are_read_in_bytes_rounded_down(quantity: object, bytes_: int | None) -> None:
    assert parse_quantity(quantity) == bytes_
