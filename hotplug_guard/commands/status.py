"""`status`: per VM, its hot plug request, the controller's progress and the VMI's interfaces.

The OpenShift procedure ends with "verify the VMI status"; this is that step at a
glance: the request (id, plugged and unplugged names), the phase the controller
reports, its migration and attempts, and the interfaces the VMI reports (name, MAC,
IPs, where the information comes from: `domain` means the guest has the NIC). With
`--watch` a VM's entry is printed again whenever it changes.
"""

from __future__ import annotations

import argparse
import json
import queue
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from hotplug_guard import kubeconfig
from hotplug_guard.commands.helptext import FORMATTER, examples
from hotplug_guard.errors import UsageError
from hotplug_guard.virtualmachines import VMIS, VMS, Object, Refused, VirtualMachines
from policy.annotations import REQUEST, STATUS, parse_request, parse_status

EXIT_FAILED = 1
PENDING = "Pending"
"""A request the controller has not reported on yet."""
HTTP_GONE = 410
RETRY_SECONDS = 1.0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status",
        help="show hot plug requests, their progress and the VMI's interfaces",
        description="For one VM or every VM of a namespace: the hot plug request, the phase "
        "the controller reports (Pending, Waiting, Migrating, Succeeded, Failed, Skipped), its "
        "migration, and the VMI's interfaces with MAC, IPs and infoSource (`domain`: the guest "
        "has the NIC).",
        formatter_class=FORMATTER,
        epilog=examples(
            "hotplug-guard status fedora -n vms --watch",
            "hotplug-guard status -A",
            "hotplug-guard status -n vms -o json",
        ),
    )
    parser.add_argument("vm", nargs="?", metavar="VM", help="one VirtualMachine (default: all)")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", metavar="NS", help="default: the context's")
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="every namespace (no VM argument)"
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=("table", "json", "yaml"),
        default="table",
        help="table (default), or JSON or YAML objects",
    )
    parser.add_argument(
        "-w", "--watch", action="store_true", help="print a VM's entry again when it changes"
    )
    kubeconfig.add_arguments(parser, in_cluster=False)
    parser.set_defaults(handler=run_status)


def summary(vm: Mapping[str, Any], vmi: Mapping[str, Any] | None) -> Object:
    """What `status` shows of one VM: plain data, rendered as a table, JSON or YAML."""
    metadata = vm.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    request = parse_request(annotations.get(REQUEST))
    status = parse_status(annotations.get(STATUS))
    entry: Object = {
        "namespace": metadata.get("namespace", ""),
        "vm": metadata.get("name", ""),
        "printableStatus": (vm.get("status") or {}).get("printableStatus", ""),
        "request": None,
        "phase": "",
        "migration": "",
        "attempts": 0,
        "message": "",
        "vmi": None,
    }
    if request is not None:
        entry["request"] = {
            "id": request.id,
            "plug": list(request.plug),
            "unplug": list(request.unplug),
            "generation": request.generation,
        }
        entry["phase"] = PENDING
    if request is not None and status is not None and status.id == request.id:
        entry |= {
            "phase": status.phase.value,
            "migration": status.migration,
            "attempts": status.attempts,
            "message": status.message,
            "since": status.since,
        }
    if vmi is not None:
        vmi_status = vmi.get("status") or {}
        entry["vmi"] = {
            "phase": vmi_status.get("phase", ""),
            "node": vmi_status.get("nodeName", ""),
            "interfaces": [
                {
                    "name": item.get("name", ""),
                    "mac": item.get("mac", ""),
                    "ips": list(
                        item.get("ipAddresses")
                        or ([item["ipAddress"]] if item.get("ipAddress") else [])
                    ),
                    "infoSource": item.get("infoSource", ""),
                    "guestName": item.get("interfaceName", ""),
                }
                for item in vmi_status.get("interfaces") or ()
            ],
        }
    return entry


def render_table(entries: Iterable[Object], *, namespaces: bool) -> str:
    """One block per VM: its line, the controller's message, the VMI's interfaces."""
    blocks = []
    for entry in entries:
        request = entry["request"]
        head = [
            *([entry["namespace"]] if namespaces else []),
            entry["vm"],
            request["id"] if request else "-",
            _names(request) if request else "-",
            entry["phase"] or "-",
            str(entry["attempts"]) if request else "-",
            entry["migration"] or "-",
        ]
        header = [
            *(["NAMESPACE"] if namespaces else []),
            "VM",
            "REQUEST",
            "CHANGE",
            "PHASE",
            "ATTEMPTS",
            "MIGRATION",
        ]
        lines = _columns([header, head])
        if entry["message"]:
            lines.append(f"  {entry['message']}")
        vmi = entry["vmi"]
        if vmi is None:
            lines.append(f"  no VMI (the VM is {entry['printableStatus'] or 'not running'})")
        elif vmi["interfaces"]:
            rows = [["INTERFACE", "MAC", "IPS", "GUEST", "INFO SOURCE"]] + [
                [
                    i["name"],
                    i["mac"] or "-",
                    ",".join(i["ips"]) or "-",
                    i["guestName"] or "-",
                    i["infoSource"] or "-",
                ]
                for i in vmi["interfaces"]
            ]
            lines += [f"  {line}" for line in _columns(rows)]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _names(request: Mapping[str, Any]) -> str:
    parts = [f"+{name}" for name in request["plug"]] + [f"-{name}" for name in request["unplug"]]
    return ",".join(parts) or "-"


