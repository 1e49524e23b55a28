"""The image's locks: requirements.lock agrees with pyproject.toml and is complete.

The image installs requirements.lock with `--require-hashes --no-deps` (Dockerfile), so
a dependency pyproject.toml asks for but the lock leaves out, a pin outside its
specifier, or a dependency of a dependency missing from the lock would reach users only
as a broken image. pip's resolver checks the closure the way the image needs it: in
`--require-hashes` mode every dependency it meets must be pinned, with hashes, in the file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.chart.locks import Pin, read_lock
from tests.chart.manifests import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
RUNTIME_LOCK = ROOT / "requirements.lock"
BUILD_LOCK = ROOT / "requirements-build.lock"
BUILD_INPUT = ROOT / "requirements-build.in"
IMAGE_ENVIRONMENT = {
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}
"""Markers as the image's Python (3.11 on Debian) evaluates them."""


def _applies(requirement: Requirement) -> bool:
    return requirement.marker is None or requirement.marker.evaluate(IMAGE_ENVIRONMENT)


def _check_pins(requirements: list[str], pins: dict[str, Pin], lock: str) -> None:
    for text in requirements:
        requirement = Requirement(text)
        if not _applies(requirement):
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{lock} lacks {requirement.name}, which the project requires"
        assert requirement.specifier.contains(pins[name].version, prereleases=True), (
            f"{lock} pins {name}=={pins[name].version}, outside {text!r}"
        )


def test_the_lock_pins_every_runtime_dependency_within_its_specifier() -> None:
    _check_pins(PROJECT["dependencies"], read_lock(RUNTIME_LOCK), RUNTIME_LOCK.name)


def test_the_build_lock_pins_what_the_build_stage_asks_for() -> None:
    asked = [
        line.strip()
        for line in BUILD_INPUT.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    _check_pins(asked, read_lock(BUILD_LOCK), BUILD_LOCK.name)


def test_the_locks_were_written_by_the_documented_command() -> None:
    for lock in (RUNTIME_LOCK, BUILD_LOCK):
        assert "#    scripts/lock\n" in lock.read_text(), (
            f"{lock.name}: regenerate with scripts/lock"
        )


def test_a_lock_without_hashes_or_with_a_range_is_refused(tmp_path: Path) -> None:
    """Guards the parser the tests above rely on."""
    for text in ("flask==3.1.3\n", "flask>=3.1 \\\n    --hash=sha256:" + "0" * 64 + "\n"):
        (tmp_path / "bad.lock").write_text(text)
        with pytest.raises(AssertionError, match="not a pin with hashes"):
            read_lock(tmp_path / "bad.lock")


def resolve(lock: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """pip's resolver over `lock` alone, as the image's Python would install it (no install).

    Reads the package index pip is configured with (PyPI, whose files the hashes name),
    metadata only; a find-links directory of local wheels is left out.
    """
    environment = {k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"}
    command = ["install", "--dry-run", "--ignore-installed", "--require-hashes", "--quiet"]
    command += ["--only-binary=:all:", "--disable-pip-version-check"]
    command += ["--report", str(tmp_path / "report.json"), "-r", str(lock)]
    return subprocess.run(
        [sys.executable, "-m", "pip", *command],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=environment,
    )


@pytest.mark.parametrize("lock", [RUNTIME_LOCK, BUILD_LOCK], ids=lambda path: path.name)
def test_each_lock_is_its_own_complete_closure(lock: Path, tmp_path: Path) -> None:
    """What the lock pins needs nothing more: pip, with dependencies on, adds no package."""
    done = resolve(lock, tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    installed = {
        canonicalize_name(item["metadata"]["name"]): Version(item["metadata"]["version"])
        for item in report["install"]
    }
    assert installed == {name: pin.version for name, pin in read_lock(lock).items()}


def test_the_resolver_check_fails_on_a_lock_missing_a_dependency(tmp_path: Path) -> None:
    """Guards the test above: drop a pin the project does not ask for itself."""
    direct = {canonicalize_name(Requirement(text).name) for text in PROJECT["dependencies"]}
    dropped = min(set(read_lock(RUNTIME_LOCK)) - direct)
    kept = []
    skipping = False
    for line in RUNTIME_LOCK.read_text().splitlines(keepends=True):
        if line[:1].isalnum():  # a pin starts a block; its hashes and comments follow
            skipping = canonicalize_name(line.split("==")[0]) == dropped
        if not skipping:
            kept.append(line)
    (tmp_path / "partial.lock").write_text("".join(kept))
    assert set(read_lock(tmp_path / "partial.lock")) == set(read_lock(RUNTIME_LOCK)) - {dropped}
    done = resolve(tmp_path / "partial.lock", tmp_path)
    assert done.returncode != 0
    assert "must have their versions pinned" in done.stderr
