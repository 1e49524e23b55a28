"""The pod: restricted security, command lines the real CLI accepts, and where files live."""

from __future__ import annotations

import argparse
import base64
import tomllib
from pathlib import Path
from typing import Any

import pytest
from helm_python import HelmRenderError, HelmValuesError

from hotplug_guard.cli import build_parser
from hotplug_guard.errors import UsageError
from tests.chart import scc
from tests.chart.manifests import (
    FULLNAME,
    NAMESPACE,
    ROOT,
    Manifest,
    Release,
    chart,
    containers,
    merged,
    mount_path,
    render,
)
from webhook.server import GRACEFUL_SECONDS

CONSOLE_SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def parsed(container: Manifest) -> argparse.Namespace:
    """The container's command line as the real `hotplug-guard` parser reads it."""
    assert container["command"] == ["hotplug-guard"]
    assert container["command"][0] in CONSOLE_SCRIPTS
    try:
        return build_parser().parse_args(container["args"])
    except SystemExit:  # argparse prints the unknown flag on stderr
        pytest.fail(f"{container['name']}: the CLI rejects {container['args']}")


# every certificate mode on each platform, with each option that changes the pods
PLATFORMS: dict[str, dict[str, Any]] = {
    "kubernetes": {"openshift": False},
    "openshift": {"openshift": True},
}
MODES: dict[str, dict[str, Any]] = {
    mode: {"certs": {"mode": mode}}
    for mode in ("self-managed", "cert-manager", "openshift-service-ca")
}
OPTIONS: tuple[dict[str, Any], ...] = (
    {},
    {"metrics": {"serviceMonitor": {"enabled": True}}},
    {"serve": {"clusterContext": False}},
)


def renders(platform: str) -> list[Release]:
    """The chart on `platform` in every certificate mode, with each option."""
    base = PLATFORMS[platform]
    return [render(merged(base, mode, extra)) for mode in MODES.values() for extra in OPTIONS]


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_every_pod_meets_the_restricted_pod_security_standard(platform: str) -> None:
    for release in renders(platform):
        assert release.pods()
        for pod in release.pods():
            check_restricted(pod)


def check_restricted(pod: Manifest) -> None:
    """Kubernetes' restricted Pod Security Standard, and a read-only root filesystem."""
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "hostNetwork" not in pod
    assert "hostPID" not in pod
    assert "hostIPC" not in pod
    assert pod["enableServiceLinks"] is False
    for volume in pod.get("volumes", []):
        assert set(volume) & {"hostPath", "persistentVolumeClaim"} == set(), volume
    for container in containers(pod):
        security = container["securityContext"]
        assert security["runAsNonRoot"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["privileged"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}
        assert "ports" not in container or all(
            p["containerPort"] > 1024 for p in container["ports"]
        )


def test_on_kubernetes_every_pod_runs_as_the_images_numeric_user() -> None:
    """65532 is the image's USER (numeric, so that runAsNonRoot can check it)."""
    for release in renders("kubernetes"):
        for pod in release.pods():
            assert [pod["securityContext"][key] for key in scc.IDENTITIES] == [65532] * 3
            # set once, for the pod: no container sets its own
            assert scc.fixed_identities({**pod, "securityContext": {}}) == set()


def test_on_openshift_every_pod_is_admitted_by_restricted_v2() -> None:
    for release in renders("openshift"):
        for pod in release.pods():
            assert scc.violations(pod) == []
            assert scc.fixed_identities(pod) == set()


def test_restricted_v2_refuses_the_pods_rendered_for_plain_kubernetes(
    default_release: Release,
) -> None:
    """Guards the test above: the fixed IDs of plain Kubernetes are what OpenShift refuses."""
    for pod in default_release.pods():
        found = scc.violations(pod)
        assert "pod: runAsUser 65532 is not in the namespace's range 1000680000/10000" in found
        assert "fsGroup 65532: not in the namespace's range 1000680000/10000" in found


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"hostNetwork": True}, "hostNetwork: not allowed"),
        ({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}, "volume h: hostPath"),
        ({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}, "seccomp profile"),
        ({"securityContext": {"seLinuxOptions": {"level": "s0:c1,c2"}}}, "seLinuxOptions"),
    ],
)
def test_restricted_v2_refuses_host_access_and_other_profiles(
    change: dict[str, Any], expected: str
) -> None:
    pod = {**render({"openshift": True}).deployment_pod(), **change}
    assert any(expected in violation for violation in scc.violations(pod))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"privileged": True}, "privileged containers"),
        ({"allowPrivilegeEscalation": True}, "allowPrivilegeEscalation"),
        ({"capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}}, "capabilities ['NET_ADMIN']"),
        ({"runAsUser": 0}, "runAsUser 0"),
    ],
)
def test_restricted_v2_refuses_privileged_containers(change: dict[str, Any], expected: str) -> None:
    pod = render({"openshift": True}).deployment_pod()
    [container] = pod["containers"]
    container["securityContext"] = {**container["securityContext"], **change}
    assert any(expected in violation for violation in scc.violations(pod))


