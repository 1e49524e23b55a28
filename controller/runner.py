"""The controller's loop: caches say which VMs changed, workers decide for them and act.

Level-triggered, as controller-runtime's reconcilers are: whatever changed (the VM,
its VMI, one of its migrations, the KubeVirt CR), the VM's key goes into the work
queue, and a worker decides from the caches what to do now (`decisions.decide`)
and does it (`cluster.ClusterApi`). Deciding twice changes nothing, so a key may be
queued as often as its objects change.

Only the leader acts (`election.Elector`); a standby keeps its caches warm and
takes over, from the state in the annotations and migrations alone, when the
leader's Lease expires. What a worker remembers is only an optimisation or a
courtesy: when it first saw a change in the VMI spec (for the grace period), the
migrations it created that the cache has not shown yet (so none is created twice
and the parallel limit holds), and the resourceVersion it last patched from (so a
cache that lags behind its own write, or behind the write a 409 revealed, is not
acted on: the watch brings the newer VM, and with it the next look).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from controller import migrations as m
from controller.cluster import KUBEVIRTS, MIGRATIONS, VMIS, VMS, ClusterApi, Retry, migration_index
from controller.decisions import Decision, Observation, decide
from controller.election import Elector, Timings
from controller.metrics import Metrics
from controller.objects import field, parse_time, text
from controller.queue import WorkQueue
from controller.settings import Settings
from kubecache import Change
from kubecache.reflectors import identity
from policy.annotations import (
    REQUEST,
    STATUS,
    HotplugStatus,
    Phase,
    parse_request,
    parse_status,
    render_status,
)
from policy.signing import SigningKeys, verify_request

LOG = logging.getLogger(f"hotplug_guard.{__name__}")

RESYNC_SECONDS = 300.0
"""Every VM with an unfinished request is looked at again this often, whatever happened."""
EXPECT_SECONDS = 60.0
"""How long a created migration counts as in flight before the cache shows it."""
WORKERS = 4
REASONS = {
    Phase.WAITING: "HotplugWaiting",
    Phase.MIGRATING: "HotplugMigrating",
    Phase.SUCCEEDED: "HotplugSucceeded",
    Phase.FAILED: "HotplugFailed",
    Phase.SKIPPED: "HotplugSkipped",
}

Object = Mapping[str, Any]


def key_of(item: Object) -> str:
    namespace, name = identity(item)
    return f"{namespace}/{name}"


def annotations_of(vm: Object) -> Mapping[str, Any]:
    found = field(vm, "metadata", "annotations")
    return found if isinstance(found, Mapping) else {}


def unfinished_request(vm: Object) -> bool:
    """The VM carries a request its status does not report finished."""
    annotations = annotations_of(vm)
    request = parse_request(annotations.get(REQUEST))
    if request is None:
        return False
    status = parse_status(annotations.get(STATUS))
    return not (status is not None and status.id == request.id and status.finished)


class MigrationSlots:
    """This controller's unfinished migrations, and the VMs waiting for one to finish.

    In flight: the unfinished ones the cache shows plus those created and not shown
    yet. A VM that found every slot taken waits in line; each slot that frees wakes
    the next one.
    """

    def __init__(self, *, limit: int, controller: str, clock: Callable[[], float]) -> None:
        self._limit = limit
        self._controller = controller
        self._clock = clock
        self._lock = threading.Lock()
        self._unfinished: set[tuple[str, str]] = set()
        self._expected: dict[tuple[str, str], tuple[dict[str, Any], float]] = {}
        self._waiting: OrderedDict[str, None] = OrderedDict()

    def observe(self, change: Change) -> list[str]:
        """Take in a migration the cache shows; the waiting VMs to wake."""
        item = change.item
        if not m.owned_by(item, self._controller):
            return []
        slot = identity(item)
        with self._lock:
            self._expected.pop(slot, None)
            if change.deleted or not m.unfinished(item):
                self._unfinished.discard(slot)
            else:
                self._unfinished.add(slot)
            return self._wake()

    def count(self) -> int:
        with self._lock:
            self._drop_overdue()
            return len(self._unfinished | self._expected.keys())

    def reserve(self, slot: tuple[str, str], manifest: dict[str, Any]) -> bool:
        """Count `manifest` in flight if a slot is free (atomically over every worker)."""
        with self._lock:
            self._drop_overdue()
            if slot in self._unfinished or slot in self._expected:
                return True
            if len(self._unfinished | self._expected.keys()) >= self._limit:
                return False
            self._expected[slot] = (manifest, self._clock())
            return True

    def cancel(self, slot: tuple[str, str]) -> list[str]:
        """The create failed: the slot is free again."""
        with self._lock:
            self._expected.pop(slot, None)
            return self._wake()

    def expected_for(self, namespace: str, vmi: str) -> list[dict[str, Any]]:
        """Created migrations of this VMI that the cache does not show yet."""
        with self._lock:
            return [
                manifest
                for (space, _), (manifest, _) in self._expected.items()
                if space == namespace and m.vmi_of(manifest) == vmi
            ]

    def wait(self, key: str) -> None:
        with self._lock:
            self._waiting[key] = None

    def _wake(self) -> list[str]:
        free = self._limit - len(self._unfinished | self._expected.keys())
        woken: list[str] = []
        while free > 0 and self._waiting:
            woken.append(self._waiting.popitem(last=False)[0])
            free -= 1
        return woken

    def _drop_overdue(self) -> None:
        overdue = [
            slot
            for slot, (_, created) in self._expected.items()
            if self._clock() - created > EXPECT_SECONDS
        ]
        for slot in overdue:
            del self._expected[slot]


class Controller:
    """Caches, work queue, workers and leader election of one controller process."""

    def __init__(
        self,
        api: ClusterApi,
        *,
        keys: SigningKeys,
        settings: Settings,
        timings: Timings,
        metrics: Metrics,
        workers: int = WORKERS,
        resync_seconds: float = RESYNC_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api = api
        self.settings = settings
        self.metrics = metrics
        self.queue = WorkQueue()
        self.slots = MigrationSlots(
            limit=settings.max_parallel_migrations, controller=settings.name, clock=clock
        )
        self._keys = keys.verifying
        self._clock = clock
        self._resync_seconds = resync_seconds
        self.vms = api.reflector(VMS, on_change=self._vm_changed, on_synced=self._synced)
        self.vmis = api.reflector(VMIS, on_change=self._vmi_changed, on_synced=self._synced)
        self.migrations = api.reflector(
            MIGRATIONS,
            on_change=self._migration_changed,
            on_synced=self._synced,
            index=migration_index,
        )
        self.kubevirts = api.reflector(
            KUBEVIRTS, on_change=self._kubevirt_changed, on_synced=self._synced
        )
        self._reflectors = (self.vms, self.vmis, self.migrations, self.kubevirts)
        self.elector = Elector(
            api,
            identity=api.identity,
            timings=timings,
            on_started_leading=self._started_leading,
            on_stopped_leading=self._stopped_leading,
            clock=clock,
        )
        self.lost = threading.Event()
        """Set when this replica stopped leading: its process should exit and restart."""
        self._active = threading.Event()
        self._stopping = threading.Event()
        self._reached: dict[tuple[str, str], float] = {}
        self._patched_from: dict[str, str] = {}
        self._refused: dict[str, str] = {}
        self._memory = threading.Lock()
        self._threads = [
            threading.Thread(target=self._work, name=f"worker-{n}", daemon=True)
            for n in range(workers)
        ]
        self._threads.append(threading.Thread(target=self._resync, name="resync", daemon=True))

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> Controller:
        for reflector in self._reflectors:
            reflector.start()
        for thread in self._threads:
            thread.start()
        self.elector.start()
        return self

    def stop(self, *, release: bool = True) -> None:
        """Stop acting, hand the Lease back (unless `release` is False), stop the caches."""
        self._active.clear()
        self._stopping.set()
        self.queue.shutdown()
        self.elector.stop(release=release)
        for reflector in self._reflectors:
            reflector.stop()
        for thread in self._threads:
            thread.join(5)

    def synced(self) -> bool:
        return all(reflector.synced.is_set() for reflector in self._reflectors)

    def problem(self) -> str | None:
        """Why this process is not healthy (a thread that died), or None."""
        if not self.elector.alive() and not self._stopping.is_set():
            return "the leader election thread stopped"
        for reflector in self._reflectors:
            if not reflector.alive() and not self._stopping.is_set():
                return f"the cache of {reflector.resource} stopped"
        if any(not thread.is_alive() for thread in self._threads) and not self._stopping.is_set():
            return "a worker stopped"
        return None

    # --- what the caches tell ------------------------------------------------------------

    def _synced(self) -> None:
        if self.synced():
            self._update_active()

    def _started_leading(self) -> None:
        self.metrics.leader.set(1)
        self._update_active()

    def _stopped_leading(self) -> None:
        self.metrics.leader.set(0)
        self._active.clear()
        self.lost.set()

    def _update_active(self) -> None:
        if self.elector.is_leader() and self.synced() and not self._active.is_set():
            LOG.info("acting as the leader with synced caches")
            self._active.set()
            self._enqueue_unfinished()

    def _enqueue_unfinished(self) -> None:
        for vm in self.vms.store.all():
            if unfinished_request(vm):
                self.queue.add(key_of(vm))

    def _vm_changed(self, change: Change) -> None:
        key = key_of(change.item)
        if change.deleted:
            with self._memory:
                self._patched_from.pop(key, None)
                self._refused.pop(key, None)
                uid = text(field(change.item, "metadata", "uid"))
                for pair in [pair for pair in self._reached if pair[0] == uid]:
                    del self._reached[pair]
            return
        if self._active.is_set() and unfinished_request(change.item):
            self.queue.add(key)

    def _related(self, key: str) -> None:
        """Queue VM `key` if its request is unfinished (VMIs and migrations share its name):
        a guest agent's updates of a VMI whose hot plug is long done cost nothing."""
        namespace, _, name = key.partition("/")
        vm = self.vms.store.get(namespace, name)
        if vm is not None and self._active.is_set() and unfinished_request(vm):
            self.queue.add(key)

    def _vmi_changed(self, change: Change) -> None:
        self._related(key_of(change.item))

    def _migration_changed(self, change: Change) -> None:
        for waiting in self.slots.observe(change):
            self.queue.add(waiting)
        self.metrics.in_flight.set(self.slots.count())
        related = migration_index(change.item)
        if related is not None:
            self._related(related)

    def _kubevirt_changed(self, change: Change) -> None:
        if self._active.is_set():
            self._enqueue_unfinished()

    # --- the workers ---------------------------------------------------------------------

    def _resync(self) -> None:
        while not self._stopping.wait(self._resync_seconds):
            if self._active.is_set():
                self._enqueue_unfinished()

    def _work(self) -> None:
        while not self._stopping.is_set():
            if not self._active.wait(0.5):
                continue
            key = self.queue.get(timeout=0.5)
            if key is None:
                continue
            try:
                self.reconcile(key)
                self.queue.forget(key)
            except Retry as retry:
                delay = self.queue.add_rate_limited(key)
                LOG.info("%s: %s; again in %.2fs", key, retry, delay)
            except Exception:  # a bug or an unexpected answer must not kill the worker
                delay = self.queue.add_rate_limited(key)
                LOG.exception("%s: unexpected error; again in %.2fs", key, delay)
            finally:
                self.queue.done(key)
                self.metrics.queued.set(len(self.queue))

    def reconcile(self, key: str) -> None:
        """Decide for VM `key` from the caches and act on the decision."""
        namespace, _, name = key.partition("/")
        vm = self.vms.store.get(namespace, name)
        if vm is None:
            return
        annotations = annotations_of(vm)
        value = annotations.get(REQUEST)
        if value is None:
            return
        version = text(field(vm, "metadata", "resourceVersion"))
        with self._memory:
            if self._patched_from.get(key) == version:
                return  # the cache has not caught up with the last write (ours or a 409's)
            self._patched_from.pop(key, None)
        request = verify_request(value, vm, self._keys)
        if request is None:
            self._refuse(
                vm,
                key,
                str(value),
                "signature",
                "hotplug-guard.io/request does not verify for this VM (not written by the "
                "webhook for this VM and change); no migration is made for it",
            )
            return
        vmi = self.vmis.store.get(namespace, name)
        vmi_name = text(field(vmi, "metadata", "name")) or name
        found = self.migrations.store.indexed(f"{namespace}/{vmi_name}")
        shown = {identity(item) for item in found}
        expected = [
            item
            for item in self.slots.expected_for(namespace, vmi_name)
            if identity(item) not in shown
        ]
        uid = text(field(vm, "metadata", "uid"))
        with self._memory:
            reached_at = self._reached.get((uid, request.id))
        now = self._clock()
        status = parse_status(annotations.get(STATUS))
        decision = decide(
            Observation(
                vm=vm,
                request=request,
                status=status,
                vmi=vmi,
                migrations=(*found, *expected),
                kubevirt=self.kubevirts.store.first(),
                in_flight=self.slots.count(),
                reached_at=reached_at,
                now=now,
            ),
            self.settings,
        )
        if decision.refused:
            self._refuse(vm, key, str(value), "older", decision.refused)
            return
        if decision.reached and reached_at is None:
            with self._memory:
                self._reached[(uid, request.id)] = now
        self._act(key, vm, status, decision)

    def _act(self, key: str, vm: Object, status: HotplugStatus | None, decision: Decision) -> None:
        if decision.needs_slot:
            self.slots.wait(key)
        plan = decision.migration
        if plan is not None:
            manifest = m.manifest(plan, controller=self.settings.name)
            slot = (plan.namespace, plan.name)
            if not self.slots.reserve(slot, manifest):
                self.slots.wait(key)  # another worker took the last slot meanwhile
                return
            if not self.elector.is_leader():
                self.slots.cancel(slot)
                return
            try:
                created = self.api.create_migration(manifest)
            except (Retry, ApiException):
                for waiting in self.slots.cancel(slot):
                    self.queue.add(waiting)
                raise
            if created:
                self.metrics.migrations_created.inc()
                LOG.info(
                    "created migration %s",
                    plan.name,
                    extra={"vm": key, "request": plan.request, "attempt": plan.attempt},
                )
            self.metrics.in_flight.set(self.slots.count())
        new = decision.status
        if new is not None and new != status and self.elector.is_leader():
            version = text(field(vm, "metadata", "resourceVersion"))
            try:
                self.api.patch_status(vm, render_status(new))
            except Retry as retry:
                if retry.conflict:  # the cache holds an older VM: wait for the newer one
                    with self._memory:
                        self._patched_from[key] = version
                raise
            with self._memory:
                self._patched_from[key] = version
            self._reported(key, vm, new)
        if decision.requeue_after is not None:
            self.queue.add_after(key, decision.requeue_after)

    def _reported(self, key: str, vm: Object, status: HotplugStatus) -> None:
        self.metrics.requests.labels(phase=status.phase.value).inc()
        if status.phase is Phase.SUCCEEDED:
            started = parse_time(status.since)
            if started is not None:
                self.metrics.request_seconds.observe(max(0.0, self._clock() - started))
        if status.finished:
            uid = text(field(vm, "metadata", "uid"))
            with self._memory:
                self._reached.pop((uid, status.id), None)
        LOG.info(
            "%s: %s",
            status.phase.value,
            status.message,
            extra={
                "vm": key,
                "request": status.id,
                "phase": status.phase.value,
                "migration": status.migration,
                "attempts": status.attempts,
            },
        )
        self.api.record_event(
            vm,
            reason=REASONS[status.phase],
            message=status.message,
            warning=status.phase is Phase.FAILED,
        )

    def _refuse(self, vm: Object, key: str, value: str, reason: str, message: str) -> None:
        """Report a request that is not acted on, once per value."""
        with self._memory:
            if self._refused.get(key) == value:
                return
            self._refused[key] = value
        self.metrics.refused.labels(reason=reason).inc()
        LOG.warning("%s: %s", key, message, extra={"vm": key, "reason": reason})
        if self.elector.is_leader():
            self.api.record_event(vm, reason="HotplugRequestRefused", message=message, warning=True)
