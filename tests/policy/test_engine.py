"""What `evaluate` answers where a case file cannot ask: other operations, the validating
webhook's view, values the API server never sends, and the findings behind a verdict."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from policy import (
    Action,
    Context,
    Finding,
    Mode,
    Operation,
    Review,
    RuleId,
    evaluate,
    parse_config,
)

INTERFACES = ("spec", "template", "spec", "domain", "devices", "interfaces")


def vm(*secondaries: dict[str, Any], annotations: dict[str, Any] | None = None) -> dict[str, Any]:
    """A running VM with a masquerade pod interface and these bridge secondaries."""
    interfaces = [{"name": "default", "masquerade": {}}, *secondaries]
    networks = [{"name": "default", "pod": {}}]
    networks += [{"name": i["name"], "multus": {"networkName": "net"}} for i in secondaries]
    metadata: dict[str, Any] = {"name": "vm", "namespace": "default", "uid": "vm-uid"}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {
        "metadata": metadata,
        "spec": {
            "template": {
                "spec": {"domain": {"devices": {"interfaces": interfaces}}, "networks": networks}
            }
        },
        "status": {"printableStatus": "Running"},
    }


KUBEVIRT = {"status": {"observedKubeVirtVersion": "v1.9.0"}}
CONTEXT = Context(nads=frozenset({"default/net"}), kubevirt=KUBEVIRT)
NIC = {"name": "nic1", "bridge": {}}


@pytest.mark.parametrize("operation", [Operation.DELETE, Operation.CONNECT])
def test_operations_other_than_create_and_update_are_allowed_untouched(
    operation: Operation,
) -> None:
    broken = vm({"name": "nic1", "masquerade": {}, "model": "e1000"})
    verdict = evaluate(Review(operation=operation, new=broken, old=vm()), CONTEXT)
    assert (verdict.allowed, verdict.causes, verdict.warnings, verdict.patch) == (True, (), (), ())


def test_the_validating_webhook_denies_a_removal_the_mutating_one_would_convert() -> None:
    old = vm(NIC)
    review = Review(operation=Operation.UPDATE, new=vm(), old=old)
    mutated = evaluate(review, CONTEXT, mode=Mode.MUTATE)
    assert mutated.allowed
    validated = evaluate(review, CONTEXT, mode=Mode.VALIDATE)
    assert [cause.rule for cause in validated.causes] == [RuleId.PLAIN_REMOVAL]
    assert validated.patch == ()


def test_the_validating_webhook_warns_when_the_mutating_one_did_not_annotate() -> None:
    review = Review(operation=Operation.UPDATE, new=vm(NIC), old=vm())
    verdict = evaluate(review, CONTEXT, mode=Mode.VALIDATE)
    assert verdict.allowed
    assert verdict.warnings == (
        "guarded-annotations: no ledger for this change: the mutating webhook did not answer "
        "(it fails open); check its pods",
        "guarded-annotations: no request for this hot plug: the mutating webhook did not answer "
        "(it fails open); migrate the VM",
    )


def test_a_guarded_annotation_that_is_not_a_string_is_never_written_back() -> None:
    # the API server only stores string values; the engine must not copy another back
    old = vm(annotations={"hotplug-guard.io/status": 5})
    new = copy.deepcopy(old)
    del new["metadata"]["annotations"]["hotplug-guard.io/status"]
    verdict = evaluate(Review(operation=Operation.UPDATE, new=new, old=old), CONTEXT)
    assert all(op.value != 5 for op in verdict.patch), verdict.patch


def test_the_verdict_keeps_every_finding_with_its_action() -> None:
    config = parse_config({"rules": {"plug-model": "warn", "nad-exists": "audit"}})
    new = vm({"name": "nic1", "bridge": {}, "model": "e1000"})
    review = Review(operation=Operation.UPDATE, new=new, old=vm())
    verdict = evaluate(review, Context(nads=frozenset(), kubevirt=KUBEVIRT), config)
    assert verdict.allowed
    assert [(f.cause.rule, f.action) for f in verdict.findings] == [
        (RuleId.PLUG_MODEL, Action.WARN),
        (RuleId.NAD_EXISTS, Action.AUDIT),
    ]
    assert all(isinstance(f, Finding) for f in verdict.findings)
