"""The list+watch caches with the real kubernetes client against kube-apiserver.

Faults the real server cannot give on cue (an expired watch, failing or slow
lists, a resource it does not serve) and the request log use the fake API server.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hotplug_guard.cases import case_files, load_case
from hotplug_guard.checking import check
from policy import Context
from tests.harness.fake_apiserver import FakeApiServer
from tests.kube import kubevirt
from tests.kube.controlplane import ControlPlane
from tests.kube.seeding import Seeding
from tests.webhook.objects import fixture
from webhook.caches import ClusterContext, keep_kubevirt, keep_migration, keep_vmi
from webhook.context import ContextState

Object = dict[str, Any]
NAMESPACE = "caches"  # a namespace of its own: the control plane is shared by all tests
KUBEVIRT: Object = {
    "apiVersion": "kubevirt.io/v1",
    "kind": "KubeVirt",
    "metadata": {"name": "kubevirt", "namespace": "kubevirt"},
    "spec": {"workloadUpdateStrategy": {"workloadUpdateMethods": ["LiveMigrate"]}},
}


def eventually(condition: Callable[[], object], *, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def in_namespace(obj: Object, namespace: str = NAMESPACE) -> Object:
    result = copy.deepcopy(obj)
    result["metadata"]["namespace"] = namespace
    return result


def migration(name: str, *, vmi: str | None = None, label: str | None = None) -> Object:
    obj: Object = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstanceMigration",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"vmiName": vmi} if vmi else {},
    }
    if label:
        obj["metadata"]["labels"] = {"kubevirt.io/vmi-name": label}
    return obj


def seed(server: Seeding | FakeApiServer) -> None:
    """The objects the caches read; the KubeVirt CR is the fake's own or the simulator's."""
    server.put(in_namespace(fixture("vmi-status-hotplug-pending")))
    server.put(in_namespace(fixture("nad-new-fancy-net")))
    server.put(in_namespace(fixture("vmim-manual-migration")))
    server.put(migration("by-label", label="vm-fedora"))
    server.put(migration("other-vm", vmi="vm-other"))


@pytest.fixture
def fake() -> Iterator[FakeApiServer]:
    with FakeApiServer(bookmark_interval=0.2) as server:
        seed(server)
        server.put(KUBEVIRT)
        yield server


@pytest.fixture
def seeded(control_plane: ControlPlane) -> Iterator[Seeding]:
    """kube-apiserver with the same objects; they are deleted after the test."""
    kubevirt.install(control_plane)  # one per cluster, shared with the other tests
    seeding = Seeding(control_plane)
    seed(seeding)
    yield seeding
    seeding.clean_up()


def start(server: Seeding | FakeApiServer, **options: Any) -> ClusterContext:
    return ClusterContext(server.api_client().configuration, **options).start()


@pytest.fixture
def cluster(seeded: Seeding) -> Iterator[ClusterContext]:
    context = start(seeded)
    try:
        eventually(context.ready)
        yield context
    finally:
        context.stop()


def lookup(cluster: ClusterContext, name: str = "vm-fedora", *, wait: float = 1.0) -> Any:
    return cluster.lookup(NAMESPACE, name, deadline=time.monotonic() + wait)


def test_a_synced_cache_builds_the_vm_context_from_vmi_nads_kubevirt_and_migrations(
    cluster: ClusterContext,
) -> None:
    found = lookup(cluster)
    assert found.state is ContextState.SYNCED
    assert found.context.vmi is not None
    assert found.context.vmi["metadata"]["name"] == "vm-fedora"
    assert nads_here(found) == {f"{NAMESPACE}/new-fancy-net"}
    assert found.context.kubevirt is not None
    assert found.context.kubevirt["metadata"]["name"] == "kubevirt"
    assert sorted(m["metadata"]["name"] for m in found.context.migrations) == [
        "by-label",
        "migration-job",
    ]


def test_a_vm_without_a_vmi_gets_no_vmi_and_no_migrations(cluster: ClusterContext) -> None:
    found = lookup(cluster, "vm-stopped")
    assert found.context.vmi is None
    assert found.context.migrations == ()
    assert nads_here(found) == {f"{NAMESPACE}/new-fancy-net"}


def nads_here(found: Any) -> set[str]:
    """The NADs the context knows in this test's namespace (it knows every namespace's)."""
    return {nad for nad in found.context.nads if nad.startswith(f"{NAMESPACE}/")}


def test_lookups_make_no_api_call_once_synced(fake: FakeApiServer) -> None:
    """The fake's request log shows every call the caches make."""
    context = start(fake)
    try:
        eventually(context.ready)
        fake.clear_requests()
        for _ in range(200):
            lookup(context)
        time.sleep(0.3)
    finally:
        context.stop()
    assert [r for r in fake.requests if r.verb != "watch"] == []


