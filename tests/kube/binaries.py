"""kube-apiserver, kubectl and etcd, built from their Go modules once per version.

Each tool has a wrapper module here (`kubernetes/`, `etcd/`; see `gomodules`)
whose go.mod pins the upstream version and whose go.sum is committed.

    python -m tests.kube.binaries                       # build what is missing, print where
    python -m tests.kube.binaries pin kubernetes v1.35.8   # move a wrapper to another version

Binaries land in a cache keyed by version (`~/.cache/hotplug-guard/kube/v1.35.8/`,
`~/.cache/hotplug-guard/etcd/v3.6.16/`; `HOTPLUG_GUARD_KUBE_CACHE` moves the root)
and are reused as long as the wrapper's go.mod and go.sum are unchanged. A cold
build takes many minutes on two cores; progress is printed as packages compile.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.kube import gomodules

HERE = Path(__file__).resolve().parent
STAMP = ".wrapper-sha256"
PROGRESS_SECONDS = 30.0
# two cores shared with everything else; paths and symbol tables are of no use here
BUILD_FLAGS = ("-p", "2", "-trimpath", "-mod=readonly")


@dataclass(frozen=True, slots=True, kw_only=True)
class Tool:
    """A wrapper module and the upstream main packages it builds."""

    name: str  # the wrapper module's directory here
    cache: str  # the cache directory's parent
    module: str  # the upstream module the wrapper requires
    packages: tuple[str, ...]  # main packages, each built into a binary
    binaries: tuple[tuple[str, tuple[str, ...]], ...]  # (binary, arguments printing its version)
    sibling_version: Callable[[str], str]  # upstream version -> its siblings' published version
    ldflags: Callable[[str], list[str]]

    @property
    def wrapper(self) -> Path:
        return HERE / self.name

    def version(self) -> str:
        return gomodules.required_version(self.wrapper, self.module)

    def directory(self) -> Path:
        return cache_root() / self.cache / self.version()

    def names(self) -> tuple[str, ...]:
        return tuple(binary for binary, _ in self.binaries)


def _kubernetes_ldflags(version: str) -> list[str]:
    """Stamp the version as upstream's hack/lib/version.sh does (else: v0.0.0-master)."""
    major, minor = version.removeprefix("v").split(".")[:2]
    flags = []
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        for key, value in (("gitVersion", version), ("gitMajor", major), ("gitMinor", minor)):
            flags += ["-X", f"{package}.{key}={value}"]
    return flags


KUBERNETES = Tool(
    name="kubernetes",
    cache="kube",
    module="k8s.io/kubernetes",
    packages=("k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kubectl"),
    binaries=(("kube-apiserver", ("--version",)), ("kubectl", ("version", "--client"))),
    # the staging modules are published as v0.<minor>.<patch> of the same release
    sibling_version=lambda version: "v0." + version.split(".", 1)[1],
    ldflags=_kubernetes_ldflags,
)
ETCD = Tool(
    name="etcd",
    cache="etcd",
    module="go.etcd.io/etcd/server/v3",
    packages=("go.etcd.io/etcd/server/v3",),
    binaries=(("etcd", ("--version",)),),
    sibling_version=lambda version: version,  # api, client, pkg: released together
    ldflags=lambda version: [],  # the version is a constant in go.etcd.io/etcd/api/v3/version
)
TOOLS = (KUBERNETES, ETCD)


@dataclass(frozen=True, slots=True, kw_only=True)
class Binaries:
    kube_apiserver: Path
    kubectl: Path
    etcd: Path
    kubernetes_version: str
    etcd_version: str


