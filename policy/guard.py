"""The annotation guard: only the engine writes `hotplug-guard.io/` annotations.

Any path that writes a VM (a user, a pool copying its template, a restore
applying patches) could forge a request that makes the controller migrate VMs,
so the guard runs for every CREATE and UPDATE, exempt users included. The
`guarded-annotations` rule denies what was forged; the mutation restores the
values the engine computes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, final

from policy import paths
from policy.annotations import LEDGER, REQUEST, STATUS, parse_request
from policy.ids import RuleId
from policy.mutations import guarded_keys
from policy.review import Mode, Review
from policy.signing import SigningKeys, signature_valid
from policy.verdicts import Action, Cause, CauseType
from policy.views import VirtualMachine


@final
class Identity:
    """The VM a request is signed for: its stored uid, namespace and name."""

    def __init__(self, new: VirtualMachine, old: VirtualMachine | None, review: Review) -> None:
        stored = old if old is not None else new
        self.uid: Final = stored.uid or new.uid
        self.namespace: Final = stored.namespace or new.namespace or review.namespace
        self.name: Final = stored.name or new.name


@final
class Guarded:
    """The guarded annotations of one request: sent, stored, and computed by the engine.

    `differing` lists each key whose sent value is not the one it must end with,
    and whether that value was forged (set or changed by someone else) rather than
    left out or left stale; only the companion `controller` may write the status.
    A request signed with another accepted key (by a replica that has not switched
    keys yet, during a rotation) counts as the one computed here.
    """

    def __init__(
        self,
        new: VirtualMachine,
        *,
        old: VirtualMachine | None,
        desired: Mapping[str, str],
        controller: bool,
        identity: Identity,
        keys: SigningKeys | None,
    ) -> None:
        self.sent: Final = new.annotations
        self.stored: Final[Mapping[str, Any]] = old.annotations if old is not None else {}
        self.desired: Final = desired
        differing: list[tuple[str, bool]] = []
        for key in guarded_keys(self.sent, self.stored, desired):
            value = self.sent.get(key)
            before = self.stored.get(key)
            if value == desired.get(key, before) or (controller and key == STATUS):
                continue
            if key == REQUEST and _signed_elsewhere(value, desired, identity, keys):
                continue
            differing.append((key, value is not None and value != before))
        self.differing: Final = differing

    def wanted(self, key: str) -> object:
        """The value `key` must end with: the computed one, else the stored one."""
        return self.desired.get(key, self.stored.get(key))


def check_guarded_annotations(guarded: Guarded) -> list[Cause]:
    return [
        Cause(
            rule=RuleId.GUARDED_ANNOTATIONS,
            type=CauseType.FORBIDDEN,
            field=paths.annotation(key).text,
            message=f"'{key}' is managed by hotplug-guard: only its webhook (and its "
            "controller, for the status) may set it, since a forged value could make the "
            "controller migrate the VM; remove your change to it",
        )
        for key, forged in guarded.differing
        if forged
    ]


def annotation_target(
    guarded: Guarded, *, action: Action, mode: Mode, warnings: list[str]
) -> dict[str, str | None]:
    """The values the guarded annotations must end with (None: removed).

    Values the engine computes are always written and removed ones are restored;
    a forged value stays only while the rule is off and the engine computes none.
    """
    target: dict[str, str | None] = {}
    for key, forged in guarded.differing:
        if forged:
            if action is Action.OFF and key not in guarded.desired:
                continue
        elif mode is Mode.VALIDATE and key in guarded.desired:
            unset = _UNSET_BY_MUTATION[key]  # desired holds only the request and the ledger
            warnings.append(f"{RuleId.GUARDED_ANNOTATIONS}: {unset}")
        elif mode is Mode.MUTATE and key not in guarded.desired:
            # neither forged nor computed: the stored value was removed
            warnings.append(f"{RuleId.GUARDED_ANNOTATIONS}: '{key}' is managed, restored")
        wanted = guarded.wanted(key)
        target[key] = wanted if isinstance(wanted, str) or wanted is None else None
    return target


_UNSET_BY_MUTATION = {
    # What it means that /validate sees a change without the annotation /mutate computes for
    # it, and what to do: the mutating webhook fails open, so an unreachable or slow replica
    # lets the change through unannotated. Short: kube-apiserver shows 120 characters.
    REQUEST: "no request for this hot plug: the mutating webhook did not answer (it fails open); "
    "migrate the VM",
    LEDGER: "no ledger for this change: the mutating webhook did not answer (it fails open); "
    "check its pods",
}


def _signed_elsewhere(
    value: object, desired: Mapping[str, str], identity: Identity, keys: SigningKeys | None
) -> bool:
    """True for the request this replica computed, signed with another accepted key."""
    if keys is None or not keys.accepted:
        return False
    given = parse_request(value)
    expected = parse_request(desired.get(REQUEST))
    if given is None or expected is None:
        return False
    return (given.id, given.plug, given.unplug, given.generation) == (
        expected.id,
        expected.plug,
        expected.unplug,
        expected.generation,
    ) and signature_valid(
        given,
        uid=identity.uid,
        namespace=identity.namespace,
        name=identity.name,
        keys=keys.verifying,
    )
