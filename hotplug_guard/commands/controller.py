"""`controller`: finish every admitted hot plug / unplug with exactly one live migration.

The composition of the controller process: the cluster (kubeconfig or in-cluster),
the request signing keys (the webhook's), the settings, the Lease it campaigns for,
JSON logs and the probe server. It runs until SIGTERM (then hands the Lease back)
or until it loses the Lease (then exits 1, so that it restarts with a clean state).
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import threading
from pathlib import Path
from typing import Any

from hotplug_guard import kubeconfig
from hotplug_guard.commands.helptext import FORMATTER, examples
from hotplug_guard.errors import UsageError
from hotplug_guard.keys import read_keys
from hotplug_guard.logs import configure
from hotplug_guard.probes import ProbeServer, parse_bind

DEFAULT_LEASE = "hotplug-guard-controller"
DEFAULT_PROBE_BIND = "127.0.0.1:8080"
EXIT_LOST_LEADERSHIP = 1


def register(subparsers: Any) -> None:
    """Add `controller` to the top-level parser."""
    from controller.election import Timings  # noqa: PLC0415 - keeps other commands fast
    from controller.settings import Settings  # noqa: PLC0415

    settings, timings = Settings(), Timings()
    parser = subparsers.add_parser(
        "controller",
        help="complete admitted hot plugs and unplugs with one live migration each",
        description="Watch VMs that carry a hotplug-guard.io/request the webhook signed; for "
        "each, wait until KubeVirt applied it to the VMI, give it a grace period to complete "
        "in place, then (unless KubeVirt migrates by itself) create one "
        "VirtualMachineInstanceMigration, follow it, verify the VMI's interfaces and report "
        "progress in hotplug-guard.io/status and as Events. Several replicas elect one leader "
        "through a Lease.",
        formatter_class=FORMATTER,
        epilog=examples(
            "# as the chart runs it, in a pod, with the webhook's signing key mounted",
            "hotplug-guard controller --in-cluster --signing-keys /signing",
            "# from a workstation, against the current kubeconfig context",
            "hotplug-guard controller --signing-keys ./signing --lease-namespace hotplug-guard",
        ),
    )
    parser.add_argument(
        "--signing-keys",
        type=Path,
        required=True,
        metavar="DIR",
        help="directory with the webhook's request signing key (`key`, optionally `accepted`)",
    )
    kubeconfig.add_arguments(parser)
    parser.add_argument(
        "--lease-namespace",
        metavar="NS",
        help="namespace of the Lease (default: the pod's, or the context's namespace)",
    )
    parser.add_argument(
        "--lease-name",
        default=DEFAULT_LEASE,
        metavar="NAME",
        help=f"the Lease the replicas elect their leader through (default {DEFAULT_LEASE})",
    )
    parser.add_argument(
        "--identity",
        metavar="ID",
        help="this replica's name in the Lease and in Events (default: $POD_NAME or the host "
        "name, and a random suffix)",
    )
    parser.add_argument(
        "--probe-bind",
        default=DEFAULT_PROBE_BIND,
        metavar="HOST:PORT",
        help=f"/healthz, /readyz and /metrics over HTTP (default {DEFAULT_PROBE_BIND})",
    )
    parser.add_argument(
        "--workers", type=int, default=4, metavar="N", help="VMs handled at once (4)"
    )
    tuning = parser.add_argument_group("completion")
    _number(tuning, "--grace-seconds", settings.grace_seconds, "in-place completion grace")
    _number(
        tuning,
        "--max-parallel-migrations",
        settings.max_parallel_migrations,
        "this controller's unfinished migrations, cluster-wide",
        kind=int,
    )
    _number(tuning, "--max-attempts", settings.max_attempts, "migrations per request", kind=int)
    _number(
        tuning,
        "--retry-backoff-seconds",
        settings.retry_backoff_seconds,
        "after a failed migration, doubled each time",
    )
    _number(
        tuning,
        "--verify-seconds",
        settings.verify_seconds,
        "for the VMI to report the change after a migration",
    )
    _number(
        tuning, "--apply-seconds", settings.apply_seconds, "for KubeVirt to apply it to the VMI"
    )
    election = parser.add_argument_group("leader election")
    _number(
        election,
        "--lease-duration-seconds",
        timings.lease_seconds,
        "how long a standby waits for a silent leader",
    )
    _number(
        election,
        "--renew-deadline-seconds",
        timings.renew_deadline_seconds,
        "a leader that could not renew for this long stops acting",
    )
    _number(
        election, "--retry-period-seconds", timings.retry_seconds, "between tries to renew or take"
    )
    parser.set_defaults(handler=run_controller)


def _number(
    group: Any, flag: str, default: float, text: str, *, kind: type[float] | type[int] = float
) -> None:
    group.add_argument(flag, type=kind, default=default, metavar="N", help=f"{text} ({default:g})")


def run_controller(args: argparse.Namespace) -> int:
    from controller.cluster import ClusterApi  # noqa: PLC0415 - see register
    from controller.election import Timings  # noqa: PLC0415
    from controller.metrics import CONTENT_TYPE, Metrics  # noqa: PLC0415
    from controller.runner import Controller  # noqa: PLC0415
    from controller.settings import Settings  # noqa: PLC0415

    try:
        settings = Settings(
            name=args.lease_name,
            grace_seconds=args.grace_seconds,
            max_parallel_migrations=args.max_parallel_migrations,
            max_attempts=args.max_attempts,
            retry_backoff_seconds=args.retry_backoff_seconds,
            verify_seconds=args.verify_seconds,
            apply_seconds=args.apply_seconds,
        )
        timings = Timings(
            lease_seconds=args.lease_duration_seconds,
            renew_deadline_seconds=args.renew_deadline_seconds,
            retry_seconds=args.retry_period_seconds,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    bind = parse_bind(args.probe_bind, option="--probe-bind")
    keys = read_keys(args.signing_keys)
    cluster = kubeconfig.from_arguments(args)
    api_client = kubeconfig.connect(cluster)
    identity = args.identity or (
        f"{os.environ.get('POD_NAME') or socket.gethostname()}_{secrets.token_hex(3)}"
    )
    metrics = Metrics()
    api = ClusterApi(
        api_client,
        lease_namespace=args.lease_namespace or cluster.namespace,
        lease_name=args.lease_name,
        identity=identity,
        on_call=metrics.count_call,
    )
    controller = Controller(
        api,
        keys=keys,
        settings=settings,
        timings=timings,
        metrics=metrics,
        workers=args.workers,
    )
    try:
        probes = ProbeServer(
            bind,
            health=controller.problem,
            readiness=lambda: None if controller.synced() else "caches not synced yet",
            metrics=lambda: (metrics.render(), CONTENT_TYPE),
        )
    except OSError as error:
        raise UsageError(f"--probe-bind {args.probe_bind}: {error.strerror}") from None
    configure()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    probes.start()
    controller.start()
    print(
        f"hotplug-guard controller {identity} on {cluster.server}; lease "
        f"{api.lease_namespace}/{api.lease_name}; probes on http://{bind[0]}:{probes.port}",
        flush=True,
    )
    try:
        while not stopping.wait(0.5):
            if controller.lost.is_set():
                controller.stop(release=False)
                print("hotplug-guard controller: lost the lease; exiting", flush=True)
                return EXIT_LOST_LEADERSHIP
        controller.stop(release=True)
        return 0
    finally:
        probes.stop()
        api.close()
