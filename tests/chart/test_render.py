"""The chart lints, renders valid Kubernetes objects, and refuses bad values at render time."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import helm_python
import kubernetes_validate  # type: ignore[import-untyped]  # ships no type information
import pytest

from tests.chart.conftest import CERT_MANAGER, SERVICE_CA
from tests.chart.manifests import (
    CHART,
    CLUSTER_SCOPED,
    FULLNAME,
    KUBE_VERSIONS,
    NAMESPACE,
    ROOT,
    Manifest,
    Release,
    chart,
    render,
)

# Kinds of CRDs that kubernetes-validate has no schema for; their fields are
# checked by hand in test_certificates.py (cert-manager) and below (ServiceMonitor).
CRD_KINDS = {
    ("cert-manager.io/v1", "Issuer"),
    ("cert-manager.io/v1", "Certificate"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
}

VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "cert-manager": CERT_MANAGER,
    "everything-on": {
        "metrics": {"service": {"enabled": True}, "serviceMonitor": {"enabled": True}},
        "topologySpread": {"enabled": True},
        "priorityClassName": "system-cluster-critical",
        "podAntiAffinity": "required",
        "webhooks": {
            "excludeNamespaces": ["staging"],
            "namespaceSelectorExpressions": [
                {"key": "hotplug-guard.io/enabled", "operator": "In", "values": ["true"]}
            ],
            "objectSelector": {"matchLabels": {"guarded": "yes"}},
            "matchConditions": [
                {"name": "breakglass", "expression": "!('breakglass' in object.metadata.labels)"}
            ],
        },
        "policy": {"exemptions": {"groups": ["system:masters"]}},
    },
    "offline": {"serve": {"clusterContext": False}, **CERT_MANAGER},
    "openshift-service-ca": {**SERVICE_CA, "metrics": {"serviceMonitor": {"enabled": True}}},
}


def test_helm_lint_finds_nothing_above_info() -> None:
    for kube_version in KUBE_VERSIONS:
        report = helm_python.lint(CHART, strict=True, kube_version=f"v{kube_version}.0")
        assert report["errors"] == []
        assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_chart_metadata_matches_the_project() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    metadata = chart().metadata
    assert metadata["apiVersion"] == "v2"
    assert metadata["appVersion"] == project["version"]
    assert metadata["kubeVersion"] == ">=1.30.0-0"
    assert chart().values["image"]["repository"] == "ghcr.io/hotplug-guard/hotplug-guard"


def test_image_tag_defaults_to_app_version_and_digest_wins(default_release: Release) -> None:
    images = {c["image"] for c in _all_containers(default_release)}
    assert images == {"ghcr.io/hotplug-guard/hotplug-guard:0.1.0"}
    digest = "sha256:" + "a" * 64
    pinned = render({"image": {"tag": "dev", "digest": digest}})
    assert {c["image"] for c in _all_containers(pinned)} == {
        f"ghcr.io/hotplug-guard/hotplug-guard@{digest}"
    }


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_object_is_valid_for_the_kubernetes_version(variant: str, kube_version: str) -> None:
    release = render(VARIANTS[variant])
    checked: set[str] = set()
    for item in release.objects:
        if (item["apiVersion"], item["kind"]) in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(item, kube_version, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(p) for p in error.path)
            pytest.fail(f"{item['kind']} {item['metadata']['name']}: {where}: {error.message}")
        checked.add(item["kind"])
    assert checked >= {"Deployment", "Service", "ConfigMap", "ServiceAccount"}
    assert checked >= {"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}


def test_the_schema_check_itself_rejects_a_broken_object() -> None:
    """Guards the test above: kubernetes-validate really looks at field types and names."""
    pdb = render().one("PodDisruptionBudget")
    pdb["spec"]["minAvailabel"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pdb, KUBE_VERSIONS[0], strict=True)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_namespaced_objects_are_in_the_release_namespace(variant: str) -> None:
    for item in render(VARIANTS[variant]).objects:
        metadata = item["metadata"]
        if item["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in metadata, item["kind"]
        else:
            assert metadata.get("namespace") == NAMESPACE, f"{item['kind']} {metadata['name']}"


def test_every_object_is_named_after_the_release_and_labelled(default_release: Release) -> None:
    for item in default_release.objects:
        metadata = item["metadata"]
        assert metadata["name"].startswith(FULLNAME), metadata["name"]
        labels = metadata["labels"]
        assert labels["app.kubernetes.io/instance"] == "guard"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/version"] == "0.1.0"


def test_a_release_named_like_the_chart_uses_the_short_name() -> None:
    release = render(name="hotplug-guard", namespace="hotplug-guard")
    assert release.deployment()["metadata"]["name"] == "hotplug-guard"
    assert release.one("ValidatingWebhookConfiguration")["metadata"]["name"] == "hotplug-guard"


def test_default_install_is_highly_available(default_release: Release) -> None:
    deployment = default_release.deployment()
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    pdb = default_release.one("PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    pod = default_release.deployment_pod()
    [term] = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == selector
    assert "priorityClassName" not in pod
    assert "topologySpreadConstraints" not in pod


def test_priority_class_and_zone_spread_are_set_when_asked() -> None:
    pod = render(VARIANTS["everything-on"]).deployment_pod()
    assert pod["priorityClassName"] == "system-cluster-critical"
    [spread] = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone"
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway"
    assert spread["labelSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "guard"
    required = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required[0]["topologyKey"] == "kubernetes.io/hostname"


def test_a_custom_affinity_replaces_the_generated_anti_affinity() -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "infra", "operator": "Exists"}]}
                ]
            }
        }
    }
    assert render({"affinity": affinity}).deployment_pod()["affinity"] == affinity
    assert "affinity" not in render({"podAntiAffinity": "none"}).deployment_pod()


def test_a_single_replica_renders_without_a_budget_that_would_block_drains() -> None:
    with pytest.raises(helm_python.HelmRenderError, match="must be lower than replicas"):
        render({"replicas": 1})
    assert (
        "PodDisruptionBudget"
        not in render({"replicas": 1, "podDisruptionBudget": {"enabled": False}}).kinds()
    )
    assert (
        render({"replicas": 4, "podDisruptionBudget": {"minAvailable": "50%"}}).one(
            "PodDisruptionBudget"
        )["spec"]["minAvailable"]
        == "50%"
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicas": "three"}, "at '/replicas': got string, want integer"),
        ({"replicaCount": 3}, "additional properties 'replicaCount' not allowed"),
        ({"webhooks": {"timeoutSeconds": 40}}, "at '/webhooks/timeoutSeconds': maximum: got 40"),
        ({"webhooks": {"timeoutSeconds": 0}}, "at '/webhooks/timeoutSeconds': minimum: got 0"),
        ({"webhooks": {"validating": {"failurePolicy": "Never"}}}, "failurePolicy"),
        ({"certs": {"mode": "vault"}}, "at '/certs/mode'"),
        ({"image": {"digest": "latest"}}, "at '/image/digest'"),
        ({"webhooks": {"excludeNamespaces": ["Not_A_Namespace"]}}, "excludeNamespaces/0"),
        ({"policy": {"rules": {"plug-model": "block"}}}, "at '/policy/rules/plug-model'"),
        ({"policy": {"rules": {"no-such-rule": "warn"}}}, "'no-such-rule' not allowed"),
        ({"policy": {"hotplugSlots": -1}}, "at '/policy/hotplugSlots': minimum"),
        ({"policy": {"onPlainRemoval": "drop"}}, "at '/policy/onPlainRemoval'"),
    ],
)
def test_bad_values_fail_at_render_time_with_a_schema_error(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm_python.HelmValuesError) as raised:
        render(values)
    assert "values don't meet the specifications of the schema" in str(raised.value)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    "values",
    [
        {"webhooks": {"timeout": 3}},
        {"certs": {"selfManaged": {"intervall": 60}}},
        {"serve": {"bind": "0.0.0.0:9443"}},
        {"policy": {"exemptions": {"users": []}}},
    ],
)
def test_schema_forbids_unknown_keys_at_every_level_it_owns(values: dict[str, Any]) -> None:
    with pytest.raises(helm_python.HelmValuesError, match="additional properties"):
        chart().validate_schema(values)


def test_the_shipped_values_pass_the_schema() -> None:
    chart().validate_schema(chart().values)


def test_notes_say_what_was_installed_and_how_to_check_it(
    default_release: Release, cert_manager_release: Release, service_ca_release: Release
) -> None:
    notes = default_release.notes
    assert f"namespace {NAMESPACE}" in notes
    assert f"rollout status deployment/{FULLNAME}" in notes
    assert "failurePolicy Fail, timeout 3s" in notes
    assert "--dry-run=server" in notes
    assert "certs-init" in notes
    assert f"get certificate {FULLNAME}-serving" in cert_manager_release.notes
    assert "certs-init" not in cert_manager_release.notes
    service_ca = service_ca_release.notes
    assert (
        f"OpenShift's service CA writes Secret {FULLNAME}-tls for Service {FULLNAME}" in service_ca
    )
    assert f"oc -n {NAMESPACE} get secret {FULLNAME}-tls" in service_ca
    assert "kubectl" not in service_ca  # on OpenShift, its own CLI
    assert "certs-init" not in service_ca
    excluded = re.search(r"not reviewed: (.*)", notes)
    assert excluded is not None
    assert excluded.group(1) == f"{NAMESPACE}, kube-system"


def _all_containers(release: Release) -> list[Manifest]:
    pod = release.deployment_pod()
    return [*pod.get("initContainers", ()), *pod["containers"]]
