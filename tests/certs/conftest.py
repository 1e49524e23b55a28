"""Fixtures for the certificate tests: the real kube-apiserver, and the fake for faults."""

from collections.abc import Iterator

import pytest

from tests.harness.fixtures import fake_apiserver
from tests.kube.controlplane import ControlPlane
from tests.kube.seeding import Seeding

__all__ = ["apiserver", "fake_apiserver"]


@pytest.fixture
def apiserver(control_plane: ControlPlane) -> Iterator[Seeding]:
    """The real kube-apiserver, seeded like the fake; what a test put is deleted after it."""
    seeding = Seeding(control_plane)
    yield seeding
    seeding.clean_up()
