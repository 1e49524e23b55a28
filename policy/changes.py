"""What an UPDATE does to the VM's interfaces, keyed by interface and network name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, final

from policy.capacity import implicit_pod_interface
from policy.values import Value
from policy.views import ABSENT, Interface, Network, Spec


@final
class Removal(Value):
    """A non-absent interface, or its network, deleted from the spec; or an absent one
    deleted while the VMI still has it (its unplug is not finished).

    `interface` / `network`: the old entry, when that part itself was deleted.
    """

    FIELDS = ("name", "interface", "network")

    def __init__(self, *, name: str, interface: Interface | None, network: Network | None) -> None:
        self.name: Final = name
        self.interface: Final = interface
        self.network: Final = network


@final
class Modification(Value):
    """An existing interface or network whose fields (other than `state`) changed.

    `interface` / `network`: the new entry, when that part changed.
    """

    FIELDS = ("name", "interface", "network", "fields")

    def __init__(
        self,
        *,
        name: str,
        interface: Interface | None,
        network: Network | None,
        fields: tuple[str, ...],
    ) -> None:
        self.name: Final = name
        self.interface: Final = interface
        self.network: Final = network
        self.fields: Final = fields


@final
class Changes(Value):
    """The interface changes of one update.

    plugged: new name with a state other than absent; unplugged: state became
    absent; removed: deleted without `state: absent` (or before the VMI finished
    unplugging it); cleaned: an absent interface deleted once the VMI no longer
    has it (KubeVirt does this itself); cancelled: absent before, not now;
    declared: the pod interface written into a template that listed no
    interfaces and networks (KubeVirt had added it to the VMI only).
    """

    FIELDS = ("plugged", "unplugged", "removed", "cleaned", "cancelled", "modified", "declared")

    def __init__(
        self,
        *,
        plugged: tuple[Interface, ...] = (),
        unplugged: tuple[Interface, ...] = (),
        removed: tuple[Removal, ...] = (),
        cleaned: tuple[str, ...] = (),
        cancelled: tuple[Interface, ...] = (),
        modified: tuple[Modification, ...] = (),
        declared: tuple[Interface, ...] = (),
    ) -> None:
        self.plugged: Final = plugged
        self.unplugged: Final = unplugged
        self.removed: Final = removed
        self.cleaned: Final = cleaned
        self.cancelled: Final = cancelled
        self.modified: Final = modified
        self.declared: Final = declared

    @property
    def hotplug(self) -> bool:
        """True when the update plugs or unplugs anything."""
        return bool(self.plugged or self.unplugged)


NO_CHANGES = Changes()


def diff(old: Spec, new: Spec, *, running: Spec | None = None) -> Changes:
    """Compare two specs interface by interface and network by network.

    The new spec is parsed in full; the old one is only looked up by name.
    `running` is the VMI's spec when known: an interface absent in the old spec
    that KubeVirt already removed from the VMI comes back as a new hot plug,
    not as a cancelled unplug.
    """
    old_ifaces = old.raw_interfaces
    old_nets = old.raw_networks
    new_ifaces = new.interfaces_by_name
    new_nets = new.networks_by_name
    implicit = implicit_pod_interface(old)

    plugged: list[Interface] = []
    unplugged: list[Interface] = []
    cancelled: list[Interface] = []
    modified: list[Modification] = []
    declared: list[Interface] = []
    for name, iface in new_ifaces.items():
        entry = old_ifaces.get(name)
        if entry is None:
            net = new_nets.get(name)
            # With an implicit pod network (KubeVirt added it to the VMI only), writing
            # it into the template declares it; it does not plug anything.
            if implicit and net is not None and net.pod:
                declared.append(iface)
            elif not iface.absent:
                plugged.append(iface)
            continue
        before = entry[1]
        if before == iface.raw:
            continue
        was_absent = before.get("state") == ABSENT
        if iface.absent and not was_absent:
            unplugged.append(iface)
        elif was_absent and not iface.absent:
            if running is not None and name not in running.raw_interfaces:
                plugged.append(iface)  # a fresh interface: nothing to compare it with
                continue
            cancelled.append(iface)
        fields = changed_fields(before, iface.raw, ignore="state")
        if fields:
            modified.append(Modification(name=name, interface=iface, network=None, fields=fields))
    for name, net in new_nets.items():
        net_entry = old_nets.get(name)
        if net_entry is not None and net_entry[1] != net.raw:
            fields = changed_fields(net_entry[1], net.raw)
            if fields:
                modified.append(Modification(name=name, interface=None, network=net, fields=fields))

    removed: list[Removal] = []
    cleaned: list[str] = []
    for name, (_, before) in old_ifaces.items():
        iface_gone = name not in new_ifaces
        net_gone = name in old_nets and name not in new_nets
        if not (iface_gone or net_gone):
            continue
        if before.get("state") == ABSENT and (
            running is None or name not in running.raw_interfaces
        ):
            cleaned.append(name)
        else:
            # Deleting an interface whose unplug the VMI has not finished is as much
            # a restart as deleting a plugged one: KubeVirt finds it missing.
            removed.append(
                Removal(
                    name=name,
                    interface=old.interface(name) if iface_gone else None,
                    network=old.network(name) if net_gone else None,
                )
            )
    return Changes(
        plugged=tuple(plugged),
        unplugged=tuple(unplugged),
        removed=tuple(removed),
        cleaned=tuple(cleaned),
        cancelled=tuple(cancelled),
        modified=tuple(modified),
        declared=tuple(declared),
    )


def changed_fields(
    before: Mapping[str, Any], after: Mapping[str, Any], *, ignore: str = ""
) -> tuple[str, ...]:
    """The fields of an interface or network entry that differ as KubeVirt compares them.

    KubeVirt decodes both into its Go types and compares those (`reflect.DeepEqual`), so
    a zero value written out (`""`, `0`, `false`, `null`) equals no field at all:
    `multus: {networkName: n, default: false}` is `multus: {networkName: n}`. An object or
    a list counts even when empty (a pointer or a slice that is set).
    """
    keys = before.keys() | after.keys()
    return tuple(
        sorted(
            k
            for k in keys
            if k != ignore
            and before.get(k) != after.get(k)
            and _as_decoded(before.get(k)) != _as_decoded(after.get(k))
        )
    )


def _as_decoded(value: object) -> object:
    """`value` as its Go field holds it, a zero value as None (see `changed_fields`)."""
    if isinstance(value, dict):
        decoded = {key: _as_decoded(item) for key, item in value.items()}
        return {key: item for key, item in decoded.items() if item is not None}
    if isinstance(value, list):
        return [_as_decoded(item) for item in value]
    return None if value in _ZERO_VALUES else value


_ZERO_VALUES: Final[tuple[object, ...]] = (None, False, "", 0)
"""Go's zero values as JSON writes them (`0.0 == 0`, so floats too)."""
