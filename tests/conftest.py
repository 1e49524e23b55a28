"""The real control plane (etcd + kube-apiserver), started once per test run when first needed.

A test that uses it and fails gets the paths and last lines of both logs in its
report; the logs are kept (in pytest's base temporary directory) after a failed
run and removed after a run that passed.
"""

from __future__ import annotations

import shutil
from collections.abc import Generator, Iterator

import pytest
from hypothesis import settings

from tests.kube import controlplane
from tests.kube.controlplane import ControlPlane

# Hypothesis' default without its per-example deadline: the suite checks behaviour, and a
# deadline fails examples whenever the machine is busy (timing belongs to the benchmarks).
# A profile named on the command line (`--hypothesis-profile`) still wins.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")

FAILED = pytest.StashKey[bool]()
PLANE = pytest.StashKey[ControlPlane]()


@pytest.fixture(scope="session")
def control_plane(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    directory = tmp_path_factory.mktemp("control-plane")
    with controlplane.running(directory) as plane:
        request.config.stash[PLANE] = plane
        yield plane
    if not request.config.stash.get(FAILED, False):
        shutil.rmtree(directory, ignore_errors=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    plane = item.config.stash.get(PLANE, None)
    uses_plane = "control_plane" in getattr(item, "fixturenames", ())
    if report.failed and plane is not None and uses_plane:
        item.config.stash[FAILED] = True
        for name, log in (("etcd", plane.etcd_log), ("kube-apiserver", plane.apiserver_log)):
            report.sections.append(
                (f"{name} log (kept in {log})", controlplane.tail(log, lines=40))
            )
    return report
