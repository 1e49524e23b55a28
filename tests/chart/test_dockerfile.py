"""The Dockerfile, read statically (no container engine here): what it builds and how it runs."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass

import pytest

from hotplug_guard.cli import build_parser
from hotplug_guard.commands.serve import parse_bind
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


def test_two_stages_on_the_same_python_311_slim_base() -> None:
    named = stages()
    assert list(named) == ["", "build", "runtime"]
    [arg] = named[""]
    assert re.fullmatch(r"ARG PYTHON_IMAGE=python:3\.11-slim(-[a-z]+)?", f"ARG {arg.arguments}")
    assert PROJECT["project"]["requires-python"] == ">=3.11"
    for stage in ("build", "runtime"):
        assert named[stage][0].arguments == f"${{PYTHON_IMAGE}} AS {stage}"


def test_build_stage_copies_everything_the_wheel_is_built_from() -> None:
    packages = {p.rstrip("*") for p in PROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    expected = {"pyproject.toml", "setup.py", PROJECT["project"]["readme"], *packages}
    assert copied_sources() == expected


def test_build_stage_compiles_the_engine_into_the_wheel() -> None:
    *setup, build = [i.arguments for i in stages()["build"] if i.keyword == "RUN"]
    assert setup == [
        "apt-get update && apt-get install --yes --no-install-recommends gcc libc6-dev "
        "&& rm -rf /var/lib/apt/lists/*"
    ]
    install, wheel = build.split(" && ")
    assert install.startswith("pip install ")
    assert {"mypy>=1.11", "setuptools>=68", "wheel"} <= {
        arg.strip('"') for arg in install.split()[2:]
    }
    # the variable setup.py reads, and the build environment that has mypy in it
    assert wheel == "HOTPLUG_GUARD_MYPYC=1 pip wheel --no-build-isolation --wheel-dir /wheels ."
    assert "HOTPLUG_GUARD_MYPYC" in (ROOT / "setup.py").read_text()


def test_runtime_installs_the_wheel_offline_and_has_no_build_tools() -> None:
    runtime = stages()["runtime"]
    install = only(runtime, "RUN").arguments
    assert install.startswith("--mount=type=bind,from=build,source=/wheels,target=/wheels ")
    assert f"pip install --no-index --find-links /wheels {PROJECT['project']['name']} " in install
    assert DOCKERFILE.startswith("# syntax=docker/dockerfile:1\n")  # RUN --mount needs BuildKit
    # the source tree and the wheels never become a layer of the runtime image
    assert not [i for i in runtime if i.keyword in ("COPY", "ADD")]
    for tool in ("apt-get", "apk", "gcc", "build-essential", "make "):
        assert tool not in install


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
