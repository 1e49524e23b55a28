"""The one module that talks to the Kubernetes API: the certificate Secret, the webhook caBundles.

Safe to run from several replicas at once without leader election: every write is
conditional on the resourceVersion that was read, a 409 means another replica got
there first, so the run reads again and re-plans. Runs converge on the Secret that
won, and a run ends only after checking that the Secret did not change while it
published the bundle, so a slow replica cannot leave an older bundle behind.

RBAC this needs (nothing more): secrets get/update on the one Secret (resourceNames)
and create in its namespace (create cannot be limited by name);
mutatingwebhookconfigurations and validatingwebhookconfigurations get/patch on the
two named configurations; with a CA ConfigMap, configmaps get/update on it and create.

The Secret holds the CA's private key. Whoever only needs to trust the serving
certificate (a Prometheus scraping /metrics) reads the CA bundle from the ConfigMap
instead, which holds nothing secret.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import kubernetes.client
from cryptography import x509
from kubernetes.client import ApiException

from certs.clock import Clock
from certs.issuance import KeySpec
from certs.material import Material, parse_material, render_material
from certs.names import Hosts
from certs.renewal import fingerprint, renew
from certs.rotation import Action, RotationPolicy

log = logging.getLogger(f"hotplug_guard.{__name__}")

ADMISSION_GROUP = "admissionregistration.k8s.io"
ADMISSION_VERSION = "v1"
MUTATING = "mutatingwebhookconfigurations"
VALIDATING = "validatingwebhookconfigurations"
MAX_ATTEMPTS = 10
CA_BUNDLE_KEY = "ca.crt"
SECRET_LABELS = {"app.kubernetes.io/name": "hotplug-guard", "app.kubernetes.io/component": "certs"}


class ClusterError(Exception):
    """Certificates could not be ensured: a missing webhook configuration, endless conflicts."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterTarget:
    """Where the certificates live and where their CA bundle must be published."""

    namespace: str
    secret_name: str
    hosts: Hosts  # the serving certificate's names, usually the Service's (names.service_hosts)
    mutating_webhook_configuration: str | None = None
    validating_webhook_configuration: str | None = None
    ca_configmap: str | None = None  # also publish the CA bundle (`ca.crt`) in this ConfigMap

    @property
    def configurations(self) -> tuple[tuple[str, str], ...]:
        """(plural, name) of each webhook configuration to publish the bundle to."""
        named = (
            (MUTATING, self.mutating_webhook_configuration),
            (VALIDATING, self.validating_webhook_configuration),
        )
        return tuple((plural, name) for plural, name in named if name)


@dataclass(frozen=True, slots=True, kw_only=True)
class EnsureResult:
    """What a run found and did."""

    material: Material  # as stored in the Secret at the end of the run
    actions: tuple[Action, ...] = ()  # certificate changes this run wrote
    published: tuple[str, ...] = ()  # "plural/name" whose caBundle it updated


def ensure_cluster(
    api: kubernetes.client.ApiClient,
    target: ClusterTarget,
    *,
    clock: Clock,
    policy: RotationPolicy,
    key_spec: KeySpec,
) -> EnsureResult:
    """Bring the Secret's certificates up to date and publish its CA bundle to the webhooks."""
    core = kubernetes.client.CoreV1Api(api)
    objects = kubernetes.client.CustomObjectsApi(api)
    written: list[Action] = []
    for _ in range(MAX_ATTEMPTS):
        secret = _read_secret(core, target)
        configurations = {key: _read_configuration(objects, *key) for key in target.configurations}
        renewal = renew(
            parse_material(_decoded(secret)),
            hosts=target.hosts,
            now=clock.now(),
            policy=policy,
            key_spec=key_spec,
            published=_published(configurations.values()),
        )
        try:
            if renewal.actions:
                secret = _write_secret(core, target, secret, renewal.material)
                written += renewal.actions
                for action in renewal.actions:
                    log.info("%s: %s", type(action).__name__, action.reason)
            bundle = base64.b64encode(renewal.material.bundle_pem()).decode()
            published = tuple(
                f"{plural}/{name}"
                for (plural, name), configuration in configurations.items()
                if _publish(objects, plural, name, configuration, bundle)
            )
            if target.ca_configmap and _publish_configmap(
                core, target, renewal.material.bundle_pem().decode()
            ):
                published += (f"configmaps/{target.ca_configmap}",)
        except ApiException as error:
            if error.status == 409:  # another replica changed it: read again and re-plan
                continue
            raise
        for name in published:
            log.info("published the CA bundle to %s", name)
        if _resource_version(_read_secret(core, target)) == _resource_version(secret):
            return EnsureResult(
                material=renewal.material, actions=tuple(written), published=published
            )
    raise ClusterError(
        f"gave up after {MAX_ATTEMPTS} conflicting updates of secret "
        f"'{target.namespace}/{target.secret_name}'"
    )


