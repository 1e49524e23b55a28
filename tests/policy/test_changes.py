"""How an update's interface changes are classified (the input of every hot plug rule)."""

from __future__ import annotations

from typing import Any

from policy.changes import Changes, changed_fields, diff
from policy.views import Spec, parse_spec


def spec(*interfaces: dict[str, Any], networks: list[dict[str, Any]] | None = None) -> Spec:
    """A spec with these interfaces, each on a multus network of its name unless given."""
    if networks is None:
        networks = [{"name": i["name"], "multus": {"networkName": "net"}} for i in interfaces]
    return parse_spec(
        {"domain": {"devices": {"interfaces": list(interfaces)}}, "networks": networks}
    )


def names(changes: Changes) -> dict[str, list[str]]:
    """The names in each non-empty class of `changes`."""
    found = {
        "plugged": [i.name for i in changes.plugged],
        "unplugged": [i.name for i in changes.unplugged],
        "removed": [r.name for r in changes.removed],
        "cleaned": list(changes.cleaned),
        "cancelled": [i.name for i in changes.cancelled],
        "modified": [m.name for m in changes.modified],
        "declared": [i.name for i in changes.declared],
    }
    return {kind: found_names for kind, found_names in found.items() if found_names}


BRIDGE: dict[str, Any] = {"bridge": {}}


def test_an_absent_interface_deleted_once_the_vmi_dropped_it_is_cleaned_up() -> None:
    old = spec({"name": "a", **BRIDGE, "state": "absent"}, {"name": "b", **BRIDGE})
    new = spec({"name": "b", **BRIDGE})
    running = spec({"name": "b", **BRIDGE})
    assert names(diff(old, new, running=running)) == {"cleaned": ["a"]}
    assert names(diff(old, new)) == {"cleaned": ["a"]}


def test_an_absent_interface_deleted_while_the_vmi_has_it_is_a_removal() -> None:
    old = spec({"name": "a", **BRIDGE, "state": "absent"})
    new = spec()
    running = spec({"name": "a", **BRIDGE, "state": "absent"})
    assert names(diff(old, new, running=running)) == {"removed": ["a"]}


def test_a_removal_keeps_only_the_parts_that_were_deleted() -> None:
    old = spec({"name": "a", **BRIDGE}, {"name": "b", **BRIDGE})
    interface_only = spec({"name": "b", **BRIDGE}, networks=[n.raw for n in old.networks])
    (removal,) = diff(old, interface_only).removed
    assert removal.interface is not None
    assert removal.interface.name == "a"
    assert removal.network is None
    network_only = spec(
        {"name": "a", **BRIDGE}, {"name": "b", **BRIDGE}, networks=[old.networks[1].raw]
    )
    (removal,) = diff(old, network_only).removed
    assert removal.interface is None
    assert removal.network is not None
    assert removal.network.name == "a"


def test_a_changed_field_of_a_present_interface_is_a_modification_only() -> None:
    old = spec({"name": "a", **BRIDGE})
    new = spec({"name": "a", **BRIDGE, "model": "e1000"})
    for running in (None, spec(), old):
        changes = diff(old, new, running=running)
        assert names(changes) == {"modified": ["a"]}
        assert changes.modified[0].fields == ("model",)


def test_an_interface_the_vmi_already_dropped_comes_back_as_a_plug() -> None:
    old = spec({"name": "a", **BRIDGE, "state": "absent"}, {"name": "b", **BRIDGE})
    new = spec({"name": "a", **BRIDGE}, {"name": "b", **BRIDGE}, {"name": "c", **BRIDGE})
    running = spec({"name": "b", **BRIDGE})
    assert names(diff(old, new, running=running)) == {"plugged": ["a", "c"]}
    assert names(diff(old, new, running=old)) == {"plugged": ["c"], "cancelled": ["a"]}


def test_only_a_template_without_interfaces_and_networks_declares_the_pod_interface() -> None:
    pod = {"name": "default", "pod": {}}
    new = spec({"name": "default", **BRIDGE}, networks=[pod])
    assert names(diff(spec(networks=[]), new)) == {"declared": ["default"]}
    assert names(diff(spec(networks=[pod]), new)) == {"plugged": ["default"]}
    lists_an_interface = spec({"name": "other", **BRIDGE}, networks=[])
    both = spec({"name": "other", **BRIDGE}, {"name": "default", **BRIDGE}, networks=[pod])
    assert names(diff(lists_an_interface, both)) == {"plugged": ["default"]}


def test_changed_fields_are_the_keys_whose_values_differ_sorted() -> None:
    before = {"name": "a", "model": "virtio", "state": "up", "bridge": {}}
    after = {"name": "a", "model": "e1000", "state": "down", "macAddress": "02:00:00:00:00:01"}
    assert changed_fields(before, after) == ("bridge", "macAddress", "model", "state")
    assert changed_fields(before, after, ignore="state") == ("bridge", "macAddress", "model")


def test_a_zero_value_written_out_is_no_change_as_kubevirts_go_types_read_it() -> None:
    before = {"name": "a", "bridge": {}, "multus": {"networkName": "n"}}
    after = {
        "name": "a",
        "bridge": {},
        "macAddress": "",
        "acpiIndex": 0,
        "dhcpOptions": None,
        "multus": {"networkName": "n", "default": False},
    }
    assert changed_fields(before, after) == ()


def test_an_empty_object_or_list_is_a_set_field_and_a_non_zero_value_a_change() -> None:
    before = {"name": "a", "multus": {"networkName": "n"}}
    after = {
        "name": "a",
        "dhcpOptions": {},
        "ports": [],
        "multus": {"networkName": "n", "default": True},
        "acpiIndex": 1,
    }
    assert changed_fields(before, after) == ("acpiIndex", "dhcpOptions", "multus", "ports")
    assert changed_fields({"ports": [{"port": 0}]}, {"ports": [{}]}) == ()
    assert changed_fields({"ports": [{"port": 80}]}, {"ports": [{}]}) == ("ports",)
