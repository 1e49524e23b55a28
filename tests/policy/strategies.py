"""Hypothesis strategies: arbitrary JSON and plausible VirtualMachine updates."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st


def examples(count: int) -> int:
    """`count` examples under hypothesis' default profile (100), in proportion under another.

    The mutation run's profile (tests/policy/conftest.py) draws a tenth as many.
    """
    return max(1, count * settings().max_examples // 100)


SHORT_TEXT = st.text(max_size=8)
INTEGERS = st.integers()


def json_values(
    *,
    text: st.SearchStrategy[str] = SHORT_TEXT,
    integers: st.SearchStrategy[int] = INTEGERS,
    infinity: bool = True,
    size: int = 4,
    leaves: int = 20,
) -> st.SearchStrategy[Any]:
    """Arbitrary JSON documents (no NaN: it is not equal to itself)."""
    return st.recursive(
        st.none()
        | st.booleans()
        | integers
        | st.floats(allow_nan=False, allow_infinity=infinity)
        | text,
        lambda children: (
            st.lists(children, max_size=size) | st.dictionaries(text, children, max_size=size)
        ),
        max_leaves=leaves,
    )


JSON = json_values()

NAMES = st.sampled_from(["default", "nic1", "nic2", "nic3", "nic4", "nic5", "bad.name"])
SECONDARIES = ["nic1", "nic2", "nic3", "nic4", "nic5", "nic6"]
BINDINGS = st.sampled_from(["bridge", "masquerade", "sriov", "passtBinding", "binding"])
STATES = st.sampled_from([None, "absent", "up", "down", "foo"])
MODELS = st.sampled_from([None, "virtio", "e1000", "nope"])
GUARDED = st.sampled_from(
    ["hotplug-guard.io/request", "hotplug-guard.io/status", "hotplug-guard.io/hotplugged"]
)


@st.composite
def interfaces(draw: st.DrawFn) -> dict[str, Any]:
    iface: dict[str, Any] = {"name": draw(NAMES), draw(BINDINGS): {}}
    state, model = draw(STATES), draw(MODELS)
    if state is not None:
        iface["state"] = state
    if model is not None:
        iface["model"] = model
    return iface


@st.composite
def networks(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["pod", "multus", "multus-default", "none"]))
    net: dict[str, Any] = {"name": draw(NAMES)}
    if kind == "pod":
        net["pod"] = {}
    elif kind == "multus":
        net["multus"] = {"networkName": draw(st.sampled_from(["net-a", "other/net-b", ""]))}
    elif kind == "multus-default":
        net["multus"] = {"networkName": "net-a", "default": True}
    return net


@st.composite
def virtual_machines(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly valid running VMs: a masquerade pod interface plus bridge secondaries."""
    names = draw(st.lists(st.sampled_from(SECONDARIES), unique=True, max_size=4))
    ifaces: list[dict[str, Any]] = [{"name": "default", "masquerade": {}}]
    nets: list[dict[str, Any]] = [{"name": "default", "pod": {}}]
    for name in names:
        iface: dict[str, Any] = {"name": name, "bridge": {}}
        if draw(st.integers(0, 4)) == 0:
            iface["state"] = "absent"
        ifaces.append(iface)
        nets.append({"name": name, "multus": {"networkName": "net-a"}})
    if draw(st.integers(0, 5)) == 0:  # now and then, something KubeVirt rejects
        ifaces.append(draw(interfaces()))
        nets.append(draw(networks()))
    vm: dict[str, Any] = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": "vm", "namespace": "default", "uid": "uid-1"},
        "spec": {
            "template": {"spec": {"domain": {"devices": {"interfaces": ifaces}}, "networks": nets}}
        },
        "status": {"printableStatus": draw(st.sampled_from(["Running", "Running", "Stopped"]))},
    }
    annotations = draw(
        st.dictionaries(GUARDED | st.just("other"), st.text(max_size=30), max_size=2)
    )
    if annotations and draw(st.integers(0, 3)) == 0:
        vm["metadata"]["annotations"] = annotations
    return vm


@st.composite
def updates(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """An old VM and a new one derived from it by plugs, unplugs, removals and edits."""
    old = draw(virtual_machines())
    new = copy.deepcopy(old)
    spec = new["spec"]["template"]["spec"]
    ifaces, nets = spec["domain"]["devices"]["interfaces"], spec["networks"]
    for _ in range(draw(st.integers(0, 3))):
        action = draw(
            st.sampled_from(
                ["plug", "unplug", "cancel", "remove", "remove-net", "edit", "annotate"]
            )
        )
        used = {iface.get("name") for iface in ifaces}
        free = [name for name in SECONDARIES if name not in used]
        if action == "plug" and free:
            name = draw(st.sampled_from(free))
            binding = "bridge" if draw(st.integers(0, 3)) else draw(BINDINGS)
            ifaces.append({"name": name, binding: {}})
            nets.append({"name": name, "multus": {"networkName": "net-a"}})
        elif action == "unplug":
            draw(st.sampled_from(ifaces[1:] or ifaces))["state"] = "absent"
        elif action == "cancel":
            draw(st.sampled_from(ifaces)).pop("state", None)
        elif action == "remove":
            index = draw(st.integers(0, len(ifaces) - 1))
            name = ifaces.pop(index).get("name")
            nets[:] = [net for net in nets if net.get("name") != name or draw(st.booleans())]
        elif action == "remove-net" and nets:
            nets.pop(draw(st.integers(0, len(nets) - 1)))
        elif action == "edit":
            draw(st.sampled_from(ifaces))["macAddress"] = "02:00:00:00:00:01"
        elif action == "annotate":
            new["metadata"].setdefault("annotations", {})[draw(GUARDED)] = draw(st.text(max_size=8))
        if not ifaces:
            break
    return old, new
