"""KubeVirt's own network admission rules, ported with KubeVirt's messages.

Mirrors `pkg/network/admitter` (validator order, cause types, field paths and
message texts) so an offline check answers exactly like the cluster would. Only
the network part of the spec is covered. All rules are stateless: they read the
new object only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, final

from policy import paths
from policy.cluster import Cluster, parse_cluster
from policy.ids import RuleId
from policy.paths import FieldPath
from policy.values import Value
from policy.verdicts import Cause, CauseType
from policy.views import ABSENT, Binding, Interface, Spec

RULE = RuleId.KUBEVIRT_SPEC
STATES = frozenset({"", ABSENT, "up", "down"})
STATES_BEFORE_V1_5 = frozenset({"", ABSENT})
# The binding methods KubeVirt's webhook counts, by release (`hasInterfaceBindingMethod`,
# `countInterfaceBindings`); discontinued ones still parse but count only up to v1.7.
METHODS_V1_1 = frozenset(
    {
        Binding.BRIDGE,
        Binding.SLIRP,
        Binding.MASQUERADE,
        Binding.SRIOV,
        Binding.MACVTAP,
        Binding.PASST,
    }
)
METHODS_V1_8 = frozenset({Binding.BRIDGE, Binding.MASQUERADE, Binding.SRIOV, Binding.PASST_BINDING})
MODELS = frozenset({"e1000", "e1000e", "igb", "ne2k_pci", "pcnet", "rtl8139", "virtio"})
NAME = re.compile(r"[A-Za-z0-9-_]+")
PCI_ADDRESS = re.compile(r"([0-9a-fA-F]{4}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7]{1})")
HEX_PAIR = re.compile(r"[0-9a-fA-F]{2}")
HEX_QUAD = re.compile(r"[0-9a-fA-F]{4}")
RESERVED_MASQUERADE_MAC = "02:00:00:00:00:00"
DISCONTINUED = {
    Binding.SLIRP: "Slirp interface support has been discontinued since v1.3",
    Binding.PASST: "Passt network binding has been discontinued since v1.3",
    Binding.MACVTAP: "Macvtap network binding has been discontinued since v1.3",
}


def _cause(kind: CauseType, field: FieldPath, message: str) -> Cause:
    return Cause(rule=RULE, type=kind, field=field.text, message=message)


def _add(causes: list[Cause], kind: CauseType, field: FieldPath, message: str) -> None:
    causes.append(_cause(kind, field, message))


@final
class Submission(Value):
    """What the spec phase judges: the new spec (after mutation), and the request around it."""

    FIELDS = ("spec", "creating", "kubevirt")

    def __init__(self, spec: Spec, *, creating: bool, kubevirt: Mapping[str, Any] | None) -> None:
        self.spec: Final = spec
        self.creating: Final = creating
        self.kubevirt: Final = kubevirt


def check_kubevirt_spec(submission: Submission) -> list[Cause]:
    """All causes KubeVirt's VM webhook would give for the network part of the spec.

    Where releases differ, the rules of the release in the KubeVirt CR apply; when
    it is unknown, the newest ones (the strictest on bindings: exactly one). Each
    validator adds its causes to one list, in KubeVirt's order.
    """
    spec, creating, kubevirt = submission.spec, submission.creating, submission.kubevirt
    cluster = parse_cluster(kubevirt)  # read only by the rules that differ by release
    causes: list[Cause] = []
    for shape in spec.shapes:
        _add(causes, CauseType.INVALID, shape.field, f"must be {_article(shape.expected)}")
    _network_sources(spec, causes)
    _states(spec, cluster, causes)
    _bindings(spec, cluster, causes)
    _unique_networks(spec, causes)
    _pairing(spec, causes)
    _formats(spec, causes)
    if creating and not cluster.release.before(3):
        _discontinued(spec, causes)
    return causes


def _network_sources(spec: Spec, causes: list[Cause]) -> None:
    pods = sum(1 for net in spec.networks if "pod" in net.sources)
    if pods > 1:
        pods_field = paths.SPEC.child("interfaces")  # KubeVirt's path, though no such field exists
        _add(
            causes,
            CauseType.DUPLICATE,
            pods_field,
            f"more than one interface is connected to a pod network in {pods_field}",
        )
    defaults = sum(1 for net in spec.networks if "multus" in net.sources and net.multus_default)
    if defaults > 1:
        _add(
            causes,
            CauseType.INVALID,
            paths.NETWORKS,
            "Multus CNI should only have one default network",
        )
    if pods and defaults:
        _add(
            causes,
            CauseType.INVALID,
            paths.NETWORKS,
            "Pod network cannot be defined when Multus default network is defined",
        )
    for net in spec.networks:
        if not net.sources:
            _add(
                causes,
                CauseType.REQUIRED,
                paths.network(net.position),
                "should have a network type",
            )
        elif len(net.sources) > 1:
            _add(
                causes,
                CauseType.REQUIRED,
                paths.network(net.position),
                "should have only one network type",
            )
    # KubeVirt returns after the first multus network without a networkName.
    for net in spec.networks:
        if "multus" in net.sources and not net.multus_name:
            _add(
                causes,
                CauseType.REQUIRED,
                paths.network(net.position),
                "CNI delegating plugin must have a networkName",
            )
            break


def _states(spec: Spec, cluster: Cluster, causes: list[Cause]) -> None:
    default = next((net.name for net in spec.networks if net.default), None)
    for iface in spec.interfaces:
        if not iface.state:
            continue  # the common case: nothing to check, no field path to build
        link_states = not cluster.release.before(5)  # up and down arrived in v1.5
        states = STATES if link_states else STATES_BEFORE_V1_5
        field = paths.interface(iface.position).child("state")
        if iface.state not in states:
            _add(
                causes,
                CauseType.INVALID,
                field,
                f"logical {iface.name} interface state value is unsupported: {iface.state}",
            )
        if link_states and iface.state in ("up", "down") and Binding.SRIOV in iface.bindings:
            _add(
                causes,
                CauseType.INVALID,
                field,
                f'"{iface.name}" interface\'s state "{iface.state}" is not supported '
                "for SR-IOV NICs",
            )
        if iface.absent and Binding.BRIDGE not in iface.bindings:
            _add(
                causes,
                CauseType.INVALID,
                field,
                f'"{iface.name}" interface\'s state "absent" is supported only for bridge binding',
            )
        if iface.absent and default is not None and iface.name == default:
            _add(
                causes,
                CauseType.INVALID,
                field,
                f'"{iface.name}" interface\'s state "absent" is not supported on default networks',
            )


def _bindings(spec: Spec, cluster: Cluster, causes: list[Cause]) -> None:
    networks = spec.networks_by_name
    for iface in spec.interfaces:
        cause = _binding_count(iface, cluster)
        if cause is not None:
            causes.append(cause)
        net = networks.get(iface.name)
        if Binding.MASQUERADE in iface.bindings:
            # KubeVirt looks the network up in a Go map: a missing one is a zero
            # value without a pod source, so it is reported here too.
            if net is None or "pod" not in net.sources:
                _add(
                    causes,
                    CauseType.INVALID,
                    paths.interface(iface.position).child("name"),
                    "Masquerade interface only implemented with pod network",
                )
            if iface.mac.lower() == RESERVED_MASQUERADE_MAC:
                _add(
                    causes,
                    CauseType.INVALID,
                    paths.interface(iface.position).child("macAddress"),
                    "The requested MAC address is reserved for the in-pod bridge. "
                    "Please choose another one.",
                )
        if (
            Binding.BRIDGE in iface.bindings
            and net is not None
            and "pod" in net.sources
            and not cluster.permit_bridge_on_pod_network
        ):
            _add(
                causes,
                CauseType.INVALID,
                paths.interface(iface.position).child("name"),
                "Bridge on pod network configuration is not enabled under kubevirt-config",
            )
        if Binding.PASST_BINDING in iface.bindings and (net is None or "pod" not in net.sources):
            _add(
                causes,
                CauseType.INVALID,
                paths.interface(iface.position).child("name"),
                "PasstBinding interface only implemented with pod network",
            )


def _binding_count(iface: Interface, cluster: Cluster) -> Cause | None:
    """B1: exactly one binding from v1.9 (and when unknown); no plugin with a method before."""
    bindings = iface.bindings
    if len(bindings) == 1 and bindings[0] not in DISCONTINUED:
        return None  # the common case, fine on every release
    release = cluster.release
    if release.before(1):
        return None
    if release.before(9):
        methods = METHODS_V1_1 if release.before(8) else METHODS_V1_8
        if Binding.PLUGIN not in iface.bindings or methods.isdisjoint(iface.bindings):
            return None
        return _cause(
            CauseType.INVALID,
            paths.interface(iface.position).child("binding"),
            f"logical {iface.name} interface cannot have both binding plugin and interface "
            "binding method",
        )
    counted = iface.bindings
    if release.known:  # v1.9 no longer counts the discontinued bindings
        counted = tuple([b for b in iface.bindings if b in METHODS_V1_8 or b is Binding.PLUGIN])
    if len(counted) == 1:
        return None
    return _cause(
        CauseType.INVALID,
        paths.interface(iface.position),
        f"logical {iface.name} interface must have exactly one binding method or binding plugin",
    )


def _unique_networks(spec: Spec, causes: list[Cause]) -> None:
    seen: set[str] = set()
    for net in spec.networks:
        if net.name in seen:
            _add(
                causes,
                CauseType.DUPLICATE,
                paths.network(net.position).child("name"),
                f'Network with name "{net.name}" already exists, every network must have a '
                "unique name",
            )
        seen.add(net.name)


def _pairing(spec: Spec, causes: list[Cause]) -> None:
    iface_names = {iface.name for iface in spec.interfaces}
    net_names = {net.name for net in spec.networks}
    for net in spec.networks:
        if net.name not in iface_names:
            field = paths.network(net.position).child("name")
            _add(causes, CauseType.REQUIRED, field, f"{field} '{net.name}' not found.")
    seen: set[str] = set()
    for iface in spec.interfaces:
        if iface.name in seen:
            _add(
                causes,
                CauseType.DUPLICATE,
                _name_field(iface),
                "Only one interface can be connected to one specific network",
            )
        seen.add(iface.name)
        if iface.name not in net_names:
            field = _name_field(iface)
            _add(causes, CauseType.INVALID, field, f"{field} '{iface.name}' not found.")


def _formats(spec: Spec, causes: list[Cause]) -> None:
    for iface in spec.interfaces:
        if not NAME.fullmatch(iface.name):
            _add(
                causes,
                CauseType.INVALID,
                paths.interface(iface.position).child("name"),
                "Network interface name can only contain alphabetical characters, numbers, "
                "dashes (-) or underscores (_)",
            )
        if iface.model and iface.model not in MODELS:
            _add(
                causes,
                CauseType.NOT_SUPPORTED,
                paths.interface(iface.position).child("model"),
                f"interface {_name_field(iface)} uses model {iface.model} that is not supported.",
            )
        if iface.mac:
            size = mac_length(iface.mac)
            if size is None:
                _add(
                    causes,
                    CauseType.INVALID,
                    paths.interface(iface.position).child("macAddress"),
                    f"interface {_name_field(iface)} has malformed MAC address ({iface.mac}).",
                )
            elif size > 6:
                _add(
                    causes,
                    CauseType.INVALID,
                    paths.interface(iface.position).child("macAddress"),
                    f"interface {_name_field(iface)} has too long MAC address ({iface.mac}).",
                )
        if iface.pci_address and not PCI_ADDRESS.fullmatch(iface.pci_address):
            _add(
                causes,
                CauseType.INVALID,
                paths.interface(iface.position).child("pciAddress"),
                f"interface {_name_field(iface)} has malformed PCI address ({iface.pci_address}).",
            )


def _name_field(iface: Interface) -> FieldPath:
    """KubeVirt names the interface by its field path in format messages."""
    return paths.interface(iface.position).child("name")


def _discontinued(spec: Spec, causes: list[Cause]) -> None:
    for iface in spec.interfaces:
        for binding in iface.bindings:
            message = DISCONTINUED.get(binding)
            if message is not None:
                _add(
                    causes,
                    CauseType.INVALID,
                    paths.interface(iface.position).child(binding.value),
                    message,
                )


def mac_length(mac: str) -> int | None:
    """Bytes in `mac` as Go's `net.ParseMAC` reads it, or None when it does not parse.

    Accepts the colon, dash and dotted forms of 6, 8 and 20 bytes, like Go does;
    KubeVirt then rejects anything longer than 6 bytes as "too long".
    """
    if len(mac) < 14:
        return None
    if mac[2] in ":-":
        if (len(mac) + 1) % 3:
            return None
        size = (len(mac) + 1) // 3
        separator = mac[2]
        groups = mac.split(separator)
        if len(groups) != size or not all(HEX_PAIR.fullmatch(g) for g in groups):
            return None
    elif mac[4] == ".":
        if (len(mac) + 1) % 5:
            return None
        size = 2 * (len(mac) + 1) // 5
        groups = mac.split(".")
        if len(groups) != size // 2 or not all(HEX_QUAD.fullmatch(g) for g in groups):
            return None
    else:
        return None
    return size if size in (6, 8, 20) else None


def _article(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"
