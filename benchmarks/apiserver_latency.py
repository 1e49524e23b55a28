"""Latency of one VM update through the real kube-apiserver: what admission adds to it.

The same update (a user's hot plug of a bridge NIC into a running VM, sent as a
server-side dry run so that it can be repeated unchanged) goes through a real
kube-apiserver + etcd with KubeVirt's CRDs, from one keep-alive client, under
five configurations, each in a namespace of its own so that all are registered
at once and the rounds alternate between them:

- none: no admission webhook or policy, the apiserver's own latency;
- floor: both webhooks as the chart registers them, answered by the load benchmark's
  floor app (`benchmarks.webhook_load`: the same gunicorn and TLS serving a Flask
  handler that decodes the review and allows it): what any Python webhook pair costs
  here, before it does anything;
- webhooks: both hotplug-guard webhooks as the chart registers them, pure-Python engine;
- compiled: the same compiled by mypyc as the image ships it (a compiled copy of the tree);
- vap: a ValidatingAdmissionPolicy (CEL, evaluated inside kube-apiserver) with
  the stateless subset of the rules (added interfaces need the bridge binding and
  model virtio; at most 4 interfaces that are not absent).

It prints p50 and p99 of each, what each adds to "none" in ms and as a ratio, the
target (webhooks: p99 <= 2x the apiserver's own p99), and hotplug-guard's own share:
what its webhooks add beyond the floor's, and the mean review time inside `serve`.

Run: `python -m benchmarks.apiserver_latency [--updates 2000] [--rounds 10]`
after `python -m tests.kube.binaries`. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from benchmarks.webhook_load import running, wait_ready
from tests.kube import controlplane, kubevirt, release
from tests.kube.controlplane import ALICE, ControlPlane

REPO = Path(__file__).resolve().parents[1]
TARGET_P99 = 2.0
CONFIGURATIONS = ("none", "floor", "webhooks", "compiled", "vap")
REVIEWING = ("webhooks", "compiled")
"""The configurations where hotplug-guard reviews: they deny an e1000 hot plug."""
VAP_LABEL = "hotplug-guard.bench/policy"


def plug(**interface: Any) -> str:
    """The JSON patch of a hot plug of bridge NIC `nic1` on `net1`, with more `interface` fields."""
    return json.dumps(
        [
            {
                "op": "add",
                "path": "/spec/template/spec/domain/devices/interfaces/-",
                "value": {"name": "nic1", "bridge": {}, **interface},
            },
            {
                "op": "add",
                "path": "/spec/template/spec/networks/-",
                "value": {"name": "nic1", "multus": {"networkName": "net1"}},
            },
        ]
    )


# The stateless subset, in CEL. What it cannot express is printed with the results.
_INTERFACES = "spec.template.spec.domain.devices.interfaces"


def _present(var: str) -> str:
    path, checks = var, []
    for step in _INTERFACES.split("."):
        path = f"{path}.{step}"
        checks.append(f"has({path})")
    return f"({' && '.join(checks)} ? {var}.{_INTERFACES} : [])"


POLICY: dict[str, Any] = {
    "apiVersion": "admissionregistration.k8s.io/v1",
    "kind": "ValidatingAdmissionPolicy",
    "metadata": {"name": "hotplug-stateless"},
    "spec": {
        "failurePolicy": "Fail",
        "matchConstraints": {
            "resourceRules": [
                {
                    "apiGroups": ["kubevirt.io"],
                    "apiVersions": ["v1"],
                    "operations": ["UPDATE"],
                    "resources": ["virtualmachines"],
                }
            ]
        },
        "variables": [
            {"name": "before", "expression": f"{_present('oldObject')}.map(i, i.name)"},
            {
                "name": "added",
                "expression": f"{_present('object')}.filter(i, !(i.name in variables.before))",
            },
        ],
        "validations": [
            {
                "expression": "variables.added.all(i, has(i.bridge))",
                "message": "hot plugged interfaces must use the bridge binding",
            },
            {
                "expression": "variables.added.all(i, !has(i.model) || i.model == 'virtio')",
                "message": "hot plugged interfaces must use model virtio",
            },
            {
                "expression": f"{_present('object')}"
                ".filter(i, !has(i.state) || i.state != 'absent').size() <= 4",
                "message": "at most 4 interfaces can be attached (KubeVirt reserves 4 ports)",
            },
        ],
    },
}
BINDING: dict[str, Any] = {
    "apiVersion": "admissionregistration.k8s.io/v1",
    "kind": "ValidatingAdmissionPolicyBinding",
    "metadata": {"name": "hotplug-stateless"},
    "spec": {
        "policyName": "hotplug-stateless",
        "validationActions": ["Deny"],
        "matchResources": {"namespaceSelector": {"matchLabels": {VAP_LABEL: "on"}}},
    },
}
CANNOT_EXPRESS = (
    "whether the VM is running (the VMI is another object): it would judge stopped VMs too",
    "the VMI: LiveMigratable, pod interface naming (unplug), interfaces already absent there",
    "NetworkAttachmentDefinition existence, migrations in progress, the KubeVirt CR",
    "interfaces the VM booted with (the slot rule's max(4, booted) and root-complex ledgers)",
    "mutation: a deleted interface kept as state: absent, the hotplug-guard.io/request "
    "annotation a controller acts on (a MutatingAdmissionPolicy could set fields, not judge)",
    "which hotplug-guard.io/ annotation values the webhook itself would compute",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=2000, help="measured per configuration")
    parser.add_argument("--rounds", type=int, default=10, help="alternations of the configurations")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured, per configuration")
    args = parser.parse_args(argv)
    per_round = max(1, args.updates // args.rounds)
    with tempfile.TemporaryDirectory(prefix="hotplug-guard-latency-") as scratch:
        tmp = Path(scratch)
        print("compiling a copy of the tree with mypyc ...", file=sys.stderr, flush=True)
        compiled_tree = compiled_copy(tmp / "compiled")
        with (
            controlplane.running(tmp / "control-plane") as plane,
            configured(plane, tmp, compiled_tree) as (targets, compiled),
        ):
            reviews, seconds = _review_seconds(compiled)
            latencies = measure(plane, targets, args, per_round)
            after = _review_seconds(compiled)
            review_ms = (after[1] - seconds) * 1000 / max(after[0] - reviews, 1)
            version = plane.tools.kubernetes_version
    report(latencies, version, review_ms=review_ms)
    return 0


def _review_seconds(serving: release.Release) -> tuple[float, float]:
    """Reviews `serve` answered so far, and the seconds it spent in them (its own histogram)."""
    return (
        serving.metric("hotplug_guard_admission_duration_seconds_count"),
        serving.metric("hotplug_guard_admission_duration_seconds_sum"),
    )


@contextlib.contextmanager
def configured(
    plane: ControlPlane, tmp: Path, compiled_tree: Path
) -> Iterator[tuple[dict[str, str], release.Release]]:
    """The configurations, each with the namespace of its running VM; and the compiled
    release, whose `serve` says how long its reviews took."""
    plane.install_crds()
    with contextlib.ExitStack() as stack:
        pure = stack.enter_context(release.deployed(plane, tmp / "pure"))
        compiled = stack.enter_context(
            release.deployed(
                plane, tmp / "compiled-release", env={"PYTHONPATH": str(compiled_tree)}
            )
        )
        floor = stack.enter_context(release.deployed(plane, tmp / "floor-release"))
        plane.create(POLICY)
        plane.create(BINDING)
        targets = {
            "none": plane.create_namespace("none"),
            "floor": floor.namespace_for_tests("floor"),
            "webhooks": pure.namespace_for_tests("webhooks"),
            "compiled": compiled.namespace_for_tests("compiled"),
            "vap": plane.create_namespace("vap", labels={VAP_LABEL: "on"}),
        }
        for namespace in targets.values():
            plane.create(kubevirt.network_attachment_definition("net1", namespace))
            plane.create(kubevirt.virtual_machine("fedora", namespace), user=ALICE)
            kubevirt.start(plane, namespace, "fedora")
        stack.enter_context(floor_serving(plane, floor, targets["floor"]))
        yield targets, compiled


@contextlib.contextmanager
def floor_serving(plane: ControlPlane, floor: release.Release, namespace: str) -> Iterator[None]:
    """The floor app in place of `floor`'s `serve`: same port, certificate and sizing.

    The chart's validating webhook fails closed, so the update is refused while nothing
    answers on the port: proof that kube-apiserver calls the floor once it runs.
    """
    floor.stop_server()
    with _session(plane) as session:
        url = _vm_url(plane, namespace)
        if session.patch(url, data=plug(), timeout=30).status_code == 200:
            raise SystemExit("floor: the update was allowed with no webhook server running")
        sizing = [a for a in floor.command("webhook") if a.startswith(("--workers", "--threads"))]
        tls = floor.volume("tls")
        command = [
            sys.executable,
            "-m",
            "benchmarks.webhook_load",
            *sizing,
            "--floor-server",
            f"127.0.0.1:{floor.port}",
            "--cert-dir",
            str(tls),
        ]
        with running(command, floor.directory):
            wait_ready(floor.port, tls / "ca.crt")
            _patch(session, url, plug(), "floor")
            yield


@contextlib.contextmanager
def _session(plane: ControlPlane) -> Iterator[requests.Session]:
    """A keep-alive session of the ordinary user `alice`, sending JSON patches."""
    with requests.Session() as session:
        session.trust_env = False
        alice = plane.client_certificate(ALICE)
        session.cert = (str(alice.cert), str(alice.key))
        session.verify = str(plane.ca_file)
        session.headers["Content-Type"] = "application/json-patch+json"
        yield session


def _vm_url(plane: ControlPlane, namespace: str) -> str:
    path = f"/apis/kubevirt.io/v1/namespaces/{namespace}/virtualmachines/fedora"
    return f"{plane.url}{path}?dryRun=All"


def measure(
    plane: ControlPlane, targets: dict[str, str], args: argparse.Namespace, per_round: int
) -> dict[str, list[float]]:
    """Per configuration, the latency (ms) of each measured update; rounds alternate them."""
    with _session(plane) as session:
        body = plug()
        urls = {name: _vm_url(plane, namespace) for name, namespace in targets.items()}
        e1000 = plug(model="e1000")
        for name, url in urls.items():
            # each configuration allows the update and is really in force: those that
            # review deny an e1000 (the floor was proven called as it started)
            for _ in range(args.warmup):
                _patch(session, url, body, name)
            denied = session.patch(url, data=e1000, timeout=30).status_code != 200
            if denied != (name in (*REVIEWING, "vap")):
                raise SystemExit(f"{name}: an e1000 hot plug was {'' if denied else 'not '}denied")
        latencies: dict[str, list[float]] = {name: [] for name in urls}
        for _ in range(args.rounds):
            for name, url in urls.items():
                for _ in range(per_round):
                    started = time.perf_counter()
                    _patch(session, url, body, name)
                    latencies[name].append((time.perf_counter() - started) * 1000)
    return latencies


def _patch(session: requests.Session, url: str, body: str, name: str) -> None:
    answer = session.patch(url, data=body, timeout=30)
    if answer.status_code != 200:
        raise SystemExit(f"{name}: the update was answered {answer.status_code}: {answer.text}")


def compiled_copy(directory: Path) -> Path:
    """The tracked tree copied to `directory`, compiled by mypyc as the image is
    (scripts/build-compiled: profile-guided)."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        source = REPO / name.decode()
        if source.is_file():
            target = directory / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    python = str(Path(sys.executable).parent)  # the script runs `python`: this one
    built = subprocess.run(
        [str(directory / "scripts" / "build-compiled")],
        cwd=directory,
        env={**os.environ, "PATH": f"{python}{os.pathsep}{os.environ.get('PATH', '')}"},
        capture_output=True,
        text=True,
        check=False,
    )
    if built.returncode != 0:
        raise SystemExit(f"the compiled build failed:\n{built.stdout}{built.stderr}")
    return directory


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(latencies: dict[str, list[float]], version: str, *, review_ms: float) -> None:
    count = min(len(v) for v in latencies.values())
    print(
        f"PATCH of a running VM (hot plug of a bridge NIC, dryRun=All) as an ordinary user, "
        f"kube-apiserver {version}, one keep-alive client, {count} updates per configuration, "
        f"alternated"
    )
    base50 = statistics.median(latencies["none"])
    base99 = percentile(latencies["none"], 0.99)
    columns = ("p50 ms", "p99 ms", "p50 added", "p99 added", "p50 x", "p99 x")
    print(f"{'':10}" + "".join(f"{column:>11}" for column in columns))
    for name, values in latencies.items():
        p50, p99 = statistics.median(values), percentile(values, 0.99)
        print(
            f"{name:10}{p50:>11.2f}{p99:>11.2f}{p50 - base50:>+11.2f}{p99 - base99:>+11.2f}"
            f"{p50 / base50:>11.2f}{p99 / base99:>11.2f}"
        )
    for name in REVIEWING:
        ratio = percentile(latencies[name], 0.99) / base99
        verdict = "met" if ratio <= TARGET_P99 else "missed"
        print(f"{name}: p99 {ratio:.2f}x the apiserver's own (target <= {TARGET_P99}x: {verdict})")
    floor50, floor99 = statistics.median(latencies["floor"]), percentile(latencies["floor"], 0.99)
    for name in REVIEWING:
        p50, p99 = statistics.median(latencies[name]), percentile(latencies[name], 0.99)
        print(
            f"{name}: beyond the floor's two calls, {p50 - floor50:+.2f} ms at p50 and "
            f"{p99 - floor99:+.2f} ms at p99 ({p50 / floor50:.2f}x / {p99 / floor99:.2f}x)"
        )
    print(
        f"compiled: a review inside serve took {review_ms:.2f} ms on average (its own "
        f"histogram); kube-apiserver makes two calls per update"
    )
    print("what the ValidatingAdmissionPolicy cannot express:")
    for item in CANNOT_EXPRESS:
        print(f"  - {item}")


if __name__ == "__main__":
    sys.exit(main())
