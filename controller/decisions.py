"""What to do next for one VM's hot plug request: a pure function of what is observed.

`decide(observation, settings)` returns the status the VM should carry, the migration
to create (if any) and when to look again. It never talks to the API server, reads
no clock and keeps no state: the caller passes the time and the few things it
remembers (when the change was first seen in the VMI spec), and the rest is in the
VM's annotations and the migrations. So a restarted or newly elected controller
decides exactly as the one before it, and deciding twice changes nothing.

The order of the questions is the order of the OpenShift procedure (edit, then
migrate, then verify the VMI status), with KubeVirt's own auto-migration (v1.6+,
`MigrationRequired` and `LiveMigrate`) taking precedence over creating one:

1. is the request older than the last one handled (refused), or already finished?
2. does the VM still run the VMI the request was made against (else Skipped)?
3. does the VMI report the change (Succeeded)?
4. has KubeVirt applied it to the VMI spec (else wait, up to `apply_seconds`)?
5. is a migration of this VMI unfinished (follow it)?
6. did this controller's last migration succeed (wait for the VMI to report it) or
   fail (retry after a back-off, up to `max_attempts`)?
7. will KubeVirt migrate by itself (observe only)?
8. is the in-place grace period over, is the VMI migratable, is there a free slot?
   Then create the next attempt's migration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller import migrations as m
from controller.migrations import MigrationPlan
from controller.objects import (
    change_reached,
    change_verified,
    format_seconds,
    format_time,
    kubevirt_migrates,
    migratable,
    missing_report,
    name_of,
    parse_time,
    running,
    uid_of,
)
from controller.settings import Settings
from policy.annotations import LEDGER, HotplugRequest, HotplugStatus, Phase, parse_ledger

Object = Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Observation:
    """Everything `decide` looks at for one VM."""

    vm: Object
    request: HotplugRequest
    """The VM's request, verified (`policy.signing.verify_request`)."""
    status: HotplugStatus | None
    """The VM's `hotplug-guard.io/status`, whatever request it is about."""
    vmi: Object | None
    migrations: Sequence[Object] = ()
    """Every migration of the VM's VMI, whoever created it."""
    kubevirt: Object | None = None
    in_flight: int = 0
    """This controller's unfinished migrations, cluster-wide."""
    reached_at: float | None = None
    """When the caller first saw the change in the VMI spec (None: not yet)."""
    now: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """What to do: write `status` (when it differs), create `migration`, look again later."""

    status: HotplugStatus | None = None
    migration: MigrationPlan | None = None
    requeue_after: float | None = None
    needs_slot: bool = False
    """Waiting for one of this controller's migrations to finish."""
    reached: bool = False
    """The change is in the VMI spec (the caller remembers since when)."""
    refused: str = ""
    """Why the request is not acted on at all."""


@dataclass(frozen=True, slots=True)
class _Reporter:
    """Builds the statuses of one request, keeping its generation and `since`."""

    request: HotplugRequest
    since: str
    attempts: int
    migration: str = ""

    def status(
        self,
        phase: Phase,
        message: str,
        *,
        migration: str | None = None,
        attempts: int | None = None,
    ) -> HotplugStatus:
        return HotplugStatus(
            id=self.request.id,
            phase=phase,
            migration=self.migration if migration is None else migration,
            attempts=self.attempts if attempts is None else attempts,
            message=message,
            generation=self.request.generation,
            since=self.since,
        )


def waiting_message(settings: Settings) -> str:
    """The one message of a request waiting its turn (one status write, however long)."""
    return (
        "waiting until KubeVirt applies the change to the VMI, it completes in place "
        f"(grace {format_seconds(settings.grace_seconds)}) or one of "
        f"{settings.max_parallel_migrations} migration slots is free"
    )


def decide(o: Observation, settings: Settings) -> Decision:
    request, previous = o.request, o.status
    if previous is not None and _supersedes(previous, request):
        return Decision(
            refused=f"request '{request.id}' (generation {request.generation}) is older than "
            f"the last one handled, '{previous.id}' (generation {previous.generation})"
        )
    current = (
        previous
        if previous is not None
        and previous.id == request.id
        and previous.generation == request.generation
        else None
    )
    if current is not None and current.finished:
        return Decision()
    numbered = (
        (m.attempt_of(item, request=request.id, controller=settings.name), item)
        for item in o.migrations
    )
    own = sorted(((n, item) for n, item in numbered if n), key=lambda pair: pair[0])
    attempts = max([current.attempts if current else 0, *(n for n, _ in own)])
    report = _Reporter(
        request=request,
        since=current.since if current is not None and current.since else format_time(o.now),
        attempts=attempts,
        migration=current.migration if current is not None else "",
    )
    vmi = o.vmi
    if vmi is None or not running(vmi):
        return Decision(
            status=report.status(
                Phase.SKIPPED, "the VM does not run; the change applies when it starts"
            )
        )
    ledger = parse_ledger((o.vm.get("metadata") or {}).get("annotations", {}).get(LEDGER))
    if ledger is not None and ledger.vmi and uid_of(vmi) and ledger.vmi != uid_of(vmi):
        return Decision(
            status=report.status(
                Phase.SKIPPED, "the VM restarted since the request; it booted with the change"
            )
        )
    if change_verified(vmi, request):
        how = f"by migration '{report.migration}'" if report.migration else "in place"
        return Decision(
            status=report.status(Phase.SUCCEEDED, f"completed {how}: {_done(request)}"),
            reached=True,
        )
    if not change_reached(vmi, request):
        deadline = (parse_time(report.since) or o.now) + settings.apply_seconds
        if o.now >= deadline:
            return Decision(
                status=report.status(
                    Phase.FAILED,
                    "KubeVirt did not apply the change to the VMI within "
                    f"{format_seconds(settings.apply_seconds)}; see the VM's conditions "
                    "(RestartRequired) and virt-controller's logs",
                )
            )
        return Decision(
            status=report.status(Phase.WAITING, waiting_message(settings)),
            requeue_after=deadline - o.now,
        )
    return _after_reached(o, vmi, settings, report, own)


