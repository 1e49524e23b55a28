"""Evaluation time of oversized VMs, as ratios to `json.loads` of the same review body.

Two UPDATE reviews of a running VM, both under kube-apiserver's 3 MiB request limit:
30,000 hot plugged interfaces (and networks), and 20,000 networks deleted from
20,000 interfaces. KubeVirt accepts 256 of each; the engine must not spend
seconds on either.

Run: `python -m benchmarks.oversized [--repeat 3]`, from this tree or with another
tree first on PYTHONPATH (only `policy.evaluate`, `Review` and `Mode` are used).
Not a test: numbers depend on the machine; the ratios are the meaningful part.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from policy import Mode, Operation, Review, UserInfo, evaluate

Object = dict[str, Any]


def running_vm() -> Object:
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {
            "name": "vm",
            "namespace": "default",
            "uid": "6f1c2a4e-0d55-4a8e-9d42-5a9f0b1c7e10",
        },
        "spec": {
            "runStrategy": "Always",
            "template": {
                "spec": {
                    "domain": {"devices": {"interfaces": [{"name": "default", "masquerade": {}}]}},
                    "networks": [{"name": "default", "pod": {}}],
                }
            },
        },
        "status": {"printableStatus": "Running"},
    }


def with_secondaries(vm: Object, count: int) -> Object:
    result = copy.deepcopy(vm)
    spec = result["spec"]["template"]["spec"]
    for index in range(count):
        spec["domain"]["devices"]["interfaces"].append({"name": f"nic{index}", "bridge": {}})
        spec["networks"].append({"name": f"nic{index}", "multus": {"networkName": "net"}})
    return result


def plugs() -> tuple[Object, Object]:
    old = running_vm()
    return old, with_secondaries(old, 30_000)


def network_removals() -> tuple[Object, Object]:
    old = with_secondaries(running_vm(), 20_000)
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["networks"] = new["spec"]["template"]["spec"]["networks"][:1]
    return old, new


def best_of(repeat: int, work: Callable[..., object], *args: Any, **kwargs: Any) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work(*args, **kwargs)
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    for label, (old, new) in (
        ("30,000 plugs", plugs()),
        ("20,000 network removals", network_removals()),
    ):
        body = json.dumps({"request": {"object": new, "oldObject": old}}).encode()
        parse = best_of(args.repeat, json.loads, body)
        review = Review(
            operation=Operation.UPDATE,
            new=new,
            old=old,
            user=UserInfo(username="jane"),
            namespace="default",
        )
        for mode in (Mode.VALIDATE, Mode.MUTATE):
            seconds = best_of(args.repeat, evaluate, review, mode=mode)
            verdict = evaluate(review, mode=mode)
            size = len(body) / 2**20
            print(
                f"{label:24} {size:4.1f} MiB  {mode.value:8}  {seconds * 1000:10.3f} ms "
                f"= {seconds / parse:9.5f}x json.loads ({parse * 1000:.0f} ms)  "
                f"allowed={verdict.allowed} causes={len(verdict.causes)}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
