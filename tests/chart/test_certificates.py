"""cert-manager mode's CA chain, the service CA's annotations and the ServiceMonitor.

kubernetes-validate has no schemas for the CRD kinds (test_render.py skips them
by name) and knows nothing of OpenShift's annotations, so the fields that decide
whether they work are asserted here; tests/e2e/test_openshift.py plays the service
CA on a real API server.
"""

from __future__ import annotations

import argparse

import pytest

from certs.names import service_hosts
from hotplug_guard.cli import build_parser
from tests.chart.manifests import FULLNAME, NAMESPACE, Manifest, Release, mount_path, render
from webhook.app import parse_duration

CERT_MANAGER_KINDS = {"Issuer", "Certificate"}


def issuer_of(release: Release, certificate: Manifest) -> Manifest:
    reference = certificate["spec"]["issuerRef"]
    assert reference["kind"] == "Issuer"  # namespaced: the chain stays in the release namespace
    return release.one("Issuer", reference["name"])


def parsed_certs_args(release: Release) -> argparse.Namespace:
    return build_parser().parse_args(release.container("certs")["args"])


def seconds(duration: str) -> float:
    value = parse_duration(duration)
    assert value is not None, f"{duration!r} is not a Go duration"
    return value


def test_cert_manager_builds_a_private_ca_chain(cert_manager_release: Release) -> None:
    release = cert_manager_release
    serving = release.one("Certificate", f"{FULLNAME}-serving")
    ca_issuer = issuer_of(release, serving)
    ca_certificate = release.one("Certificate", f"{FULLNAME}-ca")
    assert ca_issuer["spec"] == {"ca": {"secretName": ca_certificate["spec"]["secretName"]}}
    assert ca_certificate["spec"]["isCA"] is True
    assert issuer_of(release, ca_certificate)["spec"] == {"selfSigned": {}}
    assert len(release.all("Issuer")) == 2
    assert len(release.all("Certificate")) == 2
    for item in (*release.all("Issuer"), *release.all("Certificate")):
        assert item["apiVersion"] == "cert-manager.io/v1"