def test_watch_events_keep_the_cache_current(seeded: Seeding, cluster: ClusterContext) -> None:
    extra = in_namespace(fixture("nad-new-fancy-net"))
    extra["metadata"]["name"] = "second-net"
    seeded.put(extra)
    eventually(lambda: f"{NAMESPACE}/second-net" in (lookup(cluster).context.nads or ()))
    seeded.delete("kubevirt.io/v1", "VirtualMachineInstance", NAMESPACE, "vm-fedora")
    eventually(lambda: lookup(cluster).context.vmi is None)
    seeded.delete("kubevirt.io/v1", "VirtualMachineInstanceMigration", NAMESPACE, "by-label")
    eventually(lambda: len(lookup(cluster).context.migrations) == 1)


def test_an_expired_watch_relists_and_keeps_serving(fake: FakeApiServer) -> None:
    context = start(fake, watch_seconds=1)
    try:
        eventually(context.ready)
        fake.inject(verb="watch", resource="network-attachment-definitions", status=410)
        added = in_namespace(fixture("nad-new-fancy-net"))
        added["metadata"]["name"] = "after-relist"
        fake.put(added)
        eventually(lambda: f"{NAMESPACE}/after-relist" in (lookup(context).context.nads or ()))
        eventually(
            lambda: (
                len(
                    [
                        r
                        for r in fake.requests
                        if r.verb == "list" and r.resource == "network-attachment-definitions"
                    ]
                )
                >= 2
            )
        )
        assert context.ready()
    finally:
        context.stop()


def test_failed_lists_are_retried_until_the_cache_syncs(fake: FakeApiServer) -> None:
    fake.inject(verb="list", resource="kubevirts", status=500, times=2)
    changes: list[bool] = []
    context = start(fake, on_ready_change=changes.append)
    try:
        eventually(context.ready)
        assert lookup(context).context.kubevirt is not None
        assert changes[0] is False
        assert changes[-1] is True
    finally:
        context.stop()


def test_a_lookup_waits_for_syncing_caches_only_until_its_deadline(fake: FakeApiServer) -> None:
    fake.inject(verb="list", resource="network-attachment-definitions", status=None, delay=1.5)
    context = start(fake)
    try:
        started = time.monotonic()
        found = context.lookup(NAMESPACE, "vm-fedora", deadline=started + 0.5)
        elapsed = time.monotonic() - started
        assert found.state is ContextState.UNSYNCED
        assert found.context.nads is None
        assert 0.4 < elapsed < 1.5
        assert not context.ready()
        eventually(context.ready)
        assert lookup(context).context.nads == frozenset({f"{NAMESPACE}/new-fancy-net"})
    finally:
        context.stop()


def test_a_resource_the_api_server_does_not_serve_counts_as_synced_and_empty() -> None:
    from tests.harness.fake_apiserver import DEFAULT_RESOURCES

    without_nads = [r for r in DEFAULT_RESOURCES if r.plural != "network-attachment-definitions"]
    with FakeApiServer(resources=without_nads) as server:
        server.put(in_namespace(fixture("vmi-status-hotplug-pending")))
        context = start(server)
        try:
            eventually(context.ready)
            found = lookup(context)
            assert found.state is ContextState.SYNCED
            assert found.context.nads == frozenset()
            assert found.context.vmi is not None
        finally:
            context.stop()


def test_the_caches_keep_every_field_the_engine_reads() -> None:
    # every case file's verdict is the same with the objects as the caches keep them
    cases = Path(__file__).resolve().parents[1] / "policy" / "cases"
    compared = 0
    for path in case_files([cases]):
        case = load_case(path)
        context = case.context
        kept = Context(
            nads=context.nads,
            vmi=None if context.vmi is None else keep_vmi(context.vmi),
            kubevirt=None if context.kubevirt is None else keep_kubevirt(context.kubevirt),
            migrations=tuple(keep_migration(m) for m in context.migrations),
        )
        assert check(case.review, kept, case.config) == check(case.review, context, case.config), (
            path.name
        )
        compared += context.vmi is not None
    assert compared > 50


def test_a_cached_vmi_holds_no_cloud_init_data_and_no_managed_fields() -> None:
    vmi = copy.deepcopy(fixture("vmi-status-hotplug-pending"))
    vmi["metadata"]["managedFields"] = [{"manager": "virt-controller", "fieldsV1": {}}]
    vmi["metadata"]["annotations"] = {"kubevirt.io/latest-observed-api-version": "v1", "a": "b"}
    vmi["spec"]["volumes"] = [
        {"name": "cloudinit", "cloudInitNoCloud": {"userData": "password: s3cret-value"}}
    ]
    kept = json.dumps(keep_vmi(vmi))
    assert "s3cret-value" not in kept
    assert "managedFields" not in kept
    assert '"a"' not in kept
    assert keep_vmi(vmi)["status"]["interfaces"] == vmi["status"]["interfaces"]
