"""What only the admission emulator can send the real service: a registration matching too much.

The scenarios a real kube-apiserver can play run through it with kubectl
(tests/e2e/test_kubectl.py, tests/e2e/test_scenarios.py); the chart's rules keep
kube-apiserver from ever sending the webhook anything but VirtualMachines.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.admission_emulator import (
    AdmissionEmulator,
    FailurePolicy,
    ReinvocationPolicy,
    SideEffects,
    Webhook,
)
from tests.webhook import service
from tests.webhook.service import Service


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with service.serving(tmp_path_factory.mktemp("scenarios")) as running:
        yield running


def registration(served: Service) -> AdmissionEmulator:
    """Both webhooks, as the chart registers them, minus the rules that limit them to VMs."""
    return AdmissionEmulator(
        mutating=(
            Webhook(
                name="mutate.hotplug-guard.io",
                url=served.url("/mutate"),
                failure_policy=FailurePolicy.IGNORE,
                side_effects=SideEffects.NONE,
                timeout_seconds=3,
                reinvocation_policy=ReinvocationPolicy.IF_NEEDED,
            ),
        ),
        validating=(
            Webhook(
                name="validate.hotplug-guard.io",
                url=served.url("/validate"),
                failure_policy=FailurePolicy.FAIL,
                side_effects=SideEffects.NONE,
                timeout_seconds=3,
            ),
        ),
        ca_file=served.ca,
    )


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