def _supersedes(status: HotplugStatus, request: HotplugRequest) -> bool:
    """The status is about a later request than `request` (one written back afterwards)."""
    if status.generation > request.generation:
        return True
    return status.generation == request.generation and status.id != request.id


def _after_reached(
    o: Observation,
    vmi: Object,
    settings: Settings,
    report: _Reporter,
    own: list[tuple[int, Object]],
) -> Decision:
    request = o.request
    unfinished = [item for item in o.migrations if m.unfinished(item)]
    if unfinished:
        mine = [item for _, item in own if m.unfinished(item)]
        ongoing = mine[-1] if mine else unfinished[0]
        name = name_of(ongoing)
        if mine:
            return Decision(
                status=report.status(
                    Phase.MIGRATING, _migrating(name, report.attempts, settings), migration=name
                ),
                reached=True,
            )
        if m.by_workload_updater(ongoing):
            return Decision(
                status=report.status(
                    Phase.MIGRATING,
                    f"KubeVirt's workload update migration '{name}' completes the change",
                    migration=name,
                ),
                reached=True,
            )
        return Decision(
            status=report.status(
                Phase.WAITING,
                f"migration '{name}' of this VMI is unfinished; waiting for it before migrating",
            ),
            reached=True,
        )
    latest = next((item for n, item in reversed(own) if n == report.attempts), None)
    last_failure, failed_at = "", o.now
    if latest is not None:
        ended = m.ended_at(latest) or o.now
        failed_at = ended
        if m.succeeded(latest):
            deadline = failed_at = ended + settings.verify_seconds
            if o.now < deadline:
                name = name_of(latest)
                return Decision(
                    status=report.status(
                        Phase.MIGRATING, _migrating(name, report.attempts, settings), migration=name
                    ),
                    requeue_after=deadline - o.now,
                    reached=True,
                )
            last_failure = (
                f"migration '{name_of(latest)}' succeeded but after "
                f"{format_seconds(settings.verify_seconds)} the VMI does not report "
                f"{missing_report(vmi, request)}"
            )
        else:
            last_failure = f"migration '{name_of(latest)}' failed: {m.failure_reason(latest)}"
    if kubevirt_migrates(vmi, o.kubevirt):
        return Decision(
            status=report.status(
                Phase.WAITING,
                "KubeVirt migrates the VM by itself (VMI condition MigrationRequired, "
                "LiveMigrate in the KubeVirt CR's workloadUpdateMethods)",
            ),
            reached=True,
        )
    if report.attempts >= settings.max_attempts:
        return Decision(
            status=report.status(
                Phase.FAILED,
                f"{report.attempts} of {settings.max_attempts} migrations did not complete "
                f"the change; the last: {last_failure or 'gone (garbage collected)'}; restart "
                "the VM to complete it",
            ),
            reached=True,
        )
    if latest is not None:
        delay = settings.retry_backoff_seconds * 2 ** (report.attempts - 1)
        retry_at = failed_at + delay
        if o.now < retry_at:
            return Decision(
                status=report.status(
                    Phase.WAITING,
                    f"{last_failure}; attempt {report.attempts + 1} of "
                    f"{settings.max_attempts} in {format_seconds(delay)}",
                ),
                requeue_after=retry_at - o.now,
                reached=True,
            )
    elif report.attempts == 0:
        grace_end = (o.reached_at if o.reached_at is not None else o.now) + settings.grace_seconds
        if o.now < grace_end:
            return Decision(
                status=report.status(Phase.WAITING, waiting_message(settings)),
                requeue_after=grace_end - o.now,
                reached=True,
            )
    able, why_not = migratable(vmi)
    if not able:
        return Decision(
            status=report.status(
                Phase.FAILED,
                f"the VMI cannot be live migrated ({why_not}); restart the VM to complete the "
                "change",
            ),
            reached=True,
        )
    if o.in_flight >= settings.max_parallel_migrations:
        # the same words as while waiting for the change: no write just for the queue
        return Decision(
            status=report.status(Phase.WAITING, waiting_message(settings)),
            needs_slot=True,
            reached=True,
        )
    attempt = report.attempts + 1
    vm_name = name_of(o.vm)
    plan = MigrationPlan(
        name=m.migration_name(vm_name, request.id, attempt),
        namespace=str((o.vm.get("metadata") or {}).get("namespace") or ""),
        vmi=name_of(vmi) or vm_name,
        request=request.id,
        attempt=attempt,
    )
    return Decision(
        status=report.status(
            Phase.MIGRATING,
            _migrating(plan.name, attempt, settings),
            migration=plan.name,
            attempts=attempt,
        ),
        migration=plan,
        reached=True,
    )


def _migrating(name: str, attempt: int, settings: Settings) -> str:
    return f"migration '{name}' completes the change (attempt {attempt} of {settings.max_attempts})"


def _done(request: HotplugRequest) -> str:
    parts = [f"the guest has '{name}'" for name in request.plug]
    parts += [f"'{name}' is gone from the VMI" for name in request.unplug]
    return ", ".join(parts) or "nothing to change"
