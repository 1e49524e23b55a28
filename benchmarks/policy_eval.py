"""Microseconds per policy evaluation for 2-, 4- and 256-NIC VM updates.

Each scenario hot plugs one bridge interface into a running VM (VMI, NAD and
KubeVirt CR context known, KubeVirt v1.9.0), the request hotplug-guard sees on
every `kubectl edit`. KubeVirt has no free port for a 256th interface, so
hotplug-slots only warns there: the scenario measures the same work. As a
baseline measured in the same run, the script times `json.loads` of the same
AdmissionReview body: the decode every webhook pays before any policy runs.
Run: `python -m benchmarks.policy_eval [--repeat N] [--rounds N]`. Pin to one core with
`taskset -c 0` for steadier numbers.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

from benchmarks import engine_build
from policy import Context, Operation, Review, UserInfo, evaluate, parse_config

CONFIG = parse_config({"rules": {"hotplug-slots": "warn"}, "pciSlots": 1000})
KUBEVIRT = {
    "apiVersion": "kubevirt.io/v1",
    "kind": "KubeVirt",
    "metadata": {"name": "kubevirt", "namespace": "kubevirt"},
    "spec": {"workloadUpdateStrategy": {"workloadUpdateMethods": ["LiveMigrate"]}},
    "status": {"observedKubeVirtVersion": "v1.9.0"},
}
NICS = (2, 4, 256)


def vm(nics: int) -> dict[str, Any]:
    """A running VM with a masquerade pod interface and `nics - 1` bridge secondaries."""
    interfaces: list[dict[str, Any]] = [{"name": "default", "masquerade": {}}]
    networks: list[dict[str, Any]] = [{"name": "default", "pod": {}}]
    for index in range(1, nics):
        interfaces.append({"name": f"nic{index}", "bridge": {}, "model": "virtio"})
        networks.append({"name": f"nic{index}", "multus": {"networkName": f"net{index}"}})
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": "vm", "namespace": "default", "uid": "11111111-2222"},
        "spec": {
            "runStrategy": "Always",
            "template": {
                "spec": {
                    "domain": {
                        "devices": {
                            "disks": [{"name": "root", "disk": {"bus": "virtio"}}],
                            "interfaces": interfaces,
                            "rng": {},
                        },
                        "resources": {"requests": {"memory": "1Gi"}},
                    },
                    "networks": networks,
                }
            },
        },
        "status": {"printableStatus": "Running"},
    }


def scenario(nics: int) -> tuple[Review, Context, str]:
    """An update that plugs the `nics`-th interface, its context and its request body."""
    old = vm(nics - 1)
    new = copy.deepcopy(old)
    spec = new["spec"]["template"]["spec"]
    spec["domain"]["devices"]["interfaces"].append({"name": "hot", "bridge": {}})
    spec["networks"].append({"name": "hot", "multus": {"networkName": "hot-net"}})
    vmi = {
        "metadata": {
            "name": "vm",
            "uid": "vmi-uid",
            "annotations": {"kubevirt.io/pci-topology-version": "v3"},
        },
        "spec": copy.deepcopy(old["spec"]["template"]["spec"]),
        "status": {
            "phase": "Running",
            "conditions": [{"type": "LiveMigratable", "status": "True"}],
            "interfaces": [
                {"name": i["name"], "podInterfaceName": f"pod{i['name']}", "infoSource": "domain"}
                for i in old["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"]
            ],
        },
    }
    nads = frozenset({"default/hot-net"} | {f"default/net{i}" for i in range(nics)})
    review = Review(
        operation=Operation.UPDATE,
        new=new,
        old=old,
        user=UserInfo(username="alice", groups=("system:authenticated",)),
        namespace="default",
    )
    body = json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {"uid": "u", "operation": "UPDATE", "object": new, "oldObject": old},
        }
    )
    return review, Context(vmi=vmi, nads=nads, kubevirt=KUBEVIRT), body


def samples_us(fn: Callable[[], object], repeat: int) -> list[float]:
    """`repeat` timings of `fn` in microseconds, after a warm-up."""
    for _ in range(min(repeat, 200)):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1000)
    return samples


@dataclass(frozen=True, slots=True)
class Round:
    """One round of one scenario: evaluate p50 and p90, json.loads p50 (µs)."""

    p50: float
    p90: float
    base: float


def measure_round(
    fn: Callable[[], object], baseline: Callable[[], object], *, repeat: int
) -> Round:
    runs = sorted(samples_us(fn, repeat))
    base = statistics.median(samples_us(baseline, repeat))
    return Round(p50=statistics.median(runs), p90=runs[int(len(runs) * 0.9)], base=base)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000, help="timings per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    prepared = {}
    for nics in NICS:
        review, context, body = scenario(nics)
        verdict = evaluate(review, context, CONFIG)
        if not verdict.allowed or not verdict.patch:
            raise SystemExit(f"scenario {nics}-NIC is not an allowed hot plug: {verdict}")
        prepared[nics] = (
            partial(evaluate, review, context, CONFIG),
            partial(json.loads, body),
            args.repeat if nics < 100 else max(100, args.repeat // 20),
        )
    # Every round measures every scenario, evaluate alternated with its baseline, so
    # a machine whose speed drifts affects all scenarios alike; results are medians
    # over rounds, and growth is computed within each round.
    rounds: dict[int, list[Round]] = {nics: [] for nics in NICS}
    for _ in range(args.rounds):
        for nics, (fn, baseline, repeat) in prepared.items():
            rounds[nics].append(measure_round(fn, baseline, repeat=repeat))

    def median(values: Iterable[float]) -> float:
        return statistics.median(list(values))

    print(f"policy engine: {engine_build()}")
    print(f"{'scenario':<10} {'evaluate p50':>13} {'p90':>9} {'json.loads p50':>15} {'ratio':>7}")
    for nics, results in rounds.items():
        p50 = median(r.p50 for r in results)
        p90 = median(r.p90 for r in results)
        base = median(r.base for r in results)
        ratio = median(r.p50 / r.base for r in results)
        print(f"{nics:>3}-NIC    {p50:>10.1f} µs {p90:>6.1f} µs {base:>12.1f} µs {ratio:>6.2f}x")
    small = median((b.p50 - a.p50) / 2 for a, b in zip(rounds[2], rounds[4], strict=True))
    large = median((b.p50 - a.p50) / 252 for a, b in zip(rounds[4], rounds[256], strict=True))
    print(f"growth per NIC: {small:.2f} µs (2→4), {large:.2f} µs (4→256)")


if __name__ == "__main__":
    main()
