"""Both webhook configurations register what the webhook serves, and nothing more."""

from __future__ import annotations

import copy
from typing import Any

import cel
import pytest

from hotplug_guard.commands.serve import parse_bind
from policy import PolicyConfig, evaluate
from tests.chart.conftest import CERT_MANAGER
from tests.chart.manifests import FULLNAME, NAMESPACE, Manifest, Release, render
from webhook.admission import Admission
from webhook.app import create_app
from webhook.context import OfflineContext
from webhook.metrics import Metrics

MUTATING = "MutatingWebhookConfiguration"
VALIDATING = "ValidatingWebhookConfiguration"
KUBEVIRT_CONTROLLER = "system:serviceaccount:kubevirt:kubevirt-controller"


def webhook(release: Release, kind: str) -> Manifest:
    configuration = release.one(kind, FULLNAME)
    [only] = configuration["webhooks"]
    assert isinstance(only, dict)
    return only


def test_both_webhooks_match_only_virtual_machine_create_and_update(
    default_release: Release,
) -> None:
    for kind in (MUTATING, VALIDATING):
        hook = webhook(default_release, kind)
        assert hook["rules"] == [
            {
                "apiGroups": ["kubevirt.io"],
                "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"],
                "resources": [
                    "virtualmachines"
                ],  # not virtualmachines/status or other subresources
                "scope": "Namespaced",
            }
        ]
        assert hook["matchPolicy"] == "Equivalent"  # v1alpha3 requests are converted, not missed
        assert hook["admissionReviewVersions"] == ["v1"]
        assert hook["sideEffects"] == "None"
        assert hook["timeoutSeconds"] == 3


def test_mutating_fails_open_and_is_reinvoked_validating_fails_closed(
    default_release: Release,
) -> None:
    mutating = webhook(default_release, MUTATING)
    validating = webhook(default_release, VALIDATING)
    assert mutating["name"] == "mutate.hotplug-guard.io"
    assert mutating["failurePolicy"] == "Ignore"
    assert mutating["reinvocationPolicy"] == "IfNeeded"
    assert validating["name"] == "validate.hotplug-guard.io"
    assert validating["failurePolicy"] == "Fail"
    assert "reinvocationPolicy" not in validating  # not a field of validating webhooks


def test_failure_policies_and_timeout_follow_the_values() -> None:
    release = render(
        {
            "webhooks": {
                "timeoutSeconds": 2,
                "mutating": {"failurePolicy": "Fail", "reinvocationPolicy": "Never"},
                "validating": {"failurePolicy": "Ignore"},
            }
        }
    )
    mutating = webhook(release, MUTATING)
    validating = webhook(release, VALIDATING)
    assert (mutating["failurePolicy"], mutating["reinvocationPolicy"]) == ("Fail", "Never")
    assert validating["failurePolicy"] == "Ignore"
    assert mutating["timeoutSeconds"] == validating["timeoutSeconds"] == 2


def test_webhooks_call_the_release_service_on_its_port_and_paths(
    default_release: Release,
) -> None:
    service = default_release.one("Service", FULLNAME)
    [port] = service["spec"]["ports"]
    for kind, path in ((MUTATING, "/mutate"), (VALIDATING, "/validate")):
        client = webhook(default_release, kind)["clientConfig"]
        assert client == {
            "service": {"name": FULLNAME, "namespace": NAMESPACE, "path": path, "port": 443}
        }
        assert port["port"] == client["service"]["port"]
    # the Service reaches the container port the server binds
    server = default_release.container("webhook")
    [container_port] = [p for p in server["ports"] if p["name"] == port["targetPort"]]
    bind = next(a for a in server["args"] if a.startswith("--bind="))
    assert parse_bind(bind.removeprefix("--bind="))[1] == container_port["containerPort"]
    assert service["spec"]["selector"].items() <= (
        default_release.deployment()["spec"]["template"]["metadata"]["labels"].items()
    )