def _read_secret(
    core: kubernetes.client.CoreV1Api, target: ClusterTarget
) -> kubernetes.client.V1Secret | None:
    try:
        return core.read_namespaced_secret(target.secret_name, target.namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def _decoded(secret: kubernetes.client.V1Secret | None) -> dict[str, bytes]:
    data = (secret.data if secret is not None else None) or {}
    return {key: base64.b64decode(value) for key, value in data.items()}


def _resource_version(secret: kubernetes.client.V1Secret | None) -> str | None:
    if secret is None or secret.metadata is None:
        return None
    return secret.metadata.resource_version


def _write_secret(
    core: kubernetes.client.CoreV1Api,
    target: ClusterTarget,
    secret: kubernetes.client.V1Secret | None,
    material: Material,
) -> kubernetes.client.V1Secret:
    """Create the Secret, or replace its data conditionally on the resourceVersion read."""
    data: dict[str, bytes | str] = {
        key: base64.b64encode(value).decode()
        for key, value in render_material(material, with_authority_key=True).items()
    }
    if secret is None:
        body = kubernetes.client.V1Secret(
            metadata=kubernetes.client.V1ObjectMeta(
                name=target.secret_name, namespace=target.namespace, labels=SECRET_LABELS
            ),
            type="kubernetes.io/tls",
            data=data,
        )
        return core.create_namespaced_secret(target.namespace, body)
    # the read object carries its resourceVersion, which makes the replace conditional
    secret.data = {**(secret.data or {}), **data}
    return core.replace_namespaced_secret(target.secret_name, target.namespace, secret)


def _read_configuration(
    objects: kubernetes.client.CustomObjectsApi, plural: str, name: str
) -> dict[str, Any]:
    """A webhook configuration as raw JSON, so that a patch keeps fields this client lacks."""
    try:
        found: Any = objects.get_cluster_custom_object(
            ADMISSION_GROUP, ADMISSION_VERSION, plural, name
        )
    except ApiException as error:
        if error.status == 404:
            raise ClusterError(f"{plural} '{name}' not found; install it before the CA") from None
        raise
    configuration: dict[str, Any] = found
    return configuration


def _published(configurations: Iterable[Mapping[str, Any]]) -> frozenset[str] | None:
    """Fingerprints of the CAs in the caBundle of every webhook; None when there is no webhook."""
    bundles = [
        webhook.get("clientConfig", {}).get("caBundle", "")
        for configuration in configurations
        for webhook in configuration.get("webhooks") or ()
    ]
    if not bundles:
        return None
    return frozenset.intersection(*(_fingerprints(bundle) for bundle in bundles))


def _fingerprints(bundle: str) -> frozenset[str]:
    try:
        return frozenset(
            fingerprint(ca) for ca in x509.load_pem_x509_certificates(base64.b64decode(bundle))
        )
    except ValueError:
        return frozenset()


def _publish(
    objects: kubernetes.client.CustomObjectsApi,
    plural: str,
    name: str,
    configuration: Mapping[str, Any],
    bundle: str,
) -> bool:
    """Set caBundle on every webhook of a configuration; False when all had it already.

    A JSON patch that also sets metadata.resourceVersion is conditional: the API
    server answers 409 if the configuration changed since it was read.
    """
    operations: list[dict[str, Any]] = [
        {
            "op": "add",  # add replaces an existing member and creates a missing one
            "path": f"/webhooks/{index}/clientConfig/caBundle",
            "value": bundle,
        }
        for index, webhook in enumerate(configuration.get("webhooks") or ())
        if webhook.get("clientConfig", {}).get("caBundle") != bundle
    ]
    if not operations:
        return False
    version = configuration["metadata"]["resourceVersion"]
    precondition = {"op": "replace", "path": "/metadata/resourceVersion", "value": version}
    objects.patch_cluster_custom_object(
        ADMISSION_GROUP,
        ADMISSION_VERSION,
        plural,
        name,
        [precondition, *operations],
        _content_type="application/json-patch+json",
    )
    return True


def _publish_configmap(
    core: kubernetes.client.CoreV1Api, target: ClusterTarget, bundle: str
) -> bool:
    """Keep `ca.crt` of the CA ConfigMap equal to the bundle; False when it was already.

    The replace carries the resourceVersion read, so it is conditional like the others.
    """
    name = target.ca_configmap
    if name is None:
        return False
    try:
        current = core.read_namespaced_config_map(name, target.namespace)
    except ApiException as error:
        if error.status != 404:
            raise
        body = kubernetes.client.V1ConfigMap(
            metadata=kubernetes.client.V1ObjectMeta(
                name=name, namespace=target.namespace, labels=SECRET_LABELS
            ),
            data={CA_BUNDLE_KEY: bundle},
        )
        core.create_namespaced_config_map(target.namespace, body)
        return True
    if (current.data or {}).get(CA_BUNDLE_KEY) == bundle:
        return False
    current.data = {**(current.data or {}), CA_BUNDLE_KEY: bundle}
    core.replace_namespaced_config_map(name, target.namespace, current)
    return True
