"""The control plane's own pieces: wrapper modules, binaries, CRDs, the fixture's users."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.kube import binaries, crds, gomodules
from tests.kube.controlplane import ADMIN, ALICE, ControlPlane

WRAPPERS = [
    (binaries.KUBERNETES.wrapper, binaries.KUBERNETES.module, binaries.KUBERNETES.sibling_version),
    (binaries.ETCD.wrapper, binaries.ETCD.module, binaries.ETCD.sibling_version),
    (crds.GENERATOR, crds.KUBEVIRT_MODULE, lambda version: version),
]


def replaces_of(wrapper: Path) -> list[str]:
    """The wrapper's replace directives, as `go mod edit -replace` arguments."""
    edit = json.loads(
        gomodules.run(["go", "mod", "edit", "-json"], cwd=wrapper, env=gomodules.go_env())
    )
    found = []
    for replace in edit.get("Replace") or ():
        old, new = replace["Old"], replace["New"]
        source = f"{old['Path']}@{old['Version']}" if old.get("Version") else old["Path"]
        found.append(f"{source}={new['Path']}@{new['Version']}")
    return sorted(found)


@pytest.mark.parametrize(
    ("wrapper", "module", "sibling"), WRAPPERS, ids=["kubernetes", "etcd", "kubevirt-crds"]
)
def test_each_wrapper_replaces_what_its_upstream_go_mod_replaces(
    wrapper: Path, module: str, sibling: Callable[[str], str]
) -> None:
    """Every local-path sibling of the pinned upstream version, and nothing else."""
    version = gomodules.required_version(wrapper, module)
    upstream = gomodules.upstream_go_mod(module, version, gomodules.go_env())
    expected = gomodules.wrapper_replaces(upstream, version, sibling)
    assert replaces_of(wrapper) == expected
    assert (wrapper / "go.sum").is_file()


def test_the_kubernetes_wrapper_replaces_all_31_staging_modules() -> None:
    staging = [r for r in replaces_of(binaries.KUBERNETES.wrapper) if r.startswith("k8s.io/")]
    assert len(staging) == 31
    assert "k8s.io/api=k8s.io/api@v0.35.8" in staging


def test_local_replaces_become_published_versions_and_guards_are_dropped() -> None:
    go_mod = """module go.etcd.io/etcd/server/v3

replace (
\tgo.etcd.io/etcd/api/v3 => ../api
\tgithub.com/x/y v1.0.0 => github.com/x/y v1.0.1 // a fix
)

replace go.etcd.io/etcd => ./FORBIDDEN_DEPENDENCY
"""
    assert gomodules.wrapper_replaces(go_mod, "v3.6.16", lambda v: v) == [
        "github.com/x/y@v1.0.0=github.com/x/y@v1.0.1",
        "go.etcd.io/etcd/api/v3=go.etcd.io/etcd/api/v3@v3.6.16",
    ]


def test_the_built_binaries_report_their_pinned_versions() -> None:
    found = binaries.located()
    for binary, arguments, version in (
        (found.kube_apiserver, ["--version"], found.kubernetes_version),
        (found.kubectl, ["version", "--client", "-o", "json"], found.kubernetes_version),
        (found.etcd, ["--version"], found.etcd_version),
    ):
        done = subprocess.run([binary, *arguments], capture_output=True, text=True, check=True)
        assert version.removeprefix("v") in done.stdout


def test_kubevirts_crds_are_declared_as_kubevirt_declares_them() -> None:
    definitions = {d["spec"]["names"]["kind"]: d["spec"] for d in crds.load()}
    assert set(definitions) == {
        "VirtualMachine",
        "VirtualMachineInstance",
        "VirtualMachineInstanceMigration",
        "KubeVirt",
        "NetworkAttachmentDefinition",
    }
    short = {kind: spec["names"].get("shortNames", [])[:1] for kind, spec in definitions.items()}
    assert short["VirtualMachine"] == ["vm"]
    assert short["VirtualMachineInstanceMigration"] == ["vmim"]
    for kind, spec in definitions.items():
        assert spec["scope"] == "Namespaced"
        [storage] = [v for v in spec["versions"] if v.get("storage")]
        assert storage["name"] == "v1"
        assert "openAPIV3Schema" in storage["schema"]
        has_status = "status" in (storage.get("subresources") or {})
        # KubeVirt's VMIs carry their status in the main resource
        assert has_status == (kind not in ("VirtualMachineInstance", "NetworkAttachmentDefinition"))


def test_users_are_who_their_certificates_and_tokens_say(control_plane: ControlPlane) -> None:
    namespace = control_plane.create_namespace("whoami")
    token = control_plane.token_kubeconfig(namespace, "robot")
    cases: tuple[tuple[str, dict[str, Any]], ...] = (
        ("admin", {"user": ADMIN}),
        ("alice", {"user": ALICE}),
        (f"system:serviceaccount:{namespace}:robot", {"kubeconfig": token}),
    )
    for expected, options in cases:
        done = control_plane.kubectl("auth", "whoami", "-o", "json", **options)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["status"]["userInfo"]["username"] == expected


def test_alice_may_edit_vms_in_her_namespaces_and_nothing_else(
    control_plane: ControlPlane,
) -> None:
    control_plane.install_crds()
    namespace = control_plane.create_namespace("rbac")
    allowed = ("update", "virtualmachines.kubevirt.io")
    for verb, resource, answer in (
        (*allowed, "yes"),
        ("update", "virtualmachineinstances.kubevirt.io", "no"),
        ("get", "secrets", "no"),
    ):
        done = control_plane.kubectl("auth", "can-i", verb, resource, "-n", namespace)
        assert done.stdout.strip() == answer, (verb, resource, done.stderr)
    elsewhere = control_plane.kubectl("auth", "can-i", *allowed, "-n", "default")
    assert elsewhere.stdout.strip() == "no"
