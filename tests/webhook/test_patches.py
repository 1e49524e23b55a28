"""The webhook's strict patch applier agrees with `jsonpatch` wherever RFC 6902 is clear."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonpatch
import jsonpointer
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotplug_guard.cases import case_files, load_case
from policy import Mode, evaluate, paths
from policy.signing import SigningKeys
from tests.policy.strategies import updates
from tests.policy.test_properties import _review
from webhook.patches import (
    PatchError,
    PatchSelfCheckError,
    apply_patch,
    check_engine_patch,
    json_equal,
)

CASES = Path(__file__).parents[1] / "policy" / "cases"
KEYS = SigningKeys(signing=b"k" * 32)
DOCUMENT: dict[str, Any] = {
    "metadata": {"name": "vm", "annotations": {"a/b": "1", "c~d": "2"}},
    "spec": {"list": [{"name": "x"}, {"name": "y"}], "flag": True, "count": 1, "text": "abc"},
}


def _jsonpatch_applies(document: Any, patch: list[dict[str, Any]]) -> Any:
    return jsonpatch.apply_patch(copy.deepcopy(document), patch)


@pytest.mark.parametrize("path", case_files([CASES]), ids=lambda p: p.stem)
def test_every_case_patch_applies_as_jsonpatch_applies_it(path: Path) -> None:
    case = load_case(path)
    verdict = evaluate(case.review, case.context, case.config, mode=Mode.MUTATE, keys=KEYS)
    patch = verdict.render_patch()
    if not patch:
        return
    expected = _jsonpatch_applies(case.review.new, patch)
    assert apply_patch(copy.deepcopy(case.review.new), patch) == expected


@given(update=updates())
@settings(max_examples=200)
def test_generated_hot_plug_patches_apply_as_jsonpatch_applies_them(
    update: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    old, new = update
    patch = evaluate(_review(old, new), keys=KEYS).render_patch()
    assert apply_patch(copy.deepcopy(new), patch) == _jsonpatch_applies(new, patch)


@pytest.mark.parametrize(
    "patch",
    [
        [{"op": "add", "path": "/metadata/labels", "value": {"app": "x"}}],
        [{"op": "add", "path": "/metadata/annotations/a~1b", "value": "3"}],
        [{"op": "add", "path": "/metadata/annotations/c~0d", "value": "3"}],
        [{"op": "add", "path": "/spec/list/-", "value": {"name": "z"}}],
        [{"op": "add", "path": "/spec/list/2", "value": {"name": "z"}}],
        [{"op": "add", "path": "/spec/list/0", "value": {"name": "w"}}],
        [{"op": "add", "path": "/spec/list/1/state", "value": "absent"}],
        [{"op": "remove", "path": "/spec/list/0"}],
        [{"op": "remove", "path": "/metadata/annotations/a~1b"}],
        [{"op": "replace", "path": "/spec/count", "value": 2}],
        [{"op": "replace", "path": "/spec/list/1", "value": {"name": "q"}}],
        [{"op": "test", "path": "/spec/list/1/name", "value": "y"}],
        [{"op": "test", "path": "/spec/count", "value": 1.0}],
        [{"op": "test", "path": "/spec", "value": copy.deepcopy(DOCUMENT["spec"])}],
        [
            {"op": "test", "path": "/spec/list/0/name", "value": "x"},
            {"op": "add", "path": "/spec/list/0/state", "value": "absent"},
            {"op": "add", "path": "/metadata/annotations/new", "value": "v"},
        ],
    ],
)
def test_patches_that_apply_give_what_jsonpatch_gives(patch: list[dict[str, Any]]) -> None:
    assert apply_patch(copy.deepcopy(DOCUMENT), patch) == _jsonpatch_applies(DOCUMENT, patch)


@given(key=st.text(alphabet="~/01a", max_size=8))
def test_a_key_escaped_by_the_engine_is_the_key_the_patch_reaches(key: str) -> None:
    # RFC 6901 both ways, `~01` and `~10` included: the pointer jsonpointer builds for
    # the key, and the key the applier writes when it follows that pointer
    pointer = f"/metadata/{paths.escape(key)}"
    assert pointer == jsonpointer.JsonPointer.from_parts(["metadata", key]).path
    patch = [{"op": "add", "path": pointer, "value": "v"}]
    assert apply_patch({"metadata": {}}, patch) == {"metadata": {key: "v"}}


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "add", "path": "/metadata/labels/app/x", "value": "x"},  # no parent
        {"op": "add", "path": "/spec/list/3", "value": {}},  # beyond the end
        {"op": "add", "path": "/spec/list/01", "value": {}},  # leading zero
        {"op": "add", "path": "/spec/list/x", "value": {}},
        {"op": "add", "path": "metadata/labels", "value": {}},  # no leading '/'
        {"op": "add", "path": "/metadata/annotations/a~2b", "value": "x"},  # bad escape
        {"op": "add", "path": "/metadata/labels"},  # no value
        {"op": "remove", "path": "/metadata/labels"},
        {"op": "remove", "path": "/spec/list/2"},
        {"op": "remove", "path": "/spec/list/-"},
        {"op": "replace", "path": "/metadata/labels", "value": {}},
        {"op": "replace", "path": "/spec/list/5", "value": {}},
        {"op": "test", "path": "/spec/list/0/name", "value": "y"},
        {"op": "test", "path": "/metadata/labels", "value": None},
        {"op": "frobnicate", "path": "/spec", "value": 1},
    ],
)
def test_patches_jsonpatch_refuses_are_refused(operation: dict[str, Any]) -> None:
    with pytest.raises((jsonpatch.JsonPatchException, jsonpatch.JsonPointerException)):
        _jsonpatch_applies(DOCUMENT, [operation])
    with pytest.raises(PatchError):
        apply_patch(copy.deepcopy(DOCUMENT), [operation])


@pytest.mark.parametrize(
    "operation",
    [
        # RFC 6902: JSON's true is not the number 1 (Python's == says it is)
        {"op": "test", "path": "/spec/flag", "value": 1},
        {"op": "test", "path": "/spec/count", "value": True},
        # RFC 6901 only walks objects and arrays (jsonpatch also indexes strings)
        {"op": "test", "path": "/spec/text/0", "value": "a"},
        # move and copy: the engine writes neither
        {"op": "copy", "from": "/spec/count", "path": "/spec/other"},
    ],
)
def test_where_jsonpatch_is_lenient_the_applier_is_strict(operation: dict[str, Any]) -> None:
    with pytest.raises(PatchError):
        apply_patch(copy.deepcopy(DOCUMENT), [operation])


def test_a_failed_patch_names_the_path() -> None:
    with pytest.raises(PatchError, match="/metadata/labels/app"):
        apply_patch(copy.deepcopy(DOCUMENT), [{"op": "remove", "path": "/metadata/labels/app"}])


def test_json_equality_follows_json_types() -> None:
    assert json_equal({"a": [1, 2.0]}, {"a": [1.0, 2]})
    assert not json_equal({"a": [1]}, {"a": [True]})
    assert not json_equal({"a": 1}, {"a": 1, "b": 2})
    assert not json_equal([1, 2], [1])
    assert not json_equal("1", 1)
    assert json_equal(None, None)


def test_an_engine_patch_that_does_not_apply_is_a_self_check_error() -> None:
    """The one self-check of the webhook and of the offline check: a bug, named as such."""
    document: dict[str, Any] = {"spec": {}}
    assert check_engine_patch(document, [{"op": "add", "path": "/spec/a", "value": 1}]) == {
        "spec": {"a": 1}
    }
    with pytest.raises(PatchSelfCheckError, match=r"^the engine's patch does not apply: "):
        check_engine_patch(document, [{"op": "replace", "path": "/status/b", "value": 1}])