def test_the_server_answers_on_the_registered_paths_and_probes(default_release: Release) -> None:
    """The real Flask app (offline, default policy): a registered path is never a 404/405."""
    app = create_app(
        admission=Admission(evaluate=evaluate, config=PolicyConfig(), context=OfflineContext()),
        metrics=Metrics(),
    )
    client = app.test_client()
    for kind in (MUTATING, VALIDATING):
        path = webhook(default_release, kind)["clientConfig"]["service"]["path"]
        # an empty body is refused by the review code, proving the route exists
        assert client.post(path, data=b"", content_type="application/json").status_code == 400
    server = default_release.container("webhook")
    for probe in ("readinessProbe", "livenessProbe"):
        check = server[probe]["httpGet"]
        assert check["scheme"] == "HTTPS"
        assert check["port"] == "https"
        assert client.get(check["path"]).status_code == 200
    assert server["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert server["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_release_namespace_and_kube_system_are_never_sent_to_the_webhook(
    default_release: Release,
) -> None:
    for kind in (MUTATING, VALIDATING):
        assert webhook(default_release, kind)["namespaceSelector"] == {
            "matchExpressions": [
                {
                    "key": "kubernetes.io/metadata.name",
                    "operator": "NotIn",
                    "values": [NAMESPACE, "kube-system"],
                }
            ]
        }
        assert "objectSelector" not in webhook(default_release, kind)


def test_extra_exclusions_and_selectors_are_added_to_both_webhooks() -> None:
    opt_in = {"key": "hotplug-guard.io/enabled", "operator": "In", "values": ["true"]}
    release = render(
        {
            "webhooks": {
                "excludeNamespaces": ["staging", "kube-system"],
                "namespaceSelectorExpressions": [opt_in],
                "objectSelector": {"matchLabels": {"guarded": "yes"}},
            }
        }
    )
    for kind in (MUTATING, VALIDATING):
        hook = webhook(release, kind)
        excluded, extra = hook["namespaceSelector"]["matchExpressions"]
        assert excluded["values"] == [NAMESPACE, "kube-system", "staging"]
        assert extra == opt_in
        assert hook["objectSelector"] == {"matchLabels": {"guarded": "yes"}}


def test_ca_bundle_is_left_to_the_certificate_manager(
    default_release: Release, cert_manager_release: Release
) -> None:
    """Helm must never own caBundle, or an upgrade would blank what `certs ensure` wrote."""
    for release in (default_release, cert_manager_release):
        for kind in (MUTATING, VALIDATING):
            assert "caBundle" not in webhook(release, kind)["clientConfig"]
    for kind in (MUTATING, VALIDATING):
        metadata = default_release.one(kind)["metadata"]
        assert "cert-manager.io/inject-ca-from" not in metadata.get("annotations", {})


def test_cert_manager_mode_injects_the_serving_certificate_ca_into_both() -> None:
    release = render(CERT_MANAGER)
    certificate = f"{FULLNAME}-serving"
    release.one("Certificate", certificate)
    for kind in (MUTATING, VALIDATING):
        annotations = release.one(kind)["metadata"]["annotations"]
        assert annotations == {"cert-manager.io/inject-ca-from": f"{NAMESPACE}/{certificate}"}


def test_service_ca_mode_asks_openshift_to_inject_its_bundle_into_both(
    service_ca_release: Release,
) -> None:
    for kind in (MUTATING, VALIDATING):
        annotations = service_ca_release.one(kind)["metadata"]["annotations"]
        assert annotations == {"service.beta.openshift.io/inject-cabundle": "true"}
        assert "caBundle" not in webhook(service_ca_release, kind)["clientConfig"]


def test_both_webhooks_differ_only_in_name_path_and_failure_handling(
    default_release: Release,
) -> None:
    own = ("name", "failurePolicy", "reinvocationPolicy")

    def shared(hook: Manifest) -> dict[str, Any]:
        common = {k: v for k, v in hook.items() if k not in own}
        common["clientConfig"] = {**hook["clientConfig"]}
        common["clientConfig"]["service"] = {
            k: v for k, v in hook["clientConfig"]["service"].items() if k != "path"
        }
        return common

    assert shared(webhook(default_release, MUTATING)) == shared(
        webhook(default_release, VALIDATING)
    )


# --- matchConditions, evaluated with a CEL interpreter ------------------------------------


GUARDED = "hotplug-guard.io/request"


def calls_webhook(
    hook: Manifest,
    *,
    username: str,
    groups: list[str] | None = None,
    old: dict[str, str] | None = None,
    new: dict[str, str] | None = None,
    operation: str = "UPDATE",
) -> bool:
    """kube-apiserver calls a webhook only when every matchCondition is true.

    `old` and `new` are the annotations of oldObject and object (None: no annotations).
    """
    user: dict[str, Any] = {"username": username}
    if groups is not None:
        user["groups"] = groups

    def vm(annotations: dict[str, str] | None, interfaces: list[Any]) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": "vm", "labels": {}}
        if annotations is not None:
            metadata["annotations"] = annotations
        template = {"spec": {"domain": {"devices": {"interfaces": interfaces}}}}
        return {"metadata": metadata, "spec": {"template": template}}

    # an update that plugs an interface: the condition on unrelated updates lets it through
    variables = {
        "request": {"userInfo": user, "operation": operation},
        "object": vm(new, [{"name": "nic1", "bridge": {}}]),
        "oldObject": None if operation == "CREATE" else vm(old, []),
    }
    results = [cel.evaluate(c["expression"], variables) for c in hook.get("matchConditions", ())]
    assert all(isinstance(r, bool) for r in results), results
    return all(results)


@pytest.mark.parametrize("kind", [MUTATING, VALIDATING])
def test_kubevirt_controllers_skip_the_webhook_and_users_do_not(
    default_release: Release, kind: str
) -> None:
    hook = webhook(default_release, kind)
    assert [c["name"] for c in hook["matchConditions"]] == [
        "not-exempt-user",
        "hotplug-relevant-change",
    ]
    assert not calls_webhook(hook, username=KUBEVIRT_CONTROLLER)
    assert not calls_webhook(hook, username=KUBEVIRT_CONTROLLER, old={"a": "1"}, new={"a": "2"})
    assert calls_webhook(hook, username="jane@example.com", groups=["system:authenticated"])
    assert calls_webhook(hook, username="system:serviceaccount:kubevirt:virt-handler")


@pytest.mark.parametrize("kind", [MUTATING, VALIDATING])
def test_only_the_kubevirt_namespace_of_the_install_is_skipped(kind: str) -> None:
    # a fixed list would let whoever creates namespace openshift-cnv act as its controller
    openshift_controller = "system:serviceaccount:openshift-cnv:kubevirt-controller"
    assert calls_webhook(webhook(render(), kind), username=openshift_controller)
    on_openshift = webhook(render({"kubevirt": {"namespace": "openshift-cnv"}}), kind)
    assert not calls_webhook(on_openshift, username=openshift_controller)
    assert calls_webhook(on_openshift, username=KUBEVIRT_CONTROLLER)


@pytest.mark.parametrize("kind", [MUTATING, VALIDATING])
@pytest.mark.parametrize(
    ("operation", "old", "new"),
    [
        ("CREATE", None, {GUARDED: "{}"}),
        ("UPDATE", None, {GUARDED: "{}"}),
        ("UPDATE", {"a": "1"}, {"a": "1", GUARDED: "{}"}),
        ("UPDATE", {GUARDED: "{}"}, {GUARDED: '{"id":"x"}'}),
        ("UPDATE", {GUARDED: "{}"}, {}),
        ("UPDATE", {GUARDED: "{}", "a": "1"}, None),
        ("UPDATE", {"hotplug-guard.io/status": "{}"}, {"hotplug-guard.io/status": "{}", "b": "2"}),
    ],
)
def test_a_change_of_a_guarded_annotation_reaches_the_webhook_whoever_makes_it(
    default_release: Release,
    kind: str,
    operation: str,
    old: dict[str, str] | None,
    new: dict[str, str] | None,
) -> None:
    hook = webhook(default_release, kind)
    changed = (old or {}).get(GUARDED) != (new or {}).get(GUARDED)
    called = calls_webhook(
        hook, username=KUBEVIRT_CONTROLLER, old=old, new=new, operation=operation
    )
    assert called is changed


def test_match_conditions_follow_the_policy_exemptions() -> None:
    release = render(
        {
            "policy": {"exemptions": {"usernames": ["ops@example.com"], "groups": ["vm-admins"]}},
            "webhooks": {
                "matchConditions": [
                    {
                        "name": "breakglass",
                        "expression": "!('breakglass' in object.metadata.labels)",
                    }
                ]
            },
        }
    )
    hook = webhook(release, VALIDATING)
    names = [c["name"] for c in hook["matchConditions"]]
    assert names == [
        "not-exempt-user",
        "not-exempt-group",
        "hotplug-relevant-change",
        "breakglass",
    ]
    assert not calls_webhook(hook, username="ops@example.com")
    assert not calls_webhook(hook, username="bob", groups=["vm-admins", "dev"])
    assert calls_webhook(hook, username="bob", groups=["vm-admins"], new={GUARDED: "{}"})
    assert calls_webhook(hook, username="bob", groups=["dev"])
    assert calls_webhook(hook, username="bob")  # a request without groups is still reviewed
    # KubeVirt's controller stays exempt beside the listed users
    assert not calls_webhook(hook, username=KUBEVIRT_CONTROLLER)


def test_match_conditions_can_be_switched_off() -> None:
    release = render({"webhooks": {"skipExemptUsers": False, "skipUnrelatedUpdates": False}})
    for kind in (MUTATING, VALIDATING):
        hook = webhook(release, kind)
        assert "matchConditions" not in hook
        assert calls_webhook(hook, username=KUBEVIRT_CONTROLLER)


def reviews_update(hook: Manifest, old: Manifest, new: Manifest) -> bool:
    """Whether kube-apiserver sends an UPDATE from `old` to `new` (every condition true)."""
    variables = {
        "request": {"userInfo": {"username": "jane"}, "operation": "UPDATE"},
        "object": new,
        "oldObject": old,
    }
    return all(cel.evaluate(c["expression"], variables) for c in hook["matchConditions"])


def test_only_updates_of_interfaces_networks_or_guarded_annotations_are_sent(
    default_release: Release,
) -> None:
    """The real apiserver's verdicts on the same condition: tests/e2e/test_match_conditions.py."""
    spec: Manifest = {
        "domain": {"devices": {"interfaces": [{"name": "a", "bridge": {}}]}},
        "networks": [{"name": "a", "multus": {"networkName": "n"}}],
    }
    vm: Manifest = {"metadata": {"annotations": {}}, "spec": {"template": {"spec": spec}}}

    def changed(*path: str, value: Any) -> Manifest:
        new = copy.deepcopy(vm)
        target = new
        *parents, last = path
        for key in parents:
            target = target.setdefault(key, {})
        target[last] = value
        return new

    hook = webhook(default_release, VALIDATING)
    template = ("spec", "template", "spec")
    for relevant in (
        changed(*template, "domain", "devices", "interfaces", value=[]),
        changed(*template, "networks", value=[]),
        changed("metadata", "annotations", "hotplug-guard.io/request", value="{}"),
    ):
        assert reviews_update(hook, vm, relevant)
        assert reviews_update(hook, relevant, vm)  # removing is a change too
    for unrelated in (
        changed("metadata", "labels", value={"team": "a"}),
        changed("metadata", "annotations", "example.com/note", value="x"),
        changed("spec", "runStrategy", value="Halted"),
        changed(*template, "domain", "memory", value={"guest": "2Gi"}),
    ):
        assert not reviews_update(hook, vm, unrelated)
    bare: Manifest = {"metadata": {}}  # no spec at all: judged unrelated, never an error
    assert not reviews_update(hook, bare, bare)
