"""The running VMI and its migrations as the rules read them."""

from __future__ import annotations

from typing import Any

from policy.instances import parse_instance, unfinished_migrations

SECONDARY = {"multus": {"networkName": "net"}}


def vmi(*statuses: dict[str, Any], secondaries: tuple[str, ...] = ("a", "b")) -> dict[str, Any]:
    networks = [{"name": "default", "pod": {}}, *({"name": n, **SECONDARY} for n in secondaries)]
    return {
        "metadata": {"name": "vm", "uid": "u", "annotations": {"k": "v"}},
        "spec": {"networks": networks},
        "status": {"phase": "Running", "interfaces": list(statuses)},
    }


def test_metadata_and_status_interfaces_are_read_by_name() -> None:
    instance = parse_instance(
        vmi({"name": "a", "podInterfaceName": "pod1", "infoSource": "domain, multus-status"})
    )
    assert (instance.name, instance.uid, instance.phase) == ("vm", "u", "Running")
    assert instance.annotations == {"k": "v"}
    status = instance.status_interfaces["a"]
    assert (status.name, status.pod_interface_name) == ("a", "pod1")
    assert status.info_source == {"domain", "multus-status"}


def test_a_vmi_without_secondary_networks_uses_no_legacy_names() -> None:
    assert not parse_instance(vmi(secondaries=())).legacy_naming()


def test_a_secondary_the_vmi_does_not_report_yet_says_nothing_about_naming() -> None:
    # "a" was just hot plugged: no status yet; "b" shows the hashed scheme
    instance = parse_instance(vmi({"name": "b", "podInterfaceName": "pod0123456789a"}))
    assert not instance.legacy_naming()
    assert parse_instance(vmi({"name": "b", "podInterfaceName": "net2"})).legacy_naming()
    assert parse_instance(vmi({"name": "b"})).legacy_naming()


def migration(*, phase: str = "Running", **parts: Any) -> dict[str, Any]:
    return {**parts, "status": {"phase": phase}}


def test_migrations_of_the_vmi_are_found_by_spec_or_by_label() -> None:
    migrations = (
        migration(metadata={"name": "by-spec"}, spec={"vmiName": "vm"}),
        migration(metadata={"name": "by-label", "labels": {"kubevirt.io/vmi-name": "vm"}}),
        migration(metadata={"generateName": "kubevirt-workload-update-"}, spec={"vmiName": "vm"}),
        migration(metadata={"name": "other"}, spec={"vmiName": "other-vm"}),
        migration(metadata={"name": "done"}, spec={"vmiName": "vm"}, phase="Succeeded"),
        migration(metadata={"name": "failed"}, spec={"vmiName": "vm"}, phase="Failed"),
    )
    assert unfinished_migrations(migrations, "vm") == [
        ("by-spec", "Running"),
        ("by-label", "Running"),
        ("kubevirt-workload-update-", "Running"),
    ]
