"""Read-only views of the parts of a VirtualMachine (or VMI) the rules look at.

The raw object is never trusted: wrong types are coerced to "missing" and
recorded as shape problems, so every rule can rely on the view's types and the
engine never raises on any JSON.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policy import paths

EMPTY: Mapping[str, Any] = {}


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


BINDING_KEYS: tuple[str, ...] = tuple(member.value for member in Binding)
SOURCE_KEYS: tuple[str, ...] = ("pod", "multus", "resourceClaim")
ABSENT = "absent"


@dataclass(frozen=True, slots=True, kw_only=True)
class Interface:
    """One entry of `domain.devices.interfaces`."""

    index: int
    name: str
    bindings: tuple[Binding, ...]
    model: str
    state: str
    mac: str
    pci_address: str
    raw: Mapping[str, Any]

    @property
    def absent(self) -> bool:
        return self.state == ABSENT

    @property
    def binding(self) -> Binding | None:
        """The single binding, or None when there are zero or several."""
        return self.bindings[0] if len(self.bindings) == 1 else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Network:
    """One entry of `spec.networks`."""

    index: int
    name: str
    sources: tuple[str, ...]
    multus_name: str
    multus_default: bool
    raw: Mapping[str, Any]

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


@dataclass(frozen=True, slots=True, kw_only=True)
class Shape:
    """A part of the object with the wrong JSON type."""

    field: str
    expected: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Spec:
    """The network-relevant part of a VM template spec or a VMI spec."""

    interfaces: tuple[Interface, ...]
    networks: tuple[Network, ...]
    interfaces_listed: bool
    networks_listed: bool
    machine_type: str
    architecture: str
    devices: Mapping[str, Any]
    domain: Mapping[str, Any]
    shapes: tuple[Shape, ...]

    def interface(self, name: str) -> Interface | None:
        return next((i for i in self.interfaces if i.name == name), None)

    def network(self, name: str) -> Network | None:
        return next((n for n in self.networks if n.name == name), None)

    def interfaces_by_name(self) -> dict[str, Interface]:
        """First interface of each name (duplicates are a kubevirt-spec finding)."""
        result: dict[str, Interface] = {}
        for iface in self.interfaces:
            result.setdefault(iface.name, iface)
        return result

    def networks_by_name(self) -> dict[str, Network]:
        result: dict[str, Network] = {}
        for net in self.networks:
            result.setdefault(net.name, net)
        return result


@dataclass(frozen=True, slots=True, kw_only=True)
class VirtualMachine:
    """A VirtualMachine object as the engine sees it."""

    name: str
    namespace: str
    uid: str
    annotations: Mapping[str, Any]
    annotations_shape_ok: bool
    template_annotations: Mapping[str, Any]
    printable_status: str
    spec: Spec
    raw: Mapping[str, Any]


def mapping(value: object) -> Mapping[str, Any]:
    """`value` if it is a JSON object, else an empty one."""
    return value if isinstance(value, Mapping) else EMPTY


def text(value: object) -> str:
    """`value` if it is a string, else the empty string."""
    return value if isinstance(value, str) else ""


def parse_spec(spec: object, *, base: str = paths.SPEC) -> Spec:
    """View of a VM template spec or VMI spec; `base` prefixes shape field paths."""
    shapes: list[Shape] = []
    spec_map = _child(spec, "", base, shapes, top=True)
    domain = _child(spec_map, "domain", base, shapes)
    devices = _child(domain, "devices", f"{base}.domain", shapes)
    machine = _child(domain, "machine", f"{base}.domain", shapes)
    raw_ifaces = devices.get("interfaces")
    raw_nets = spec_map.get("networks")
    interfaces: list[Interface] = []
    if isinstance(raw_ifaces, list):
        for index, item in enumerate(raw_ifaces):
            if not isinstance(item, Mapping):
                shapes.append(
                    Shape(field=f"{base}.domain.devices.interfaces[{index}]", expected="object")
                )
                continue
            interfaces.append(_interface(index, item, f"{base}.domain.devices", shapes))
    elif raw_ifaces is not None:
        shapes.append(Shape(field=f"{base}.domain.devices.interfaces", expected="list"))
    networks: list[Network] = []
    if isinstance(raw_nets, list):
        for index, item in enumerate(raw_nets):
            if not isinstance(item, Mapping):
                shapes.append(Shape(field=f"{base}.networks[{index}]", expected="object"))
                continue
            networks.append(_network(index, item))
    elif raw_nets is not None:
        shapes.append(Shape(field=f"{base}.networks", expected="list"))
    return Spec(
        interfaces=tuple(interfaces),
        networks=tuple(networks),
        interfaces_listed=bool(interfaces),
        networks_listed=bool(networks),
        machine_type=text(machine.get("type")),
        architecture=text(spec_map.get("architecture")),
        devices=devices,
        domain=domain,
        shapes=tuple(shapes),
    )


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
        annotations=mapping(annotations),
        annotations_shape_ok=annotations is None or isinstance(annotations, Mapping),
        template_annotations=mapping(mapping(template.get("metadata")).get("annotations")),
        printable_status=text(mapping(raw.get("status")).get("printableStatus")),
        spec=parse_spec(template.get("spec")),
        raw=raw,
    )


def _child(
    parent: object, key: str, base: str, shapes: list[Shape], *, top: bool = False
) -> Mapping[str, Any]:
    value = parent if top else mapping(parent).get(key)
    if value is None or isinstance(value, Mapping):
        return mapping(value)
    shapes.append(Shape(field=f"{base}.{key}" if key else base, expected="object"))
    return EMPTY


_STRING_FIELDS = ("name", "model", "state", "macAddress", "pciAddress")


def _interface(index: int, item: Mapping[str, Any], base: str, shapes: list[Shape]) -> Interface:
    for key in _STRING_FIELDS:
        value = item.get(key)
        if value is not None and not isinstance(value, str):
            shapes.append(Shape(field=f"{base}.interfaces[{index}].{key}", expected="string"))
    bindings = tuple(Binding(key) for key in BINDING_KEYS if item.get(key) is not None)
    return Interface(
        index=index,
        name=text(item.get("name")),
        bindings=bindings,
        model=text(item.get("model")),
        state=text(item.get("state")),
        mac=text(item.get("macAddress")),
        pci_address=text(item.get("pciAddress")),
        raw=item,
    )


def _network(index: int, item: Mapping[str, Any]) -> Network:
    multus = mapping(item.get("multus"))
    return Network(
        index=index,
        name=text(item.get("name")),
        sources=tuple(key for key in SOURCE_KEYS if item.get(key) is not None),
        multus_name=text(multus.get("networkName")),
        multus_default=multus.get("default") is True,
        raw=item,
    )
