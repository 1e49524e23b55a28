"""`add-interface` and `remove-interface`: the declarative successors of `virtctl addinterface`
and `virtctl removeinterface` (KubeVirt v1.0; removed in v1.1 for editing the VM).

Each writes one JSON patch to the VM as the kubeconfig's user, guarded by `test`
operations on what it was computed from, so a concurrent edit makes it fail instead
of being overwritten (it is then computed again, up to three times). The admission
webhooks judge it as any other edit: their warnings are printed as they come, a
denial is printed with the rule and the fix, and the exit code is 1.

- plug: a bridge interface with model virtio and its multus network, as
  `virtctl addinterface` made it (`facts` §4.1), plus the virtio model hot plug needs;
- unplug: `state: absent` on the interface (its network stays, as KubeVirt requires).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from typing import Any

from hotplug_guard import kubeconfig
from hotplug_guard.commands.helptext import FORMATTER, examples
from hotplug_guard.errors import UsageError
from hotplug_guard.virtualmachines import VMS, Object, Patched, Refused, VirtualMachines
from policy.annotations import REQUEST, parse_request

INTERFACES = "/spec/template/spec/domain/devices/interfaces"
NETWORKS = "/spec/template/spec/networks"
ATTEMPTS = 3
_NAME = re.compile(r"^[A-Za-z0-9-_]+$")  # KubeVirt's interface name rule (F1)
_NAD = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
EXIT_FAILED = 1


class Conflict(Exception):
    """The VM changed between reading it and patching it."""


def register(subparsers: Any) -> None:
    """Add `add-interface` and `remove-interface` to the top-level parser."""
    add = subparsers.add_parser(
        "add-interface",
        help="hot plug a bridge interface on a NetworkAttachmentDefinition into a VM",
        description="Add a bridge interface (model virtio) and its multus network to the VM's "
        "template. On a running VM the webhook admits it as a hot plug and the controller "
        "completes it (`hotplug-guard status VM --watch` follows it); on a stopped VM it is "
        "there at the next start.",
        formatter_class=FORMATTER,
        epilog=examples(
            "hotplug-guard add-interface fedora --name nic1 --nad net1 -n vms",
            "# a NetworkAttachmentDefinition of another namespace, judged but not stored",
            "hotplug-guard add-interface fedora --name nic2 --nad shared/vlan10 -n vms --dry-run",
        ),
    )
    _common(add)
    add.add_argument(
        "--network-attachment-definition",
        "--nad",
        dest="nad",
        required=True,
        metavar="NAD",
        help="the NetworkAttachmentDefinition, NAME (in the VM's namespace) or NAMESPACE/NAME",
    )
    add.set_defaults(handler=run_add)
    remove = subparsers.add_parser(
        "remove-interface",
        help="hot unplug an interface from a VM",
        description="Set `state: absent` on the VM's interface: KubeVirt detaches it from the "
        "guest, the controller completes the unplug, and KubeVirt then removes the interface "
        "and its network from the VM.",
        formatter_class=FORMATTER,
        epilog=examples(
            "hotplug-guard remove-interface fedora --name nic1 -n vms",
            "hotplug-guard status fedora -n vms --watch",
        ),
    )
    _common(remove)
    remove.set_defaults(handler=run_remove)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("vm", metavar="VM", help="the VirtualMachine")
    parser.add_argument("--name", required=True, metavar="NIC", help="the interface's name")
    parser.add_argument("-n", "--namespace", metavar="NS", help="default: the context's")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="let the API server and the webhooks judge the change without storing it",
    )
    kubeconfig.add_arguments(parser, in_cluster=False)


def plug_operations(vm: Object, name: str, nad: str) -> list[Object]:
    """The JSON patch that adds interface `name` on NAD `nad`, guarded by `test`s of the two
    lists it appends to (other changes to the VM, its status say, do not stop it)."""
    template = vm["spec"]["template"]["spec"]
    interfaces = template.get("domain", {}).get("devices", {}).get("interfaces")
    networks = template.get("networks")
    for entry in interfaces or ():
        if entry.get("name") == name:
            if entry.get("state") == "absent":
                raise Refused(
                    409,
                    f"interface '{name}' is being unplugged (state: absent); "
                    "wait until KubeVirt removed it, then add it again",
                )
            raise Refused(409, f"the VM already has an interface '{name}'")
    if any(entry.get("name") == name for entry in networks or ()):
        raise Refused(409, f"the VM already has a network '{name}' (without an interface)")
    interface = {"name": name, "bridge": {}, "model": "virtio"}
    network = {"name": name, "multus": {"networkName": nad}}
    operations: list[Object] = []
    if interfaces is None or networks is None:
        # a missing list cannot be tested for; the whole VM's version stands in for it
        operations.append(
            {
                "op": "test",
                "path": "/metadata/resourceVersion",
                "value": vm["metadata"]["resourceVersion"],
            }
        )
    for path, current, entry in (
        (INTERFACES, interfaces, interface),
        (NETWORKS, networks, network),
    ):
        if current is None:
            operations.append({"op": "add", "path": path, "value": [entry]})
        else:
            operations += [
                {"op": "test", "path": path, "value": current},
                {"op": "add", "path": f"{path}/-", "value": entry},
            ]
    return operations


def unplug_operations(vm: Object, name: str) -> list[Object] | None:
    """The JSON patch that sets `state: absent` on interface `name` (None: it is absent already)."""
    interfaces = (
        vm["spec"]["template"]["spec"].get("domain", {}).get("devices", {}).get("interfaces") or []
    )
    for index, entry in enumerate(interfaces):
        if entry.get("name") == name:
            if entry.get("state") == "absent":
                return None
            return [
                {"op": "test", "path": f"{INTERFACES}/{index}", "value": entry},
                {"op": "add", "path": f"{INTERFACES}/{index}/state", "value": "absent"},
            ]
    raise Refused(404, f"the VM has no interface '{name}'")


def run_add(args: argparse.Namespace) -> int:
    if not _NAME.match(args.name):
        raise UsageError(
            f"--name {args.name!r}: an interface name can only contain letters, digits, '-' "
            "and '_' (KubeVirt's rule)"
        )
    if not _NAD.match(args.nad):
        raise UsageError(
            f"--network-attachment-definition {args.nad!r}: expected NAME or NAMESPACE/NAME"
        )
    return _run(
        args,
        lambda vm: plug_operations(vm, args.name, args.nad),
        done=f"interface '{args.name}' added on network '{args.nad}'",
    )


def run_remove(args: argparse.Namespace) -> int:
    return _run(
        args,
        lambda vm: unplug_operations(vm, args.name),
        done=f"interface '{args.name}' set to absent",
        nothing=f"interface '{args.name}' is already being removed (state: absent)",
    )


def _run(
    args: argparse.Namespace,
    operations_for: Callable[[Object], list[Object] | None],
    *,
    done: str,
    nothing: str = "",
) -> int:
    cluster = kubeconfig.load(kubeconfig=args.kubeconfig, context=args.context)
    namespace = args.namespace or cluster.namespace
    vms = VirtualMachines(cluster)
    where = f"virtualmachine.kubevirt.io/{args.vm}"
    try:
        for attempt in range(1, ATTEMPTS + 1):
            vm = vms.get(VMS, namespace, args.vm)
            if vm is None:
                return _failed(f"VirtualMachine '{namespace}/{args.vm}' not found")
            operations = operations_for(vm)
            if operations is None:
                print(f"{where}: {nothing}")
                return 0
            try:
                patched = vms.patch(namespace, args.vm, operations, dry_run=args.dry_run)
            except Refused as refusal:
                _warn(refusal.warnings)
                if attempt < ATTEMPTS and _changed_since(vms, namespace, args.vm, vm):
                    continue  # someone changed the VM meanwhile: compute the patch again
                return _failed(refusal.message)
            _warn(patched.warnings)
            _report(where, done, patched, dry_run=args.dry_run, namespace=namespace, args=args)
            return 0
    except Refused as refusal:
        return _failed(refusal.message)
    finally:
        vms.close()
    return _failed(f"the VM kept changing; tried {ATTEMPTS} times")


def _changed_since(vms: VirtualMachines, namespace: str, name: str, vm: Object) -> bool:
    """The VM is no longer the version the patch was computed from (a failed `test`
    operation and a denial look alike: 422 with the API server's generic message)."""
    current = vms.get(VMS, namespace, name)
    version = vm["metadata"]["resourceVersion"]
    return current is not None and current["metadata"]["resourceVersion"] != version


def _warn(warnings: tuple[str, ...]) -> None:
    for warning in warnings:
        print(f"Warning: {warning}", file=sys.stderr)


def _failed(message: str) -> int:
    print(f"hotplug-guard: {message}", file=sys.stderr)
    return EXIT_FAILED


def _report(
    where: str,
    done: str,
    patched: Patched,
    *,
    dry_run: bool,
    namespace: str,
    args: argparse.Namespace,
) -> None:
    print(f"{where}: {done}{' (server dry run)' if dry_run else ''}")
    annotations = patched.object.get("metadata", {}).get("annotations") or {}
    request = parse_request(annotations.get(REQUEST))
    status = (patched.object.get("status") or {}).get("printableStatus")
    if request is not None and args.name in (*request.plug, *request.unplug):
        print(
            f"hot plug request {request.id}; follow it with: hotplug-guard status {args.vm} "
            f"-n {namespace} --watch"
        )
    elif status not in ("Running", "Migrating"):
        print("the VM does not run: the change takes effect when it starts")