def cache_root() -> Path:
    configured = os.environ.get("HOTPLUG_GUARD_KUBE_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hotplug-guard"


def located() -> Binaries:
    """Where the binaries are once built (they may not exist yet)."""
    kube, etcd = KUBERNETES.directory(), ETCD.directory()
    return Binaries(
        kube_apiserver=kube / "kube-apiserver",
        kubectl=kube / "kubectl",
        etcd=etcd / "etcd",
        kubernetes_version=KUBERNETES.version(),
        etcd_version=ETCD.version(),
    )


def missing() -> list[str]:
    """The tools whose cached build is absent or stale; empty when all can be used."""
    return [tool.name for tool in TOOLS if not _fresh(tool)]


def ensure(report: Callable[[str], None] = print) -> Binaries:
    """Build what is missing or stale, under a lock so that parallel runs build once."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / ".lock"):
        for tool in TOOLS:
            if _fresh(tool):
                report(f"{', '.join(tool.names())} {tool.version()}: cached in {tool.directory()}")
            else:
                build(tool, report)
    return located()


def build(tool: Tool, report: Callable[[str], None]) -> None:
    """Build `tool` into a scratch directory, check it, then move it into the cache."""
    version = tool.version()
    target = tool.directory()
    label = f"{', '.join(tool.names())} {version}"
    report(f"{label}: building from Go modules into {target} (a first build takes minutes)")
    env = gomodules.go_env()
    started = time.monotonic()
    gomodules.run(["go", "mod", "download"], cwd=tool.wrapper, env=env)
    report(f"{label}: modules downloaded in {_minutes(time.monotonic() - started)}")
    listed = gomodules.run(["go", "list", "-deps", *tool.packages], cwd=tool.wrapper, env=env)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
    try:
        ldflags = " ".join(["-s", "-w", *tool.ldflags(version)])
        # one package: name the binary (etcd's main package would be named `server`)
        output = f"{staging}/" if len(tool.packages) > 1 else str(staging / tool.names()[0])
        command = ["go", "build", *BUILD_FLAGS, "-v", "-ldflags", ldflags, "-o", output]
        _compile(
            [*command, *tool.packages],
            cwd=tool.wrapper,
            env=env,
            label=label,
            total=len(listed.split()),
            report=report,
        )
        _verify(tool, staging, version, env)
        (staging / STAMP).write_text(_wrapper_digest(tool))
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report(f"{label}: built in {_minutes(time.monotonic() - started)}")


def _compile(
    command: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    label: str,
    total: int,
    report: Callable[[str], None],
) -> None:
    """Run `go build -v` (one line per compiled package), reporting the count now and then."""
    started = last = time.monotonic()
    compiled = 0
    tail: list[str] = []
    with subprocess.Popen(
        command, cwd=cwd, env=env, stderr=subprocess.PIPE, text=True, errors="replace"
    ) as process:
        assert process.stderr is not None
        for line in process.stderr:
            tail = [*tail[-40:], line.rstrip()]
            if not line.startswith(("#", " ", "\t")):
                compiled += 1
            now = time.monotonic()
            if now - last >= PROGRESS_SECONDS:
                last = now
                elapsed = _minutes(now - started)
                report(f"{label}: {compiled} of at most {total} packages compiled, {elapsed}")
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n" + "\n".join(tail))


def _verify(tool: Tool, directory: Path, version: str, env: dict[str, str]) -> None:
    """Each binary runs and reports the version it was built as."""
    for binary, arguments in tool.binaries:
        printed = gomodules.run([str(directory / binary), *arguments], cwd=directory, env=env)
        if version.removeprefix("v") not in printed:
            raise RuntimeError(
                f"{binary} {' '.join(arguments)} does not report {version}: {printed}"
            )


def _fresh(tool: Tool) -> bool:
    directory = tool.directory()
    stamp = directory / STAMP
    return (
        stamp.is_file()
        and stamp.read_text() == _wrapper_digest(tool)
        and all(os.access(directory / binary, os.X_OK) for binary in tool.names())
    )


def _wrapper_digest(tool: Tool) -> str:
    """What the cached build was made from: the wrapper module and the link flags."""
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        digest.update((tool.wrapper / name).read_bytes())
    digest.update(" ".join(tool.ldflags(tool.version())).encode())
    return digest.hexdigest()


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.kube.binaries", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command")
    pinning = commands.add_parser("pin", help="rewrite a wrapper module for an upstream version")
    pinning.add_argument("tool", choices=[tool.name for tool in TOOLS])
    pinning.add_argument("version")
    arguments = parser.parse_args(argv)
    try:
        if arguments.command == "pin":
            tool = next(t for t in TOOLS if t.name == arguments.tool)
            gomodules.pin(
                tool.wrapper,
                module=tool.module,
                version=arguments.version,
                sibling_version=tool.sibling_version,
                tools=tool.packages,
            )
            return 0
        binaries = ensure(lambda line: print(line, file=sys.stderr, flush=True))
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(binaries.kube_apiserver.parent)
    print(binaries.etcd.parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
