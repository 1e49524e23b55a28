"""`ensure` against kube-apiserver: Secret, caBundle injection, conflicts, rotation.

Conflicts and failures a real API server cannot be made to give on cue (409s,
500s, a delay in the middle of a run) use the fake API server (`faulty`).
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from cryptography import x509
from kubernetes.client import ApiException

from certs.cluster import ClusterError, ClusterTarget, EnsureResult, ensure_cluster
from certs.issuance import DEFAULT_KEYS
from certs.material import Material, parse_material, render_material
from certs.names import parse_hosts, service_hosts
from certs.renewal import renew
from certs.rotation import IssueAuthority, IssueServing, RotationPolicy
from tests.certs.chains import ManualClock, verify_chain
from tests.harness.fake_apiserver import FakeApiServer
from tests.kube.seeding import Seeding

DAY = timedelta(days=1)
ADMISSION = "admissionregistration.k8s.io/v1"
KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
POLICY = RotationPolicy(authority_lifetime=300 * DAY, serving_lifetime=30 * DAY, overlap=DAY)
TARGET = ClusterTarget(
    namespace="guard-system",
    secret_name="guard-tls",  # noqa: S106 - the name of a Secret, not a password
    hosts=parse_hosts(service_hosts("guard", "guard-system")),
    mutating_webhook_configuration="guard",
    validating_webhook_configuration="guard",
)
HOST = "guard.guard-system.svc"


Server = Seeding | FakeApiServer


def _install_webhook_configurations(server: Server) -> None:
    for kind in KINDS:
        server.put(
            {
                "apiVersion": ADMISSION,
                "kind": kind,
                "metadata": {"name": "guard"},
                "webhooks": [
                    {
                        "name": f"{name}.hotplug-guard.io",
                        "admissionReviewVersions": ["v1"],
                        "sideEffects": "None",
                        "clientConfig": {"service": {"name": "guard", "namespace": "guard-system"}},
                        "matchConditions": [{"name": "c", "expression": "true"}],
                    }
                    for name in ("vms", "vmis")
                ],
            }
        )


@pytest.fixture
def server(apiserver: Seeding) -> Seeding:
    """kube-apiserver with both webhook configurations."""
    apiserver.namespace(TARGET.namespace)
    _install_webhook_configurations(apiserver)
    return apiserver


@pytest.fixture
def faulty(fake_apiserver: FakeApiServer) -> FakeApiServer:
    """The fake API server with both webhook configurations, for injected faults."""
    _install_webhook_configurations(fake_apiserver)
    return fake_apiserver


def _ensure(server: Server, clock: ManualClock) -> EnsureResult:
    return ensure_cluster(
        server.api_client(), TARGET, clock=clock, policy=POLICY, key_spec=DEFAULT_KEYS
    )


def _secret(server: Server) -> dict[str, Any]:
    secret = server.get("v1", "secrets", "guard-system", "guard-tls")
    assert secret is not None
    return secret


def _stored_material(server: Server) -> Material:
    data = _secret(server)["data"]
    return parse_material({key: base64.b64decode(value) for key, value in data.items()})


def _bundles(server: Server) -> list[list[x509.Certificate]]:
    """The CA bundle of every webhook of both configurations."""
    bundles = []
    for kind in KINDS:
        configuration = server.get(ADMISSION, kind, None, "guard")
        assert configuration is not None
        for webhook in configuration["webhooks"]:
            pem = base64.b64decode(webhook["clientConfig"]["caBundle"])
            bundles.append(x509.load_pem_x509_certificates(pem))
    return bundles


def _served(material: Material) -> x509.Certificate:
    assert material.serving is not None
    return material.serving


def test_first_run_creates_a_tls_secret_and_injects_the_ca_into_every_webhook(
    server: Seeding,
) -> None:
    clock = ManualClock()

    result = _ensure(server, clock)

    secret = _secret(server)
    material = _stored_material(server)
    assert secret["type"] == "kubernetes.io/tls"
    assert sorted(secret["data"]) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]
    assert [type(action) for action in result.actions] == [IssueAuthority, IssueServing]
    assert result.published == (
        "mutatingwebhookconfigurations/guard",
        "validatingwebhookconfigurations/guard",
    )
    bundles = _bundles(server)
    assert len(bundles) == 4
    assert all(bundle == list(material.authorities) for bundle in bundles)
    assert verify_chain(_served(material), bundles[0], host=HOST, at=clock.now())


def test_injection_keeps_the_rest_of_the_webhook_configuration(server: Seeding) -> None:
    _ensure(server, ManualClock())

    configuration = server.get(ADMISSION, "ValidatingWebhookConfiguration", None, "guard")

    assert configuration is not None
    webhook = configuration["webhooks"][1]
    assert webhook["name"] == "vmis.hotplug-guard.io"
    assert webhook["matchConditions"] == [{"name": "c", "expression": "true"}]
    # as stored: kube-apiserver defaulted the port
    assert webhook["clientConfig"]["service"] == {
        "name": "guard",
        "namespace": "guard-system",
        "port": 443,
    }


def test_a_run_with_nothing_to_do_only_reads(server: Seeding) -> None:
    clock = ManualClock()
    _ensure(server, clock)
    before = _versions(server)
    clock.advance(DAY)

    result = _ensure(server, clock)

    assert result.actions == ()
    assert result.published == ()
    assert _versions(server) == before  # nothing was written


def _versions(server: Seeding) -> list[str]:
    """resourceVersions of the Secret and both configurations: they change with every write."""
    found = [server.get(ADMISSION, kind, None, "guard") for kind in KINDS]
    return [obj["metadata"]["resourceVersion"] for obj in (_secret(server), *found) if obj]


def test_a_webhook_with_a_stale_ca_bundle_is_corrected(server: Seeding) -> None:
    clock = ManualClock()
    _ensure(server, clock)
    configuration = server.get(ADMISSION, "MutatingWebhookConfiguration", None, "guard")
    assert configuration is not None
    stale = base64.b64encode(_self_signed_pem()).decode()  # kube-apiserver wants a PEM bundle
    configuration["webhooks"][0]["clientConfig"]["caBundle"] = stale
    server.put(configuration)

    result = _ensure(server, clock)

    assert result.published == ("mutatingwebhookconfigurations/guard",)
    assert len({tuple(bundle) for bundle in _bundles(server)}) == 1


def test_concurrent_runs_converge_on_one_ca_and_one_bundle(server: Seeding) -> None:
    clock = ManualClock()
    results: list[EnsureResult] = []
    runs = [
        threading.Thread(target=lambda: results.append(_ensure(server, clock))) for _ in range(6)
    ]
    for run in runs:
        run.start()
    for run in runs:
        run.join()

    material = _stored_material(server)
    assert len(results) == 6
    assert len(material.authorities) == 1
    assert all(result.material.authorities == material.authorities for result in results)
    assert all(bundle == list(material.authorities) for bundle in _bundles(server))
    assert sum(IssueAuthority in {type(a) for a in result.actions} for result in results) == 1
    assert verify_chain(_served(material), _bundles(server)[0], host=HOST, at=clock.now())


def test_a_conflicting_secret_update_is_retried_with_fresh_data(faulty: FakeApiServer) -> None:
    server = faulty
    clock = ManualClock()
    _ensure(server, clock)
    clock.advance(21 * DAY)  # the serving certificate is due
    fault = server.inject(verb="update", resource="secrets", status=409, times=2)

    result = _ensure(server, clock)

    assert fault.hits == 2
    assert [type(action) for action in result.actions] == [IssueServing]
    assert _served(_stored_material(server)) == _served(result.material)


def test_a_conflicting_webhook_patch_is_retried(faulty: FakeApiServer) -> None:
    server = faulty
    fault = server.inject(
        verb="patch", resource="validatingwebhookconfigurations", status=409, times=1
    )

    result = _ensure(server, ManualClock())

    assert fault.hits == 1
    assert all(bundle == list(result.material.authorities) for bundle in _bundles(server))


def test_a_secret_replaced_while_publishing_is_published_again(faulty: FakeApiServer) -> None:
    """A slow run must not leave an older bundle behind another replica's newer one."""
    server = faulty
    clock = ManualClock()
    server.inject(verb="patch", resource="validatingwebhookconfigurations", status=None, delay=0.5)
    replacement = renew(
        Material(), hosts=TARGET.hosts, now=clock.now(), policy=POLICY, key_spec=DEFAULT_KEYS
    ).material
    results: list[EnsureResult] = []
    slow = threading.Thread(target=lambda: results.append(_ensure(server, clock)))
    slow.start()
    while server.get("v1", "secrets", "guard-system", "guard-tls") is None and slow.is_alive():
        time.sleep(0.01)
    secret = _secret(server)
    entries = render_material(replacement, with_authority_key=True)
    secret["data"] = {key: base64.b64encode(value).decode() for key, value in entries.items()}
    server.put(secret)
    slow.join()

    assert results[0].material.authorities == replacement.authorities
    assert all(bundle == list(replacement.authorities) for bundle in _bundles(server))


