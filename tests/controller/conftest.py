"""A release, the KubeVirt simulator and a fresh namespace per scenario (real control plane)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.controller.scenario import Scenario
from tests.e2e.cluster import Cluster
from tests.kube import kubevirt, release
from tests.kube.controlplane import ControlPlane
from tests.kube.release import Release
from tests.kube.simulator import Simulator


@pytest.fixture(scope="package")
def guard(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    """The chart with default values: its webhook signs the requests the controller acts on."""
    with release.deployed(control_plane, tmp_path_factory.mktemp("release")) as deployed:
        yield deployed


@pytest.fixture(scope="package")
def simulator(control_plane: ControlPlane) -> Iterator[Simulator]:
    kubevirt.install(control_plane)
    running = Simulator(control_plane, namespaces=()).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def scenario(control_plane: ControlPlane, guard: Release, simulator: Simulator) -> Scenario:
    namespace = guard.namespace_for_tests("hotplug")
    simulator.watch(namespace)
    cluster = Cluster(plane=control_plane, release=guard, namespace=namespace)
    cluster.nad("net1")
    cluster.nad("net2")
    return Scenario(cluster=cluster, simulator=simulator)


@pytest.fixture
def live_migrate(control_plane: ControlPlane) -> Iterator[None]:
    """KubeVirt migrates hot plugs by itself: LiveMigrate in the CR, for one test."""
    kubevirt.workload_update_methods(control_plane, ["LiveMigrate"])
    try:
        yield
    finally:
        kubevirt.workload_update_methods(control_plane, [])
