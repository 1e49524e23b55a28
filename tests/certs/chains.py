"""Helpers for certificate tests: a settable clock and real chain verification."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store

START = datetime(2030, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class ManualClock:
    """A clock that moves only when told to."""

    time: datetime = START

    def now(self) -> datetime:
        return self.time

    def advance(self, delta: timedelta) -> datetime:
        self.time += delta
        return self.time


def verify_chain(
    leaf: x509.Certificate, bundle: list[x509.Certificate], *, host: str, at: datetime
) -> list[x509.Certificate]:
    """Verify `leaf` for `host` against the CAs in `bundle` as a TLS client would; return the chain.

    Raises cryptography's VerificationError when a client would reject it.
    """
    try:
        subject: x509.DNSName | x509.IPAddress = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        subject = x509.DNSName(host)
    verifier = PolicyBuilder().store(Store(bundle)).time(at).build_server_verifier(subject)
    return verifier.verify(leaf, [])


def load_bundle(path: Path) -> list[x509.Certificate]:
    """The certificates in a PEM file."""
    return x509.load_pem_x509_certificates(path.read_bytes())
