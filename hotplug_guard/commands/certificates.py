"""`certs generate` and `certs ensure`: the webhook's CA and serving certificate.

`generate` writes fresh files for a manual install; `ensure` keeps them in a
Secret, renews them and publishes the CA bundle to the webhook configurations
(an init container and a periodic loop in the chart).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from kubernetes.client import ApiClient, ApiException
from urllib3.exceptions import HTTPError

from certs import generate_local
from certs.clock import SystemClock
from certs.cluster import ClusterError, ClusterTarget, ensure_cluster
from certs.directory import write_material
from certs.errors import CertificateSettingsError
from certs.issuance import MIN_RSA_BITS, KeySpec, KeyType
from certs.material import CA_CERT, CA_KEY, TLS_CERT, TLS_KEY
from certs.names import DNS_LABEL, parse_hosts, service_hosts
from certs.rotation import DEFAULT_POLICY, RotationPolicy
from hotplug_guard import kubeconfig
from hotplug_guard.commands.helptext import FORMATTER, examples
from hotplug_guard.errors import UsageError
from hotplug_guard.logs import configure
from hotplug_guard.probes import ProbeServer, parse_bind

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 600
PROBE_SLACK_SECONDS = 300.0
"""How much longer than --interval a run may take before the loop counts as stuck."""


def register(subparsers: Any) -> None:
    """Add `certs generate` and `certs ensure` to the top-level parser."""
    parser = subparsers.add_parser(
        "certs",
        help="create and rotate the webhook's CA and serving certificate",
        description="Create and rotate the webhook's CA and serving certificate.",
        formatter_class=FORMATTER,
        epilog=examples(
            "hotplug-guard certs generate --service hotplug-guard --namespace hotplug-guard \\",
            "    --out ./tls",
            "hotplug-guard certs ensure --help",
        ),
    )
    commands = parser.add_subparsers(dest="certs_command", required=True, metavar="SUBCOMMAND")

    generate = commands.add_parser(
        "generate",
        help="write a new CA and serving certificate to a directory",
        description=f"Write a new CA and serving certificate to DIR: {CA_CERT}, {CA_KEY}, "
        f"{TLS_CERT}, {TLS_KEY} (keys 0600, a new directory 0700).",
        formatter_class=FORMATTER,
        epilog=examples(
            "hotplug-guard certs generate --service hotplug-guard --namespace hotplug-guard \\",
            "    --out ./tls --key-type rsa --rsa-bits 3072",
        ),
    )
    _add_names(generate)
    generate.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="where to write the four files"
    )
    generate.add_argument(
        "--force", action="store_true", help="replace certificates already in DIR"
    )
    _add_keys_and_lifetimes(generate)
    generate.set_defaults(handler=run_generate)

    ensure = commands.add_parser(
        "ensure",
        help="keep the certificates in a Secret current and publish the CA bundle",
        description="Create or renew the CA and serving certificate kept in a Secret, write "
        "the CA bundle into every webhook of the named webhook configurations, and optionally "
        "write the serving files to DIR. Safe to run from several replicas at once.",
        formatter_class=FORMATTER,
        epilog=examples(
            "hotplug-guard certs ensure --namespace hotplug-guard --service hotplug-guard \\",
            "    --secret-name hotplug-guard-tls --mutating-webhook-config hotplug-guard \\",
            "    --validating-webhook-config hotplug-guard --once",
        ),
    )
    _add_names(ensure)
    ensure.add_argument("--secret-name", required=True, help="Secret holding CA and certificate")
    ensure.add_argument(
        "--mutating-webhook-config",
        metavar="NAME",
        help="the MutatingWebhookConfiguration whose webhooks get the CA bundle",
    )
    ensure.add_argument(
        "--validating-webhook-config",
        metavar="NAME",
        help="the ValidatingWebhookConfiguration whose webhooks get the CA bundle",
    )
    ensure.add_argument(
        "--ca-configmap",
        metavar="NAME",
        help="also keep the CA bundle (ca.crt, no key) in this ConfigMap, for clients that "
        "must trust the server but not read the Secret (a metrics scraper)",
    )
    ensure.add_argument(
        "--out", type=Path, metavar="DIR", help=f"also write {CA_CERT}, {TLS_CERT}, {TLS_KEY}"
    )
    ensure.add_argument(
        "--probe-bind",
        metavar="HOST:PORT",
        help="without --once: answer /healthz (a run ended within the interval and "
        f"{PROBE_SLACK_SECONDS:g} s) and /readyz (the last run succeeded) over HTTP",
    )
    kubeconfig.add_arguments(ensure)
    mode = ensure.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="run once and exit")
    mode.add_argument(
        "--interval",
        type=float,
        default=DEFAULT_INTERVAL_SECONDS,
        metavar="SECONDS",
        help=f"seconds between runs (default {DEFAULT_INTERVAL_SECONDS})",
    )
    _add_keys_and_lifetimes(ensure)
    ensure.add_argument(
        "--overlap-hours",
        type=float,
        default=DEFAULT_POLICY.overlap / timedelta(hours=1),
        help="how long old and new CA are trusted together during a rotation (default %(default)s)",
    )
    ensure.set_defaults(handler=run_ensure)


def _add_names(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--service", required=True, help="the webhook's Service name")
    parser.add_argument("--namespace", required=True, help="the Service's namespace")
    parser.add_argument("--dns", action="append", default=[], help="extra DNS name (repeatable)")
    parser.add_argument("--ip", action="append", default=[], help="extra IP address (repeatable)")


def _add_keys_and_lifetimes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key-type",
        choices=[kind.value for kind in KeyType],
        default=KeyType.ECDSA.value,
        help="ecdsa (P-256, the default) or rsa",
    )
    parser.add_argument(
        "--rsa-bits",
        type=int,
        default=MIN_RSA_BITS,
        help=f"RSA key size with --key-type rsa (default and minimum {MIN_RSA_BITS})",
    )
    parser.add_argument(
        "--ca-days",
        type=float,
        default=DEFAULT_POLICY.authority_lifetime.days,
        help="CA lifetime (default %(default)s); renewed at 2/3 of it",
    )
    parser.add_argument(
        "--days",
        type=float,
        default=DEFAULT_POLICY.serving_lifetime.days,
        help="serving certificate lifetime (default %(default)s); renewed at 2/3 of it",
    )


def run_generate(args: argparse.Namespace) -> int:
    """Write a new CA and serving certificate to --out."""
    directory: Path = args.out
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"--out {directory}: not a directory")
    existing = [
        name for name in (CA_CERT, CA_KEY, TLS_CERT, TLS_KEY) if (directory / name).exists()
    ]
    if existing and not args.force:
        raise UsageError(
            f"--out {directory} already holds {', '.join(existing)}; pass --force to replace them"
        )
    hosts = _hosts(args)
    with _settings():
        parse_hosts(hosts)  # every input is checked before anything is written
        key_spec, policy = _key_spec(args), _policy(args)
    files = generate_local(directory, hosts=hosts, key_spec=key_spec, policy=policy)
    written = ", ".join(path.name for path in (files.ca, files.cert, files.key))
    print(f"wrote {written} and {CA_KEY} to {directory} for {', '.join(hosts)}")
    return 0


def run_ensure(args: argparse.Namespace) -> int:
    """Ensure the certificates in the cluster, once or every --interval seconds."""
    policy = _policy(args)
    if not args.once and not 0 < args.interval < policy.overlap.total_seconds():
        raise UsageError(
            f"--interval must be positive and shorter than the overlap ({policy.overlap}), "
            f"so every replica picks up a new certificate in time; got {args.interval}"
        )
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out}: not a directory")
    with _settings():
        target = ClusterTarget(
            namespace=args.namespace,
            secret_name=_name("--secret-name", args.secret_name),
            hosts=parse_hosts(_hosts(args)),
            mutating_webhook_configuration=args.mutating_webhook_config,
            validating_webhook_configuration=args.validating_webhook_config,
            ca_configmap=_name("--ca-configmap", args.ca_configmap) if args.ca_configmap else None,
        )
        key_spec = _key_spec(args)
    if args.once and args.probe_bind:
        raise UsageError("--probe-bind is for the loop; --once answers with its exit code")
    bind = parse_bind(args.probe_bind, option="--probe-bind") if args.probe_bind else None
    api = ApiClient(kubeconfig.from_arguments(args).configuration)
    configure()
    if args.once:
        return 0 if _ensure_once(api, target, policy=policy, key_spec=key_spec, out=args.out) else 1
    loop = _Loop(interval=args.interval)
    if bind is not None:
        try:
            ProbeServer(bind, health=loop.problem, readiness=loop.unready).start()
        except OSError as error:
            raise UsageError(f"--probe-bind {args.probe_bind}: {error.strerror}") from None
    while True:
        loop.ended(_ensure_once(api, target, policy=policy, key_spec=key_spec, out=args.out))
        # stopping mid-run is safe: every write is atomic and conditional
        time.sleep(args.interval)


class _Loop:
    """What the probes of the `ensure` loop report: runs that end, and how the last ended."""

    def __init__(self, *, interval: float) -> None:
        self._interval = interval
        self._ended = time.monotonic()
        self._succeeded: bool | None = None

    def ended(self, succeeded: bool) -> None:
        self._ended, self._succeeded = time.monotonic(), succeeded

    def problem(self) -> str | None:
        waited = time.monotonic() - self._ended
        if waited > self._interval + PROBE_SLACK_SECONDS:
            return f"no run ended for {waited:.0f} s (interval {self._interval:g} s)"
        return None

    def unready(self) -> str | None:
        if self._succeeded is None:
            return "the first run has not ended"
        return None if self._succeeded else "the last run failed (see the log)"


def _ensure_once(
    api: ApiClient,
    target: ClusterTarget,
    *,
    policy: RotationPolicy,
    key_spec: KeySpec,
    out: Path | None,
) -> bool:
    """One run; failures are logged (the next run retries), never raised."""
    try:
        result = ensure_cluster(api, target, clock=SystemClock(), policy=policy, key_spec=key_spec)
    except ClusterError as error:
        log.error("cannot ensure certificates: %s", error)
        return False
    except ApiException as error:
        log.error(
            "cannot ensure certificates: the API server answered %s %s: %s",
            error.status,
            error.reason,
            _status_message(error),
        )
        return False
    except (HTTPError, OSError) as error:
        log.error("cannot ensure certificates: cannot reach the API server: %s", error)
        return False
    if out is not None:
        try:
            write_material(out, result.material, with_authority_key=False)
        except OSError as error:
            log.error("cannot write the serving files to %s: %s", out, error)
            return False
    return True


def _status_message(error: ApiException) -> str:
    """The message of the metav1.Status in an error response (never the request body)."""
    try:
        status = json.loads(error.body or "")
    except ValueError:
        return ""
    return str(status.get("message", "")) if isinstance(status, dict) else ""


def _hosts(args: argparse.Namespace) -> list[str]:
    """The Service's four DNS names, then --dns and --ip."""
    service = _name("--service", args.service)
    namespace = _name("--namespace", args.namespace)
    for address in args.ip:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise UsageError(f"--ip {address!r} is not an IP address") from None
    return [*service_hosts(service, namespace), *args.dns, *args.ip]


def _name(option: str, value: str) -> str:
    if not DNS_LABEL.fullmatch(value):
        raise UsageError(
            f"{option} {value!r} is not a valid Kubernetes name (lower-case letters, digits "
            "and '-', at most 63 characters)"
        )
    return value


def _key_spec(args: argparse.Namespace) -> KeySpec:
    return KeySpec(type=KeyType(args.key_type), rsa_bits=args.rsa_bits)


def _policy(args: argparse.Namespace) -> RotationPolicy:
    serving_lifetime = timedelta(days=args.days)
    if hasattr(args, "overlap_hours"):
        overlap = timedelta(hours=args.overlap_hours)
    else:  # generate never rotates: any overlap the lifetime allows will do
        overlap = min(DEFAULT_POLICY.overlap, serving_lifetime / 6)
    with _settings():
        return RotationPolicy(
            authority_lifetime=timedelta(days=args.ca_days),
            serving_lifetime=serving_lifetime,
            overlap=overlap,
        )


@contextlib.contextmanager
def _settings() -> Iterator[None]:
    """Turn a CertificateSettingsError into a UsageError (exit 2, no traceback)."""
    try:
        yield
    except CertificateSettingsError as error:
        raise UsageError(str(error)) from None
