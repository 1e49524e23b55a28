"""When to issue a new CA or serving certificate and when to drop an old CA: pure decisions.

Every certificate is renewed at two thirds of its lifetime. A CA rotation moves in
three steps so that no TLS handshake fails on the way:

1. a new CA joins the bundle next to the old one; the served certificate (signed by
   the old CA) stays, so clients that already trust the new bundle and clients that
   still hold the old one both succeed;
2. after `overlap` (long enough for every API server to see the new bundle), the
   serving certificate is re-issued by the new CA;
3. after another `overlap` (long enough for every replica to load it), the old CA
   leaves the bundle.

Times are measured from certificates' notBefore; where the bundle is published
(webhook configurations), step 2 also waits until the new CA is seen there.
A serving certificate that is only
*due* waits for step 2; one that is unusable (missing, expired, for other names,
signed by a CA outside the bundle) is replaced at once, since nothing is lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from certs.errors import CertificateSettingsError

RENEW_AT = 2 / 3


@dataclass(frozen=True, slots=True, kw_only=True)
class RotationPolicy:
    """Lifetimes and the overlap window; defaults: CA 10 years, serving 90 days, overlap 1 day."""

    authority_lifetime: timedelta = timedelta(days=3650)
    serving_lifetime: timedelta = timedelta(days=90)
    overlap: timedelta = timedelta(days=1)

    def __post_init__(self) -> None:
        if min(self.authority_lifetime, self.serving_lifetime) <= timedelta(0):
            raise CertificateSettingsError("certificate lifetimes must be positive")
        if self.overlap <= timedelta(0):
            raise CertificateSettingsError("the overlap must be positive")
        # a due serving certificate may wait up to one overlap for a CA rotation
        serving_slack = self.serving_lifetime * (1 - RENEW_AT)
        if self.overlap >= serving_slack:
            raise CertificateSettingsError(
                f"the overlap ({self.overlap}) must be shorter than the last third of the "
                f"serving lifetime ({serving_slack})"
            )
        if self.authority_lifetime * (1 - RENEW_AT) <= self.serving_lifetime + 2 * self.overlap:
            raise CertificateSettingsError(
                f"the CA lifetime ({self.authority_lifetime}) is too short: its last third must "
                f"outlast a serving certificate ({self.serving_lifetime}) and two overlaps"
            )


DEFAULT_POLICY = RotationPolicy()


@dataclass(frozen=True, slots=True, kw_only=True)
class Validity:
    """A certificate's validity window."""

    not_before: datetime
    not_after: datetime

    def expired(self, now: datetime) -> bool:
        """Whether the certificate is outside its window at `now`."""
        return not self.not_before <= now < self.not_after

    def due(self, now: datetime) -> bool:
        """Whether two thirds of the lifetime have passed at `now`."""
        return now >= self.not_before + (self.not_after - self.not_before) * RENEW_AT


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorityView:
    """What the planner needs to know about a CA in the bundle."""

    fingerprint: str
    validity: Validity


@dataclass(frozen=True, slots=True, kw_only=True)
class ServingView:
    """What the planner needs to know about the serving certificate."""

    validity: Validity
    issuer: str | None  # fingerprint of the bundle CA that signed it
    names_match: bool  # the SANs are exactly the wanted hosts


@dataclass(frozen=True, slots=True, kw_only=True)
class RotationState:
    """The certificates as found: the CA whose key is held, older CAs, the serving certificate."""

    signing: AuthorityView | None
    retired: tuple[AuthorityView, ...] = ()
    serving: ServingView | None = None
    # CAs that clients are not yet known to trust (missing from a webhook caBundle)
    unpublished: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class IssueAuthority:
    """Create a new signing CA; the current one (if any) stays in the bundle as retired."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DropAuthority:
    """Remove a CA from the bundle."""

    fingerprint: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class IssueServing:
    """Create a new serving certificate signed by the signing CA."""

    reason: str


Action = IssueAuthority | DropAuthority | IssueServing


def plan_rotation(
    state: RotationState, now: datetime, policy: RotationPolicy
) -> tuple[Action, ...]:
    """The actions that bring `state` up to date at `now`, in the order they must run."""
    actions: list[Action] = []
    authority_reason = _authority_reason(state, now)
    if authority_reason is not None:
        actions.append(IssueAuthority(reason=authority_reason))
    signing = None if authority_reason is not None else state.signing
    previous = state.retired
    if authority_reason is not None and state.signing is not None:
        previous = (state.signing, *previous)

    expired = {ca.fingerprint for ca in previous if ca.validity.expired(now)}
    actions += [DropAuthority(fingerprint=fp, reason="expired") for fp in sorted(expired)]
    kept = {ca.fingerprint for ca in previous} - expired
    trusted = kept | ({signing.fingerprint} if signing is not None else set())

    bundle_propagated = (
        signing is not None
        and signing.fingerprint not in state.unpublished
        and now >= signing.validity.not_before + policy.overlap
    )
    if state.serving is None:
        actions.append(IssueServing(reason="no serving certificate with its key"))
        return tuple(actions)
    serving_reason = _serving_reason(
        state.serving, now, trusted=trusted, signing=signing, bundle_propagated=bundle_propagated
    )
    if serving_reason is not None:
        actions.append(IssueServing(reason=serving_reason))
        return tuple(actions)  # the old CAs stay for an overlap after the new certificate
    # an old CA leaves once no replica can still be serving a certificate it signed
    if now >= state.serving.validity.not_before + policy.overlap:
        retirable = kept - {state.serving.issuer or ""}
        actions += [
            DropAuthority(fingerprint=fp, reason="rotation complete") for fp in sorted(retirable)
        ]
    return tuple(actions)


def _authority_reason(state: RotationState, now: datetime) -> str | None:
    """Why a new signing CA is needed, or None."""
    if state.signing is None:
        return "no CA with its key"
    if state.signing.validity.expired(now):
        return "CA expired"
    # one rotation at a time: the bundle never holds more than the old and the new CA
    if state.signing.validity.due(now) and not state.retired:
        return "CA renewal due"
    return None


def _serving_reason(
    serving: ServingView,
    now: datetime,
    *,
    trusted: set[str],
    signing: AuthorityView | None,
    bundle_propagated: bool,
) -> str | None:
    """Why the serving certificate must be replaced, or None."""
    if serving.validity.expired(now):
        return "serving certificate expired"
    if not serving.names_match:
        return "serving certificate names changed"
    if serving.issuer not in trusted:
        return "serving certificate not signed by a CA in the bundle"
    signed_by_current = signing is not None and serving.issuer == signing.fingerprint
    if not signed_by_current:
        # step 2 of a CA rotation; a due renewal waits for it rather than use the new CA early
        if bundle_propagated:
            return "CA rotation: the new CA has been in the bundle for the overlap"
        return None
    if serving.validity.due(now):
        return "serving renewal due"
    return None
