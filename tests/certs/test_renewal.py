"""Renewal with real keys through a whole CA rotation, driven by an injected clock."""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509

from certs.issuance import DEFAULT_KEYS
from certs.material import Material, parse_material, render_material
from certs.names import parse_hosts
from certs.renewal import Renewal, fingerprint, renew
from certs.rotation import DropAuthority, IssueAuthority, IssueServing, RotationPolicy
from tests.certs.chains import START, verify_chain

DAY = timedelta(days=1)
POLICY = RotationPolicy(authority_lifetime=300 * DAY, serving_lifetime=30 * DAY, overlap=DAY)
HOSTS = parse_hosts(["guard.kubevirt.svc"])


def _renew(material: Material, at: datetime) -> Renewal:
    return renew(material, hosts=HOSTS, now=at, policy=POLICY, key_spec=DEFAULT_KEYS)


def _served(material: Material) -> x509.Certificate:
    assert material.serving is not None
    return material.serving


def _verifies(material: Material, at: datetime) -> bool:
    verify_chain(_served(material), list(material.authorities), host="guard.kubevirt.svc", at=at)
    return True


def test_a_renewal_with_nothing_due_changes_nothing() -> None:
    first = _renew(Material(), START).material

    again = _renew(first, START + DAY)

    assert again.actions == ()
    assert again.material == first


def test_serving_certificate_is_renewed_by_the_same_ca_at_two_thirds() -> None:
    first = _renew(Material(), START).material

    before = _renew(first, START + 19 * DAY)
    after = _renew(first, START + 21 * DAY)

    assert before.actions == ()
    assert [type(action) for action in after.actions] == [IssueServing]
    assert after.material.authorities == first.authorities
    assert _served(after.material) != _served(first)
    assert _verifies(after.material, START + 21 * DAY)


def test_ca_rotation_keeps_every_handshake_working() -> None:
    """Old CA, old + new CA, new certificate, new CA alone: each step verifies for old and new."""
    material = _renew(Material(), START).material
    old_ca = material.authorities[0]
    at = START
    steps: list[str] = []
    # run every 12 hours across the CA's renewal point and past the rotation
    while at < START + 205 * DAY:
        at += DAY / 2
        renewal = _renew(material, at)
        previous_certificate = _served(material)
        material = renewal.material
        steps += [type(action).__name__ for action in renewal.actions]
        # the certificate still served by replicas that have not reloaded yet verifies too
        bundle = list(material.authorities)
        verify_chain(previous_certificate, bundle, host="guard.kubevirt.svc", at=at)
        assert _verifies(material, at)

    new_ca = material.authorities[0]
    assert new_ca != old_ca
    assert material.authorities == (new_ca,)
    assert "IssueAuthority" in steps
    assert steps[steps.index("IssueAuthority") :][:3] == [
        "IssueAuthority",
        "IssueServing",
        "DropAuthority",
    ]


def test_bundle_holds_both_cas_during_the_overlap_and_only_the_new_one_after() -> None:
    due = START + 200 * DAY  # two thirds of 300 days
    material = _renew(_renew(Material(), START).material, due - 5 * DAY).material
    old = material.authorities[0]

    rotated = _renew(material, due)
    in_overlap = _renew(rotated.material, due + DAY / 2)
    reissued = _renew(in_overlap.material, due + DAY)
    still_both = _renew(reissued.material, due + DAY + DAY / 2)
    dropped = _renew(still_both.material, due + 2 * DAY)

    new = rotated.material.authorities[0]
    assert [type(a) for a in rotated.actions] == [IssueAuthority]
    assert rotated.material.authorities == (new, old)
    assert _served(rotated.material) == _served(material)
    assert in_overlap.actions == ()
    assert [type(a) for a in reissued.actions] == [IssueServing]
    assert _served(reissued.material).issuer == new.subject
    assert still_both.material.authorities == (new, old)
    assert dropped.actions == (
        DropAuthority(fingerprint=fingerprint(old), reason="rotation complete"),
    )
    assert dropped.material.authorities == (new,)


def test_damaged_entries_are_issued_again() -> None:
    entries = render_material(_renew(Material(), START).material, with_authority_key=True)
    entries["tls.crt"] = b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n"

    repaired = _renew(parse_material(entries), START + DAY)

    assert [type(a) for a in repaired.actions] == [IssueServing]
    assert _verifies(repaired.material, START + DAY)


def test_a_serving_key_that_does_not_match_its_certificate_is_replaced() -> None:
    one = _renew(Material(), START).material
    other = _renew(Material(), START).material
    mismatched = Material(
        authorities=one.authorities,
        authority_key=one.authority_key,
        serving=one.serving,
        serving_key=other.serving_key,
    )

    assert [type(a) for a in _renew(mismatched, START + DAY).actions] == [IssueServing]


def test_material_survives_its_pem_form() -> None:
    entries = render_material(_renew(Material(), START).material, with_authority_key=True)

    assert render_material(parse_material(entries), with_authority_key=True) == entries
    assert sorted(entries) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]
