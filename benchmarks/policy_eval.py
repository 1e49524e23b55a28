"""Microseconds per policy evaluation for 2-, 4- and 256-NIC VM updates.

Each scenario hot plugs one bridge interface into a running VM (VMI and NAD
context known), the request hotplug-guard sees on every `kubectl edit`. As a
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
from collections.abc import Callable
from functools import partial
from typing import Any

from policy import Context, Operation, Review, UserInfo, evaluate, parse_config

CONFIG = parse_config({"hotplugSlots": 300, "pciSlots": 1000})


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
        "metadata": {"name": "vm", "uid": "vmi-uid"},
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
    return review, Context(vmi=vmi, nads=nads), body


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


def measure(
    fn: Callable[[], object], baseline: Callable[[], object], *, repeat: int, rounds: int
) -> tuple[float, float, float]:
    """p50 and p90 of `fn` and p50 of `baseline`, alternating the two over `rounds`.

    Alternating keeps both exposed to the same machine noise; the result is the
    median over rounds of each round's percentile.
    """
    p50s, p90s, bases = [], [], []
    for _ in range(rounds):
        runs = sorted(samples_us(fn, repeat))
        p50s.append(statistics.median(runs))
        p90s.append(runs[int(len(runs) * 0.9)])
        bases.append(statistics.median(samples_us(baseline, repeat)))
    return statistics.median(p50s), statistics.median(p90s), statistics.median(bases)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000, help="timings per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"{'scenario':<10} {'evaluate p50':>13} {'p90':>9} {'json.loads p50':>15} {'ratio':>7}")
    results = {}
    for nics in (2, 4, 256):
        review, context, body = scenario(nics)
        verdict = evaluate(review, context, CONFIG)
        if not verdict.allowed or not verdict.patch:
            raise SystemExit(f"scenario {nics}-NIC is not an allowed hot plug: {verdict}")
        repeat = args.repeat if nics < 100 else max(100, args.repeat // 20)
        p50, p90, base = measure(
            partial(evaluate, review, context, CONFIG),
            partial(json.loads, body),
            repeat=repeat,
            rounds=args.rounds,
        )
        results[nics] = p50
        print(
            f"{nics:>3}-NIC    {p50:>10.1f} µs {p90:>6.1f} µs {base:>12.1f} µs {p50 / base:>6.2f}x"
        )
    per_nic_small = (results[4] - results[2]) / 2
    per_nic_large = (results[256] - results[4]) / 252
    print(f"growth per NIC: {per_nic_small:.2f} µs (2→4), {per_nic_large:.2f} µs (4→256)")


if __name__ == "__main__":
    main()
