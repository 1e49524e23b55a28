"""`kubectl edit` scenarios through the admission emulator against the real, offline service."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness.admission_emulator import (
    AdmissionEmulator,
    FailurePolicy,
    LocalMutator,
    Outcome,
    ReinvocationPolicy,
    SideEffects,
    Webhook,
)
from tests.webhook import service
from tests.webhook.objects import (
    edited,
    fixture,
    interfaces,
    networks,
    running,
    with_bridge_nics,
)
from tests.webhook.service import Service, free_port

Object = dict[str, Any]
MUTATE = "mutate.hotplug-guard.io"
VALIDATE = "validate.hotplug-guard.io"
DENIED_BY_MUTATE = f'admission webhook "{MUTATE}" denied the request: hotplug-guard: '
REQUEST = "hotplug-guard.io/request"
MAC_ALLOCATOR = "mac-allocator.example.com"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with service.serving(tmp_path_factory.mktemp("scenarios")) as running:
        yield running


def mac_allocator(old: Object | None) -> LocalMutator:
    """Another mutating webhook after ours (like KubeMacPool): gives new interfaces a MAC."""
    existing = {interface["name"] for interface in interfaces(old)} if old else set()

    def allocate(vm: Object) -> list[Object]:
        if vm.get("kind") != "VirtualMachine":
            return []
        return [
            {
                "op": "add",
                "path": f"/spec/template/spec/domain/devices/interfaces/{index}/macAddress",
                "value": f"02:5a:00:00:00:{index:02x}",
            }
            for index, interface in enumerate(interfaces(vm))
            if interface.get("name") not in existing and "macAddress" not in interface
        ]

    return LocalMutator(name=MAC_ALLOCATOR, patch=allocate)


def registration(
    served: Service,
    *,
    old: Object | None = None,
    mutate_url: str | None = None,
    with_mutating: bool = True,
) -> AdmissionEmulator:
    """The recommended registration: mutating fails open, validating fails closed."""
    mutating: list[Webhook | LocalMutator] = []
    if with_mutating:
        mutating = [
            Webhook(
                name=MUTATE,
                url=mutate_url or served.url("/mutate"),
                failure_policy=FailurePolicy.IGNORE,
                side_effects=SideEffects.NONE,
                timeout_seconds=3,
                reinvocation_policy=ReinvocationPolicy.IF_NEEDED,
            ),
            mac_allocator(old),
        ]
    return AdmissionEmulator(
        mutating=mutating,
        validating=(
            Webhook(
                name=VALIDATE,
                url=served.url("/validate"),
                failure_policy=FailurePolicy.FAIL,
                side_effects=SideEffects.NONE,
                timeout_seconds=3,
            ),
        ),
        ca_file=served.ca,
    )


def kubectl_edit(
    served: Service, old: Object, new: Object, *, dry_run: bool = False, **options: Any
) -> Outcome:
    outcome = registration(served, old=old, **options).admit(
        operation="UPDATE", new=new, old=old, dry_run=dry_run
    )
    assert outcome.dropped == (), "kube-apiserver would silently drop parts of the answer"
    assert outcome.reinvocation_changes == (), "the mutating webhook is not idempotent"
    return outcome


def by_name(items: list[Object], name: str) -> Object:
    (found,) = [item for item in items if item.get("name") == name]
    return found


def plug_edit() -> tuple[Object, Object]:
    old = running(fixture("vm-fedora-masquerade-only"))
    return old, edited(old, fixture("vm-fedora-hotplug-bridge"))


def test_adding_a_bridge_nic_is_allowed_and_the_vm_gets_a_hot_plug_request(
    served: Service,
) -> None:
    old, new = plug_edit()
    outcome = kubectl_edit(served, old, new)
    assert outcome.allowed, outcome.message
    assert outcome.object is not None
    plugged = by_name(interfaces(outcome.object), "dyniface1")
    assert plugged["bridge"] == {}
    assert plugged["macAddress"] == "02:5a:00:00:00:01"
    request = json.loads(outcome.object["metadata"]["annotations"][REQUEST])
    assert (request["plug"], request["unplug"]) == (["dyniface1"], [])
    assert any(text.startswith("nad-exists: cannot verify") for text in outcome.warnings)
    assert not any(text.startswith("guarded-annotations") for text in outcome.warnings)
    assert [(call.webhook, call.round) for call in outcome.calls] == [
        (MUTATE, 0),
        (MAC_ALLOCATOR, 0),
        (MUTATE, 1),
        (VALIDATE, 0),
    ]


def test_deleting_a_nic_from_a_running_vm_is_turned_into_a_hot_unplug(served: Service) -> None:
    old = running(fixture("vm-fedora-hotplug-bridge"))
    new = edited(old, fixture("vm-fedora-masquerade-only"))
    outcome = kubectl_edit(served, old, new)
    assert outcome.allowed, outcome.message
    assert outcome.object is not None
    assert by_name(interfaces(outcome.object), "dyniface1")["state"] == "absent"
    assert by_name(networks(outcome.object), "dyniface1")["multus"] == {
        "networkName": "new-fancy-net"
    }
    request = json.loads(outcome.object["metadata"]["annotations"][REQUEST])
    assert request["unplug"] == ["dyniface1"]
    assert any(text.startswith("plain-removal: 'dyniface1'") for text in outcome.warnings)


def test_a_fifth_nic_is_denied_with_a_message_from_hotplug_slots(served: Service) -> None:
    old = running(
        with_bridge_nics(
            fixture("vm-fedora-masquerade-only"), ["nic1", "nic2", "nic3"], network="new-fancy-net"
        )
    )
    new = with_bridge_nics(old, ["nic4"], network="new-fancy-net")
    outcome = kubectl_edit(served, old, new)
    assert not outcome.allowed
    assert outcome.code == 422
    assert outcome.message.startswith(
        DENIED_BY_MUTATE + "hotplug-slots: spec.template.spec.domain.devices.interfaces[4]: "
    )
    assert "'nic4' would make 5 interfaces" in outcome.message
    assert "unplug one first (state: absent)" in outcome.message
    assert outcome.status is not None
    assert outcome.status["details"]["causes"][0]["field"] == (
        "spec.template.spec.domain.devices.interfaces[4]"
    )


def test_a_masquerade_nic_is_denied_by_plug_binding(served: Service) -> None:
    old = running(fixture("vm-fedora-masquerade-only"))
    new = copy.deepcopy(old)
    interfaces(new).append({"name": "nic9", "masquerade": {}})
    networks(new).append({"name": "nic9", "multus": {"networkName": "new-fancy-net"}})
    outcome = kubectl_edit(served, old, new)
    assert not outcome.allowed
    assert outcome.code == 422
    assert "plug-binding: spec.template.spec.domain.devices.interfaces[1]: " in outcome.message
    assert "use 'bridge: {}'" in outcome.message
    assert outcome.status is not None
    reasons = {cause["reason"] for cause in outcome.status["details"]["causes"]}
    assert "FieldValueForbidden" in reasons


def test_a_forged_request_annotation_is_denied_by_guarded_annotations(served: Service) -> None:
    old = running(fixture("vm-fedora-masquerade-only"))
    new = copy.deepcopy(old)
    new["metadata"]["annotations"] = {REQUEST: json.dumps({"id": "x", "plug": ["nic1"]})}
    outcome = kubectl_edit(served, old, new)
    assert not outcome.allowed
    assert outcome.message.startswith(
        DENIED_BY_MUTATE
        + "guarded-annotations: metadata.annotations[hotplug-guard.io/request]: "
        + "'hotplug-guard.io/request' is managed by hotplug-guard"
    )


@pytest.mark.parametrize("scenario", ["plug", "forged"])
def test_a_dry_run_gets_the_same_answer(served: Service, scenario: str) -> None:
    old, new = plug_edit()
    if scenario == "forged":
        new["metadata"]["annotations"] = {REQUEST: "{}"}
    wet = kubectl_edit(served, old, new)
    dry = kubectl_edit(served, old, new, dry_run=True)
    assert (dry.allowed, dry.object, dry.message, dry.warnings) == (
        wet.allowed,
        wet.object,
        wet.message,
        wet.warnings,
    )


def test_without_the_mutating_webhook_the_validating_webhook_denies_a_plain_removal(
    served: Service,
) -> None:
    old = running(fixture("vm-fedora-hotplug-bridge"))
    new = edited(old, fixture("vm-fedora-masquerade-only"))
    outcome = kubectl_edit(served, old, new, with_mutating=False)
    assert not outcome.allowed
    assert outcome.message.startswith(
        f'admission webhook "{VALIDATE}" denied the request: hotplug-guard: plain-removal: '
    )
    assert "set state: absent" in outcome.message


def test_an_unreachable_mutating_webhook_fails_open_and_validation_still_guards(
    served: Service,
) -> None:
    old = running(fixture("vm-fedora-hotplug-bridge"))
    new = edited(old, fixture("vm-fedora-masquerade-only"))
    nowhere = f"https://127.0.0.1:{free_port()}/mutate"
    outcome = kubectl_edit(served, old, new, mutate_url=nowhere)
    assert (
        outcome.audit_annotations.get(
            "failed-open.mutation.webhook.admission.k8s.io/round_0_index_0"
        )
        == MUTATE
    )
    assert not outcome.allowed
    assert "plain-removal" in outcome.message


def test_misrouted_objects_pass_through_both_webhooks_untouched(served: Service) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}}
    outcome = registration(served).admit(
        operation="CREATE",
        new=pod,
        kind={"group": "", "version": "v1", "kind": "Pod"},
        resource={"group": "", "version": "v1", "resource": "pods"},
    )
    assert outcome.allowed
    assert outcome.object == pod
    assert outcome.warnings == ()
