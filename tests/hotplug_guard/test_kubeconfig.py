"""The one kubeconfig loader of every command: kubectl's order, and each failure in words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hotplug_guard import kubeconfig
from hotplug_guard.errors import UsageError
from tests.kube.controlplane import ADMIN, ControlPlane
from tests.webhook.service import free_port

Config = dict[str, Any]


def config(
    *contexts: tuple[str, str, str | None],
    current: str | None = None,
    server: str = "https://127.0.0.1:6443",
) -> Config:
    """A kubeconfig with clusters `c-<name>` and users `u-<name>` for each (context, cluster,
    namespace)."""
    clusters = sorted({cluster for _, cluster, _ in contexts})
    result: Config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server}} for name in clusters],
        "users": [{"name": "user", "user": {"token": "t0ken"}}],
        "contexts": [
            {
                "name": name,
                "context": {
                    "cluster": cluster,
                    "user": "user",
                    **({"namespace": namespace} if namespace else {}),
                },
            }
            for name, cluster, namespace in contexts
        ],
    }
    if current:
        result["current-context"] = current
    return result


def write(path: Path, content: Config | str) -> Path:
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return path


def usage_error(**options: Any) -> str:
    with pytest.raises(UsageError) as raised:
        kubeconfig.load(**options)
    return str(raised.value)


def test_a_missing_kubeconfig_file_is_named() -> None:
    message = usage_error(kubeconfig=Path("/nonexistent/kubeconfig"), environ={})
    assert message == "--kubeconfig /nonexistent/kubeconfig: no such file"


def test_no_cluster_at_all_says_where_it_looked(tmp_path: Path) -> None:
    message = usage_error(environ={}, home=tmp_path)
    assert message.startswith(f"no cluster configured: {tmp_path}/.kube/config does not exist")
    assert "KUBECONFIG is not set and this is not a pod; pass --kubeconfig PATH" in message


def test_kubeconfig_variable_naming_no_existing_file(tmp_path: Path) -> None:
    value = f"{tmp_path}/a:{tmp_path}/b"
    message = usage_error(environ={"KUBECONFIG": value}, home=tmp_path)
    assert message == (
        f"KUBECONFIG={value}: none of its files exists; set it to your kubeconfig "
        "or pass --kubeconfig"
    )


def test_an_unknown_context_lists_the_contexts_offered(tmp_path: Path) -> None:
    path = write(tmp_path / "kc", config(("dev", "c", None), ("prod", "c", None), current="dev"))
    message = usage_error(kubeconfig=path, context="staging", environ={})
    assert message == f"context 'staging' not found in kubeconfig {path} (contexts: dev, prod)"


def test_no_current_context_asks_for_one(tmp_path: Path) -> None:
    path = write(tmp_path / "kc", config(("dev", "c", None)))
    message = usage_error(kubeconfig=path, environ={})
    assert message == f"kubeconfig {path} sets no current context; pass --context (contexts: dev)"


def test_a_context_naming_an_undefined_cluster_is_named(tmp_path: Path) -> None:
    content = config(("dev", "c", None), current="dev")
    content["contexts"][0]["context"]["cluster"] = "gone"
    path = write(tmp_path / "kc", content)
    message = usage_error(kubeconfig=path, environ={})
    assert message == (
        f"context 'dev' in kubeconfig {path} names cluster 'gone', which is not defined there"
    )


def test_invalid_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "kc", "apiVersion: v1\nclusters: [\n  - {name: a\n")
    message = usage_error(kubeconfig=path, environ={})
    assert message.startswith(f"{path}: not a kubeconfig: invalid YAML (line ")


def test_in_cluster_outside_a_pod_says_so() -> None:
    message = usage_error(in_cluster=True, environ={})
    assert message.startswith("--in-cluster: not running in a pod")


def test_in_cluster_without_a_mounted_token_says_so(tmp_path: Path) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    message = usage_error(in_cluster=True, environ=env, service_account=tmp_path)
    assert message.startswith("--in-cluster: the pod's service account cannot be used")


def test_kubeconfig_variable_merges_files_first_one_wins_and_skips_missing(tmp_path: Path) -> None:
    first = write(tmp_path / "first", config(("dev", "c", "team-a"), current="dev"))
    second = write(tmp_path / "second", config(("dev", "c", "ignored"), ("ops", "c", None)))
    variable = f"{tmp_path}/missing:{first}:{second}"

    dev = kubeconfig.load(environ={"KUBECONFIG": variable}, home=tmp_path)
    ops = kubeconfig.load(environ={"KUBECONFIG": variable}, context="ops", home=tmp_path)

    assert (dev.namespace, dev.source) == ("team-a", f"KUBECONFIG {variable}, context 'dev'")
    assert ops.namespace == "default"
    assert dev.server == "https://127.0.0.1:6443"


def test_the_home_kubeconfig_is_the_default(tmp_path: Path) -> None:
    (tmp_path / ".kube").mkdir()
    write(tmp_path / ".kube" / "config", config(("home", "c", "mine"), current="home"))
    found = kubeconfig.load(environ={}, home=tmp_path)
    assert found.namespace == "mine"


def test_an_unreachable_server_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    server = f"https://127.0.0.1:{free_port()}"
    path = write(tmp_path / "kc", config(("dev", "c", None), current="dev", server=server))
    cluster = kubeconfig.load(kubeconfig=path, environ={})
    with pytest.raises(UsageError) as raised:
        kubeconfig.connect(cluster, timeout=2)
    assert str(raised.value) == (
        f"cannot reach the API server {server} (kubeconfig {path}, context 'dev'): "
        "connection refused"
    )


def test_a_server_reached_through_a_kubeconfig_answers(control_plane: ControlPlane) -> None:
    cluster = kubeconfig.load(kubeconfig=control_plane.kubeconfig(ADMIN), environ={})
    api = kubeconfig.connect(cluster)
    api.close()  # type: ignore[no-untyped-call]


def test_an_untrusted_server_certificate_is_named(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    content = yaml.safe_load(control_plane.kubeconfig(ADMIN).read_text())
    # a CA that did not sign the server's certificate
    content["clusters"][0]["cluster"]["certificate-authority"] = str(
        control_plane.pki / "client-ca.crt"
    )
    path = write(tmp_path / "kc", content)
    with pytest.raises(UsageError, match="its certificate is not trusted"):
        kubeconfig.connect(kubeconfig.load(kubeconfig=path, environ={}), timeout=3)


def test_refused_credentials_are_named(control_plane: ControlPlane, tmp_path: Path) -> None:
    content = yaml.safe_load(control_plane.kubeconfig(ADMIN).read_text())
    content["users"][0]["user"] = {"token": "not-a-token"}
    path = write(tmp_path / "kc", content)
    with pytest.raises(UsageError, match=r"refused the credentials of kubeconfig .* \(401"):
        kubeconfig.connect(kubeconfig.load(kubeconfig=path, environ={}))


def test_a_pod_without_kubeconfig_uses_its_service_account(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    """Outside a kubeconfig, the mounted token, CA and namespace of the pod are used."""
    namespace = control_plane.create_namespace("in-cluster", developers=False)
    token = yaml.safe_load(control_plane.token_kubeconfig(namespace, "reader").read_text())
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(token["users"][0]["user"]["token"])
    (account / "ca.crt").write_bytes(control_plane.ca_file.read_bytes())
    (account / "namespace").write_text(namespace)
    env = {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(control_plane.port),
    }

    cluster = kubeconfig.load(environ=env, home=tmp_path, service_account=account)
    api = kubeconfig.connect(cluster)
    api.close()  # type: ignore[no-untyped-call]

    assert (cluster.namespace, cluster.source) == (namespace, "the pod's service account")
