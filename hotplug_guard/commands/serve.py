"""`serve`: run the admission webhook over HTTPS with gunicorn.

The composition of the serving process: the policy config, the engine, the
serving certificate (created locally when there is none), the cluster context
(kubeconfig, in-cluster, or offline) and the metrics directory shared by the
gunicorn workers.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from certs import ServingFiles, ensure_local, record_expiry
from certs.errors import CertificateSettingsError
from hotplug_guard import kubeconfig
from hotplug_guard.commands.helptext import FORMATTER, examples
from hotplug_guard.errors import UsageError
from hotplug_guard.files import load_policy_config
from hotplug_guard.keys import ensure_local_keys, read_keys
from hotplug_guard.logs import configure, log_info
from policy import PolicyConfig
from policy.signing import SigningKeys

if TYPE_CHECKING:
    from kubernetes.client import Configuration

    from webhook.server import WSGIApp
    from webhook.tls import ServingContext

DEFAULT_BIND = "127.0.0.1:8443"
EXAMPLE_REVIEW = "admission-review.json"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
EXPIRY_REFRESH_SECONDS = 5.0
"""How often each worker looks at the certificate files (two `stat` calls when they did not
change) and refreshes the expiry gauge: a worker that accepts no new connection for a
while (its siblings hold fewer) still loads a rotated certificate within this time."""


def register(subparsers: Any) -> None:
    """Add `serve` to the top-level parser."""
    parser = subparsers.add_parser(
        "serve",
        help="run the admission webhook (/mutate, /validate) over HTTPS",
        description="Serve the mutating and validating admission webhook over HTTPS with "
        "gunicorn. Without --cert-dir a local CA and a certificate for localhost are created "
        "in the user's state directory; without --kubeconfig or --in-cluster the webhook runs "
        "offline (no cluster context).",
        formatter_class=FORMATTER,
        epilog=examples(
            "hotplug-guard serve                  # offline, a local CA, https://127.0.0.1:8443",
            "hotplug-guard serve --kubeconfig ~/.kube/config --signing-keys ./keys",
            "# as the chart runs it:",
            "hotplug-guard serve --bind 0.0.0.0:8443 --cert-dir /tls \\",
            "    --config /config/policy.yaml --signing-keys /signing --in-cluster",
        ),
    )
    parser.add_argument("--config", type=Path, metavar="CFG.yaml", help="policy config file")
    parser.add_argument(
        "--bind", default=DEFAULT_BIND, metavar="HOST:PORT", help=f"default {DEFAULT_BIND}"
    )
    parser.add_argument(
        "--cert-dir",
        type=Path,
        metavar="DIR",
        help="directory with tls.crt, tls.key and ca.crt (created when missing); default "
        "$XDG_STATE_HOME/hotplug-guard/certs",
    )
    parser.add_argument(
        "--signing-keys",
        type=Path,
        metavar="DIR",
        help="directory with `key` (signs hot plug requests) and optionally `accepted` (more "
        "keys that verify, one per line); required with cluster context, where every replica "
        "and the controller share the key; default offline: a key made in the state directory",
    )
    parser.add_argument("--workers", type=int, default=2, metavar="N", help="processes (2)")
    parser.add_argument("--threads", type=int, default=4, metavar="N", help="per worker (4)")
    cluster = parser.add_mutually_exclusive_group()
    cluster.add_argument("--kubeconfig", type=Path, metavar="PATH", help="watch this cluster")
    cluster.add_argument(
        "--in-cluster", action="store_true", help="watch the cluster this pod runs in"
    )
    cluster.add_argument("--offline", action="store_true", help="no cluster context (the default)")
    parser.add_argument(
        "--context", metavar="NAME", help="kubeconfig context to watch (implies cluster context)"
    )
    parser.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    # The serving stack (gunicorn, flask, kubernetes) takes over a second to import;
    # importing it here keeps every other sub-command fast.
    from webhook.server import ServerOptions, serve  # noqa: PLC0415
    from webhook.tls import CertificateError, ServingContext  # noqa: PLC0415

    config = load_policy_config(args.config)
    host, port = parse_bind(args.bind)
    if args.workers < 1 or args.threads < 1:
        raise UsageError("--workers and --threads must be at least 1")
    try:
        files = serving_files(args.cert_dir, host=host, ensure=ensure_local)
    except (CertificateSettingsError, OSError) as error:
        raise UsageError(f"cannot prepare the serving certificate: {error}") from None
    try:
        tls = ServingContext(cert=files.cert, key=files.key)
    except CertificateError as error:
        raise UsageError(str(error)) from None
    cluster: Configuration | None = None
    if args.offline and args.context is not None:
        raise UsageError("--context names a cluster to watch; it cannot go with --offline")
    if args.kubeconfig is not None or args.in_cluster or args.context is not None:
        cluster = kubeconfig.from_arguments(args).configuration
    keys = signing_keys(args.signing_keys, cluster=cluster is not None)

    configure()
    _announce(files, host=host, port=port, cluster=cluster is not None)
    sys.stdout.flush()
    worker = WorkerSetup(
        config=config,
        cluster=cluster,
        keys=keys,
        tls=tls,
        record_expiry=(lambda: record_expiry(files)) if files.ca.is_file() else None,
    )
    options = ServerOptions(bind=args.bind, workers=args.workers, threads=args.threads)
    return serve(options, tls=tls, factory=worker.build)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSetup:
    """What each gunicorn worker builds its app from, after the fork."""

    config: PolicyConfig
    cluster: Configuration | None
    keys: SigningKeys
    tls: ServingContext
    record_expiry: Callable[[], object] | None

    def build(self) -> WSGIApp:
        from policy import evaluate  # noqa: PLC0415 - see run_serve
        from webhook.admission import Admission  # noqa: PLC0415
        from webhook.app import create_app  # noqa: PLC0415
        from webhook.caches import ClusterContext  # noqa: PLC0415
        from webhook.context import ContextSource, OfflineContext  # noqa: PLC0415
        from webhook.metrics import Metrics  # noqa: PLC0415

        metrics = Metrics()
        source: ContextSource
        if self.cluster is None:
            source = OfflineContext()
            metrics.context_ready.set(0)
        else:

            def ready_changed(ready: bool) -> None:
                metrics.context_ready.set(1 if ready else 0)

            source = ClusterContext(self.cluster, on_ready_change=ready_changed).start()
        if self.record_expiry is not None:
            self.tls.observe(self.record_expiry)
            self.tls.monitor(EXPIRY_REFRESH_SECONDS)
        admission = Admission(evaluate=evaluate, config=self.config, context=source, keys=self.keys)
        return create_app(admission=admission, metrics=metrics, log_line=log_info)


def signing_keys(directory: Path | None, *, cluster: bool) -> SigningKeys:
    """The request signing keys: from `directory`, or offline made in the state directory.

    With cluster context a key of its own would be wrong: the mutating and the validating
    call of one request may reach different replicas, and the controller verifies.
    """
    if directory is not None:
        return read_keys(directory)
    if cluster:
        raise UsageError(
            "--signing-keys is required with --kubeconfig or --in-cluster: every replica and "
            "the controller must share the key (the chart mounts the Secret <release>-signing)"
        )
    return ensure_local_keys(default_cert_dir().parent / "signing")


def parse_bind(text: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 as [::1]:8443) into its parts."""
    host, separator, port_text = text.rpartition(":")
    if not separator or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"--bind must be HOST:PORT, e.g. {DEFAULT_BIND}; got {text!r}")
    return host.removeprefix("[").removesuffix("]"), int(port_text)


def serving_files(
    cert_dir: Path | None, *, host: str, ensure: Callable[..., ServingFiles]
) -> ServingFiles:
    """The certificate files to serve with, created (or renewed) locally when that is ours to do.

    A directory that holds the local CA's key (`ca.key`), the default state directory, and
    a directory without a serving pair are maintained with `certs.ensure_local`; a directory
    that only holds `tls.crt`/`tls.key` (a mounted Secret) is used as it is.
    """
    directory = cert_dir if cert_dir is not None else default_cert_dir()
    externally_managed = (
        cert_dir is not None
        and (directory / "tls.crt").is_file()
        and (directory / "tls.key").is_file()
        and not (directory / "ca.key").exists()
    )
    if externally_managed:
        return ServingFiles.in_directory(directory)
    return ensure(directory, hosts=certificate_hosts(host))


def certificate_hosts(host: str) -> tuple[str, ...]:
    """Names a local certificate needs: loopback plus the bind address when it is specific."""
    try:
        wildcard = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        wildcard = False
    if wildcard or host in LOCAL_HOSTS:
        return LOCAL_HOSTS
    return (*LOCAL_HOSTS, host)


def default_cert_dir() -> Path:
    """$XDG_STATE_HOME/hotplug-guard/certs, or ~/.local/state/hotplug-guard/certs."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "hotplug-guard" / "certs"


def _announce(files: ServingFiles, *, host: str, port: int, cluster: bool) -> None:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "localhost") else host  # noqa: S104
    if ":" in shown:
        shown = f"[{shown}]"
    mode = "cluster context from the API server" if cluster else "offline, no cluster context"
    print(f"hotplug-guard webhook on https://{shown}:{port} ({mode})")
    if files.ca.is_file():
        print(f"CA certificate: {files.ca}")
        review = example_review()
        if not cluster and review is not None:
            print(
                f"try: curl --cacert {files.ca} -H 'Content-Type: application/json' "
                f"--data @{review} https://{shown}:{port}/mutate"
            )


def example_review() -> Path | None:
    """The AdmissionReview shipped for trying the webhook out (a user's hot plug of a running
    VM; the same as examples/admission-review.json), where it is a plain file."""
    shipped = resources.files("hotplug_guard").joinpath(EXAMPLE_REVIEW)
    return shipped if isinstance(shipped, Path) and shipped.is_file() else None