def _columns(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return [
        "   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def render(entries: list[Object], output: str, *, namespaces: bool) -> str:
    if output == "json":
        return json.dumps(entries, indent=2)
    if output == "yaml":
        return yaml.safe_dump(entries, sort_keys=False).rstrip()
    if not entries:
        return "no VirtualMachines"
    return render_table(entries, namespaces=namespaces)


def run_status(args: argparse.Namespace) -> int:
    if args.all_namespaces and args.vm:
        raise UsageError("a VM argument names one VM of one namespace; it cannot go with -A")
    cluster = kubeconfig.load(kubeconfig=args.kubeconfig, context=args.context)
    namespace = None if args.all_namespaces else args.namespace or cluster.namespace
    vms = VirtualMachines(cluster)
    try:
        return _show(vms, args, namespace)
    except Refused as refusal:
        print(f"hotplug-guard: {refusal.message}", flush=True)
        return EXIT_FAILED
    finally:
        vms.close()


def _show(vms: VirtualMachines, args: argparse.Namespace, namespace: str | None) -> int:
    machines, vm_version = _listed(vms, VMS, namespace, args.vm)
    instances, vmi_version = _listed(vms, VMIS, namespace, args.vm)
    if args.vm and not machines:
        print(f"hotplug-guard: VirtualMachine '{namespace}/{args.vm}' not found", flush=True)
        return EXIT_FAILED
    entries = {key: summary(vm, instances.get(key)) for key, vm in machines.items()}
    namespaces = namespace is None
    ordered = sorted(entries.values(), key=_order)
    if not args.watch:
        print(render(ordered, args.output, namespaces=namespaces), flush=True)
        return 0
    for entry in ordered if args.output == "json" else ():
        print(json.dumps(entry), flush=True)  # watching, JSON is one object per line
    if args.output != "json":
        print(render(ordered, args.output, namespaces=namespaces), flush=True)
    changes: queue.Queue[tuple[str, Mapping[str, Any]]] = queue.Queue()
    for plural, version in ((VMS, vm_version), (VMIS, vmi_version)):
        threading.Thread(
            target=_follow,
            args=(vms, plural, namespace, args.vm),
            kwargs={"version": version, "changes": changes},
            name=f"watch-{plural}",
            daemon=True,
        ).start()
    while True:
        plural, event = changes.get()
        item = event["object"]
        key = _key(item)
        deleted = event["type"] == "DELETED"
        known = machines if plural == VMS else instances
        if deleted:
            known.pop(key, None)
        else:
            known[key] = dict(item)
        if key not in machines:
            continue
        entry = summary(machines[key], instances.get(key))
        if entry != entries.get(key):
            entries[key] = entry
            if args.output == "json":
                print(json.dumps(entry), flush=True)
            else:
                separator = "---" if args.output == "yaml" else ""
                print(
                    f"{separator}\n{render([entry], args.output, namespaces=namespaces)}",
                    flush=True,
                )


def _listed(
    vms: VirtualMachines, plural: str, namespace: str | None, name: str | None
) -> tuple[dict[tuple[str, str], Object], str]:
    items, version = vms.listed(plural, namespace, name=name)
    return {_key(item): item for item in items}, version


def _follow(
    vms: VirtualMachines,
    plural: str,
    namespace: str | None,
    name: str | None,
    *,
    version: str,
    changes: queue.Queue[tuple[str, Mapping[str, Any]]],
) -> None:
    """Feed the watch's events into `changes`; resume after the server ends a watch, relist
    after 410 Gone."""
    while True:
        try:
            for event in vms.watch(plural, namespace, version, name=name):
                if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                    changes.put((plural, event))
                    version = event["object"]["metadata"].get("resourceVersion", version)
        except Exception as error:  # the watch is resumed; a gone version is listed again
            if getattr(error, "status", None) != HTTP_GONE:
                time.sleep(RETRY_SECONDS)  # the API server is away for a moment
                continue
            try:
                items, version = vms.listed(plural, namespace, name=name)
            except Exception:
                time.sleep(RETRY_SECONDS)
                continue
            for item in items:
                changes.put((plural, {"type": "MODIFIED", "object": item}))


def _key(item: Mapping[str, Any]) -> tuple[str, str]:
    metadata = item.get("metadata") or {}
    return str(metadata.get("namespace", "")), str(metadata.get("name", ""))


def _order(entry: Object) -> tuple[str, str]:
    return entry["namespace"], entry["vm"]
