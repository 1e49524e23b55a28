"""Evaluation: change detection, mutations, then the rules over the mutated object."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from policy import paths
from policy.annotations import (
    LEDGER,
    REQUEST,
    HotplugRequest,
    Ledger,
    parse_ledger,
    render_ledger,
    render_request,
    request_id,
)
from policy.capacity import recorded_boot_count
from policy.catalogue import ANNOTATION_RULES, HOTPLUG_RULES, ORDER, SPEC_RULES
from policy.changes import NO_CHANGES, Changes, diff
from policy.config import OnPlainRemoval, PolicyConfig
from policy.deadline import NO_DEADLINE, Deadline, DeadlineExceeded
from policy.guard import Guarded, Identity, annotation_target
from policy.ids import RuleId
from policy.instances import Instance, parse_instance
from policy.mutations import annotation_ops, convert_removals, set_model_ops
from policy.review import UNKNOWN_CONTEXT, Context, Mode, Operation, Review
from policy.signing import SigningKeys, sign_request
from policy.specrules import Submission
from policy.transitions import TRIGGERS, Situation, Trigger, notes, removal_eligible
from policy.verdicts import Action, Cause, CauseType, Finding, PatchOp, Verdict
from policy.views import Spec, VirtualMachine, parse_spec, parse_vm

DEFAULT_CONFIG = PolicyConfig()
RUNNING_STATUSES = frozenset({"Running", "Migrating"})
ALLOWED = Verdict(allowed=True)
NO_LEDGER = Ledger()
MAX_ENTRIES = 256
"""KubeVirt's limit on interfaces and on networks (CRD maxItems since v1.3, virt-api before)."""


def evaluate(
    review: Review,
    context: Context = UNKNOWN_CONTEXT,
    config: PolicyConfig = DEFAULT_CONFIG,
    *,
    mode: Mode = Mode.MUTATE,
    keys: SigningKeys | None = None,
    deadline: Deadline = NO_DEADLINE,
) -> Verdict:
    """Judge one VirtualMachine admission request.

    In `Mode.MUTATE` the verdict carries the patch that makes the request safe and
    the causes found on the patched object; in `Mode.VALIDATE` nothing is patched
    and what a mutation would have fixed is denied instead. `keys` sign the
    request annotation (without them it carries no signature, as offline). Never
    raises on any input shape; raises `DeadlineExceeded` once `deadline` expired.
    """
    if review.operation not in (Operation.CREATE, Operation.UPDATE) or not isinstance(
        review.new, dict
    ):
        return ALLOWED
    new = parse_vm(review.new)
    oversized = _oversized(new)
    action = config.action(RuleId.KUBEVIRT_SPEC)
    if oversized:  # refused before any work per interface
        if action is Action.OFF:
            return ALLOWED
        return _verdict([Finding(cause=c, action=action) for c in oversized], [], [])
    old = parse_vm(review.old) if review.operation is Operation.UPDATE else None
    _check(deadline)
    exempt = _exempt(review, config, new)
    vmi = parse_instance(context.vmi) if isinstance(context.vmi, dict) else None
    running = old is not None and (
        vmi.active if vmi is not None else old.printable_status in RUNNING_STATUSES
    )
    mutate = mode is Mode.MUTATE
    findings: list[Finding] = []
    warnings: list[str] = []
    ops: list[PatchOp] = []
    spec = new.spec
    changes = NO_CHANGES
    # Hot plug rules only concern UPDATEs of running VMs by users who are not exempt;
    # everything else (stopped VMs, CREATEs, KubeVirt's own updates) skips the diff.
    hot = running and not exempt and old is not None

    if hot and old is not None:
        changes = diff(old.spec, spec, running=vmi.spec if vmi is not None else None)
        spec, changes = _convert(
            new,
            old=old,
            spec=spec,
            changes=changes,
            vmi=vmi,
            config=config,
            mutate=mutate,
            ops=ops,
            warnings=warnings,
        )
        if mutate and config.default_model_virtio and changes.plugged:
            ops.extend(set_model_ops(new, (iface.name for iface in changes.plugged)))

    _check(deadline)
    actions = config.rules
    submission = Submission(
        spec, creating=review.operation is Operation.CREATE, kubevirt=context.kubevirt
    )
    for spec_rule in SPEC_RULES:
        spec_action = actions[spec_rule.id]
        if spec_action is not Action.OFF:
            _collect(findings, spec_action, spec_rule.check(submission))

    # The annotation phase runs for everyone, exempt or not: any path that writes a VM
    # (a pool copying its template, a restore applying patches) could forge a request.
    identity = Identity(new, old, review)
    desired = (
        _desired_annotations(new, old, spec, changes, vmi, identity=identity, keys=keys)
        if hot and old is not None
        else {}
    )
    guarded = Guarded(
        new,
        old=old,
        desired=desired,
        controller=bool(config.controller_username)
        and review.user.username == config.controller_username,
        identity=identity,
        keys=keys,
    )
    for annotation_rule in ANNOTATION_RULES:
        annotation_action = actions[annotation_rule.id]
        if annotation_action is not Action.OFF:
            _collect(findings, annotation_action, annotation_rule.check(guarded))
    target = annotation_target(
        guarded, action=actions[RuleId.GUARDED_ANNOTATIONS], mode=mode, warnings=warnings
    )
    if mutate:
        ops.extend(annotation_ops(new, target))

    if hot and old is not None:
        situation = Situation(
            old=old,
            new=new,
            spec=spec,
            changes=changes,
            vmi=vmi,
            context=context,
            config=config,
            namespace=new.namespace or review.namespace or old.namespace,
            ledger=parse_ledger(old.annotations.get(LEDGER)) or NO_LEDGER,
        )
        for rule, check, trigger in _HOTPLUG:
            if trigger(changes):
                rule_action = actions[rule]
                if rule_action is not Action.OFF:
                    _check(deadline)
                    _collect(findings, rule_action, check(situation))
        warnings.extend(_unknowns(situation))
        warnings.extend(notes(situation))

    return _verdict(findings, warnings, ops if mutate else [])