def test_endless_conflicts_end_in_a_clear_error(faulty: FakeApiServer) -> None:
    server = faulty
    server.inject(verb="create", resource="secrets", status=409, times=100)

    with pytest.raises(ClusterError, match="gave up after 10 conflicting updates"):
        _ensure(server, ManualClock())


def test_a_missing_webhook_configuration_is_a_clear_error(apiserver: Seeding) -> None:
    apiserver.namespace(TARGET.namespace)
    with pytest.raises(ClusterError, match="mutatingwebhookconfigurations 'guard' not found"):
        _ensure(apiserver, ManualClock())


def test_without_webhook_configurations_only_the_secret_is_kept(apiserver: Seeding) -> None:
    target = ClusterTarget(
        namespace="ns",
        secret_name="tls",  # noqa: S106 - the name of a Secret, not a password
        hosts=parse_hosts(["guard.ns.svc"]),
    )

    apiserver.namespace("ns")
    result = ensure_cluster(
        apiserver.api_client(),
        target,
        clock=ManualClock(),
        policy=POLICY,
        key_spec=DEFAULT_KEYS,
    )

    assert result.published == ()
    assert apiserver.get("v1", "secrets", "ns", "tls") is not None


def test_ca_rotation_publishes_both_cas_before_serving_from_the_new_one(
    server: Seeding,
) -> None:
    clock = ManualClock()
    first = _ensure(server, clock).material
    old_ca = first.authorities[0]
    served_before: list[x509.Certificate] = []
    clock.advance(185 * DAY)
    _ensure(server, clock)
    # every 6 hours from day 185 to 215: across the CA's renewal point (day 200) and the rotation
    for _ in range(4 * 30):
        clock.advance(DAY / 4)
        previous = _served(_stored_material(server))
        result = _ensure(server, clock)
        for bundle in _bundles(server):
            # both what replicas may still serve and the new certificate verify
            verify_chain(previous, bundle, host=HOST, at=clock.now())
            verify_chain(_served(result.material), bundle, host=HOST, at=clock.now())
        if len(result.material.authorities) == 2:
            served_before.append(_served(result.material))

    final = _stored_material(server)
    assert final.authorities[0] != old_ca
    assert len(final.authorities) == 1
    assert all(bundle == list(final.authorities) for bundle in _bundles(server))
    issuers = {certificate.issuer for certificate in served_before}
    assert issuers == {old_ca.subject, final.authorities[0].subject}


