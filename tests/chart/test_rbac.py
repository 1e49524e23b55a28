"""Each service account gets exactly what its pod uses, nothing more: the server reads the
cluster, `certs ensure` keeps the certificates, and neither has the other's grants."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.chart.conftest import CERT_MANAGER
from tests.chart.manifests import FULLNAME, NAMESPACE, ROOT, Manifest, Release, render

WEBHOOK_RULES = [
    {
        "apiGroups": ["kubevirt.io"],
        "resources": ["virtualmachineinstances", "virtualmachineinstancemigrations", "kubevirts"],
        "verbs": ["get", "list", "watch"],
    },
    {
        "apiGroups": ["k8s.cni.cncf.io"],
        "resources": ["network-attachment-definitions"],
        "verbs": ["get", "list", "watch"],
    },
]
SECRET_RULES = [
    {
        "apiGroups": [""],
        "resources": ["secrets"],
        "resourceNames": [f"{FULLNAME}-tls"],
        "verbs": ["get", "update"],
    },
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
    {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": [f"{FULLNAME}-ca"],
        "verbs": ["get", "update"],
    },
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
]
WEBHOOK_CONFIGURATION_RULES = [
    {
        "apiGroups": ["admissionregistration.k8s.io"],
        "resources": ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"],
        "resourceNames": [FULLNAME],
        "verbs": ["get", "patch"],
    }
]
CONTROLLER_RULES = [
    {
        "apiGroups": ["kubevirt.io"],
        "resources": ["virtualmachines"],
        "verbs": ["get", "list", "watch", "patch"],
    },
    {
        "apiGroups": ["kubevirt.io"],
        "resources": ["virtualmachineinstances", "kubevirts"],
        "verbs": ["get", "list", "watch"],
    },
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
]
LEASE_RULES = [
    {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "resourceNames": [f"{FULLNAME}-controller"],
        "verbs": ["get", "update"],
    },
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
]
ROLE_KINDS = ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")


def roles(release: Release) -> dict[tuple[str, str], Any]:
    return {
        (item["kind"], item["metadata"]["name"]): item["rules"]
        for item in release.objects
        if item["kind"] in ("Role", "ClusterRole")
    }


CONTROLLER_ROLES = {
    ("ClusterRole", f"{FULLNAME}-controller"): CONTROLLER_RULES,
    ("Role", f"{FULLNAME}-controller"): LEASE_RULES,
}


def test_self_managed_install_grants_exactly_these_rule_sets(default_release: Release) -> None:
    assert roles(default_release) == {
        ("ClusterRole", f"{FULLNAME}-webhook"): WEBHOOK_RULES,
        ("Role", f"{FULLNAME}-certs"): SECRET_RULES,
        ("ClusterRole", f"{FULLNAME}-certs"): WEBHOOK_CONFIGURATION_RULES,
        **CONTROLLER_ROLES,
    }


def test_cert_manager_install_grants_no_secret_or_webhook_configuration_access(
    cert_manager_release: Release,
) -> None:
    assert roles(cert_manager_release) == {
        ("ClusterRole", f"{FULLNAME}-webhook"): WEBHOOK_RULES,
        **CONTROLLER_ROLES,
    }


def test_service_ca_install_grants_no_secret_or_webhook_configuration_access(
    service_ca_release: Release,
) -> None:
    assert roles(service_ca_release) == {
        ("ClusterRole", f"{FULLNAME}-webhook"): WEBHOOK_RULES,
        **CONTROLLER_ROLES,
    }


def test_offline_server_with_cert_manager_needs_no_rbac_and_no_token() -> None:
    release = render(
        {"serve": {"clusterContext": False}, "controller": {"enabled": False}, **CERT_MANAGER}
    )
    assert not any(item["kind"] in ROLE_KINDS for item in release.objects)
    assert release.deployment_pod()["automountServiceAccountToken"] is False
    assert "--offline" in release.container("webhook")["args"]


def test_secret_rules_name_the_secret_the_containers_use() -> None:
    release = render({"certs": {"secretName": "my-webhook-tls"}})
    secret_rules = roles(release)[("Role", f"{FULLNAME}-certs")]
    assert secret_rules[0]["resourceNames"] == ["my-webhook-tls"]
    tls = next(v for v in release.deployment_pod()["volumes"] if v["name"] == "tls")
    assert tls["secret"]["secretName"] == "my-webhook-tls"
    for name in ("certs-init", "certs"):
        assert "--secret-name=my-webhook-tls" in release.container(name)["args"]


def test_webhook_configuration_rules_name_the_rendered_configurations(
    default_release: Release,
) -> None:
    [rule] = roles(default_release)[("ClusterRole", f"{FULLNAME}-certs")]
    configurations = {
        item["metadata"]["name"]
        for item in default_release.objects
        if item["kind"].endswith("WebhookConfiguration")
    }
    assert set(rule["resourceNames"]) == configurations


def bound_roles(release: Release, account: str) -> set[tuple[str, str]]:
    return {
        (b["roleRef"]["kind"], b["roleRef"]["name"])
        for b in release.objects
        if b["kind"].endswith("Binding")
        and b["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}]
    }


def test_the_server_and_certs_ensure_run_under_their_own_service_accounts(
    default_release: Release,
) -> None:
    server = default_release.deployment_pod()["serviceAccountName"]
    certs = default_release.certs_pod()["serviceAccountName"]
    controller = default_release.controller_pod()["serviceAccountName"]
    assert {a["metadata"]["name"] for a in default_release.all("ServiceAccount")} == {
        server,
        certs,
        controller,
    }
    # the server's token can read the cluster, never the CA key nor a webhook configuration
    assert bound_roles(default_release, server) == {("ClusterRole", f"{FULLNAME}-webhook")}
    assert bound_roles(default_release, certs) == {
        ("Role", f"{FULLNAME}-certs"),
        ("ClusterRole", f"{FULLNAME}-certs"),
    }
    assert bound_roles(default_release, controller) == {
        *CONTROLLER_ROLES,
        ("ClusterRole", "kubevirt.io:migrate"),  # KubeVirt's own, not the chart's
    }
    bindings = [i for i in default_release.objects if i["kind"].endswith("Binding")]
    assert {(b["roleRef"]["kind"], b["roleRef"]["name"]) for b in bindings} == {
        *roles(default_release),
        ("ClusterRole", "kubevirt.io:migrate"),
    }
    for binding in bindings:
        assert binding["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"
        # a RoleBinding keeps the namespaced grant in the namespace of its Role
        if binding["kind"] == "RoleBinding":
            assert binding["roleRef"]["kind"] == "Role"


def test_no_rule_uses_a_wildcard(default_release: Release) -> None:
    for rules in roles(default_release).values():
        for rule in rules:
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(field, []), rule


def test_a_token_is_mounted_only_where_a_container_calls_the_api(
    default_release: Release,
) -> None:
    for account in default_release.all("ServiceAccount"):
        assert account["automountServiceAccountToken"] is False
    assert default_release.deployment_pod()["automountServiceAccountToken"] is True
    assert default_release.certs_pod()["automountServiceAccountToken"] is True
    assert default_release.controller_pod()["automountServiceAccountToken"] is True
    offline = render({"serve": {"clusterContext": False}})
    assert offline.deployment_pod()["automountServiceAccountToken"] is False
    assert bound_roles(offline, offline.deployment_pod()["serviceAccountName"]) == set()


# --- the chart grants what the other parts document they need ------------------------------


def documented_rules(document: str, kind: str) -> list[Manifest]:
    """The rules of the first `kind` in the YAML code blocks of a doc."""
    text = (ROOT / "docs" / document).read_text()
    for block in re.findall(r"^```yaml\n(.*?)^```", text, re.M | re.S):
        for item in yaml.safe_load_all(block):
            if isinstance(item, dict) and item.get("kind") == kind:
                rules: list[Manifest] = item["rules"]
                return rules
    raise AssertionError(f"docs/{document} documents no {kind}")


def without_names(rules: list[Manifest]) -> list[Manifest]:
    return [{k: v for k, v in rule.items() if k != "resourceNames"} for rule in rules]


def test_webhook_rules_are_the_ones_docs_webhook_documents(default_release: Release) -> None:
    assert documented_rules("webhook.md", "ClusterRole") == WEBHOOK_RULES
    assert roles(default_release)[("ClusterRole", f"{FULLNAME}-webhook")] == WEBHOOK_RULES


def test_certificate_rules_are_the_ones_docs_certificates_documents() -> None:
    assert without_names(documented_rules("certificates.md", "Role")) == without_names(SECRET_RULES)
    assert without_names(documented_rules("certificates.md", "ClusterRole")) == without_names(
        WEBHOOK_CONFIGURATION_RULES
    )


def test_controller_rules_are_the_ones_docs_controller_documents(
    default_release: Release,
) -> None:
    assert documented_rules("controller.md", "ClusterRole") == CONTROLLER_RULES
    assert without_names(documented_rules("controller.md", "Role")) == without_names(LEASE_RULES)
