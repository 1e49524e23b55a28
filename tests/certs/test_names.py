"""Hosts become the right kind of subject alternative name, and bad ones are refused."""

from __future__ import annotations

import ipaddress

import pytest

from certs.errors import CertificateSettingsError
from certs.names import parse_hosts, service_hosts


def test_service_answers_to_four_names() -> None:
    assert service_hosts("guard", "kubevirt") == (
        "guard",
        "guard.kubevirt",
        "guard.kubevirt.svc",
        "guard.kubevirt.svc.cluster.local",
    )


def test_hosts_that_parse_as_ip_addresses_become_ip_names() -> None:
    hosts = parse_hosts(["localhost", "127.0.0.1", "::1"])

    assert hosts.dns_names == ("localhost",)
    assert hosts.ip_addresses == (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))


def test_dns_names_are_normalised_and_deduplicated() -> None:
    assert parse_hosts(["Guard.Example.com.", "guard.example.com"]).dns_names == (
        "guard.example.com",
    )


def test_a_wildcard_dns_name_is_accepted() -> None:
    assert parse_hosts(["*.example.com"]).dns_names == ("*.example.com",)


@pytest.mark.parametrize("host", ["under_score", "-leading", "a..b", "", "space d", "x" * 64])
def test_a_host_that_is_no_dns_name_is_refused(host: str) -> None:
    with pytest.raises(CertificateSettingsError, match="neither an IP address nor a DNS name"):
        parse_hosts([host])


def test_no_hosts_is_refused() -> None:
    with pytest.raises(CertificateSettingsError, match="at least one host"):
        parse_hosts([])
