"""Every field path a finding reports names a place in the object the user submitted."""

from __future__ import annotations

import copy
import re
from typing import Any

import jsonpatch
from hypothesis import given, settings
from hypothesis import strategies as st

from policy import Context, Mode, Operation, PolicyConfig, Review, evaluate
from tests.policy.strategies import JSON, examples, updates
from tests.policy.test_properties import ALL_ON, CONFIGS, CONTEXTS, SHAPED_PATHS, _holds

SEGMENT = re.compile(r"(?:^|\.)([^.\[\]]+)|\[([^\]]*)\]")


def segments(field: str) -> list[tuple[str, bool]]:
    """(name, bracketed) of each segment of a rendered `k8sfield.Path`, e.g. `a.b[0][k.v]`."""
    found = list(SEGMENT.finditer(field))
    assert "".join(match.group(0) for match in found) == field, f"not a field path: {field}"
    return [(match.group(1) or match.group(2), match.group(2) is not None) for match in found]


def names_a_place(obj: Any, field: str, *, wrong_types: frozenset[str] = frozenset()) -> bool:
    """True when `field` leads through `obj` by the JSON types it meets: a name into an
    object, an index into a list within its length, a bracketed key into an object. Past
    the last field that is set it may only name object fields still to be set; a value
    whose path is in `wrong_types` (reported as such beside it) counts as unset."""
    node, present, prefix = obj, True, ""
    for name, bracketed in segments(field):
        index = bracketed and name.isdigit()
        if present and prefix in wrong_types and not isinstance(node, dict | list):
            present = False
        if not present:
            if index:
                return False  # an index into a list that is not there
        elif isinstance(node, dict):
            node = node.get(name)
            present = node is not None  # a null field is an unset one, as to Kubernetes
        elif isinstance(node, list) and index and int(name) < len(node):
            node = node[int(name)]
        elif prefix in wrong_types and not index:
            present = False
        else:
            return False
        prefix += f"[{name}]" if bracketed else f".{name}" if prefix else name
    return True


def test_the_resolver_tells_real_places_from_made_up_ones() -> None:
    vm = {"spec": {"list": [{"name": 5}], "map": {"a.b/c": "v"}}}
    assert names_a_place(vm, "spec.list[0].name")
    assert names_a_place(vm, "spec.list[0].model")  # a field the user may still set
    assert names_a_place(vm, "spec.map[a.b/c]")
    assert names_a_place(vm, "spec.missing.child")
    assert names_a_place({"spec": None}, "spec.template")
    assert not names_a_place(vm, "spec.list[1]")
    assert not names_a_place(vm, "spec.list.list[0].name")  # a segment doubled
    assert not names_a_place(vm, "spec.list[0].name.first")  # into a number
    assert not names_a_place(vm, "spec.missing[0]")
    reported = frozenset({"spec.list[0].name", "spec.list"})
    assert names_a_place(vm, "spec.list[0].name.first", wrong_types=reported)
    assert names_a_place(vm, "spec.list.child", wrong_types=reported)
    assert not names_a_place(vm, "spec.list.child[0]", wrong_types=reported)


# Wrong types where the engine views the VM. A template of the wrong type the API server's
# schema refuses before any validating webhook; the engine reads it as unset.
SHAPED = [path for path in SHAPED_PATHS if path != ("spec", "template")]


@given(
    update=updates(),
    shaped=st.none() | st.sampled_from(SHAPED),
    value=JSON,
    operation=st.sampled_from([Operation.UPDATE, Operation.UPDATE, Operation.CREATE]),
    config=CONFIGS | st.just(ALL_ON),
    context=CONTEXTS,
)
@settings(max_examples=examples(300))
def test_every_reported_field_names_a_place_in_the_submitted_object(
    *,
    update: tuple[dict[str, Any], dict[str, Any]],
    shaped: tuple[str | int, ...] | None,
    value: Any,
    operation: Operation,
    config: PolicyConfig,
    context: Context,
) -> None:
    old, new = update
    if shaped is not None:  # a part of the wrong type, reported at its own path
        node: Any = new
        for key in shaped[:-1]:
            if not _holds(node, key, existing=True):
                break
            node = node[key]
        else:
            if _holds(node, shaped[-1], existing=False):
                node[shaped[-1]] = value
    review = Review(
        operation=operation, new=new, old=old if operation is Operation.UPDATE else None
    )
    # The mutating webhook judges the object its patch makes (a deleted interface kept as
    # absent), also when it denies and so sends no patch: its paths may name that object.
    warn_only = config.with_overrides({"rules": dict.fromkeys(config.rules, "warn")})
    patch = evaluate(review, context, warn_only, mode=Mode.MUTATE).render_patch()
    patched = jsonpatch.apply_patch(copy.deepcopy(new), patch)
    for mode, judged in ((Mode.VALIDATE, (new,)), (Mode.MUTATE, (new, patched))):
        verdict = evaluate(review, context, config, mode=mode)
        causes = [finding.cause for finding in verdict.findings]
        wrong_types = frozenset(c.field for c in causes if c.message.startswith("must be "))
        for cause in causes:
            assert any(names_a_place(o, cause.field, wrong_types=wrong_types) for o in judged), (
                f"{cause.rule}: {cause.field} ({mode})"
            )