def test_a_new_ca_missing_from_a_webhook_bundle_does_not_sign_the_served_certificate(
    faulty: FakeApiServer,
) -> None:
    server = faulty
    clock = ManualClock()
    _ensure(server, clock)
    clock.advance(195 * DAY)
    _ensure(server, clock)  # a fresh serving certificate, five days before the CA is due
    clock.advance(5 * DAY)
    failing = server.inject(
        verb="patch", resource="validatingwebhookconfigurations", status=500, times=3
    )
    with pytest.raises(ApiException):
        _ensure(server, clock)  # the new CA is in the Secret but not in every webhook
    old_ca, new_ca = (
        _stored_material(server).authorities[1],
        _stored_material(server).authorities[0],
    )

    for _ in range(2):
        clock.advance(DAY)
        with pytest.raises(ApiException):
            _ensure(server, clock)
        assert _served(_stored_material(server)).issuer == old_ca.subject

    published = _ensure(server, clock)
    reissued = _ensure(server, clock)

    assert failing.hits == 3
    assert published.actions == ()
    assert [type(action) for action in reissued.actions] == [IssueServing]
    assert _served(reissued.material).issuer == new_ca.subject


def test_the_ca_bundle_is_also_kept_in_a_configmap_without_any_key(server: Seeding) -> None:
    target = replace(TARGET, ca_configmap="guard-ca")
    clock = ManualClock()
    first = ensure_cluster(
        server.api_client(), target, clock=clock, policy=POLICY, key_spec=DEFAULT_KEYS
    )
    configmap = server.get("v1", "configmaps", "guard-system", "guard-ca")
    assert configmap is not None
    assert configmap["data"] == {"ca.crt": first.material.bundle_pem().decode()}
    assert "configmaps/guard-ca" in first.published
    again = ensure_cluster(
        server.api_client(), target, clock=clock, policy=POLICY, key_spec=DEFAULT_KEYS
    )
    assert "configmaps/guard-ca" not in again.published
    clock.advance(210 * DAY)  # the CA is due: a new one joins the bundle
    rotated = ensure_cluster(
        server.api_client(), target, clock=clock, policy=POLICY, key_spec=DEFAULT_KEYS
    )
    configmap = server.get("v1", "configmaps", "guard-system", "guard-ca")
    assert configmap is not None
    assert configmap["data"]["ca.crt"] == rotated.material.bundle_pem().decode()
    assert len(x509.load_pem_x509_certificates(configmap["data"]["ca.crt"].encode())) == 2


def _self_signed_pem() -> bytes:
    """Some other CA's certificate: a bundle that is valid PEM but trusts the wrong CA."""
    other = renew(
        Material(),
        hosts=TARGET.hosts,
        now=ManualClock().now(),
        policy=POLICY,
        key_spec=DEFAULT_KEYS,
    )
    return render_material(other.material, with_authority_key=False)["ca.crt"]
