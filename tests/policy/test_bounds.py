"""Work per request is bounded: oversized lists are refused up front, bookkeeping is
linear, and an evaluation stops at its deadline.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from policy import Context, Mode, Operation, Review, UserInfo, evaluate, parse_config
from policy.changes import Removal
from policy.deadline import DeadlineExceeded
from policy.mutations import convert_removals
from policy.views import parse_vm

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "vms"
USER = UserInfo(username="jane@example.com")
# Generous: the quadratic code took 14 s for 20,000 removals and 3.5 s for 30,000 plugs
# on the machine these bounds were set on; linear, both take well under 0.5 s.
LINEAR_SECONDS = 3.0


def running_vm() -> dict[str, Any]:
    vm: dict[str, Any] = yaml.safe_load((FIXTURES / "vm-fedora-running.yaml").read_text())
    return vm


def with_secondaries(vm: dict[str, Any], count: int) -> dict[str, Any]:
    result = copy.deepcopy(vm)
    spec = result["spec"]["template"]["spec"]
    for index in range(count):
        spec["domain"]["devices"]["interfaces"].append({"name": f"nic{index}", "bridge": {}})
        spec["networks"].append({"name": f"nic{index}", "multus": {"networkName": "net"}})
    return result


@pytest.mark.parametrize("mode", list(Mode))
def test_more_interfaces_than_kubevirt_accepts_are_refused_before_any_check(mode: Mode) -> None:
    old = running_vm()
    new = with_secondaries(old, 30_000)  # about 2.4 MiB of JSON, under kube-apiserver's 3 MiB
    verdict = evaluate(Review(operation=Operation.UPDATE, new=new, old=old, user=USER), mode=mode)
    assert not verdict.allowed
    assert [(c.rule, c.type, c.field) for c in verdict.causes] == [
        ("kubevirt-spec", "FieldValueTooMany", "spec.template.spec.domain.devices.interfaces"),
        ("kubevirt-spec", "FieldValueTooMany", "spec.template.spec.networks"),
    ]
    assert "exceeds the 256 element limit in length (30001 entries)" in verdict.causes[0].message
    assert verdict.patch == ()


def test_256_interfaces_are_still_checked_rule_by_rule() -> None:
    old = running_vm()
    new = with_secondaries(old, 255)
    verdict = evaluate(Review(operation=Operation.UPDATE, new=new, old=old, user=USER))
    assert {c.rule for c in verdict.causes} == {"hotplug-slots", "pci-slots"}


def test_an_oversized_create_passes_untouched_when_kubevirt_spec_is_off() -> None:
    new = with_secondaries(running_vm(), 300)
    config = parse_config({"rules": {"kubevirt-spec": "off"}})
    verdict = evaluate(Review(operation=Operation.CREATE, new=new, user=USER), config=config)
    assert verdict.allowed
    assert (verdict.findings, verdict.patch) == ((), ())


def test_an_oversized_list_only_warns_when_kubevirt_spec_warns() -> None:
    new = with_secondaries(running_vm(), 300)
    config = parse_config({"rules": {"kubevirt-spec": "warn"}})
    verdict = evaluate(Review(operation=Operation.CREATE, new=new, user=USER), config=config)
    assert (verdict.allowed, verdict.patch) == (True, ())
    assert [f.cause.field for f in verdict.findings] == [
        "spec.template.spec.domain.devices.interfaces",
        "spec.template.spec.networks",
    ]
    assert verdict.warnings == (  # the same text for both lists, said once
        "kubevirt-spec: list exceeds the 256 element limit in length (301 entries); "
        "the VM is not checked further",
    )


def test_converting_many_removals_is_linear() -> None:
    vm = parse_vm(with_secondaries(running_vm(), 20_000))
    removals = [
        Removal(name=f"nic{i}", interface=None, network=vm.spec.network(f"nic{i}"))
        for i in range(20_000)
    ]
    started = time.perf_counter()
    conversion = convert_removals(vm, removals)
    assert time.perf_counter() - started < LINEAR_SECONDS
    assert conversion is not None
    assert len(conversion.ops) == 2 * 20_000 + 20_000  # test + add per interface, one per network


class Expiring:
    """A deadline that expires after it has been asked `allowed` times."""

    def __init__(self, allowed: int) -> None:
        self.allowed = allowed
        self.asked = 0

    def expired(self) -> bool:
        self.asked += 1
        return self.asked > self.allowed


def plug_review() -> Review:
    old = running_vm()
    return Review(operation=Operation.UPDATE, new=with_secondaries(old, 1), old=old, user=USER)


def test_an_evaluation_stops_once_its_deadline_expired() -> None:
    with pytest.raises(DeadlineExceeded):
        evaluate(plug_review(), deadline=Expiring(0))


def test_the_deadline_is_asked_between_the_rules_too() -> None:
    asked = Expiring(10**6)
    evaluate(plug_review(), Context(), deadline=asked)
    assert asked.asked > 5  # once up front, before the spec rules, and before each hot plug rule
    for allowed in range(asked.asked):
        with pytest.raises(DeadlineExceeded):
            evaluate(plug_review(), Context(), deadline=Expiring(allowed))