def test_openshift_is_true_false_or_auto() -> None:
    assert chart().values["openshift"] == "auto"
    # offline, auto sees no OpenShift API (the real detection: tests/e2e/test_openshift.py)
    assert render().deployment_pod()["securityContext"]["runAsUser"] == 65532
    assert render({"openshift": False}).deployment_pod()["securityContext"]["runAsUser"] == 65532
    with pytest.raises(HelmValuesError, match="openshift"):
        render({"openshift": "yes"})


def test_every_container_has_requests_and_a_memory_limit(default_release: Release) -> None:
    for container in (c for pod in default_release.pods() for c in containers(pod)):
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), container["name"]
        assert "memory" in resources["limits"], container["name"]


def test_server_command_line_is_accepted_by_serve(default_release: Release) -> None:
    server = default_release.container("webhook")
    args = parsed(server)
    assert args.command == "serve"
    assert args.in_cluster is True
    assert args.kubeconfig is None
    assert args.bind == "0.0.0.0:8443"
    assert (args.workers, args.threads) == (2, 4)
    assert args.cert_dir == mount_path(server, "tls")
    assert args.config.parent == mount_path(server, "policy")
    assert args.signing_keys == mount_path(server, "signing")


def test_server_reads_its_config_from_the_policy_config_map(default_release: Release) -> None:
    server = default_release.container("webhook")
    args = parsed(server)
    volume = next(v for v in default_release.deployment_pod()["volumes"] if v["name"] == "policy")
    config_map = default_release.one("ConfigMap", volume["configMap"]["name"])
    assert args.config.name in config_map["data"]


def test_server_writes_only_to_memory_backed_scratch_space(default_release: Release) -> None:
    """gunicorn's heartbeat files and the metrics directory go to /tmp; the root is read-only."""
    server = default_release.container("webhook")
    pod = default_release.deployment_pod()
    assert mount_path(server, "tmp") == Path("/tmp")  # noqa: S108  # the pod's own emptyDir
    tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
    assert tmp["emptyDir"]["medium"] == "Memory"
    writable = [m for m in server["volumeMounts"] if not m.get("readOnly")]
    assert [m["name"] for m in writable] == ["tmp"]


def test_offline_mode_switches_the_server_flag() -> None:
    args = parsed(render({"serve": {"clusterContext": False}}).container("webhook"))
    assert (args.offline, args.in_cluster) == (True, False)


def test_self_managed_certificates_are_kept_by_a_pod_of_their_own(
    default_release: Release,
) -> None:
    pod = default_release.deployment_pod()
    assert "initContainers" not in pod
    assert [c["name"] for c in pod["containers"]] == ["webhook"]
    certs = default_release.certs_pod()
    assert [c["name"] for c in certs["initContainers"]] == ["certs-init"]
    assert [c["name"] for c in certs["containers"]] == ["certs"]
    assert certs["serviceAccountName"] != pod["serviceAccountName"]
    init = parsed(default_release.container("certs-init"))
    sidecar = parsed(default_release.container("certs"))
    for args in (init, sidecar):
        assert (args.command, args.certs_command) == ("certs", "ensure")
        assert args.namespace == NAMESPACE
        assert args.service == default_release.one("Service", FULLNAME)["metadata"]["name"]
        assert args.secret_name == f"{FULLNAME}-tls"
        assert args.ca_configmap == f"{FULLNAME}-ca"
        assert args.out is None  # no server in this pod
        assert (
            args.mutating_webhook_config
            == default_release.one("MutatingWebhookConfiguration")["metadata"]["name"]
        )
        assert (
            args.validating_webhook_config
            == default_release.one("ValidatingWebhookConfiguration")["metadata"]["name"]
        )
        assert args.kubeconfig is None  # in-cluster service account
        assert (args.days, args.ca_days, args.overlap_hours) == (90, 3650, 24)
    assert init.once is True
    assert sidecar.once is False
    assert sidecar.interval == 600


