"""Read-only views of the parts of a VirtualMachine (or VMI) the rules look at.

The raw object is never trusted: wrong types are coerced to "missing" and
recorded as shape problems, so every rule can rely on the view's types and the
engine never raises on any JSON.
"""

from __future__ import annotations

import enum
from typing import Any, Final, final

from policy import paths
from policy.paths import FieldPath
from policy.values import Value

# JSON objects are typed `dict`, not `Mapping` (docs/architecture.md, "Why the engine's
# values are written by hand"). The engine never writes into them (a property test
# checks its inputs and this shared empty object stay unchanged).
EMPTY: Final[dict[str, Any]] = {}


class Binding(enum.StrEnum):
    """How an interface connects to its network (an inline method or a plugin)."""

    BRIDGE = "bridge"
    MASQUERADE = "masquerade"
    SRIOV = "sriov"
    PASST_BINDING = "passtBinding"
    SLIRP = "slirp"
    MACVTAP = "macvtap"
    PASST = "passt"
    PLUGIN = "binding"


SOURCE_KEYS = frozenset({"pod", "multus", "resourceClaim"})
ABSENT = "absent"


@final
class Interface(Value):
    """One entry of `domain.devices.interfaces`."""

    FIELDS = ("position", "name", "bindings", "model", "state", "mac", "pci_address", "raw")

    def __init__(
        self,
        *,
        position: int,
        name: str,
        bindings: tuple[Binding, ...],
        model: str,
        state: str,
        mac: str,
        pci_address: str,
        raw: dict[str, Any],
    ) -> None:
        self.position: Final = position
        self.name: Final = name
        self.bindings: Final = bindings
        self.model: Final = model
        self.state: Final = state
        self.mac: Final = mac
        self.pci_address: Final = pci_address
        self.raw: Final = raw

    @property
    def absent(self) -> bool:
        return self.state == ABSENT

    @property
    def binding(self) -> Binding | None:
        """The single binding, or None when there are zero or several."""
        return self.bindings[0] if len(self.bindings) == 1 else None


@final
class Network(Value):
    """One entry of `spec.networks`."""

    FIELDS = ("position", "name", "sources", "multus_name", "multus_default", "raw")

    def __init__(
        self,
        *,
        position: int,
        name: str,
        sources: tuple[str, ...],
        multus_name: str,
        multus_default: bool,
        raw: dict[str, Any],
    ) -> None:
        self.position: Final = position
        self.name: Final = name
        self.sources: Final = sources
        self.multus_name: Final = multus_name
        self.multus_default: Final = multus_default
        self.raw: Final = raw

    @property
    def pod(self) -> bool:
        return self.sources == ("pod",)

    @property
    def multus(self) -> bool:
        return self.sources == ("multus",)

    @property
    def default(self) -> bool:
        """The VM's primary network: the pod network or a multus default."""
        return "pod" in self.sources or (self.multus_default and "multus" in self.sources)

    @property
    def secondary(self) -> bool:
        """A non-default multus network: the only kind KubeVirt hot plugs."""
        return self.multus and not self.multus_default


@final
class Shape(Value):
    """A part of the object with the wrong JSON type."""

    FIELDS = ("field", "expected")

    def __init__(self, *, field: FieldPath, expected: str) -> None:
        self.field: Final = field
        self.expected: Final = expected