def test_serving_certificate_names_the_service_as_the_api_server_calls_it(
    cert_manager_release: Release,
) -> None:
    serving = cert_manager_release.one("Certificate", f"{FULLNAME}-serving")["spec"]
    service = cert_manager_release.one("Service", FULLNAME)["metadata"]["name"]
    assert serving["dnsNames"] == list(service_hosts(service, NAMESPACE))
    assert serving["usages"] == ["digital signature", "server auth"]
    assert serving["privateKey"] == {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"}


def test_serving_certificate_lands_in_the_secret_the_pod_mounts(
    cert_manager_release: Release,
) -> None:
    serving = cert_manager_release.one("Certificate", f"{FULLNAME}-serving")["spec"]
    pod = cert_manager_release.deployment_pod()
    tls = next(v for v in pod["volumes"] if v["name"] == "tls")
    assert tls["secret"]["secretName"] == serving["secretName"] == f"{FULLNAME}-tls"


def test_certificates_renew_well_before_they_expire(cert_manager_release: Release) -> None:
    for name in (f"{FULLNAME}-ca", f"{FULLNAME}-serving"):
        spec = cert_manager_release.one("Certificate", name)["spec"]
        assert 0 < seconds(spec["renewBefore"]) <= seconds(spec["duration"]) / 3
    serving = cert_manager_release.one("Certificate", f"{FULLNAME}-serving")["spec"]
    assert seconds(serving["duration"]) == 90 * 24 * 3600


def test_self_managed_mode_renders_no_cert_manager_objects_and_no_certificate_secret(
    default_release: Release, cert_manager_release: Release, service_ca_release: Release
) -> None:
    assert not default_release.kinds() & CERT_MANAGER_KINDS
    assert not service_ca_release.kinds() & CERT_MANAGER_KINDS
    # the Secret is written by `certs ensure`, cert-manager or the service CA; Helm would
    # overwrite it
    for release in (default_release, cert_manager_release, service_ca_release):
        assert [s["metadata"]["name"] for s in release.all("Secret")] == [f"{FULLNAME}-signing"]


def test_the_service_ca_issues_for_the_service_into_the_secret_the_pod_mounts(
    service_ca_release: Release,
) -> None:
    service = service_ca_release.one("Service", FULLNAME)
    secret = service["metadata"]["annotations"][
        "service.beta.openshift.io/serving-cert-secret-name"
    ]
    assert secret == f"{FULLNAME}-tls"
    pod = service_ca_release.deployment_pod()
    tls = next(v for v in pod["volumes"] if v["name"] == "tls")["projected"]
    # the service CA's Secret holds tls.crt (its certificate, then the CA) and tls.key, no
    # ca.crt: the bundle comes from the ConfigMap it injects, into the same directory
    [from_secret, from_config_map] = tls["sources"]
    assert from_secret["secret"] == {
        "name": secret,
        "items": [{"key": "tls.crt", "path": "tls.crt"}, {"key": "tls.key", "path": "tls.key"}],
    }
    config_map = service_ca_release.one("ConfigMap", f"{FULLNAME}-ca")
    assert config_map["metadata"]["annotations"] == {
        "service.beta.openshift.io/inject-cabundle": "true"
    }
    assert "data" not in config_map  # the service CA's to write; Helm would blank it
    assert from_config_map["configMap"] == {
        "name": config_map["metadata"]["name"],
        "items": [{"key": "service-ca.crt", "path": "ca.crt"}],
    }
    assert tls["defaultMode"] == 0o440
    server = service_ca_release.container("webhook")
    args = build_parser().parse_args(server["args"])
    assert args.cert_dir == mount_path(server, "tls")


def test_the_service_ca_mode_runs_no_certificate_pod(service_ca_release: Release) -> None:
    deployments = {d["metadata"]["name"] for d in service_ca_release.all("Deployment")}
    assert deployments == {FULLNAME, f"{FULLNAME}-controller"}
    assert [c["name"] for c in service_ca_release.deployment_pod()["containers"]] == ["webhook"]
    accounts = {a["metadata"]["name"] for a in service_ca_release.all("ServiceAccount")}
    assert accounts == {
        service_ca_release.deployment_pod()["serviceAccountName"],
        service_ca_release.controller_pod()["serviceAccountName"],
    }


@pytest.mark.parametrize("mode", ["self-managed", "cert-manager", "openshift-service-ca"])
def test_service_monitor_scrapes_the_metrics_service_over_verified_tls(mode: str) -> None:
    release = render(
        {
            "certs": {"mode": mode},
            "metrics": {"serviceMonitor": {"enabled": True, "labels": {"team": "v"}}},
        }
    )
    monitor = release.one("ServiceMonitor", FULLNAME)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["team"] == "v"
    service = release.one("Service", f"{FULLNAME}-metrics")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        service["metadata"]["labels"].items()
    )
    # only the metrics Service is selected, not the webhook Service
    webhook_service = release.one("Service", FULLNAME)
    assert not monitor["spec"]["selector"]["matchLabels"].items() <= (
        webhook_service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert (endpoint["scheme"], endpoint["path"]) == ("https", "/metrics")
    assert seconds(endpoint["interval"]) == 30
    tls = endpoint["tlsConfig"]
    if mode == "self-managed":
        # not the Secret `certs ensure` keeps: it holds the CA key too
        assert tls["ca"] == {"configMap": {"name": f"{FULLNAME}-ca", "key": "ca.crt"}}
        certs = parsed_certs_args(release)
        assert certs.ca_configmap == f"{FULLNAME}-ca"
    elif mode == "openshift-service-ca":
        # the ConfigMap the service CA injects its bundle into
        assert tls["ca"] == {"configMap": {"name": f"{FULLNAME}-ca", "key": "service-ca.crt"}}
        release.one("ConfigMap", f"{FULLNAME}-ca")
    else:
        # cert-manager's serving Secret holds the serving pair and ca.crt, no CA key
        assert tls["ca"] == {"secret": {"name": f"{FULLNAME}-tls", "key": "ca.crt"}}
    assert tls["serverName"] in service_hosts(FULLNAME, NAMESPACE)
    assert "insecureSkipVerify" not in tls
    [port] = service["spec"]["ports"]
    assert port["targetPort"] == "https"


def test_metrics_objects_are_rendered_only_when_asked(default_release: Release) -> None:
    assert "ServiceMonitor" not in default_release.kinds()
    assert [s["metadata"]["name"] for s in default_release.all("Service")] == [FULLNAME]
    only_service = render({"metrics": {"service": {"enabled": True}}})
    assert "ServiceMonitor" not in only_service.kinds()
    only_service.one("Service", f"{FULLNAME}-metrics")