def test_the_certs_pods_are_not_selected_as_webhook_replicas(default_release: Release) -> None:
    webhook_labels = default_release.deployment()["spec"]["selector"]["matchLabels"]
    certs = default_release.one("Deployment", f"{FULLNAME}-certs")
    certs_labels = certs["spec"]["template"]["metadata"]["labels"]
    assert not webhook_labels.items() <= certs_labels.items()
    for selecting in (
        default_release.one("Service", FULLNAME)["spec"]["selector"],
        default_release.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
    ):
        assert not selecting.items() <= certs_labels.items()


@pytest.mark.parametrize("mode", ["self-managed", "cert-manager"])
def test_the_server_mounts_the_serving_certificate_but_never_the_ca_key(mode: str) -> None:
    release = render({"certs": {"mode": mode}})
    pod = release.deployment_pod()
    tls = next(v for v in pod["volumes"] if v["name"] == "tls")
    assert tls["secret"]["secretName"] == f"{FULLNAME}-tls"
    # the self-managed Secret holds ca.key too; the server must neither see it nor treat the
    # directory as its own local CA (which it does when ca.key is there)
    assert [item["path"] for item in tls["secret"]["items"]] == ["ca.crt", "tls.crt", "tls.key"]
    assert tls["secret"]["defaultMode"] == 0o440  # group-readable through fsGroup
    server = release.container("webhook")
    assert parsed(server).cert_dir == mount_path(server, "tls")
    assert next(m for m in server["volumeMounts"] if m["name"] == "tls")["readOnly"] is True


def test_the_server_reads_the_signing_key_from_its_secret(default_release: Release) -> None:
    pod = default_release.deployment_pod()
    signing = next(v for v in pod["volumes"] if v["name"] == "signing")
    secret = default_release.one("Secret", signing["secret"]["secretName"])
    assert set(secret["data"]) == {"key"}
    assert len(base64.b64decode(secret["data"]["key"])) >= 32
    assert signing["secret"]["defaultMode"] == 0o440
    own = render({"signing": {"existingSecret": "my-keys"}})
    volume = next(v for v in own.deployment_pod()["volumes"] if v["name"] == "signing")
    assert volume["secret"]["secretName"] == "my-keys"
    assert own.all("Secret") == []


@pytest.mark.parametrize("name", ["certs-init", "certs"])
def test_ensure_flags_pass_the_commands_own_checks(default_release: Release, name: str) -> None:
    """run_ensure checks the interval, names and lifetimes before it looks for a cluster.

    With a kubeconfig that does not exist, reaching that last check proves every
    earlier one accepted the chart's flags.
    """
    args = parsed(default_release.container(name))
    args.kubeconfig = Path("/nonexistent/kubeconfig")
    with pytest.raises(UsageError, match=r"^--kubeconfig /nonexistent/kubeconfig: no such file$"):
        args.handler(args)


def test_an_interval_longer_than_the_overlap_fails_at_render_time() -> None:
    too_long = r"interval \(7200 s\) must be shorter than the overlap \(1 h\)"
    with pytest.raises(HelmRenderError, match=too_long):
        render({"certs": {"selfManaged": {"interval": 7200, "overlapHours": 1}}})
    args = parsed(
        render({"certs": {"selfManaged": {"interval": 3000, "overlapHours": 1}}}).container("certs")
    )
    assert (args.interval, args.overlap_hours) == (3000, 1)


def test_cert_manager_mode_runs_no_ensure(cert_manager_release: Release) -> None:
    assert [c["name"] for c in cert_manager_release.deployment_pod()["containers"]] == ["webhook"]
    assert {c["name"] for pod in cert_manager_release.pods() for c in containers(pod)} == {
        "webhook",
        "controller",
    }


def test_a_policy_change_rolls_the_pods() -> None:
    def checksum(release: Release) -> str:
        annotations = release.deployment()["spec"]["template"]["metadata"]["annotations"]
        value: str = annotations["checksum/policy"]
        return value

    default = checksum(render())
    assert checksum(render({"policy": {"rules": {"plug-model": "warn"}}})) != default
    assert checksum(render({"replicas": 5})) == default


def test_terminating_replicas_keep_serving_while_endpoints_update(
    default_release: Release,
) -> None:
    server = default_release.container("webhook")
    assert server["lifecycle"]["preStop"] == {"sleep": {"seconds": 5}}
    grace = default_release.deployment_pod()["terminationGracePeriodSeconds"]
    assert grace > 5 + GRACEFUL_SECONDS  # the sleep, then gunicorn's graceful stop
