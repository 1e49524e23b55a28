"""The names a serving certificate is valid for: DNS names and IP addresses.

Parsed once at the boundary so that issuing and checking a certificate compare the
same normalised values.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509

from certs.errors import CertificateSettingsError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
"""An RFC 1123 label, as Kubernetes names Services and namespaces (match it in full)."""
# a leading "*." wildcard label is allowed as in Kubernetes DNS SANs
_DNS_NAME = re.compile(rf"(\*\.)?{DNS_LABEL.pattern}(\.{DNS_LABEL.pattern})*")
_MAX_DNS_NAME = 253


@dataclass(frozen=True, slots=True, kw_only=True)
class Hosts:
    """The subject alternative names of a serving certificate, sorted and without duplicates."""

    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[IPAddress, ...] = ()

    def __post_init__(self) -> None:
        if not self.dns_names and not self.ip_addresses:
            raise CertificateSettingsError("a serving certificate needs at least one host")

    @property
    def common_name(self) -> str:
        """The subject CN: the first name, kept short enough for the 64-character limit."""
        first = self.dns_names[0] if self.dns_names else str(self.ip_addresses[0])
        return first[:64]

    def subject_alternative_names(self) -> x509.SubjectAlternativeName:
        """The SAN extension listing every DNS name and IP address."""
        general_names: list[x509.GeneralName] = [x509.DNSName(name) for name in self.dns_names]
        general_names += [x509.IPAddress(address) for address in self.ip_addresses]
        return x509.SubjectAlternativeName(general_names)


def parse_hosts(values: Iterable[str]) -> Hosts:
    """Hosts from strings: those that parse as IP addresses become IP SANs, the rest DNS names."""
    dns_names: set[str] = set()
    ip_addresses: set[IPAddress] = set()
    for value in values:
        text = value.strip()
        try:
            ip_addresses.add(ipaddress.ip_address(text))
            continue
        except ValueError:
            pass
        name = text.lower().rstrip(".")
        if len(name) > _MAX_DNS_NAME or not _DNS_NAME.fullmatch(name):
            raise CertificateSettingsError(f"'{value}' is neither an IP address nor a DNS name")
        dns_names.add(name)
    return Hosts(
        dns_names=tuple(sorted(dns_names)),
        ip_addresses=tuple(sorted(ip_addresses, key=lambda address: (address.version, address))),
    )


def hosts_of(certificate: x509.Certificate) -> Hosts | None:
    """The hosts a certificate's SAN extension names, or None when it has no usable SANs."""
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    names = extension.value.get_values_for_type(x509.DNSName)
    addresses = extension.value.get_values_for_type(x509.IPAddress)
    try:
        return parse_hosts([*names, *(str(address) for address in addresses)])
    except CertificateSettingsError:
        return None


def service_hosts(service: str, namespace: str) -> tuple[str, ...]:
    """The four names a Kubernetes Service answers to inside the cluster."""
    return (
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    )
