"""Certificate rotation under traffic: new files in the cert dir, no restart, no failed request."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certs.directory import write_atomic, write_material
from certs.issuance import KeySpec, PrivateKey, generate_key, issue_authority, issue_serving
from certs.material import Material, render_material
from certs.names import parse_hosts
from hotplug_guard.commands.serve import EXPIRY_REFRESH_SECONDS
from tests.webhook import service
from tests.webhook.objects import hotplug_review, uid_of
from tests.webhook.service import Service

HOSTS = parse_hosts(["localhost", "127.0.0.1"])


@dataclass(frozen=True, slots=True, kw_only=True)
class Authority:
    certificate: x509.Certificate
    key: PrivateKey


@dataclass(frozen=True, slots=True, kw_only=True)
class Leaf:
    certificate: x509.Certificate
    key: PrivateKey

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.certificate.public_bytes(Encoding.DER)).hexdigest()


def authority(now: datetime) -> Authority:
    key = generate_key(KeySpec())
    return Authority(
        certificate=issue_authority(key=key, now=now, lifetime=timedelta(days=3650)), key=key
    )


def leaf(ca: Authority, now: datetime, *, days: int = 90) -> Leaf:
    key = generate_key(KeySpec())
    certificate = issue_serving(
        key=key,
        hosts=HOSTS,
        authority=ca.certificate,
        authority_key=ca.key,
        now=now,
        lifetime=timedelta(days=days),
    )
    return Leaf(certificate=certificate, key=key)


def install(directory: Path, bundle: tuple[Authority, ...], serving: Leaf) -> None:
    """Write the files the way `certs` rotates them (bundle, key, then certificate)."""
    material = Material(
        authorities=tuple(ca.certificate for ca in bundle),
        serving=serving.certificate,
        serving_key=serving.key,
    )
    write_material(directory, material, with_authority_key=False)


def served_fingerprint(served: Service, trust: Path) -> str:
    """The certificate a fresh TLS handshake gets, verified against `trust`."""
    context = ssl.create_default_context(cafile=str(trust))
    with (
        socket.create_connection(("127.0.0.1", served.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).hexdigest()


def wait_for_leaf(served: Service, trust: Path, expected: Leaf) -> None:
    deadline = time.monotonic() + 15
    while served_fingerprint(served, trust) != expected.fingerprint:
        assert time.monotonic() < deadline, "the rotated certificate was not picked up"
        time.sleep(0.05)


def wait_for_every_worker(served: Service, reloads: int) -> None:
    """Until each worker has logged `reloads` certificate reloads: a worker reloads when it
    accepts a connection, or at its next look at the files (`EXPIRY_REFRESH_SECONDS`).
    """
    workers = served.worker_pids()
    deadline = time.monotonic() + 3 * EXPIRY_REFRESH_SECONDS
    while True:
        by_worker = Counter(
            entry["pid"]
            for entry in served.json_logs()
            if entry["message"].startswith("serving certificate reloaded")
        )
        if all(by_worker[pid] >= reloads for pid in workers):
            return
        assert time.monotonic() < deadline, f"reloads by worker: {by_worker}"
        time.sleep(0.1)


@dataclass(slots=True, kw_only=True)
class Traffic:
    """Reviews sent continuously on one keep-alive connection and on fresh connections."""

    served: Service
    trust: Path
    stop: threading.Event = field(default_factory=threading.Event)
    kept_alive: int = 0
    fresh: int = 0
    failures: list[str] = field(default_factory=list)
    reconnects: int = 0

    def keep_alive(self) -> None:
        context = ssl.create_default_context(cafile=str(self.trust))
        connection = http.client.HTTPSConnection(
            "127.0.0.1", self.served.port, context=context, timeout=10
        )
        first: object = None
        try:
            while not self.stop.is_set():
                body = json.dumps(hotplug_review(uid=uid_of(f"kept-{self.kept_alive}")))
                try:
                    connection.request(
                        "POST", "/validate", body=body, headers={"Content-Type": "application/json"}
                    )
                    answer = connection.getresponse()
                    document = json.loads(answer.read())
                    assert answer.status == 200
                    assert document["response"]["uid"] == uid_of(f"kept-{self.kept_alive}")
                except (OSError, AssertionError, ValueError, http.client.HTTPException) as error:
                    self.failures.append(f"keep-alive: {error!r}")
                    return
                if first is None:
                    first = connection.sock
                elif connection.sock is not first:
                    self.reconnects += 1
                self.kept_alive += 1
        finally:
            connection.close()

    def advance(self, count: int = 5) -> None:
        """Wait until both kinds of traffic made `count` more successful requests."""
        kept, fresh = self.kept_alive, self.fresh
        deadline = time.monotonic() + 20
        while self.kept_alive < kept + count or self.fresh < fresh + count:
            assert not self.failures, self.failures
            assert time.monotonic() < deadline, "traffic stalled"
            time.sleep(0.02)

    def fresh_connections(self) -> None:
        while not self.stop.is_set():
            try:
                answer = requests.post(
                    self.served.url("/validate"),
                    json=hotplug_review(uid=uid_of(f"fresh-{self.fresh}")),
                    verify=str(self.trust),
                    timeout=10,
                    headers={"Connection": "close"},
                )
                assert answer.status_code == 200
                assert answer.json()["response"]["uid"] == uid_of(f"fresh-{self.fresh}")
            except (requests.RequestException, AssertionError, ValueError) as error:
                self.failures.append(f"fresh: {error!r}")
                return
            self.fresh += 1


@pytest.fixture
def traffic_threads() -> Iterator[list[threading.Thread]]:
    threads: list[threading.Thread] = []
    yield threads
    for thread in threads:
        thread.join(timeout=15)


def test_rotated_leaf_and_ca_are_served_without_restart_or_a_failed_request(
    tmp_path: Path, traffic_threads: list[threading.Thread]
) -> None:
    now = datetime.now(UTC)
    old_ca, new_ca = authority(now), authority(now)
    trust = tmp_path / "bundle.pem"
    trust.write_bytes(
        b"".join(ca.certificate.public_bytes(Encoding.PEM) for ca in (old_ca, new_ca))
    )
    cert_dir = tmp_path / "certs"
    first = leaf(old_ca, now)
    install(cert_dir, (old_ca,), first)
    served = service.start(tmp_path, args=("--cert-dir", str(cert_dir)))
    traffic = Traffic(served=served, trust=trust)
    try:
        traffic_threads += [
            threading.Thread(target=traffic.keep_alive),
            threading.Thread(target=traffic.fresh_connections),
        ]
        for thread in traffic_threads:
            thread.start()
        assert served_fingerprint(served, trust) == first.fingerprint
        traffic.advance()

        # a new leaf from the same CA
        second = leaf(old_ca, now)
        install(cert_dir, (old_ca,), second)
        wait_for_leaf(served, trust, second)
        wait_for_every_worker(served, reloads=1)
        traffic.advance()

        # half-way through a rotation (new key, old certificate) the server keeps its pair
        third = leaf(new_ca, now, days=30)
        files = render_material(
            Material(
                authorities=(new_ca.certificate, old_ca.certificate),
                serving=third.certificate,
                serving_key=third.key,
            ),
            with_authority_key=False,
        )
        write_atomic(cert_dir / "ca.crt", files["ca.crt"], mode=0o644)
        write_atomic(cert_dir / "tls.key", files["tls.key"], mode=0o600)
        for _ in range(10):
            assert served_fingerprint(served, trust) == second.fingerprint
        traffic.advance()
        # then the certificate of the new CA arrives
        write_atomic(cert_dir / "tls.crt", files["tls.crt"], mode=0o644)
        wait_for_leaf(served, trust, third)
        traffic.advance()
    finally:
        traffic.stop.set()
        for thread in traffic_threads:
            thread.join(timeout=15)
        service.stop(served)

    assert traffic.failures == []
    assert traffic.reconnects == 0
    assert any("serving certificate not reloaded" in line for line in served.log_lines())


def test_the_expiry_gauge_follows_a_rotated_certificate(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    ca = authority(now)
    cert_dir = tmp_path / "certs"
    install(cert_dir, (ca,), leaf(ca, now, days=90))
    served = service.start(tmp_path, args=("--cert-dir", str(cert_dir), "--workers", "1"))

    def serving_days() -> float:
        text = requests.get(served.url("/metrics"), verify=str(served.ca), timeout=5).text
        (line,) = [
            line
            for line in text.splitlines()
            if line.startswith('hotplug_guard_certificate_expiry_seconds{kind="serving"}')
        ]
        return float(line.rsplit(" ", 1)[1]) / 86400

    try:
        assert 89 < serving_days() <= 90
        install(cert_dir, (ca,), leaf(ca, now, days=30))
        deadline = time.monotonic() + 10
        while serving_days() > 30:  # each scrape is a new connection, which reloads
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        service.stop(served)
