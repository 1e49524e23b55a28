"""The patches that turn a request into its safe form.

Every operation is built against the object exactly as received, so the patch
applies with RFC 6902 semantics; applying it and evaluating again yields no
patch (required by `reinvocationPolicy: IfNeeded`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, final

from policy import paths
from policy.annotations import LEDGER, PREFIX, REQUEST, STATUS
from policy.changes import Removal
from policy.values import Value
from policy.verdicts import PatchOp
from policy.views import ABSENT, VirtualMachine, mapping


@final
class Conversion(Value):
    """Removals rewritten into hot unplugs, and the template spec that results."""

    FIELDS = ("ops", "spec", "names")

    def __init__(
        self, *, ops: tuple[PatchOp, ...], spec: Mapping[str, Any], names: tuple[str, ...]
    ) -> None:
        self.ops: Final = ops
        self.spec: Final = spec
        self.names: Final = names


def convert_removals(vm: VirtualMachine, removals: Sequence[Removal]) -> Conversion | None:
    """Keep each removed interface with `state: absent` and keep its network.

    Returns None when the object's structure cannot take the patch (a wrong type
    on the way down); the removal is then judged as it stands.
    """
    spec = mapping(mapping(vm.raw.get("spec")).get("template")).get("spec")
    if not isinstance(spec, dict):
        return None
    domain = spec.get("domain", {})
    devices = mapping(domain).get("devices", {})
    interfaces = mapping(devices).get("interfaces", [])
    networks = spec.get("networks", [])
    if not (
        isinstance(domain, dict)
        and isinstance(devices, dict)
        and isinstance(interfaces, list)
        and isinstance(networks, list)
    ):
        return None
    ops: list[PatchOp] = []
    positions: dict[str, int] = {}  # first index of each name, built once: removals are many
    for index, item in enumerate(interfaces):
        name = mapping(item).get("name")
        if isinstance(name, str):
            positions.setdefault(name, index)
    new_interfaces = list(interfaces)
    new_networks = list(networks)
    added_interfaces: list[Any] = []
    added_networks: list[Any] = []
    for removal in removals:
        if removal.interface is not None:
            added_interfaces.append({**removal.interface.raw, "state": ABSENT})
        else:
            index = positions[removal.name]
            pointer = f"{paths.POINTER_INTERFACES}/{index}"
            ops.append(PatchOp(op="test", path=f"{pointer}/name", value=removal.name))
            ops.append(PatchOp(op="add", path=f"{pointer}/state", value=ABSENT))
            new_interfaces[index] = {**interfaces[index], "state": ABSENT}
        if removal.network is not None:
            added_networks.append(dict(removal.network.raw))
    ops.extend(
        _append(
            paths.POINTER_INTERFACES,
            "interfaces" in devices,
            added_interfaces,
            _parents(spec, domain, devices),
        )
    )
    ops.extend(_append(paths.POINTER_NETWORKS, "networks" in spec, added_networks, ()))
    new_interfaces.extend(added_interfaces)
    new_networks.extend(added_networks)
    new_spec = {
        **spec,
        "domain": {**domain, "devices": {**devices, "interfaces": new_interfaces}},
        "networks": new_networks,
    }
    return Conversion(ops=tuple(ops), spec=new_spec, names=tuple(r.name for r in removals))


def _parents(
    spec: Mapping[str, Any], domain: Mapping[str, Any], devices: Mapping[str, Any]
) -> tuple[PatchOp, ...]:
    """`add` ops creating `domain` and `devices` when the object lacks them."""
    ops = []
    if "domain" not in spec:
        ops.append(PatchOp(op="add", path=paths.POINTER_SPEC + "/domain", value={}))
    if "devices" not in domain:
        ops.append(PatchOp(op="add", path=paths.POINTER_DEVICES, value={}))
    return tuple(ops)


def _append(
    pointer: str, exists: bool, items: list[Any], parents: Iterable[PatchOp]
) -> list[PatchOp]:
    if not items:
        return []
    if exists:
        return [PatchOp(op="add", path=f"{pointer}/-", value=item) for item in items]
    return [*parents, PatchOp(op="add", path=pointer, value=items)]


def set_model_ops(vm: VirtualMachine, names: Iterable[str]) -> list[PatchOp]:
    """Set `model: virtio` on the named interfaces that have no model (a nameless one is
    left alone: its index could not be guarded by its name)."""
    ops: list[PatchOp] = []
    wanted = set(names)
    for iface in vm.spec.interfaces:
        if iface.name and iface.name in wanted and "model" not in iface.raw:
            pointer = f"{paths.POINTER_INTERFACES}/{iface.position}"
            ops.append(PatchOp(op="test", path=f"{pointer}/name", value=iface.name))
            ops.append(PatchOp(op="add", path=f"{pointer}/model", value="virtio"))
    return ops


_POINTERS: Final = {
    key: f"{paths.POINTER_ANNOTATIONS}/{paths.escape(key)}" for key in (REQUEST, LEDGER, STATUS)
}
"""The pointers of the product's own annotations, escaped once: nearly every review writes
one, and escaping fetched `str.replace`'s code for it alone (docs/webhook.md,
"Performance")."""


def annotation_ops(vm: VirtualMachine, target: Mapping[str, str | None]) -> list[PatchOp]:
    """Set (or with None, remove) annotations so `vm` ends with the `target` values."""
    if not target or not isinstance(vm.raw.get("metadata"), dict) or not vm.annotations_shape_ok:
        return []
    if mapping(vm.raw["metadata"]).get("annotations") is None:
        values = {key: value for key, value in target.items() if value is not None}
        if not values:
            return []
        return [PatchOp(op="add", path=paths.POINTER_ANNOTATIONS, value=values)]
    ops = []
    for key, value in target.items():
        pointer = _POINTERS.get(key) or f"{paths.POINTER_ANNOTATIONS}/{paths.escape(key)}"
        if value is None:
            if key in vm.annotations:
                ops.append(PatchOp(op="remove", path=pointer))
        else:
            ops.append(PatchOp(op="add", path=pointer, value=value))
    return ops


def guarded_keys(*annotation_sets: Mapping[str, Any]) -> list[str]:
    """All `hotplug-guard.io/` keys in any of the sets, sorted."""
    keys: set[str] = set()
    for values in annotation_sets:
        keys.update(k for k in values if isinstance(k, str) and k.startswith(PREFIX))
    return sorted(keys)
