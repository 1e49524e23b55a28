"""Bringing certificate material up to date: describe it, plan the rotation, carry out the plan.

The one place where decisions from `rotation` meet real keys, shared by the local
directory and the in-cluster Secret.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes

from certs.issuance import KeySpec, PrivateKey, generate_key, issue_authority, issue_serving
from certs.material import Material
from certs.names import Hosts, hosts_of
from certs.rotation import (
    Action,
    AuthorityView,
    DropAuthority,
    IssueAuthority,
    IssueServing,
    RotationPolicy,
    RotationState,
    ServingView,
    Validity,
    plan_rotation,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Renewal:
    """The material after renewal and the actions that produced it (empty: nothing to do)."""

    material: Material
    actions: tuple[Action, ...]


def renew(
    material: Material,
    *,
    hosts: Hosts,
    now: datetime,
    policy: RotationPolicy,
    key_spec: KeySpec,
    published: frozenset[str] | None = None,
) -> Renewal:
    """Material whose CA and serving certificate are valid for `hosts` at `now`.

    `published` holds the fingerprints of the CAs that clients trust already (None:
    nothing to publish to, every CA counts as trusted).
    """
    state = describe(material, hosts=hosts, published=published)
    actions = plan_rotation(state, now, policy)
    renewed = material
    for action in actions:
        renewed = _carry_out(action, renewed, hosts=hosts, now=now, policy=policy, spec=key_spec)
    return Renewal(material=renewed, actions=actions)


def describe(
    material: Material, *, hosts: Hosts, published: frozenset[str] | None = None
) -> RotationState:
    """The planner's view of `material`: fingerprints, validity, who signed what."""
    views = tuple(
        AuthorityView(fingerprint=fingerprint(ca), validity=_validity(ca))
        for ca in material.authorities
    )
    has_signing = bool(views) and _key_matches(material.authorities[0], material.authority_key)
    return RotationState(
        signing=views[0] if has_signing else None,
        retired=views[1:] if has_signing else views,
        serving=_serving_view(material, hosts),
        unpublished=frozenset()
        if published is None
        else frozenset(view.fingerprint for view in views) - published,
    )


def fingerprint(certificate: x509.Certificate) -> str:
    """The SHA-256 fingerprint of a certificate, as hex."""
    return certificate.fingerprint(hashes.SHA256()).hex()


def _serving_view(material: Material, hosts: Hosts) -> ServingView | None:
    serving = material.serving
    if serving is None or not _key_matches(serving, material.serving_key):
        return None
    issuer = next((ca for ca in material.authorities if _signed_by(serving, ca)), None)
    return ServingView(
        validity=_validity(serving),
        issuer=None if issuer is None else fingerprint(issuer),
        names_match=hosts_of(serving) == hosts,
    )


def _carry_out(
    action: Action,
    material: Material,
    *,
    hosts: Hosts,
    now: datetime,
    policy: RotationPolicy,
    spec: KeySpec,
) -> Material:
    match action:
        case IssueAuthority():
            key = generate_key(spec)
            authority = issue_authority(key=key, now=now, lifetime=policy.authority_lifetime)
            # a CA whose key is lost can still be trusted for the certificate it signed
            return replace(
                material, authorities=(authority, *material.authorities), authority_key=key
            )
        case DropAuthority(fingerprint=dropped):
            kept = tuple(ca for ca in material.authorities if fingerprint(ca) != dropped)
            return replace(material, authorities=kept)
        case IssueServing():
            if material.authority_key is None:
                raise AssertionError("the plan issues a CA before a serving certificate")
            key = generate_key(spec)
            serving = issue_serving(
                key=key,
                hosts=hosts,
                authority=material.authorities[0],
                authority_key=material.authority_key,
                now=now,
                lifetime=policy.serving_lifetime,
            )
            return replace(material, serving=serving, serving_key=key)


def _validity(certificate: x509.Certificate) -> Validity:
    return Validity(
        not_before=certificate.not_valid_before_utc, not_after=certificate.not_valid_after_utc
    )


def _key_matches(certificate: x509.Certificate, key: PrivateKey | None) -> bool:
    return key is not None and key.public_key() == certificate.public_key()


def _signed_by(certificate: x509.Certificate, authority: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(authority)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
