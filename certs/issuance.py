"""Issuing the two certificates the webhook needs: a private CA and a serving certificate.

ECDSA P-256 by default (small, fast handshakes); RSA 2048+ for environments that
require it. Both certificates start a few minutes in the past so that a peer whose
clock lags slightly does not see them as "not yet valid".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs.errors import CertificateSettingsError
from certs.names import Hosts

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

BACKDATE = timedelta(minutes=5)
MIN_RSA_BITS = 2048
AUTHORITY_NAME = "hotplug-guard-ca"


class KeyType(StrEnum):
    """The key algorithms certs can generate."""

    ECDSA = "ecdsa"
    RSA = "rsa"


@dataclass(frozen=True, slots=True, kw_only=True)
class KeySpec:
    """Which keys to generate: ECDSA P-256, or RSA with `rsa_bits` (2048 or more)."""

    type: KeyType = KeyType.ECDSA
    rsa_bits: int = MIN_RSA_BITS

    def __post_init__(self) -> None:
        if self.type is KeyType.RSA and self.rsa_bits < MIN_RSA_BITS:
            raise CertificateSettingsError(
                f"RSA keys need at least {MIN_RSA_BITS} bits, got {self.rsa_bits}"
            )


DEFAULT_KEYS = KeySpec()


def generate_key(spec: KeySpec) -> PrivateKey:
    """A fresh private key of the requested type."""
    if spec.type is KeyType.RSA:
        return rsa.generate_private_key(public_exponent=65537, key_size=spec.rsa_bits)
    return ec.generate_private_key(ec.SECP256R1())


def issue_authority(*, key: PrivateKey, now: datetime, lifetime: timedelta) -> x509.Certificate:
    """A self-signed CA that may sign serving certificates only (pathlen 0).

    The subject carries the issue time so that an old and a new CA in one bundle
    are told apart by name, as client-go does for its self-signed CAs.
    """
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"{AUTHORITY_NAME}@{int(now.timestamp())}")]
    )
    public_key = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            _key_usage(digital_signature=True, key_cert_sign=True, crl_sign=True), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    return builder.sign(key, hashes.SHA256())


def issue_serving(
    *,
    key: PrivateKey,
    hosts: Hosts,
    authority: x509.Certificate,
    authority_key: PrivateKey,
    now: datetime,
    lifetime: timedelta,
) -> x509.Certificate:
    """A TLS server certificate for `hosts`, signed by `authority`.

    It never outlives its CA: a chain whose CA has expired fails verification even
    when the leaf itself is still valid.
    """
    public_key = key.public_key()
    not_after = min(now + lifetime, authority.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts.common_name)]))
        .issuer_name(authority.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            # RSA key exchange in TLS 1.2 encrypts with the server key; ECDSA only signs
            _key_usage(digital_signature=True, key_encipherment=isinstance(key, rsa.RSAPrivateKey)),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(hosts.subject_alternative_names(), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority_key.public_key()),
            critical=False,
        )
    )
    return builder.sign(authority_key, hashes.SHA256())


def _key_usage(
    *,
    digital_signature: bool = False,
    key_encipherment: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    """A KeyUsage extension naming only the flags that matter here."""
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )
