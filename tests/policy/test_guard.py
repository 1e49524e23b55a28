"""The annotation guard: which VM a request is signed for, and what a signature excuses."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest

from policy import REQUEST, STATUS, Context, Mode, Operation, Review, evaluate, parse_request
from policy.signing import SigningKeys, signature_valid
from tests.policy.test_signing import (
    CONTEXT,
    KEY,
    KEYS,
    OTHER_KEY,
    USER,
    admit,
    annotation,
    plugged,
    running_vm,
)

ROTATING = SigningKeys(signing=KEY, accepted=(OTHER_KEY,))


def signed_identity(old: dict[str, Any], new: dict[str, Any], namespace: str) -> tuple[str, ...]:
    """(uid, namespace, name) the mutating webhook signs the hot plug in `new` for."""
    review = Review(operation=Operation.UPDATE, new=new, old=old, user=USER, namespace=namespace)
    unknown_nads = Context(vmi=CONTEXT.vmi)  # the NAD's namespace varies here
    verdict = evaluate(review, unknown_nads, mode=Mode.MUTATE, keys=KEYS)
    assert verdict.allowed, verdict.causes
    request = parse_request(
        annotation(jsonpatch.apply_patch(copy.deepcopy(new), verdict.render_patch()))
    )
    assert request is not None
    candidates = [
        (uid, ns, name)
        for uid in ("uid-old", "uid-new", "")
        for ns in ("ns-old", "ns-new", "ns-review", "")
        for name in ("old", "new", "")
    ]
    valid = [
        c
        for c in candidates
        if signature_valid(request, uid=c[0], namespace=c[1], name=c[2], keys=[KEY])
    ]
    assert len(valid) == 1, valid
    return valid[0]


def metadata(vm: dict[str, Any], **fields: str) -> dict[str, Any]:
    for key, value in fields.items():
        if value:
            vm["metadata"][key] = value
        else:
            vm["metadata"].pop(key, None)
    return vm


@pytest.mark.parametrize(
    ("old_fields", "new_fields", "review_namespace", "expected"),
    [
        # the stored object names the VM, whatever the update says of it
        ({}, {}, "ns-review", ("uid-old", "ns-old", "old")),
        ({}, {"uid": "", "namespace": "", "name": ""}, "", ("uid-old", "ns-old", "old")),
        # what the stored object lacks, the update gives, then the request's namespace
        ({"uid": "", "namespace": "", "name": ""}, {}, "ns-review", ("uid-new", "ns-new", "new")),
        ({"namespace": ""}, {"namespace": ""}, "ns-review", ("uid-old", "ns-review", "old")),
    ],
)
def test_a_request_is_signed_for_the_stored_vm(
    old_fields: dict[str, str],
    new_fields: dict[str, str],
    review_namespace: str,
    expected: tuple[str, str, str],
) -> None:
    old = metadata(running_vm(), uid="uid-old", namespace="ns-old", name="old")
    new = metadata(plugged(old), uid="uid-new", namespace="ns-new", name="new")
    assert (
        signed_identity(metadata(old, **old_fields), metadata(new, **new_fields), review_namespace)
        == expected
    )


def test_a_validly_signed_request_for_another_change_is_forged() -> None:
    """A request an accepted key signed for this VM, replayed onto a different plug."""
    old = running_vm()
    _, earlier = admit(old, plugged(old, "dyniface1"), mutating=SigningKeys(signing=OTHER_KEY))
    replayed = plugged(old, "dyniface2")
    replayed["metadata"]["annotations"] = {**old["metadata"].get("annotations", {})}
    replayed["metadata"]["annotations"][REQUEST] = annotation(earlier)
    review = Review(
        operation=Operation.UPDATE, new=replayed, old=old, user=USER, namespace="default"
    )
    for mode in Mode:
        verdict = evaluate(review, CONTEXT, mode=mode, keys=ROTATING)
        assert [c.rule for c in verdict.causes] == ["guarded-annotations"], mode


def test_a_request_signed_with_another_key_excuses_nothing_but_itself() -> None:
    """Mid-rotation the other replica's signature counts; a status written beside it is forged."""
    old = running_vm()
    allowed, stored = admit(
        old, plugged(old), mutating=SigningKeys(signing=OTHER_KEY), validating=ROTATING
    )
    assert allowed
    stored["metadata"]["annotations"][STATUS] = '{"id":"x","phase":"Succeeded"}'
    review = Review(operation=Operation.UPDATE, new=stored, old=old, user=USER, namespace="default")
    verdict = evaluate(review, CONTEXT, mode=Mode.VALIDATE, keys=ROTATING)
    assert [(c.rule, c.field) for c in verdict.causes] == [
        ("guarded-annotations", f"metadata.annotations[{STATUS}]")
    ]
