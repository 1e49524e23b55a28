"""cert-manager mode's CA chain and the ServiceMonitor, checked by hand.

kubernetes-validate has no schemas for these CRD kinds (test_render.py skips them
by name), so the fields that decide whether they work are asserted here.
"""

from __future__ import annotations

import argparse

import pytest

from certs.names import service_hosts
from hotplug_guard.cli import build_parser
from tests.chart.manifests import FULLNAME, NAMESPACE, Manifest, Release, render
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
    default_release: Release, cert_manager_release: Release
) -> None:
    assert not default_release.kinds() & CERT_MANAGER_KINDS
    # the Secret is written by `certs ensure` or cert-manager; Helm would overwrite it
    for release in (default_release, cert_manager_release):
        assert [s["metadata"]["name"] for s in release.all("Secret")] == [f"{FULLNAME}-signing"]


@pytest.mark.parametrize("mode", ["self-managed", "cert-manager"])
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