class Spec:
    """The network-relevant part of a VM template spec or a VMI spec.

    Interface and network views are built on first use and kept in plain
    attributes (docs/architecture.md on the compiled build): most requests only
    need the new spec in full, and look up a few entries of the old spec and the
    VMI by name.
    """

    def __init__(self, raw: object, *, base: FieldPath | None = None) -> None:
        self._base = base  # None: a VM's template spec (resolved only when a path is built)
        self._container_shapes: list[Shape] = []
        self._entry_shapes: list[Shape] = []
        spec = self._child(raw, ())
        self.domain = self._child(spec.get("domain"), _DOMAIN)
        self.devices = self._child(self.domain.get("devices"), _DEVICES)
        machine = self._child(self.domain.get("machine"), _MACHINE)
        self.machine_type = text(machine.get("type"))
        self.architecture = text(spec.get("architecture"))
        self._raw_interfaces = self._list(self.devices.get("interfaces"), _INTERFACES)
        self._raw_networks = self._list(spec.get("networks"), _NETWORKS)
        # Entry counts, known before any per-entry work (the engine refuses oversized lists).
        self.interface_count = len(self._raw_interfaces)
        self.network_count = len(self._raw_networks)
        self.interfaces_listed = bool(self._raw_interfaces)
        self.networks_listed = bool(self._raw_networks)
        self._interfaces: tuple[Interface, ...] | None = None
        self._networks: tuple[Network, ...] | None = None
        self._interfaces_by_name: dict[str, Interface] | None = None
        self._networks_by_name: dict[str, Network] | None = None
        self._raw_interfaces_by_name: dict[str, tuple[int, dict[str, Any]]] | None = None
        self._raw_networks_by_name: dict[str, tuple[int, dict[str, Any]]] | None = None

    @property
    def interfaces(self) -> tuple[Interface, ...]:
        if self._interfaces is None:
            shapes = self._entry_shapes
            self._interfaces = tuple(
                [
                    _interface(index, item, self, shapes)
                    for index, item in enumerate(self._raw_interfaces)
                    if isinstance(item, dict) or _not_entry(self.at(_INTERFACES), index, shapes)
                ]
            )
        return self._interfaces

    @property
    def networks(self) -> tuple[Network, ...]:
        if self._networks is None:
            shapes = self._entry_shapes
            self._networks = tuple(
                [
                    _network(index, item)
                    for index, item in enumerate(self._raw_networks)
                    if isinstance(item, dict) or _not_entry(self.at(_NETWORKS), index, shapes)
                ]
            )
        return self._networks

    @property
    def shapes(self) -> tuple[Shape, ...]:
        """Parts with the wrong JSON type (parses every entry)."""
        _ = self.interfaces, self.networks
        return (*self._container_shapes, *self._entry_shapes)

    @property
    def raw_interfaces(self) -> dict[str, tuple[int, dict[str, Any]]]:
        """(index, entry) of the first interface of each name, without building views."""
        if self._raw_interfaces_by_name is None:
            self._raw_interfaces_by_name = _by_name(self._raw_interfaces)
        return self._raw_interfaces_by_name

    @property
    def raw_networks(self) -> dict[str, tuple[int, dict[str, Any]]]:
        if self._raw_networks_by_name is None:
            self._raw_networks_by_name = _by_name(self._raw_networks)
        return self._raw_networks_by_name

    def interface(self, name: str) -> Interface | None:
        """The first interface called `name`."""
        if self._interfaces is not None:
            return self.interfaces_by_name.get(name)
        entry = self.raw_interfaces.get(name)
        return None if entry is None else _interface(entry[0], entry[1], self, [])

    def network(self, name: str) -> Network | None:
        """The first network called `name`."""
        if self._networks is not None:
            return self.networks_by_name.get(name)
        entry = self.raw_networks.get(name)
        return None if entry is None else _network(entry[0], entry[1])

    def present_names(self) -> list[str]:
        """Names of the interfaces that are not absent, in spec order."""
        return [
            name for name, (_, item) in self.raw_interfaces.items() if item.get("state") != ABSENT
        ]

    @property
    def interfaces_by_name(self) -> dict[str, Interface]:
        """First interface of each name (duplicates are a kubevirt-spec finding)."""
        if self._interfaces_by_name is None:
            result: dict[str, Interface] = {}
            for iface in self.interfaces:
                result.setdefault(iface.name, iface)
            self._interfaces_by_name = result
        return self._interfaces_by_name

    @property
    def networks_by_name(self) -> dict[str, Network]:
        if self._networks_by_name is None:
            result: dict[str, Network] = {}
            for net in self.networks:
                result.setdefault(net.name, net)
            self._networks_by_name = result
        return self._networks_by_name

    def at(self, names: tuple[str, ...]) -> FieldPath:
        """The path of field `names` (children of each other) of this spec.

        Shape problems are rare: their paths are built only when one is recorded.
        """
        path = paths.SPEC if self._base is None else self._base
        for name in names:
            path = path.child(name)
        return path

    def _child(self, value: object, names: tuple[str, ...]) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        if value is not None:
            self._container_shapes.append(Shape(field=self.at(names), expected="object"))
        return EMPTY

    def _list(self, value: object, names: tuple[str, ...]) -> list[Any]:
        if isinstance(value, list):
            return value
        if value is not None:
            self._container_shapes.append(Shape(field=self.at(names), expected="list"))
        return []


# The spec's fields the view reads, as names below its base path (typed `tuple[str, ...]`:
# compiled, a fixed-length tuple is unboxed and would be boxed again on every call).
_DOMAIN: Final[tuple[str, ...]] = ("domain",)
_DEVICES: Final[tuple[str, ...]] = ("domain", "devices")
_MACHINE: Final[tuple[str, ...]] = ("domain", "machine")
_INTERFACES: Final[tuple[str, ...]] = ("domain", "devices", "interfaces")
_NETWORKS: Final[tuple[str, ...]] = ("networks",)


def _not_entry(entries: FieldPath, index: int, shapes: list[Shape]) -> bool:
    """Record an entry that is not a JSON object; always False (the entry is skipped)."""
    shapes.append(Shape(field=entries.index(index), expected="object"))
    return False


