"""Issued certificates are what TLS clients and the API server require of a webhook."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import VerificationError

from certs.errors import CertificateSettingsError
from certs.issuance import (
    DEFAULT_KEYS,
    KeySpec,
    KeyType,
    generate_key,
    issue_authority,
    issue_serving,
)
from certs.names import parse_hosts, service_hosts
from tests.certs.chains import START, verify_chain

HOSTS = parse_hosts([*service_hosts("guard", "kubevirt"), "10.96.0.10"])


def _pair(
    spec: KeySpec = DEFAULT_KEYS, *, authority_days: int = 3650, serving_days: int = 90
) -> tuple[x509.Certificate, x509.Certificate]:
    authority_key = generate_key(spec)
    authority = issue_authority(
        key=authority_key, now=START, lifetime=timedelta(days=authority_days)
    )
    serving = issue_serving(
        key=generate_key(spec),
        hosts=HOSTS,
        authority=authority,
        authority_key=authority_key,
        now=START,
        lifetime=timedelta(days=serving_days),
    )
    return authority, serving


@pytest.mark.parametrize(
    "host",
    [
        "guard",
        "guard.kubevirt",
        "guard.kubevirt.svc",
        "guard.kubevirt.svc.cluster.local",
        "10.96.0.10",
    ],
)
def test_serving_certificate_verifies_against_its_ca_for_every_service_name(host: str) -> None:
    authority, serving = _pair()

    chain = verify_chain(serving, [authority], host=host, at=START + timedelta(days=1))

    assert chain == [serving, authority]


def test_serving_certificate_does_not_verify_for_another_name() -> None:
    authority, serving = _pair()

    with pytest.raises(VerificationError):
        verify_chain(serving, [authority], host="other.kubevirt.svc", at=START)


def test_serving_certificate_does_not_verify_against_another_ca() -> None:
    _, serving = _pair()
    stranger, _ = _pair()

    with pytest.raises(VerificationError):
        verify_chain(serving, [stranger], host="guard.kubevirt.svc", at=START)


def test_serving_certificate_lists_exactly_the_requested_names() -> None:
    _, serving = _pair()

    names = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value

    assert sorted(names.get_values_for_type(x509.DNSName)) == sorted(
        service_hosts("guard", "kubevirt")
    )
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.96.0.10")]


def test_serving_certificate_is_a_server_leaf_and_not_a_ca() -> None:
    _, serving = _pair()
    extensions = serving.extensions

    constraints = extensions.get_extension_for_class(x509.BasicConstraints)
    usage = extensions.get_extension_for_class(x509.KeyUsage).value
    purposes = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value

    assert constraints.critical
    assert constraints.value.ca is False
    assert usage.digital_signature
    assert not usage.key_cert_sign
    assert list(purposes) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_ca_may_sign_leaves_only() -> None:
    authority, _ = _pair()
    extensions = authority.extensions

    constraints = extensions.get_extension_for_class(x509.BasicConstraints)
    usage = extensions.get_extension_for_class(x509.KeyUsage).value

    assert constraints.critical
    assert (constraints.value.ca, constraints.value.path_length) == (True, 0)
    assert usage.key_cert_sign
    assert authority.issuer == authority.subject


def test_ecdsa_p256_is_the_default_key() -> None:
    authority, serving = _pair()

    for certificate in (authority, serving):
        key = certificate.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        assert key.curve.name == "secp256r1"


def test_rsa_keys_can_be_requested_and_encipher_for_tls_1_2() -> None:
    authority, serving = _pair(KeySpec(type=KeyType.RSA, rsa_bits=3072))

    key = serving.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    assert key.key_size == 3072
    assert serving.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment
    assert verify_chain(serving, [authority], host="guard.kubevirt.svc", at=START)


def test_rsa_keys_below_2048_bits_are_refused() -> None:
    with pytest.raises(CertificateSettingsError, match="at least 2048 bits"):
        KeySpec(type=KeyType.RSA, rsa_bits=1024)


def test_certificates_are_valid_slightly_before_issue_for_clock_skew() -> None:
    authority, serving = _pair()

    assert serving.not_valid_before_utc < START
    assert authority.not_valid_before_utc < START
    assert serving.not_valid_after_utc == START + timedelta(days=90)


def test_serving_certificate_never_outlives_its_ca() -> None:
    authority, serving = _pair(authority_days=30, serving_days=90)

    assert serving.not_valid_after_utc == authority.not_valid_after_utc


def test_two_cas_issued_at_different_times_have_different_names() -> None:
    key = generate_key(KeySpec())
    first = issue_authority(key=key, now=START, lifetime=timedelta(days=10))
    second = issue_authority(key=key, now=START + timedelta(seconds=1), lifetime=timedelta(days=10))

    assert first.subject != second.subject
