"""A stand-in for OpenShift's service CA (service-ca-operator), acting only through the API.

OpenShift does not run here. What a release with `certs.mode=openshift-service-ca`
relies on is what the operator's controllers do for three annotations (its
ARCHITECTURE.md, `pkg/controller/servingcert`, `pkg/controller/cabundleinjector`),
and that is all this simulator does, with the admin's credentials:

- a Service annotated `service.beta.openshift.io/serving-cert-secret-name: NAME` gets
  the Secret NAME (type kubernetes.io/tls, owned by the Service): `tls.crt` is a
  serving certificate for `S.NS.svc` and `S.NS.svc.cluster.local` followed by the
  signing CA, `tls.key` its key, and the annotations naming the Service and the
  expiry; the Service is annotated with the signer;
- every MutatingWebhookConfiguration and ValidatingWebhookConfiguration annotated
  `service.beta.openshift.io/inject-cabundle: "true"` gets the CA bundle as the
  `caBundle` of each of its webhooks;
- every ConfigMap so annotated gets it as `service-ca.crt`.

One difference: the certificate also names `hosts` (127.0.0.1), where kube-apiserver
calls the webhook here, since the test registers URLs as envtest does.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography import x509

from tests.kube import pki
from tests.kube.controlplane import ControlPlane

SERVING_CERT_SECRET = "service.beta.openshift.io/serving-cert-secret-name"  # noqa: S105  # a name
SIGNED_BY = "service.beta.openshift.io/serving-cert-signed-by"
INJECT_CABUNDLE = "service.beta.openshift.io/inject-cabundle"
ORIGINATING_SERVICE_NAME = "service.beta.openshift.io/originating-service-name"
ORIGINATING_SERVICE_UID = "service.beta.openshift.io/originating-service-uid"
EXPIRY = "service.beta.openshift.io/expiry"
BUNDLE_KEY = "service-ca.crt"
SIGNER = "openshift-service-serving-signer"
WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
ADMISSION = "admissionregistration.k8s.io/v1"

Manifest = dict[str, Any]


@dataclass(slots=True)
class ServiceCA:
    """The signing CA and the controllers' work, one `sync` at a time."""

    plane: ControlPlane
    directory: Path
    hosts: tuple[str, ...] = ("127.0.0.1",)
    authority: pki.Authority = field(init=False)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.authority = pki.Authority(self.directory, SIGNER)

    @property
    def bundle(self) -> bytes:
        return self.authority.pem

    def sync(self, namespace: str) -> None:
        """Issue for the annotated Services in `namespace` that have no Secret yet; inject."""
        for service in self._annotated("v1", "Service", SERVING_CERT_SECRET, namespace):
            name = service["metadata"]["annotations"][SERVING_CERT_SECRET]
            if self.plane.get("v1", "Secret", name, namespace=namespace) is None:
                self.plane.create(self._secret(service, name))
                self._mark_signed(service)
        self.inject(namespace)

    def renew(self, namespace: str, service_name: str, *, lifetime: timedelta) -> x509.Certificate:
        """Replace the serving certificate of a Service, as the updater does before expiry."""
        service = self.plane.get("v1", "Service", service_name, namespace=namespace)
        assert service is not None, f"Service {namespace}/{service_name} does not exist"
        name = service["metadata"]["annotations"][SERVING_CERT_SECRET]
        secret = self._secret(service, name, lifetime=lifetime)
        resource = self.plane.resource("v1", "Secret")
        resource.replace(body=secret, name=name, namespace=namespace)
        return x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))

    def inject(self, namespace: str) -> None:
        """The bundle into every annotated webhook configuration, and ConfigMap of `namespace`."""
        encoded = base64.b64encode(self.bundle).decode()
        for kind in WEBHOOK_KINDS:
            for configuration in self._annotated(ADMISSION, kind, INJECT_CABUNDLE, None):
                hooks = configuration.get("webhooks") or []
                if all(hook["clientConfig"].get("caBundle") == encoded for hook in hooks):
                    continue
                for hook in hooks:
                    hook["clientConfig"]["caBundle"] = encoded
                self.plane.resource(ADMISSION, kind).replace(
                    body=configuration, name=configuration["metadata"]["name"]
                )
        for config_map in self._annotated("v1", "ConfigMap", INJECT_CABUNDLE, namespace):
            if (config_map.get("data") or {}).get(BUNDLE_KEY) != self.bundle.decode():
                config_map["data"] = {
                    **(config_map.get("data") or {}),
                    BUNDLE_KEY: self.bundle.decode(),
                }
                self.plane.resource("v1", "ConfigMap").replace(
                    body=config_map, name=config_map["metadata"]["name"], namespace=namespace
                )

    def _annotated(
        self, api_version: str, kind: str, annotation: str, namespace: str | None
    ) -> Iterator[Manifest]:
        listed = self.plane.resource(api_version, kind).get(namespace=namespace).to_dict()
        for item in listed["items"]:
            value = (item["metadata"].get("annotations") or {}).get(annotation)
            if value and (annotation != INJECT_CABUNDLE or value == "true"):
                item.setdefault("apiVersion", api_version)
                item.setdefault("kind", kind)
                yield item

    def _secret(
        self, service: Manifest, name: str, *, lifetime: timedelta = pki.LIFETIME
    ) -> Manifest:
        metadata = service["metadata"]
        hostname = f"{metadata['name']}.{metadata['namespace']}.svc"
        pair = self.authority.serving(
            hostname, hosts=(hostname, f"{hostname}.cluster.local", *self.hosts), lifetime=lifetime
        )
        certificate = x509.load_pem_x509_certificate(pair.cert.read_bytes())
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {
                "name": name,
                "namespace": metadata["namespace"],
                "annotations": {
                    ORIGINATING_SERVICE_NAME: metadata["name"],
                    ORIGINATING_SERVICE_UID: metadata["uid"],
                    EXPIRY: certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
                },
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "name": metadata["name"],
                        "uid": metadata["uid"],
                    }
                ],
            },
            "data": {
                # the serving certificate, then the CA that signed it
                "tls.crt": base64.b64encode(pair.cert.read_bytes() + self.bundle).decode(),
                "tls.key": base64.b64encode(pair.key.read_bytes()).decode(),
            },
        }

    def _mark_signed(self, service: Manifest) -> None:
        metadata = service["metadata"]
        self.plane.resource("v1", "Service").patch(
            body={"metadata": {"annotations": {SIGNED_BY: SIGNER}}},
            name=metadata["name"],
            namespace=metadata["namespace"],
            content_type="application/merge-patch+json",
        )