def _by_name(items: list[Any]) -> dict[str, tuple[int, dict[str, Any]]]:
    result: dict[str, tuple[int, dict[str, Any]]] = {}
    for index, item in enumerate(items):
        if isinstance(item, dict):
            name = item.get("name")
            if isinstance(name, str) and name not in result:
                result[name] = (index, item)
    return result


@final
class VirtualMachine(Value):
    """A VirtualMachine object as the engine sees it."""

    FIELDS = (
        "name",
        "namespace",
        "uid",
        "generation",
        "annotations",
        "annotations_shape_ok",
        "template_annotations",
        "printable_status",
        "spec",
        "raw",
    )

    def __init__(
        self,
        *,
        name: str,
        namespace: str,
        uid: str,
        generation: int,
        annotations: dict[str, Any],
        annotations_shape_ok: bool,
        template_annotations: dict[str, Any],
        printable_status: str,
        spec: Spec,
        raw: dict[str, Any],
    ) -> None:
        self.name: Final = name
        self.namespace: Final = namespace
        self.uid: Final = uid
        self.generation: Final = generation
        self.annotations: Final = annotations
        self.annotations_shape_ok: Final = annotations_shape_ok
        self.template_annotations: Final = template_annotations
        self.printable_status: Final = printable_status
        self.spec: Final = spec
        self.raw: Final = raw


def mapping(value: object) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else EMPTY


def array(value: object) -> list[Any]:
    """`value` if it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []


def text(value: object) -> str:
    """`value` if it is a string, else the empty string."""
    return value if isinstance(value, str) else ""


def positive_int(value: object) -> int:
    """`value` if it is a positive JSON integer, else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def parse_spec(spec: object, *, base: FieldPath | None = None) -> Spec:
    """View of a VM template spec or VMI spec; `base` (default `spec.template.spec`)
    prefixes shape field paths."""
    return Spec(spec, base=base)


def parse_vm(obj: object) -> VirtualMachine:
    """View of a VirtualMachine object of any shape."""
    raw = mapping(obj)
    metadata = mapping(raw.get("metadata"))
    spec = mapping(raw.get("spec"))
    template = mapping(spec.get("template"))
    annotations = metadata.get("annotations")
    return VirtualMachine(
        name=text(metadata.get("name")),
        namespace=text(metadata.get("namespace")),
        uid=text(metadata.get("uid")),
        generation=positive_int(metadata.get("generation")),
        annotations=mapping(annotations),
        annotations_shape_ok=annotations is None or isinstance(annotations, dict),
        template_annotations=mapping(mapping(template.get("metadata")).get("annotations")),
        printable_status=text(mapping(raw.get("status")).get("printableStatus")),
        spec=parse_spec(template.get("spec")),
        raw=raw,
    )


_BINDINGS = {member.value: member for member in Binding}


def _interface(index: int, item: dict[str, Any], spec: Spec, shapes: list[Shape]) -> Interface:
    name, model, state = item.get("name", ""), item.get("model", ""), item.get("state", "")
    mac, pci_address = item.get("macAddress", ""), item.get("pciAddress", "")
    if not (
        isinstance(name, str)
        and isinstance(model, str)
        and isinstance(state, str)
        and isinstance(mac, str)
        and isinstance(pci_address, str)
    ):
        name, model, state, mac, pci_address = (
            _string(item.get(key), spec, index, key, shapes)
            for key in ("name", "model", "state", "macAddress", "pciAddress")
        )
    return Interface(
        position=index,
        name=name,
        bindings=tuple(
            [_BINDINGS[key] for key in item if key in _BINDINGS and item[key] is not None]
        ),
        model=model,
        state=state,
        mac=mac,
        pci_address=pci_address,
        raw=item,
    )


def _string(value: object, spec: Spec, index: int, key: str, shapes: list[Shape]) -> str:
    """`value` if it is a string (None reads as empty); else records interface `index`'s `key`."""
    if value is None or isinstance(value, str):
        return value or ""
    shapes.append(Shape(field=spec.at(_INTERFACES).index(index).child(key), expected="string"))
    return ""


def _network(index: int, item: dict[str, Any]) -> Network:
    name = item.get("name", "")
    multus = item.get("multus")
    if not isinstance(multus, dict):
        multus = EMPTY
    network_name = multus.get("networkName", "")
    return Network(
        position=index,
        name=name if isinstance(name, str) else "",
        sources=tuple([key for key in item if key in SOURCE_KEYS and item[key] is not None]),
        multus_name=network_name if isinstance(network_name, str) else "",
        multus_default=multus.get("default") is True,
        raw=item,
    )
