"""Draining N hot plug requests made at once: the controller against the real kube-apiserver.

For each size (default 500 and 5,000): N running VMs (the KubeVirt simulator runs
them) each get a signed request to plug NIC `nic1`, written as fast as the API
server takes them. The controller, as its own process (`hotplug-guard controller`,
grace period 0 so that only the drain is measured), completes every one with one
migration, at most `--parallel` at a time, and the simulator moves each migration
through its phases in `--migration-seconds`. Printed per size:

- the time from the first request written to the last one reported Succeeded, and
  its ratio to the floor `ceil(N / parallel) x migration time`;
- API calls of the controller per completed request, by verb and resource (the
  writes: status patches and migration creates; Events; and its reads, which are
  lists and watches shared by all requests);
- the controller's RSS with every VM and VMI cached before the requests, and its
  peak (VmHWM) by the end.

With a baseline (`--baseline`, on by default for sizes up to 1,000) the same drain
is also done by KubeVirt's own workload updater as the simulator plays it
(LiveMigrate in the KubeVirt CR; the controller only observes), the rounds
alternating, in fresh namespaces each.

Run: `python -m benchmarks.controller_drain [--sizes 500 5000] [--parallel 5]
[--migration-seconds 0.4]` after `python -m tests.kube.binaries`. Not a test:
numbers depend on the machine. The requests are signed here with the key the
controller reads (the webhook is not in the path), and the controller runs as the
admin: RBAC costs nothing measurable.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import copy
import math
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes.client
import requests
from prometheus_client.parser import text_string_to_metric_families

from controller.objects import format_seconds
from policy.annotations import (
    LEDGER,
    REQUEST,
    HotplugRequest,
    Ledger,
    render_ledger,
    render_request,
    request_id,
)
from policy.signing import sign_request
from tests.kube import controlplane, kubevirt
from tests.kube.controlplane import ADMIN, ControlPlane
from tests.kube.simulator import Simulator, Timing
from tests.webhook.service import REPO, free_port

GROUP, VERSION = "kubevirt.io", "v1"
WRITERS = 8
"""Threads writing objects (VMs, VMIs, requests) into the API server."""
CALLS = "hotplug_guard_controller_api_requests"
SUCCEEDED = "hotplug_guard_controller_requests"
Manifest = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Round:
    size: int
    driver: str  # "controller" or "kubevirt"
    seconds: float
    completed: int
    calls: dict[tuple[str, str], float]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--parallel", type=int, default=5, help="maxParallelMigrations")
    parser.add_argument("--migration-seconds", type=float, default=0.4)
    parser.add_argument("--rounds", type=int, default=2, help="alternations, with a baseline")
    parser.add_argument(
        "--baseline",
        choices=("auto", "yes", "no"),
        default="auto",
        help="also drain by KubeVirt's simulated workload updater (auto: sizes <= 1000)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hotplug-guard-drain-") as scratch:
        tmp = Path(scratch)
        with controlplane.running(tmp / "control-plane") as plane:
            kubevirt.install(plane)
            keys = tmp / "signing"
            keys.mkdir(mode=0o700)
            key = secrets.token_urlsafe(48)
            (keys / "key").write_text(key)
            (keys / "key").chmod(0o600)
            for size in args.sizes:
                baseline = args.baseline == "yes" or (args.baseline == "auto" and size <= 1000)
                drivers = ["controller", "kubevirt"] if baseline else ["controller"]
                rounds = args.rounds if baseline else 1
                results: list[Round] = []
                with controller_process(plane, tmp, keys, args.parallel, size) as controller:
                    for number in range(rounds):
                        for driver in drivers:
                            print(
                                f"size {size}, round {number + 1}/{rounds}: {driver} ...",
                                file=sys.stderr,
                                flush=True,
                            )
                            results.append(
                                drain(
                                    plane,
                                    controller,
                                    key.encode(),
                                    size=size,
                                    driver=driver,
                                    args=args,
                                )
                            )
                    report(size, results, controller, args)
    return 0


@dataclass
class ControllerProcess:
    popen: subprocess.Popen[bytes]
    port: int
    idle_rss_kib: int = 0

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = requests.get(f"http://127.0.0.1:{self.port}/metrics", timeout=10).text
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def counter(self, name: str, **labels: str) -> float:
        return sum(
            value
            for (sample, found), value in self.metrics().items()
            if sample == f"{name}_total" and labels.items() <= dict(found).items()
        )

    def calls(self) -> dict[tuple[str, str], float]:
        return {
            (dict(labels)["verb"], dict(labels)["resource"]): value
            for (sample, labels), value in self.metrics().items()
            if sample == f"{CALLS}_total"
        }

    def memory_kib(self, field: str) -> int:
        for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
        return 0


@contextmanager
def controller_process(
    plane: ControlPlane, tmp: Path, keys: Path, parallel: int, size: int
) -> Iterator[ControllerProcess]:
    """`hotplug-guard controller` as its own process, as the admin, grace period 0."""
    namespace = plane.create_namespace(f"drain-lease-{size}", developers=False)
    port = free_port()
    log = tmp / f"controller-{size}.log"
    with log.open("ab") as output:
        popen = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hotplug_guard",
                "controller",
                f"--kubeconfig={plane.kubeconfig(ADMIN)}",
                f"--signing-keys={keys}",
                f"--lease-namespace={namespace}",
                "--lease-name=drain",
                "--identity=drain",
                f"--probe-bind=127.0.0.1:{port}",
                "--grace-seconds=0",
                f"--max-parallel-migrations={parallel}",
                "--verify-seconds=120",
                "--apply-seconds=1800",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    process = ControllerProcess(popen=popen, port=port)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if (
                    process.counter("hotplug_guard_controller_leader") >= 0
                    and requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).ok
                ):
                    break
            except requests.RequestException:
                pass
            if popen.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the controller did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield process
    finally:
        popen.terminate()
        popen.wait(timeout=30)


def drain(
    plane: ControlPlane,
    controller: ControllerProcess,
    key: bytes,
    *,
    size: int,
    driver: str,
    args: argparse.Namespace,
) -> Round:
    namespace = plane.create_namespace(f"drain-{driver}-{size}", developers=False)
    simulator = Simulator(
        plane,
        namespaces=(namespace,),
        timing=Timing(step=args.migration_seconds / 2, grace=0.3),
        workers=4,
    ).start()
    try:
        api = kubernetes.client.CustomObjectsApi(plane.api_client())
        vms = parallel_map(lambda n: running_vm(plane, api, namespace, f"vm-{n:05d}"), range(size))
        settle(controller)
        controller.idle_rss_kib = max(controller.idle_rss_kib, controller.memory_kib("VmRSS"))
        kubevirt.workload_update_methods(plane, ["LiveMigrate"] if driver == "kubevirt" else [])
        before_calls = controller.calls()
        before = controller.counter(SUCCEEDED, phase="Succeeded")
        started = time.monotonic()
        parallel_map(lambda vm: request(api, vm, key), vms)
        floor = math.ceil(size / args.parallel) * args.migration_seconds
        deadline = started + 5 * floor + 600
        completed = 0
        while completed < size and time.monotonic() < deadline:
            time.sleep(0.5)
            completed = int(controller.counter(SUCCEEDED, phase="Succeeded") - before)
        seconds = time.monotonic() - started
        after = controller.calls()
        calls = {k: after.get(k, 0.0) - before_calls.get(k, 0.0) for k in after}
        if simulator.violations:
            print(f"double migrations: {simulator.violations[:5]}", file=sys.stderr)
        return Round(size=size, driver=driver, seconds=seconds, completed=completed, calls=calls)
    finally:
        kubevirt.workload_update_methods(plane, [])
        simulator.stop()


def parallel_map(work: Callable[[Any], Manifest | None], items: Any) -> list[Manifest]:
    with concurrent.futures.ThreadPoolExecutor(WRITERS) as pool:
        return [result for result in pool.map(work, items) if result is not None]


def running_vm(
    plane: ControlPlane, api: kubernetes.client.CustomObjectsApi, namespace: str, name: str
) -> Manifest:
    """A VM and its VMI as KubeVirt runs them (`kubevirt.start` without its extra read)."""
    vm: Any = api.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "virtualmachines", kubevirt.virtual_machine(name, namespace)
    )
    vmi: Any = api.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "virtualmachineinstances", kubevirt.instance_of(vm)
    )
    stored: Any = api.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        "virtualmachines",
        name,
        {"status": {"created": True, "ready": True, "printableStatus": "Running"}},
    )
    stored["vmi_uid"] = vmi["metadata"]["uid"]
    result: Manifest = stored
    return result


def request(api: kubernetes.client.CustomObjectsApi, vm: Manifest, key: bytes) -> None:
    """The change the webhook would admit: NIC `nic1` plugged, its request signed."""
    metadata = vm["metadata"]
    new = copy.deepcopy({k: v for k, v in vm.items() if k != "vmi_uid"})
    template = new["spec"]["template"]["spec"]
    template["domain"]["devices"]["interfaces"].append(
        {"name": "nic1", "bridge": {}, "model": "virtio"}
    )
    template["networks"].append({"name": "nic1", "multus": {"networkName": "net1"}})
    interfaces = [
        (i["name"], i.get("state") == "absent") for i in template["domain"]["devices"]["interfaces"]
    ]
    signed = sign_request(
        HotplugRequest(
            id=request_id(metadata["uid"], interfaces),
            plug=("nic1",),
            generation=metadata["generation"] + 1,
        ),
        uid=metadata["uid"],
        namespace=metadata["namespace"],
        name=metadata["name"],
        key=key,
    )
    new["metadata"].setdefault("annotations", {}).update(
        {
            REQUEST: render_request(signed),
            LEDGER: render_ledger(Ledger(vmi=vm["vmi_uid"], interfaces=("nic1",), booted=1)),
        }
    )
    api.replace_namespaced_custom_object(
        GROUP, VERSION, metadata["namespace"], "virtualmachines", metadata["name"], new
    )


def settle(controller: ControllerProcess) -> None:
    """A moment for the controller's watches to deliver the VMs just created."""
    del controller
    time.sleep(2)


