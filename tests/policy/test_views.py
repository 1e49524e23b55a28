"""The views read any JSON: wrong types read as missing and are recorded with their path."""

from __future__ import annotations

from typing import Any

import pytest

from policy.paths import FieldPath, new_path
from policy.views import Shape, parse_spec, parse_vm

SPEC = "spec.template.spec"


@pytest.mark.parametrize(
    ("spec", "field", "expected"),
    [
        ("text", SPEC, "object"),
        ({"domain": "text"}, f"{SPEC}.domain", "object"),
        ({"domain": {"devices": 7}}, f"{SPEC}.domain.devices", "object"),
        ({"domain": {"machine": []}}, f"{SPEC}.domain.machine", "object"),
        ({"domain": {"devices": {"interfaces": {}}}}, f"{SPEC}.domain.devices.interfaces", "list"),
        ({"networks": "text"}, f"{SPEC}.networks", "list"),
        ({"networks": ["text"]}, f"{SPEC}.networks[0]", "object"),
    ],
)
def test_a_part_of_the_wrong_type_is_recorded_at_its_path(
    spec: object, field: str, expected: str
) -> None:
    assert parse_spec(spec).shapes == (Shape(field=FieldPath(field), expected=expected),)


def test_shape_paths_start_at_the_base_given() -> None:
    assert parse_spec({"domain": 1}, base=new_path("spec")).shapes == (
        Shape(field=new_path("spec", "domain"), expected="object"),
    )


def test_interface_fields_of_the_wrong_type_read_as_missing_and_the_others_as_given() -> None:
    item = {"name": "a", "bridge": {}, "model": 5, "state": "down", "macAddress": "m"}
    spec = parse_spec({"domain": {"devices": {"interfaces": [{**item, "pciAddress": "p"}]}}})
    (iface,) = spec.interfaces
    fields = (iface.name, iface.model, iface.state, iface.mac, iface.pci_address)
    assert fields == ("a", "", "down", "m", "p")
    assert spec.shapes == (
        Shape(field=FieldPath(f"{SPEC}.domain.devices.interfaces[0].model"), expected="string"),
    )


def test_missing_fields_read_as_empty() -> None:
    spec = parse_spec(
        {"domain": {"devices": {"interfaces": [{}]}}, "networks": [{}, {"multus": {}}]}
    )
    (iface,) = spec.interfaces
    assert (iface.name, iface.model, iface.state, iface.mac, iface.pci_address) == ("",) * 5
    assert [(net.name, net.multus_name) for net in spec.networks] == [("", ""), ("", "")]
    assert spec.shapes == ()


def test_network_fields_of_the_wrong_type_read_as_missing() -> None:
    (net,) = parse_spec({"networks": [{"name": 5, "multus": {"networkName": 7}}]}).networks
    assert (net.name, net.multus_name, net.sources) == ("", "", ("multus",))


def test_lookups_by_name_agree_before_and_after_the_views_are_built() -> None:
    raw: dict[str, Any] = {
        "domain": {
            "devices": {
                "interfaces": [
                    {"name": "a", "bridge": {}},
                    {"name": "b", "bridge": {}, "model": 5},
                    {"name": "a", "masquerade": {}},
                ]
            }
        },
        "networks": [{"name": "x", "pod": {}}, {"name": "a", "multus": {"networkName": "n"}}],
    }
    fresh, built = parse_spec(raw), parse_spec(raw)
    _ = built.interfaces, built.networks
    for spec in (fresh, built):
        assert spec.interface("missing") is None
        assert spec.network("missing") is None
        found = spec.interface("b")
        assert found is not None
        assert (found.position, found.model) == (1, "")
        first = spec.interface("a")
        assert first is not None
        assert first.position == 0  # the first of a duplicated name
        net = spec.network("a")
        assert net is not None
        assert (net.position, net.multus_name) == (1, "n")
    assert fresh.raw_interfaces["a"][0] == 0


def test_present_names_leave_out_absent_interfaces() -> None:
    interfaces = [{"name": "a"}, {"name": "b", "state": "absent"}, {"name": "c", "state": "down"}]
    assert parse_spec({"domain": {"devices": {"interfaces": interfaces}}}).present_names() == [
        "a",
        "c",
    ]


def test_a_vm_view_reads_its_identity() -> None:
    vm = parse_vm({"metadata": {"name": "vm", "namespace": "ns", "uid": "u"}})
    assert (vm.name, vm.namespace, vm.uid) == ("vm", "ns", "u")
