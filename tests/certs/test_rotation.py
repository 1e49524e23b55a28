"""Rotation decisions, as a table over states and times: no keys, no clock, no waiting."""

from __future__ import annotations

from datetime import timedelta

import pytest

from certs.errors import CertificateSettingsError
from certs.rotation import (
    Action,
    AuthorityView,
    DropAuthority,
    IssueServing,
    RotationPolicy,
    RotationState,
    ServingView,
    Validity,
    plan_rotation,
)
from tests.certs.chains import START

DAY = timedelta(days=1)
POLICY = RotationPolicy(
    authority_lifetime=timedelta(days=3650), serving_lifetime=90 * DAY, overlap=DAY
)


def _ca(fingerprint: str, *, issued_day: float = 0, days: int = 3650) -> AuthorityView:
    start = START + issued_day * DAY
    return AuthorityView(
        fingerprint=fingerprint, validity=Validity(not_before=start, not_after=start + days * DAY)
    )


def _leaf(
    issuer: str | None, *, issued_day: float = 0, days: int = 90, names_match: bool = True
) -> ServingView:
    start = START + issued_day * DAY
    return ServingView(
        validity=Validity(not_before=start, not_after=start + days * DAY),
        issuer=issuer,
        names_match=names_match,
    )


def _kinds(actions: tuple[Action, ...]) -> list[str]:
    return [
        f"drop {action.fingerprint}" if isinstance(action, DropAuthority) else type(action).__name__
        for action in actions
    ]


def _plan(state: RotationState, day: float) -> list[str]:
    return _kinds(plan_rotation(state, START + day * DAY, POLICY))


def test_first_run_issues_a_ca_and_a_serving_certificate() -> None:
    assert _plan(RotationState(signing=None), 0) == ["IssueAuthority", "IssueServing"]


def test_fresh_certificates_need_nothing() -> None:
    state = RotationState(signing=_ca("a"), serving=_leaf("a"))

    assert _plan(state, 1) == []


def test_serving_certificate_is_renewed_at_two_thirds_of_its_lifetime() -> None:
    state = RotationState(signing=_ca("a"), serving=_leaf("a"))

    assert _plan(state, 59.9) == []
    assert _plan(state, 60) == ["IssueServing"]


@pytest.mark.parametrize(
    ("serving", "reason"),
    [
        (None, "no serving certificate with its key"),
        (_leaf("a", days=10), "serving certificate expired"),
        (_leaf("a", names_match=False), "serving certificate names changed"),
        (_leaf("unknown"), "serving certificate not signed by a CA in the bundle"),
        (_leaf(None), "serving certificate not signed by a CA in the bundle"),
    ],
)
def test_unusable_serving_certificate_is_replaced_at_once(
    serving: ServingView | None, reason: str
) -> None:
    state = RotationState(signing=_ca("a"), serving=serving)

    actions = plan_rotation(state, START + 20 * DAY, POLICY)

    assert actions == (IssueServing(reason=reason),)


def test_ca_renewal_starts_at_two_thirds_and_keeps_the_served_certificate() -> None:
    due_day = 3650 * 2 / 3
    state = RotationState(signing=_ca("old"), serving=_leaf("old", issued_day=due_day - 10))

    assert _plan(state, due_day - 1) == []
    assert _plan(state, due_day) == ["IssueAuthority"]


def test_during_the_overlap_the_old_ca_stays_and_the_certificate_waits() -> None:
    state = RotationState(
        signing=_ca("new", issued_day=3000),
        retired=(_ca("old"),),
        serving=_leaf("old", issued_day=2950),
    )

    # the certificate is due (day 3010 > 2950 + 60) but the new CA is only half a day old
    assert _plan(state, 3000.5) == []


def test_after_the_overlap_the_certificate_is_reissued_by_the_new_ca() -> None:
    state = RotationState(
        signing=_ca("new", issued_day=3000),
        retired=(_ca("old"),),
        serving=_leaf("old", issued_day=2990),
    )

    assert _plan(state, 3001) == ["IssueServing"]


def test_an_unpublished_ca_does_not_sign_the_served_certificate_yet() -> None:
    state = RotationState(
        signing=_ca("new", issued_day=3000),
        retired=(_ca("old"),),
        serving=_leaf("old", issued_day=2990),
        unpublished=frozenset({"new"}),
    )

    assert _plan(state, 3005) == []


def test_the_old_ca_leaves_the_bundle_one_overlap_after_the_new_certificate() -> None:
    state = RotationState(
        signing=_ca("new", issued_day=3000),
        retired=(_ca("old"),),
        serving=_leaf("new", issued_day=3001),
    )

    assert _plan(state, 3001.5) == []
    assert _plan(state, 3002) == ["drop old"]


def test_an_expired_ca_is_replaced_and_dropped_at_once() -> None:
    state = RotationState(signing=_ca("old", days=10), serving=_leaf("old", days=10))

    assert _plan(state, 11) == ["IssueAuthority", "drop old", "IssueServing"]


def test_a_ca_without_its_key_stays_trusted_while_a_new_one_takes_over() -> None:
    state = RotationState(signing=None, retired=(_ca("keyless"),), serving=_leaf("keyless"))

    assert _plan(state, 5) == ["IssueAuthority"]


def test_no_second_ca_rotation_starts_while_one_is_in_progress() -> None:
    state = RotationState(
        signing=_ca("new", issued_day=-3000),
        retired=(_ca("old", issued_day=-3100),),
        serving=_leaf("new", issued_day=-10),
    )

    assert "IssueAuthority" not in _plan(state, 0)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"overlap": timedelta(0)}, "overlap must be positive"),
        ({"serving_lifetime": timedelta(0)}, "lifetimes must be positive"),
        ({"serving_lifetime": 3 * DAY}, "shorter than the last third of the serving lifetime"),
        ({"authority_lifetime": 100 * DAY}, "CA lifetime .* is too short"),
    ],
)
def test_inconsistent_policies_are_refused(settings: dict[str, timedelta], message: str) -> None:
    with pytest.raises(CertificateSettingsError, match=message):
        RotationPolicy(**settings)
