"""`add-interface`, `remove-interface` and `status` as a user runs them: the real CLI with
alice's kubeconfig, through the webhook, completed by the controller and the simulator."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from urllib3 import HTTPHeaderDict

from hotplug_guard.cli import main
from hotplug_guard.commands.interfaces import INTERFACES
from hotplug_guard.virtualmachines import Refused, VirtualMachines, warnings_of
from policy.annotations import Phase
from tests.controller.scenario import Scenario, running_controller
from tests.kube import kubevirt
from tests.kube.controlplane import ALICE
from tests.kube.release import Release
from tests.webhook.service import REPO

Manifest = dict[str, Any]


def cli(*args: str, kubeconfig: Path | None, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotplug_guard", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environment(kubeconfig, home),
    )


def environment(kubeconfig: Path | None, home: Path) -> dict[str, str]:
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "PYTHONPATH": str(REPO)}
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    return env


def watched(
    args: list[str], kubeconfig: Path, home: Path, until: Callable[[Manifest], bool]
) -> Manifest:
    """Run `status --watch -o json` until a line meets `until`; that line's entry."""
    lines: queue.Queue[str] = queue.Queue()
    with (
        (home / "status.err").open("w") as errors,
        subprocess.Popen(
            [sys.executable, "-m", "hotplug_guard", "status", *args, "--watch", "-o", "json"],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env=environment(kubeconfig, home),
        ) as process,
    ):
        output = process.stdout
        assert output is not None

        def read() -> None:
            for line in output:
                lines.put(line)

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + 60
        try:
            while True:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                entry: Manifest = json.loads(line)
                if until(entry):
                    return entry
        finally:
            process.terminate()


def test_add_interface_then_status_shows_the_nic_the_guest_reports(
    scenario: Scenario, guard: Release, tmp_path: Path
) -> None:
    scenario.running_vm("fedora")
    alice = scenario.plane.kubeconfig(ALICE)
    namespace = ["-n", scenario.namespace]
    with running_controller(guard):
        added = cli(
            "add-interface",
            "fedora",
            "--name",
            "nic1",
            "--network-attachment-definition",
            "net1",
            *namespace,
            kubeconfig=alice,
            home=tmp_path,
        )
        assert added.returncode == 0, added.stderr
        entry = watched(
            ["fedora", *namespace], alice, tmp_path, lambda e: e["phase"] == Phase.SUCCEEDED.value
        )

    lines = added.stdout.splitlines()
    assert lines[0] == "virtualmachine.kubevirt.io/fedora: interface 'nic1' added on network 'net1'"
    assert lines[1].endswith(
        f"follow it with: hotplug-guard status fedora -n {scenario.namespace} --watch"
    )
    assert entry["request"]["plug"] == ["nic1"]
    [nic] = [i for i in entry["vmi"]["interfaces"] if i["name"] == "nic1"]
    assert "domain" in nic["infoSource"]
    assert nic["mac"]
    assert nic["ips"]
    table = cli("status", "fedora", *namespace, kubeconfig=alice, home=tmp_path)
    assert table.returncode == 0, table.stderr
    header, row, message, *interfaces = table.stdout.splitlines()
    assert header.split() == ["VM", "REQUEST", "CHANGE", "PHASE", "ATTEMPTS", "MIGRATION"]
    assert row.split()[:5] == ["fedora", entry["request"]["id"], "+nic1", "Succeeded", "1"]
    assert message.strip().startswith("completed by migration")
    assert interfaces[0].split() == ["INTERFACE", "MAC", "IPS", "GUEST", "INFO", "SOURCE"]
    assert any(line.split()[0] == "nic1" and nic["mac"] in line for line in interfaces[1:])


def test_remove_interface_completes_an_unplug(
    scenario: Scenario, guard: Release, tmp_path: Path
) -> None:
    scenario.running_vm("fedora", secondary=(("nic1", "net1"),))
    alice = scenario.plane.kubeconfig(ALICE)
    with running_controller(guard):
        removed = cli(
            "remove-interface",
            "fedora",
            "--name",
            "nic1",
            "-n",
            scenario.namespace,
            kubeconfig=alice,
            home=tmp_path,
        )
        assert removed.returncode == 0, removed.stderr
        status = scenario.wait_finished("fedora")
    assert status.phase is Phase.SUCCEEDED
    assert removed.stdout.startswith(
        "virtualmachine.kubevirt.io/fedora: interface 'nic1' set to absent"
    )


