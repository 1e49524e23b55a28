"""The wheel `pip install .` builds: it holds every module and data file, and its CLI runs.

The tests otherwise run against the source tree (an editable install), which
would hide a module the wheel leaves out; the README's run command and the
container image both install the wheel.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(
    pattern.rstrip("*")
    for pattern in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the tracked files (no stale `build/` can leak in)."""
    tree = tmp_path_factory.mktemp("tree")
    for path in tracked("."):
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / path, tree / path)
    out = tmp_path_factory.mktemp("wheel")
    build = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out)]
    subprocess.run([*build, "."], cwd=tree, check=True, timeout=240)
    (built,) = out.glob("hotplug_guard-*.whl")
    return built


def tracked(*paths: str) -> list[str]:
    return subprocess.run(
        ["git", "ls-files", *paths], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split()


def source_files() -> set[str]:
    """Modules and data files of the packages, as paths relative to the repository."""
    return {path for path in tracked(*PACKAGES) if not path.endswith(".md")}


def test_the_wheel_holds_every_module_and_data_file_of_the_packages(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    missing = source_files() - names
    assert not missing, f"the wheel lacks {sorted(missing)}"
    assert {"hotplug_guard/commands/serve.py", "policy/default-config.yaml"} <= names
    assert not {name for name in names if name.startswith(("tests/", "benchmarks/"))}


def test_the_cli_runs_from_the_wheel_alone(wheel: Path, tmp_path: Path) -> None:
    unpacked = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)

    def python(*args: str) -> str:
        # -P: not the current directory; PYTHONPATH ahead of the editable install
        return subprocess.run(
            [sys.executable, "-P", *args],
            cwd=tmp_path,
            env={"PYTHONPATH": str(unpacked), "PATH": "/usr/bin:/bin"},
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    where = python("-c", "import hotplug_guard.commands.serve as m; print(m.__file__)")
    assert where.startswith(str(unpacked))
    assert "hotplugSlots" in python("-m", "hotplug_guard", "config")
    assert "--cert-dir" in python("-m", "hotplug_guard", "serve", "--help")


# Versions that fixed the advisories docs/security.md lists; the floors may only rise.
FIXED_IN = {
    "gunicorn": "23.0",  # CVE-2024-6827, request smuggling
    "flask": "3.1.3",
    "werkzeug": "3.1.6",
    "urllib3": "2.7.0",
    "cryptography": "50.0.0",
}


def test_dependency_floors_exclude_releases_with_known_advisories() -> None:
    from packaging.requirements import Requirement
    from packaging.version import Version

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    floors = {}
    for text in project["dependencies"]:
        requirement = Requirement(text)
        lows = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
        floors[requirement.name.lower()] = max(lows, default=Version("0"))
    for name, fixed in FIXED_IN.items():
        assert floors.get(name, Version("0")) >= Version(fixed), f"{name} admits < {fixed}"


def test_the_license_is_the_apache_license_the_metadata_names(wheel: Path) -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "END OF TERMS AND CONDITIONS" in text
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    with zipfile.ZipFile(wheel) as archive:
        licenses = [
            name for name in archive.namelist() if name.endswith(".dist-info/licenses/LICENSE")
        ]
        assert len(licenses) == 1, archive.namelist()
        assert archive.read(licenses[0]).decode() == text