# (rule, check, trigger) of each hot plug rule, resolved once: the loop runs per request.
_HOTPLUG: Final[tuple[tuple[RuleId, Callable[[Situation], list[Cause]], Trigger], ...]] = tuple(
    [(rule.id, rule.check, TRIGGERS[rule.phase]) for rule in HOTPLUG_RULES]
)


def _check(deadline: Deadline) -> None:
    if deadline.expired():
        raise DeadlineExceeded


def _oversized(vm: VirtualMachine) -> list[Cause]:
    """Lists longer than KubeVirt accepts: refused before any work per entry is done."""
    return [
        Cause(
            rule=RuleId.KUBEVIRT_SPEC,
            type=CauseType.TOO_MANY,
            field=field.text,
            message=f"list exceeds the {MAX_ENTRIES} element limit in length ({count} entries); "
            "the VM is not checked further",
        )
        for count, field in (
            (vm.spec.interface_count, paths.INTERFACES),
            (vm.spec.network_count, paths.NETWORKS),
        )
        if count > MAX_ENTRIES
    ]


def _exempt(review: Review, config: PolicyConfig, new: VirtualMachine) -> bool:
    return config.exemptions.cover(
        username=review.user.username,
        groups=review.user.groups,
        namespace=new.namespace or review.namespace,
    )


def _convert(
    new: VirtualMachine,
    *,
    old: VirtualMachine,
    spec: Spec,
    changes: Changes,
    vmi: Instance | None,
    config: PolicyConfig,
    mutate: bool,
    ops: list[PatchOp],
    warnings: list[str],
) -> tuple[Spec, Changes]:
    """Rewrite eligible plain removals into hot unplugs (mutation 1)."""
    if (
        not mutate
        or not changes.removed
        or config.on_plain_removal is not OnPlainRemoval.CONVERT
        or config.action(RuleId.PLAIN_REMOVAL) is Action.OFF
    ):
        return spec, changes
    eligible = [
        removal
        for removal in changes.removed
        if removal_eligible(old.spec.network(removal.name), old.spec.interface(removal.name), vmi)
    ]
    conversion = convert_removals(new, eligible) if eligible else None
    if conversion is None:
        return spec, changes
    ops.extend(conversion.ops)
    for name in conversion.names:
        warnings.append(
            f"{RuleId.PLAIN_REMOVAL}: '{name}' is hot unplugged (kept with state: absent) instead "
            "of deleted"
        )
    converted = parse_spec(conversion.spec)
    return converted, diff(old.spec, converted, running=vmi.spec if vmi is not None else None)


