"""Properties of the engine that every input must keep (house style §6)."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
from hypothesis import given, settings
from hypothesis import strategies as st

from policy import Context, Mode, Operation, PolicyConfig, Review, evaluate, parse_config, views
from policy.signing import SigningKeys
from tests.policy.strategies import JSON, examples, updates

ALL_ON = parse_config({"rules": {"restart-required": "enforce"}, "defaultModelVirtio": True})
CONFIGS = st.sampled_from([PolicyConfig(), ALL_ON, parse_config({"onPlainRemoval": "deny"})])
VMI: dict[str, Any] = {
    "metadata": {"name": "vm", "uid": "vmi-1"},
    "spec": {"domain": {"devices": {"interfaces": [{"name": "nic1", "bridge": {}}]}}},
    "status": {"phase": "Running", "interfaces": [{"name": "nic1", "podInterfaceName": "net1"}]},
}
CONTEXTS = st.sampled_from(
    [
        Context(),
        Context(vmi=VMI, nads=frozenset({"default/net-a"})),
        Context(vmi=VMI, kubevirt={"status": {"observedKubeVirtVersion": "v1.9.0"}}),
        Context(kubevirt={"status": {"observedKubeVirtVersion": "v1.2.0"}}),
        Context(
            vmi={
                **VMI,
                "metadata": {
                    "uid": "vmi-1",
                    "annotations": {"kubevirt.io/pci-topology-version": "v3"},
                },
            },
            kubevirt={
                "spec": {"workloadUpdateStrategy": {"workloadUpdateMethods": ["Evict"]}},
                "status": {"observedKubeVirtVersion": "v1.5.3"},
            },
        ),
    ]
)
KEYS = st.sampled_from([None, SigningKeys(signing=b"k" * 32)])


def _review(old: Any, new: Any) -> Review:
    return Review(operation=Operation.UPDATE, new=new, old=old)


@given(old=JSON, new=JSON, vmi=JSON, kubevirt=JSON, migrations=st.lists(JSON, max_size=2))
@settings(max_examples=examples(300))
def test_arbitrary_json_never_raises(
    old: Any, new: Any, vmi: Any, kubevirt: Any, migrations: list[Any]
) -> None:
    context = Context(
        vmi=vmi if isinstance(vmi, dict) else None,
        kubevirt=kubevirt if isinstance(kubevirt, dict) else None,
        migrations=tuple(migrations),
    )
    for mode in Mode:
        evaluate(_review(old, new if isinstance(new, dict) else {"spec": new}), context, mode=mode)
        evaluate(Review(operation=Operation.CREATE, new={"metadata": old, "spec": new}), mode=mode)


@given(update=updates(), config=CONFIGS, context=CONTEXTS, keys=KEYS)
@settings(max_examples=examples(300))
def test_patches_apply_and_are_idempotent(
    update: tuple[dict[str, Any], dict[str, Any]],
    config: PolicyConfig,
    context: Context,
    keys: SigningKeys | None,
) -> None:
    old, new = update
    verdict = evaluate(_review(old, new), context, config, keys=keys)
    patched = jsonpatch.apply_patch(copy.deepcopy(new), verdict.render_patch())
    again = evaluate(_review(old, patched), context, config, keys=keys)
    assert again.patch == (), "re-evaluating the patched object must not patch again"
    assert again.allowed == verdict.allowed


@given(update=updates(), config=CONFIGS, context=CONTEXTS, keys=KEYS)
@settings(max_examples=examples(200))
def test_validating_agrees_with_mutating_on_the_patched_object(
    update: tuple[dict[str, Any], dict[str, Any]],
    config: PolicyConfig,
    context: Context,
    keys: SigningKeys | None,
) -> None:
    old, new = update
    mutated = evaluate(_review(old, new), context, config, mode=Mode.MUTATE, keys=keys)
    patched = jsonpatch.apply_patch(copy.deepcopy(new), mutated.render_patch())
    validated = evaluate(_review(old, patched), context, config, mode=Mode.VALIDATE, keys=keys)
    assert validated.allowed == mutated.allowed
    assert validated.patch == ()


@given(update=updates(), config=CONFIGS, context=CONTEXTS)
@settings(max_examples=examples(100))
def test_evaluation_is_deterministic_and_leaves_its_input_alone(
    update: tuple[dict[str, Any], dict[str, Any]], config: PolicyConfig, context: Context
) -> None:
    old, new = update
    inputs = (old, new, context.vmi, context.kubevirt, context.migrations)
    before = copy.deepcopy(inputs)
    first = evaluate(_review(old, new), context, config)
    second = evaluate(_review(copy.deepcopy(old), copy.deepcopy(new)), context, config)
    assert first == second
    assert inputs == before
    assert views.EMPTY == {}, "the views' shared empty object was written to"


SHAPED_PATHS = [
    ("metadata",),
    ("metadata", "annotations"),
    ("spec", "template"),
    ("spec", "template", "spec"),
    ("spec", "template", "spec", "domain"),
    ("spec", "template", "spec", "domain", "devices"),
    ("spec", "template", "spec", "domain", "devices", "interfaces"),
    ("spec", "template", "spec", "domain", "devices", "interfaces", 0),
    ("spec", "template", "spec", "domain", "devices", "interfaces", 0, "name"),
    ("spec", "template", "spec", "domain", "devices", "interfaces", 0, "bridge"),
    ("spec", "template", "spec", "domain", "devices", "interfaces", 0, "state"),
    ("spec", "template", "spec", "networks"),
    ("spec", "template", "spec", "networks", 0),
    ("spec", "template", "spec", "networks", 0, "multus"),
    ("spec", "template", "spec", "domain", "machine"),
    ("status",),
]


@given(
    update=updates(),
    path=st.sampled_from(SHAPED_PATHS),
    value=JSON,
    which=st.sampled_from(["old", "new"]),
    context=CONTEXTS,
)
@settings(max_examples=examples(300))
def test_wrong_types_anywhere_in_a_vm_never_raise_and_patches_still_apply(
    update: tuple[dict[str, Any], dict[str, Any]],
    path: tuple[str | int, ...],
    value: Any,
    which: str,
    context: Context,
) -> None:
    old, new = update
    node: Any = old if which == "old" else new
    for key in path[:-1]:
        if not _holds(node, key, existing=True):
            return
        node = node[key]
    if not _holds(node, path[-1], existing=False):
        return
    node[path[-1]] = value
    for mode in Mode:
        verdict = evaluate(_review(old, new), context, mode=mode)
        jsonpatch.apply_patch(copy.deepcopy(new), verdict.render_patch())


def _holds(node: Any, key: str | int, *, existing: bool) -> bool:
    """True when `node[key]` can be read (existing) or written."""
    if isinstance(node, dict) and isinstance(key, str):
        return key in node or not existing
    return isinstance(node, list) and isinstance(key, int) and key < len(node)


# --- capacity: the engine's limit is the formula of the design facts (§3, Errata 8) ----------

RELEASES = [None, "v1.0.0", "v1.3.1", "v1.5.3", "v1.6.0", "v1.6.3", "v1.6.4", "v1.7.0"]
RELEASES += ["v1.7.1", "v1.7.2", "v1.8.0", "v1.8.4", "v1.9.0"]
V3_RELEASES = {None, "v1.6.4", "v1.7.2", "v1.8.0", "v1.8.4", "v1.9.0"}  # may mark VMIs v3
MEMORY = {"1Gi": 1 << 30, "2Gi": 2 << 30, "2.1Gi": 2254857830, "4Gi": 4 << 30, "16Gi": 16 << 30}


def facts_limit(version: str | None, *, booted: int, memory: str, disks: int, v3: bool) -> int:
    """Interfaces KubeVirt has ports for, written from the facts, not from the engine."""
    minor, patch = (int(part) for part in version[1:].split(".")[1:]) if version else (0, 0)
    # PCI devices at boot: the interfaces, the USB, SCSI and virtio-serial controllers,
    # the virtio disks and the memory balloon
    in_use = booted + 3 + disks + 1
    large = MEMORY[memory] > 2 << 30
    v2_free = max((16 if large else 8) - in_use, 6 if large else 3)
    v1_free = max(0, 4 - booted)
    if version is None and v3:
        minor, patch = 6, 4  # the annotation appeared in v1.6.4
    if minor <= 5:
        free = v1_free  # v1.0-v1.5, and an unknown release without the annotation
    elif (minor, patch) < (6, 4) or (minor == 7 and patch < 2):
        free = v2_free  # v1.6.0-v1.6.3, v1.7.0-v1.7.1
    elif not v3:
        free = v1_free  # a VMI without pci-topology-version booted before v3
    else:
        extra = min(max(0, v2_free - v1_free), max(0, 31 - (in_use + v1_free)))
        free = v1_free + extra
    return booted + free


@given(
    version=st.sampled_from(RELEASES),
    booted=st.integers(1, 8),
    plugs=st.integers(1, 12),
    memory=st.sampled_from(sorted(MEMORY)),
    disks=st.integers(0, 6),
    v3=st.booleans(),
)
@settings(max_examples=examples(300))
def test_hotplug_slots_follow_the_formula_of_each_release(
    *, version: str | None, booted: int, plugs: int, memory: str, disks: int, v3: bool
) -> None:
    v3 = v3 and version in V3_RELEASES
    ifaces: list[dict[str, Any]] = [{"name": "default", "masquerade": {}}]
    ifaces += [{"name": f"boot{i}", "bridge": {}} for i in range(1, booted)]
    nets: list[dict[str, Any]] = [{"name": "default", "pod": {}}]
    nets += [{"name": f"boot{i}", "multus": {"networkName": "net-a"}} for i in range(1, booted)]
    spec = {
        "domain": {
            "memory": {"guest": memory},
            "devices": {
                "interfaces": ifaces,
                "disks": [{"name": f"disk{i}", "disk": {"bus": "virtio"}} for i in range(disks)],
            },
        },
        "networks": nets,
    }
    old: dict[str, Any] = {
        "metadata": {"name": "vm", "namespace": "default", "uid": "vm-1"},
        "spec": {"template": {"spec": spec}},
        "status": {"printableStatus": "Running"},
    }
    new = copy.deepcopy(old)
    new_spec = new["spec"]["template"]["spec"]
    for i in range(plugs):
        new_spec["domain"]["devices"]["interfaces"].append({"name": f"hot{i}", "bridge": {}})
        new_spec["networks"].append({"name": f"hot{i}", "multus": {"networkName": "net-a"}})
    vmi = {
        "metadata": {
            "name": "vm",
            "uid": "vmi-1",
            "annotations": {"kubevirt.io/pci-topology-version": "v3"} if v3 else {},
        },
        "spec": copy.deepcopy(spec),
        "status": {"phase": "Running"},
    }
    kubevirt = {
        "spec": {"configuration": {"developerConfiguration": {"featureGates": ["HotplugNICs"]}}},
        "status": {"observedKubeVirtVersion": version} if version else {},
    }
    context = Context(vmi=vmi, kubevirt=kubevirt, nads=frozenset({"default/net-a"}))
    verdict = evaluate(_review(old, new), context, mode=Mode.VALIDATE)
    denied = [c for c in verdict.causes if c.rule == "hotplug-slots"]
    limit = facts_limit(version, booted=booted, memory=memory, disks=disks, v3=v3)
    assert len(denied) == min(plugs, max(0, booted + plugs - limit)), [c.message for c in denied]
