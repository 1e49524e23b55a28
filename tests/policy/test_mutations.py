"""The patches the mutating webhook returns, applied to objects of every shape."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import jsonpatch
import pytest

from policy import Context, Operation, Review, evaluate
from policy.config import parse_config

PTP = {"name": "ptp", "bridge": {}}
PTP_NETWORK = {"name": "ptp", "multus": {"networkName": "ptp-conf"}}
CONTEXT = Context(
    nads=frozenset({"default/ptp-conf", "default/net"}),
    kubevirt={"status": {"observedKubeVirtVersion": "v1.9.0"}},
)


def vm() -> dict[str, Any]:
    """A running VM with only a secondary interface (it asked for no pod interface)."""
    return {
        "metadata": {"name": "vm", "namespace": "default", "uid": "vm-uid"},
        "spec": {
            "template": {
                "spec": {
                    "domain": {
                        "memory": {"guest": "1Gi"},
                        "devices": {"autoattachPodInterface": False, "interfaces": [PTP]},
                    },
                    "networks": [PTP_NETWORK],
                }
            }
        },
        "status": {"printableStatus": "Running"},
    }


def template(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def without(*keys: str) -> Callable[[dict[str, Any]], None]:
    """Delete the template's `domain`, `devices`, `interfaces` or `networks`."""

    def edit(spec: dict[str, Any]) -> None:
        for key in keys:
            if key == "networks":
                del spec["networks"]
            elif key == "domain":
                del spec["domain"]
            elif key == "devices":
                del spec["domain"]["devices"]
            else:
                del spec["domain"]["devices"]["interfaces"]

    return edit


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            without("interfaces", "networks"),
            {
                "domain": {
                    "memory": {"guest": "1Gi"},
                    "devices": {
                        "autoattachPodInterface": False,
                        "interfaces": [{**PTP, "state": "absent"}],
                    },
                },
                "networks": [PTP_NETWORK],
            },
        ),
        (
            without("devices"),
            {
                "domain": {
                    "memory": {"guest": "1Gi"},
                    "devices": {"interfaces": [{**PTP, "state": "absent"}]},
                },
                "networks": [PTP_NETWORK],
            },
        ),
        (
            without("domain", "networks"),
            {
                "domain": {"devices": {"interfaces": [{**PTP, "state": "absent"}]}},
                "networks": [PTP_NETWORK],
            },
        ),
    ],
    ids=["lists", "devices", "domain"],
)
def test_a_removal_is_converted_where_the_update_deleted_whole_parts(
    edit: Callable[[dict[str, Any]], None], expected: dict[str, Any]
) -> None:
    new = copy.deepcopy(vm())
    edit(template(new))
    verdict = evaluate(Review(operation=Operation.UPDATE, new=new, old=vm()), CONTEXT)
    assert verdict.allowed, verdict.causes
    patched = jsonpatch.apply_patch(copy.deepcopy(new), verdict.render_patch())
    assert template(patched) == expected


@pytest.mark.parametrize(
    "place",
    [
        ("metadata",),
        ("metadata", "annotations"),
        ("spec", "template", "spec", "domain"),
        ("spec", "template", "spec", "domain", "devices"),
        ("spec", "template", "spec", "domain", "devices", "interfaces"),
        ("spec", "template", "spec", "networks"),
    ],
)
@pytest.mark.parametrize("value", ["text", 7, [], None])
def test_a_plug_and_a_removal_into_parts_of_the_wrong_type_give_a_patch_that_applies(
    place: tuple[str, ...], value: Any
) -> None:
    old = vm()
    template(old)["domain"]["devices"]["interfaces"].append({"name": "nic1", "bridge": {}})
    template(old)["networks"].append({"name": "nic1", "multus": {"networkName": "net"}})
    new = copy.deepcopy(old)
    template(new)["domain"]["devices"]["interfaces"][1:] = [{"name": "nic2", "bridge": {}}]
    template(new)["networks"][1:] = [{"name": "nic2", "multus": {"networkName": "net"}}]
    node = new
    for key in place[:-1]:
        node = node[key]
    if value == [] and place[-1] in ("interfaces", "networks"):
        value = {}  # an empty list is the right type there
    node[place[-1]] = value
    verdict = evaluate(Review(operation=Operation.UPDATE, new=new, old=old), CONTEXT)
    jsonpatch.apply_patch(copy.deepcopy(new), verdict.render_patch())


@pytest.mark.parametrize(
    ("key", "pointer"),
    [
        ("hotplug-guard.io/x~y", "/metadata/annotations/hotplug-guard.io~1x~0y"),
        ("hotplug-guard.io/request", "/metadata/annotations/hotplug-guard.io~1request"),
    ],
)
def test_a_forged_annotation_of_any_name_is_taken_out_by_its_escaped_pointer(
    key: str, pointer: str
) -> None:
    old = vm()
    old["metadata"]["annotations"] = {"keep": "1"}
    new = copy.deepcopy(old)
    new["metadata"]["annotations"][key] = "forged"
    config = parse_config({"rules": {"guarded-annotations": "warn"}})
    verdict = evaluate(Review(operation=Operation.UPDATE, new=new, old=old), CONTEXT, config)
    assert {"op": "remove", "path": pointer} in verdict.render_patch()
    patched = jsonpatch.apply_patch(copy.deepcopy(new), verdict.render_patch())
    assert patched["metadata"]["annotations"] == {"keep": "1"}
