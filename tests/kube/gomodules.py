"""Wrapper Go modules: build upstream programs whose own go.mod has local replaces.

Go honours `replace` directives only in the main module, and `go install pkg@version`
refuses a module that has any. Kubernetes, etcd and KubeVirt all replace sibling
modules they keep in the same repository with local paths (`k8s.io/api =>
./staging/src/k8s.io/api`). A wrapper module requires the upstream module and
replaces each of those siblings with its published version instead, which gives
the same build from the module proxy alone. `pin` writes such a wrapper from the
upstream go.mod of one version, so the list of siblings is never guessed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

LOCAL_REPLACE = re.compile(r"^(\S+)(?:\s+\S+)?\s+=>\s+(\.{1,2}/\S*)$", re.M)
REMOTE_REPLACE = re.compile(r"^(\S+)(?:\s+(\S+))?\s+=>\s+([^.\s]\S*)\s+(\S+)$", re.M)


def go_env() -> dict[str, str]:
    """The environment for `go`: static binaries, as upstream builds them."""
    if shutil.which("go") is None:
        raise RuntimeError("the Go toolchain (go 1.25 or later) is needed; it is not on PATH")
    # GOFLAGS from the caller could change what is built
    return {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}


def run(command: Sequence[str], *, cwd: Path, env: dict[str, str]) -> str:
    """Run a command; its stdout, or a RuntimeError carrying its stderr."""
    done = subprocess.run(
        list(command), cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed in {cwd}:\n{done.stderr}")
    return done.stdout


def required_version(directory: Path, module: str) -> str:
    """The version of `module` the wrapper in `directory` requires (set only in its go.mod)."""
    text = (directory / "go.mod").read_text()
    found = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", text, re.M)
    if found is None:
        raise RuntimeError(f"{directory}/go.mod does not require {module}")
    return found.group(1)


def module_directory(directory: Path, module: str, env: dict[str, str]) -> Path:
    """Where the module cache holds `module` at the version the wrapper resolves."""
    run(["go", "mod", "download", module], cwd=directory, env=env)
    info = json.loads(run(["go", "list", "-m", "-json", module], cwd=directory, env=env))
    return Path(info["Dir"])


def upstream_go_mod(module: str, version: str, env: dict[str, str]) -> str:
    """The go.mod of `module@version`, fetched through the module proxy."""
    with tempfile.TemporaryDirectory() as scratch:
        command = ["go", "mod", "download", "-json", f"{module}@{version}"]
        info = json.loads(run(command, cwd=Path(scratch), env=env))
    return Path(info["GoMod"]).read_text()


def wrapper_replaces(go_mod: str, version: str, sibling_version: Callable[[str], str]) -> list[str]:
    """`go mod edit -replace` arguments that stand in for an upstream go.mod's replaces.

    A local-path replace (`k8s.io/api => ./staging/src/k8s.io/api`) becomes the
    sibling's published version; remote replaces are kept as upstream pins them.
    Guards against modules that must never be used (`=> ./FORBIDDEN_DEPENDENCY`,
    etcd) are dropped: nothing in the build imports them.
    """
    block = "\n".join(replace_lines(go_mod))
    replaces = [
        f"{module}={module}@{sibling_version(version)}"
        for module, path in LOCAL_REPLACE.findall(block)
        if "FORBIDDEN" not in path
    ]
    for module, old, new, new_version in REMOTE_REPLACE.findall(block):
        source = f"{module}@{old}" if old else module
        replaces.append(f"{source}={new}@{new_version}")
    return sorted(replaces)


def replace_lines(go_mod: str) -> Iterator[str]:
    """The `old => new` parts of a go.mod's replace directives, comments removed."""
    inside = False
    for line in go_mod.splitlines():
        stripped = line.split("//", 1)[0].strip()
        if stripped.startswith("replace ("):
            inside = True
        elif inside and stripped == ")":
            inside = False
        elif (inside or stripped.startswith("replace ")) and "=>" in stripped:
            yield stripped.removeprefix("replace ").strip()


def pin(
    directory: Path,
    *,
    module: str,
    version: str,
    sibling_version: Callable[[str], str],
    tools: Sequence[str] = (),
) -> None:
    """Rewrite the wrapper module in `directory` (go.mod, go.sum) for `module@version`.

    `tools` are main packages of the module to record with `go get -tool`; a
    wrapper with its own Go code gets its requirements from `go mod tidy`.
    """
    env = go_env()
    go_mod = upstream_go_mod(module, version, env)
    go_line = re.search(r"^go\s+(\S+)", go_mod, re.M)
    # godebug settings are honoured in the main module only: keep upstream's
    godebug = re.findall(r"^godebug\s+.*$", go_mod, re.M)
    header = [
        f"module hotplug-guard.test/kube/{directory.name}",
        "",
        f"go {go_line.group(1) if go_line else '1.25.0'}",
        *godebug,
    ]
    (directory / "go.mod").write_text("\n".join(header) + "\n")
    (directory / "go.sum").unlink(missing_ok=True)
    edits = [f"-replace={r}" for r in wrapper_replaces(go_mod, version, sibling_version)]
    run(["go", "mod", "edit", f"-require={module}@{version}", *edits], cwd=directory, env=env)
    if tools:
        run(["go", "get", "-tool", *(f"{p}@{version}" for p in tools)], cwd=directory, env=env)
    run(["go", "mod", "tidy"], cwd=directory, env=env)
