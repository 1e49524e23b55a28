"""The capacity of a running VM: which formula its VMI was built with, and how messages say so."""

from __future__ import annotations

from typing import Any

import pytest

from policy.annotations import Ledger
from policy.capacity import implicit_pod_interface, measure
from policy.cluster import UNKNOWN_RELEASE, Release
from policy.instances import parse_instance
from policy.slots import Formula
from policy.views import parse_spec

POD = {"name": "default", "pod": {}}
POD_INTERFACE = {"name": "default", "masquerade": {}}


@pytest.mark.parametrize(
    ("spec", "implicit"),
    [
        ({}, True),
        ({"domain": {"devices": {"autoattachPodInterface": True}}}, True),
        ({"domain": {"devices": {"autoattachPodInterface": False}}}, False),
        ({"networks": [POD]}, False),
        ({"domain": {"devices": {"interfaces": [POD_INTERFACE]}}}, False),
        ({"domain": {"devices": {"interfaces": [POD_INTERFACE]}}, "networks": [POD]}, False),
    ],
)
def test_kubevirt_adds_the_pod_interface_only_to_a_spec_listing_neither(
    spec: dict[str, Any], implicit: bool
) -> None:
    # facts §1.2 and Errata 5: both lists empty and autoattachPodInterface not false
    assert implicit_pod_interface(parse_spec(spec)) is implicit


def vmi(annotations: dict[str, str]) -> dict[str, Any]:
    spec = {"domain": {"devices": {"interfaces": [POD_INTERFACE]}}, "networks": [POD]}
    return {"metadata": {"uid": "u", "annotations": annotations}, "spec": spec}


def capacity_of(vmi_object: dict[str, Any], release: Release) -> Any:
    instance = parse_instance(vmi_object)
    return measure(
        vmi=instance,
        boot_spec=instance.spec,
        release=release,
        ledger=Ledger(),
        present=frozenset(),
        root_complex=False,
        site=None,
    )


def test_a_frozen_slot_count_names_the_annotation_and_its_total() -> None:
    frozen = vmi({"kubevirt.io/pci-interface-slot-count": "6"})
    capacity = capacity_of(frozen, UNKNOWN_RELEASE)
    assert (capacity.formula, capacity.slot_total, capacity.ports) == (Formula.V3, 6, 6)
    assert capacity.describe() == (
        "KubeVirt reserved 5 free PCIe ports for this VM at boot (the VMI's "
        "kubevirt.io/pci-interface-slot-count=6 keeps the ports it booted with (formula v2, "
        "shared with disk hot plug)), room for 6 interfaces including the 1 it booted with"
    )
    known = capacity_of(frozen, Release(version=(1, 7, 2)))
    assert known.describe().startswith("KubeVirt v1.7.2 reserved 5 free PCIe ports")


def test_a_topology_v3_vmi_names_the_release_it_implies() -> None:
    marked = vmi({"kubevirt.io/pci-topology-version": "v3"})
    capacity = capacity_of(marked, UNKNOWN_RELEASE)
    assert capacity.formula is Formula.V3
    assert capacity.describe().startswith("KubeVirt v1.6.4 or later reserved ")
    known = capacity_of(marked, Release(version=(1, 9, 0)))
    assert known.describe().startswith("KubeVirt v1.9.0 reserved ")
