"""The certificates and keys of one installation, and their PEM form.

The same four entries live in a local directory and in a Kubernetes Secret, under
the names of a `kubernetes.io/tls` Secret plus the CA's own files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from certs.issuance import PrivateKey

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
TLS_CERT = "tls.crt"
TLS_KEY = "tls.key"


@dataclass(frozen=True, slots=True, kw_only=True)
class Material:
    """CA bundle, CA key, serving certificate and serving key; any of them may be missing.

    `authorities[0]` is the signing CA when `authority_key` belongs to it; the others
    are previous CAs kept in the bundle until a rotation completes.
    """

    authorities: tuple[x509.Certificate, ...] = ()
    authority_key: PrivateKey | None = None
    serving: x509.Certificate | None = None
    serving_key: PrivateKey | None = None

    def bundle_pem(self) -> bytes:
        """The CA bundle that clients trust (the webhook configurations' caBundle)."""
        return b"".join(_certificate_pem(authority) for authority in self.authorities)


def parse_material(entries: Mapping[str, bytes]) -> Material:
    """Material from PEM entries; an entry that is missing or unreadable counts as absent.

    Absent pieces are simply issued again, which repairs a damaged Secret or
    directory instead of failing on it.
    """
    return Material(
        authorities=_parse_certificates(entries.get(CA_CERT)),
        authority_key=_parse_key(entries.get(CA_KEY)),
        serving=next(iter(_parse_certificates(entries.get(TLS_CERT))), None),
        serving_key=_parse_key(entries.get(TLS_KEY)),
    )


def render_material(material: Material, *, with_authority_key: bool) -> dict[str, bytes]:
    """PEM entries for the pieces present; the CA key only where the CA is kept."""
    entries: dict[str, bytes] = {}
    if material.authorities:
        entries[CA_CERT] = material.bundle_pem()
    if with_authority_key and material.authority_key is not None:
        entries[CA_KEY] = _key_pem(material.authority_key)
    if material.serving_key is not None:
        entries[TLS_KEY] = _key_pem(material.serving_key)
    if material.serving is not None:
        entries[TLS_CERT] = _certificate_pem(material.serving)
    return entries


def first_certificate(pem: bytes) -> x509.Certificate:
    """The first certificate in PEM data; ValueError when there is none."""
    certificates = _parse_certificates(pem)
    if not certificates:
        raise ValueError("no PEM certificate found")
    return certificates[0]


def _parse_certificates(pem: bytes | None) -> tuple[x509.Certificate, ...]:
    if not pem:
        return ()
    try:
        return tuple(x509.load_pem_x509_certificates(pem))
    except ValueError:
        return ()


def _parse_key(pem: bytes | None) -> PrivateKey | None:
    if not pem:
        return None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        return None
    return key if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) else None


def _certificate_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