def test_a_denial_is_printed_with_its_rule_and_exits_1(scenario: Scenario, tmp_path: Path) -> None:
    scenario.running_vm("fedora")
    denied = cli(
        "add-interface",
        "fedora",
        "--name",
        "nic1",
        "--nad",
        "no-such-net",
        "-n",
        scenario.namespace,
        kubeconfig=scenario.plane.kubeconfig(ALICE),
        home=tmp_path,
    )
    assert denied.returncode == 1
    assert "nad-exists" in denied.stderr
    assert f"NetworkAttachmentDefinition '{scenario.namespace}/no-such-net'" in denied.stderr
    assert "Traceback" not in denied.stderr


def test_the_webhooks_warnings_are_printed_as_they_come(scenario: Scenario, tmp_path: Path) -> None:
    scenario.cluster.create_vm("s390")  # stopped: run on s390x as KubeVirt would show it
    scenario.merge_patch("s390", {"spec": {"template": {"spec": {"architecture": "s390x"}}}})
    kubevirt.start(scenario.plane, scenario.namespace, "s390")
    done = cli(
        "add-interface",
        "s390",
        "--name",
        "nic1",
        "--nad",
        "net1",
        "-n",
        scenario.namespace,
        "--dry-run",
        kubeconfig=scenario.plane.kubeconfig(ALICE),
        home=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "Warning: machine-type: hot plug on s390x is unverified" in done.stderr
    assert "(server dry run)" in done.stdout
    vm = scenario.cluster.vm("s390")
    assert "nic1" not in json.dumps(vm["spec"])  # nothing stored


def test_a_missing_vm_or_interface_exits_1_with_a_message(
    scenario: Scenario, tmp_path: Path
) -> None:
    alice = scenario.plane.kubeconfig(ALICE)
    scenario.running_vm("fedora")
    for args, message in (
        (
            ["add-interface", "nope", "--name", "nic1", "--nad", "net1"],
            "VirtualMachine '{ns}/nope' not found",
        ),
        (["remove-interface", "fedora", "--name", "nic9"], "the VM has no interface 'nic9'"),
        (["status", "nope"], "VirtualMachine '{ns}/nope' not found"),
    ):
        done = cli(*args, "-n", scenario.namespace, kubeconfig=alice, home=tmp_path)
        assert done.returncode == 1, done
        assert message.format(ns=scenario.namespace) in done.stderr + done.stdout


def test_without_a_cluster_the_commands_say_so_and_exit_2(tmp_path: Path) -> None:
    for args in (
        ["add-interface", "vm", "--name", "nic1", "--nad", "net1"],
        ["remove-interface", "vm", "--name", "nic1"],
        ["status"],
    ):
        done = cli(*args, kubeconfig=None, home=tmp_path)
        assert done.returncode == 2, done
        assert done.stderr.startswith(f"hotplug-guard {args[0]}: no cluster configured")


MAC = "02:00:00:00:00:aa"


def test_a_vm_changed_under_add_interface_gets_the_patch_computed_again(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The `test` operations guard the patch: interfaces changed between read and write
    refuse it (kube-apiserver answers 422), and add-interface reads the VM again and
    retries."""
    scenario.running_vm("fedora")
    real_patch = VirtualMachines.patch
    attempts: list[str] = []

    def racing(self: VirtualMachines, namespace: str, name: str, operations: Any, **kw: Any) -> Any:
        if not attempts:  # someone edits the interfaces just before the first write
            scenario.plane.resource("kubevirt.io/v1", "VirtualMachine").patch(
                body=[{"op": "add", "path": f"{INTERFACES}/0/macAddress", "value": MAC}],
                name=name,
                namespace=namespace,
                content_type="application/json-patch+json",
            )
        attempts.append(name)
        try:
            return real_patch(self, namespace, name, operations, **kw)
        except Refused as refusal:
            attempts.append(f"{refusal.status}")
            raise

    monkeypatch.setattr(VirtualMachines, "patch", racing)
    code = main(
        [
            "add-interface",
            "fedora",
            "--name",
            "nic1",
            "--nad",
            "net1",
            "-n",
            scenario.namespace,
            "--kubeconfig",
            str(scenario.plane.kubeconfig(ALICE)),
        ]
    )

    assert code == 0
    assert attempts == ["fedora", "422", "fedora"]
    vm = scenario.cluster.vm("fedora")
    default, added = vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"]
    assert (default["macAddress"], added["name"]) == (MAC, "nic1")  # both changes kept


def test_warning_headers_are_read_as_kube_apiserver_writes_them() -> None:
    headers = HTTPHeaderDict()
    headers.add("Warning", '299 - "plug-model: say \\"virtio\\""')
    headers.add("Warning", '299 - "second, with a comma"')
    assert warnings_of(headers) == ('plug-model: say "virtio"', "second, with a comma")
    assert warnings_of(None) == ()
