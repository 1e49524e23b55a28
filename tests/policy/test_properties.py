"""Properties of the engine that every input must keep (house style §6)."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
from hypothesis import given, settings
from hypothesis import strategies as st

from policy import Context, Mode, Operation, PolicyConfig, Review, evaluate, parse_config, views
from tests.policy.strategies import JSON, updates

ALL_ON = parse_config({"rules": {"restart-required": "enforce"}, "defaultModelVirtio": True})
CONFIGS = st.sampled_from([PolicyConfig(), ALL_ON, parse_config({"onPlainRemoval": "deny"})])
VMI: dict[str, Any] = {
    "metadata": {"name": "vm", "uid": "vmi-1"},
    "spec": {"domain": {"devices": {"interfaces": [{"name": "nic1", "bridge": {}}]}}},
    "status": {"phase": "Running", "interfaces": [{"name": "nic1", "podInterfaceName": "net1"}]},
}
CONTEXTS = st.sampled_from([Context(), Context(vmi=VMI, nads=frozenset({"default/net-a"}))])


def _review(old: Any, new: Any) -> Review:
    return Review(operation=Operation.UPDATE, new=new, old=old)


@given(old=JSON, new=JSON, vmi=JSON, kubevirt=JSON, migrations=st.lists(JSON, max_size=2))
@settings(max_examples=300)
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


@given(update=updates(), config=CONFIGS, context=CONTEXTS)
@settings(max_examples=300)
def test_patches_apply_and_are_idempotent(
    update: tuple[dict[str, Any], dict[str, Any]], config: PolicyConfig, context: Context
) -> None:
    old, new = update
    verdict = evaluate(_review(old, new), context, config)
    patched = jsonpatch.apply_patch(copy.deepcopy(new), verdict.render_patch())
    again = evaluate(_review(old, patched), context, config)
    assert again.patch == (), "re-evaluating the patched object must not patch again"
    assert again.allowed == verdict.allowed


@given(update=updates(), config=CONFIGS, context=CONTEXTS)
@settings(max_examples=200)
def test_validating_agrees_with_mutating_on_the_patched_object(
    update: tuple[dict[str, Any], dict[str, Any]], config: PolicyConfig, context: Context
) -> None:
    old, new = update
    mutated = evaluate(_review(old, new), context, config, mode=Mode.MUTATE)
    patched = jsonpatch.apply_patch(copy.deepcopy(new), mutated.render_patch())
    validated = evaluate(_review(old, patched), context, config, mode=Mode.VALIDATE)
    assert validated.allowed == mutated.allowed
    assert validated.patch == ()


@given(update=updates(), config=CONFIGS, context=CONTEXTS)
@settings(max_examples=100)
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
@settings(max_examples=300)
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