def _desired_annotations(
    new: VirtualMachine,
    old: VirtualMachine,
    spec: Spec,
    changes: Changes,
    vmi: Instance | None,
    *,
    identity: Identity,
    keys: SigningKeys | None,
) -> dict[str, str]:
    """The request and ledger annotations a plug or unplug needs (mutations 2 and 3).

    The request carries the generation the VM gets when the change is stored: a hot
    plug changes the spec, and kube-apiserver increments the generation of a custom
    resource whose spec changed after the mutating and before the validating
    webhooks, so both compute the same value from the old object.
    """
    if not changes.hotplug:
        return {}
    request = HotplugRequest(
        id=request_id(new.uid or old.uid, ((i.name, i.absent) for i in spec.interfaces)),
        plug=tuple(iface.name for iface in changes.plugged),
        unplug=tuple(iface.name for iface in changes.unplugged),
        generation=old.generation + 1,
    )
    if keys is not None:
        request = sign_request(
            request,
            uid=identity.uid,
            namespace=identity.namespace,
            name=identity.name,
            key=keys.signing,
        )
    previous = parse_ledger(old.annotations.get(LEDGER)) or NO_LEDGER
    run = vmi.uid if vmi is not None and vmi.uid else previous.vmi
    this_run = previous if previous.vmi == run else Ledger(vmi=run)
    present = {iface.name for iface in spec.interfaces if not iface.absent}
    names = [name for name in this_run.interfaces if name in present]
    listed = set(names)  # a set, not the list: thousands of plugs must not cost n² lookups
    for name in request.plug:
        if name not in listed:
            names.append(name)
            listed.add(name)
    ledger = Ledger(vmi=run, interfaces=tuple(names), booted=recorded_boot_count(vmi, this_run))
    return {REQUEST: render_request(request), LEDGER: render_ledger(ledger)}


def _unknowns(s: Situation) -> list[str]:
    """Warnings for checks the engine could not make without cluster context."""
    warnings = []
    if s.context.nads is None and s.config.action(RuleId.NAD_EXISTS) is not Action.OFF:
        for iface in s.changes.plugged:
            net = s.spec.network(iface.name)
            if net is not None and net.multus and net.multus_name:
                warnings.append(
                    f"{RuleId.NAD_EXISTS}: cannot verify that NetworkAttachmentDefinition "
                    f"'{net.multus_name}' exists; the hot plug needs it"
                )
    if s.vmi is None and s.config.action(RuleId.UNPLUG_CANCEL) is not Action.OFF:
        for iface in s.changes.cancelled:
            warnings.append(
                f"{RuleId.UNPLUG_CANCEL}: if the VMI already unplugs '{iface.name}', KubeVirt "
                "ignores this: an unplug cannot be cancelled"
            )
    if (
        s.changes.hotplug
        and s.config.action(RuleId.HOTPLUG_IN_PROGRESS) is not Action.OFF
        and s.previous_unfinished is None
    ):
        warnings.append(
            f"{RuleId.HOTPLUG_IN_PROGRESS}: cannot tell whether the previous hot plug finished; "
            "check the VMI first"
        )
    return warnings


def _collect(findings: list[Finding], action: Action, causes: list[Cause]) -> None:
    for cause in causes:
        findings.append(Finding(cause=cause, action=action))


def _verdict(findings: list[Finding], warnings: list[str], ops: list[PatchOp]) -> Verdict:
    findings.sort(key=lambda f: ORDER[f.cause.rule])
    causes = tuple(f.cause for f in findings if f.action is Action.ENFORCE)
    for finding in findings:
        if finding.action is Action.WARN:
            warnings.append(f"{finding.cause.rule}: {finding.cause.message}")
    allowed = not causes
    return Verdict(
        allowed=allowed,
        causes=causes,
        warnings=tuple(dict.fromkeys(warnings)),
        audit=tuple(f.cause for f in findings if f.action is Action.AUDIT),
        patch=tuple(ops) if allowed else (),
        findings=tuple(findings),
    )
