"""The cluster a command talks to, found as kubectl finds it; every failure a UsageError.

Where the configuration comes from, first match wins:

1. `--in-cluster`: the pod's service account (token, CA, KUBERNETES_SERVICE_HOST/PORT);
2. `--kubeconfig PATH`;
3. `KUBECONFIG` (several files separated by `:`, merged as kubectl merges them: the
   first file that names a context, cluster or user wins; missing files are skipped);
4. `~/.kube/config`;
5. the pod's service account, when the command runs in a pod.

`--context NAME` picks a context other than the current one. The library's own
errors say "Invalid kube-config file. Expected object with name x in ... list";
these are said here in the product's words, naming the file and what it offers,
before the library builds the client configuration. `connect` also asks the API
server for its version, so that an unreachable server or refused credentials are
reported before a command does anything.

The adapters (`webhook`, `certs`, `controller`) never load a kubeconfig: they are
handed the configuration or client built here.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
import urllib3.exceptions
import yaml
from kubernetes.client.exceptions import ApiException

from hotplug_guard.errors import UsageError

DEFAULT_NAMESPACE = "default"
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
PROBE_SECONDS = 5.0
HTTP_UNAUTHORIZED = 401

_loaders: Any = kubernetes.config  # the config loaders carry no type hints


@dataclass(frozen=True, slots=True)
class Cluster:
    """A client configuration and where it came from."""

    configuration: kubernetes.client.Configuration
    namespace: str
    """The context's namespace (or the pod's), `default` when it names none."""
    source: str
    """For messages: `kubeconfig /path, context 'x'` or `the pod's service account`."""

    @property
    def server(self) -> str:
        return str(self.configuration.host)


def add_arguments(parser: argparse.ArgumentParser, *, in_cluster: bool = True) -> None:
    """--kubeconfig and --context (and --in-cluster) as every cluster command takes them."""
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        metavar="PATH",
        help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then the pod's "
        "service account)",
    )
    parser.add_argument("--context", metavar="NAME", help="kubeconfig context to use")
    if in_cluster:
        parser.add_argument(
            "--in-cluster", action="store_true", help="use the pod's service account"
        )


def from_arguments(
    args: argparse.Namespace, *, environ: Mapping[str, str] | None = None
) -> Cluster:
    """`load` with the options `add_arguments` declared."""
    return load(
        kubeconfig=args.kubeconfig,
        context=args.context,
        in_cluster=getattr(args, "in_cluster", False),
        environ=environ,
    )


def load(
    *,
    kubeconfig: Path | None = None,
    context: str | None = None,
    in_cluster: bool = False,
    environ: Mapping[str, str] | None = None,
    home: Path | None = None,
    service_account: Path = SERVICE_ACCOUNT,
) -> Cluster:
    """The cluster to talk to (see the module documentation for the order)."""
    env = os.environ if environ is None else environ
    if in_cluster:
        if kubeconfig is not None or context is not None:
            raise UsageError("--in-cluster cannot be combined with --kubeconfig or --context")
        return _in_cluster(env, service_account)
    if kubeconfig is not None:
        files = [_existing(kubeconfig, f"--kubeconfig {kubeconfig}")]
        origin = f"kubeconfig {kubeconfig}"
    elif env.get("KUBECONFIG"):
        listed = [Path(p).expanduser() for p in env["KUBECONFIG"].split(os.pathsep) if p]
        files = [path for path in listed if path.is_file()]
        if not files:
            raise UsageError(
                f"KUBECONFIG={env['KUBECONFIG']}: none of its files exists; set it to your "
                "kubeconfig or pass --kubeconfig"
            )
        origin = f"KUBECONFIG {env['KUBECONFIG']}"
    else:
        default = (home or Path.home()) / ".kube" / "config"
        if default.is_file():
            files, origin = [default], f"kubeconfig {default}"
        elif env.get("KUBERNETES_SERVICE_HOST") and context is None:
            return _in_cluster(env, service_account)
        else:
            raise UsageError(
                f"no cluster configured: {default} does not exist, KUBECONFIG is not set and "
                "this is not a pod; pass --kubeconfig PATH (or log in to your cluster so that "
                "kubectl works)"
            )
    return _from_files(files, origin=origin, context=context)


def connect(cluster: Cluster, *, timeout: float = PROBE_SECONDS) -> kubernetes.client.ApiClient:
    """A client of `cluster` whose API server answered; UsageError when it cannot be reached."""
    api = kubernetes.client.ApiClient(cluster.configuration)
    try:
        with api_errors(cluster):
            kubernetes.client.VersionApi(api).get_code(_request_timeout=timeout)
    except BaseException:
        api.close()  # type: ignore[no-untyped-call]
        raise
    return api


@contextlib.contextmanager
def api_errors(cluster: Cluster) -> Iterator[None]:
    """Turn "cannot reach the server" and "refused credentials" into a UsageError.

    Other API errors (403, 404, 422) mean something to the caller and pass through.
    """
    try:
        yield
    except ApiException as error:
        if error.status == HTTP_UNAUTHORIZED:
            raise UsageError(
                f"the API server {cluster.server} refused the credentials of {cluster.source} "
                "(401 Unauthorized); log in again or renew the token"
            ) from None
        raise
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise UsageError(
            f"cannot reach the API server {cluster.server} ({cluster.source}): {_reason(error)}"
        ) from None


def _reason(error: BaseException) -> str:
    """The innermost useful words of a urllib3/socket error (no URL repeated, one line)."""
    reason = getattr(error, "reason", None)
    while isinstance(reason, BaseException) and getattr(reason, "reason", None) is not None:
        reason = getattr(reason, "reason", None)
    text = str(reason if isinstance(reason, BaseException) else error)
    if "certificate verify failed" in text:
        detail = text.rsplit("certificate verify failed", maxsplit=1)[-1].strip(" :()'\"")
        return f"its certificate is not trusted ({detail or 'certificate verify failed'})"
    for marker in ("Connection refused", "Name or service not known", "timed out"):
        if marker in text:
            return marker.lower()
    return text.splitlines()[0][:300] if text else type(error).__name__


def _existing(path: Path, option: str) -> Path:
    if not path.exists():
        raise UsageError(f"{option}: no such file")
    if not path.is_file():
        raise UsageError(f"{option}: not a file")
    return path


def _read(path: Path) -> Mapping[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise UsageError(f"{path}: cannot read: {error.strerror}") from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise UsageError(f"{path}: not a kubeconfig: invalid YAML{line}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{path}: not a kubeconfig: expected a mapping at the top")
    return data


def _named(files: Sequence[Path], key: str) -> dict[str, Mapping[str, Any]]:
    """`name -> entry` of one list (contexts, clusters, users) over the files, first wins."""
    found: dict[str, Mapping[str, Any]] = {}
    for path in files:
        entries = _read(path).get(key) or []
        if not isinstance(entries, list):
            raise UsageError(f"{path}: not a kubeconfig: '{key}' is not a list")
        for entry in entries:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                found.setdefault(entry["name"], entry)
    return found


def _from_files(files: Sequence[Path], *, origin: str, context: str | None) -> Cluster:
    contexts = _named(files, "contexts")
    offered = ", ".join(sorted(contexts)) or "none"
    chosen = context
    if chosen is None:
        chosen = next(
            (
                current
                for path in files
                if isinstance(current := _read(path).get("current-context"), str) and current
            ),
            None,
        )
        if chosen is None:
            raise UsageError(
                f"{origin} sets no current context; pass --context (contexts: {offered})"
            )
    if chosen not in contexts:
        raise UsageError(f"context '{chosen}' not found in {origin} (contexts: {offered})")
    settings = contexts[chosen].get("context")
    settings = settings if isinstance(settings, dict) else {}
    for key, listed in (("cluster", "clusters"), ("user", "users")):
        name = settings.get(key)
        if not name and key == "user":
            continue  # a cluster that needs no credentials
        if not name or name not in _named(files, listed):
            raise UsageError(
                f"context '{chosen}' in {origin} names {key} '{name or ''}', which is not "
                f"defined there"
            )
    configuration = kubernetes.client.Configuration()
    try:
        _loaders.load_kube_config(
            config_file=os.pathsep.join(str(path) for path in files),
            context=chosen,
            client_configuration=configuration,
            persist_config=False,
        )
    except (_loaders.ConfigException, OSError, ValueError, TypeError) as error:
        raise UsageError(f"{origin}, context '{chosen}': {error}") from None
    namespace = settings.get("namespace")
    return Cluster(
        configuration=configuration,
        namespace=namespace if isinstance(namespace, str) and namespace else DEFAULT_NAMESPACE,
        source=f"{origin}, context '{chosen}'",
    )


def _in_cluster(env: Mapping[str, str], account: Path) -> Cluster:
    if not (env.get("KUBERNETES_SERVICE_HOST") and env.get("KUBERNETES_SERVICE_PORT")):
        raise UsageError(
            "--in-cluster: not running in a pod (KUBERNETES_SERVICE_HOST and "
            "KUBERNETES_SERVICE_PORT are not set); pass --kubeconfig instead"
        )
    configuration = kubernetes.client.Configuration()
    loader = _loaders.incluster_config.InClusterConfigLoader(
        token_filename=str(account / "token"),
        cert_filename=str(account / "ca.crt"),
        environ=env,
    )
    try:
        loader.load_and_set(configuration)
    except _loaders.ConfigException as error:
        raise UsageError(
            f"--in-cluster: the pod's service account cannot be used ({error}); is "
            "automountServiceAccountToken off?"
        ) from None
    try:
        namespace = (account / "namespace").read_text().strip()
    except OSError:
        namespace = ""
    return Cluster(
        configuration=configuration,
        namespace=namespace or DEFAULT_NAMESPACE,
        source="the pod's service account",
    )