def report(
    size: int, results: list[Round], controller: ControllerProcess, args: argparse.Namespace
) -> None:
    floor = math.ceil(size / args.parallel) * args.migration_seconds
    print(
        f"\n{size} VMs requesting at once, maxParallelMigrations {args.parallel}, migrations "
        f"of {format_seconds(args.migration_seconds)} in the simulator: floor "
        f"{floor:.0f} s (ceil(N/parallel) x migration)"
    )
    for driver in ("controller", "kubevirt"):
        rounds = [r for r in results if r.driver == driver]
        if not rounds:
            continue
        seconds = [r.seconds for r in rounds]
        label = "controller" if driver == "controller" else "KubeVirt's updater (simulated)"
        print(
            f"  {label}: drained in {statistics.median(seconds):.1f} s "
            f"({', '.join(f'{s:.1f}' for s in seconds)}) = "
            f"{statistics.median(seconds) / floor:.2f}x the floor; "
            f"completed {min(r.completed for r in rounds)}/{size}"
        )
        per: dict[tuple[str, str], list[float]] = {}
        for r in rounds:
            for call, value in r.calls.items():
                per.setdefault(call, []).append(value / max(1, r.completed))

        def median(
            verb: str, resource: str, per: dict[tuple[str, str], list[float]] = per
        ) -> float:
            return statistics.median(per.get((verb, resource), [0.0]))

        patches = median("patch", "virtualmachines")
        creates = median("create", "virtualmachineinstancemigrations")
        print(
            f"    per completed request: {patches + creates:.2f} writes (status patches "
            f"{patches:.2f}, migrations {creates:.2f}), Events {median('create', 'events'):.2f}; "
            "all calls: "
            + ", ".join(
                f"{verb} {resource} {median(verb, resource):.3f}"
                for verb, resource in sorted(per)
                if median(verb, resource) > 0
            )
        )
    if len({r.driver for r in results}) == 2:
        ratio = statistics.median(r.seconds for r in results if r.driver == "controller") / (
            statistics.median(r.seconds for r in results if r.driver == "kubevirt")
        )
        print(f"  controller / KubeVirt's updater drain time: {ratio:.2f}x")
    print(
        f"  controller RSS: {controller.idle_rss_kib / 1024:.0f} MiB with the VMs cached, "
        f"peak {controller.memory_kib('VmHWM') / 1024:.0f} MiB"
    )


if __name__ == "__main__":
    sys.exit(main())
