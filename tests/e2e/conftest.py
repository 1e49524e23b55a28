"""A hotplug-guard release on the real control plane, one per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.cluster import Cluster
from tests.kube import release
from tests.kube.controlplane import ControlPlane
from tests.kube.release import Release


@pytest.fixture(scope="module")
def guard(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    """The chart with default values, its webhook served and registered."""
    with release.deployed(control_plane, tmp_path_factory.mktemp("release")) as deployed:
        yield deployed


@pytest.fixture
def cluster(control_plane: ControlPlane, guard: Release) -> Cluster:
    """A fresh namespace the release reviews, with NetworkAttachmentDefinition `net1`."""
    namespace = guard.namespace_for_tests("e2e")
    cluster = Cluster(plane=control_plane, release=guard, namespace=namespace)
    cluster.nad("net1")
    return cluster
