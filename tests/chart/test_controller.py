"""The controller's Deployment: its command line, its identity, its probes and its key."""

from __future__ import annotations

import pytest
import yaml
from helm_python import HelmRenderError

from policy.config import PRODUCT_CONTROLLER
from tests.chart.manifests import (
    FULLNAME,
    NAMESPACE,
    Manifest,
    Release,
    containers,
    mount_path,
    render,
)
from tests.chart.test_pod import parsed


def controller(release: Release) -> Manifest:
    deployment: Manifest = release.one("Deployment", f"{FULLNAME}-controller")
    return deployment


def test_two_replicas_run_the_controller_in_the_cluster(default_release: Release) -> None:
    deployment = controller(default_release)
    assert deployment["spec"]["replicas"] == 2
    args = parsed(default_release.container("controller"))
    assert (args.command, args.in_cluster) == ("controller", True)
    assert (args.lease_namespace, args.lease_name) == (NAMESPACE, f"{FULLNAME}-controller")
    assert (args.grace_seconds, args.max_parallel_migrations, args.max_attempts) == (15, 5, 3)
    assert (
        args.lease_duration_seconds,
        args.renew_deadline_seconds,
        args.retry_period_seconds,
    ) == (15, 10, 2)


def test_the_values_reach_the_command_line() -> None:
    release = render(
        {
            "controller": {
                "gracePeriodSeconds": 30,
                "maxParallelMigrations": 2,
                "maxAttempts": 5,
                "retryBackoffSeconds": 10,
                "leaderElection": {"leaseDurationSeconds": 30, "renewDeadlineSeconds": 20},
            }
        }
    )
    args = parsed(release.container("controller"))
    assert (args.grace_seconds, args.max_parallel_migrations) == (30, 2)
    assert (args.max_attempts, args.retry_backoff_seconds) == (5, 10)
    assert (args.lease_duration_seconds, args.renew_deadline_seconds) == (30, 20)


def test_its_service_account_is_the_policys_controller_username(default_release: Release) -> None:
    account = default_release.controller_pod()["serviceAccountName"]
    policy = yaml.safe_load(
        default_release.one("ConfigMap", f"{FULLNAME}-policy")["data"]["policy.yaml"]
    )
    assert policy["controllerUsername"] == f"system:serviceaccount:{NAMESPACE}:{account}"


def test_installed_as_hotplug_guard_it_is_the_engines_default_controller() -> None:
    release = render(name="hotplug-guard", namespace="hotplug-guard")
    account = release.controller_pod()["serviceAccountName"]
    assert f"system:serviceaccount:hotplug-guard:{account}" == PRODUCT_CONTROLLER


def test_it_reads_the_webhooks_signing_key(default_release: Release) -> None:
    pod = default_release.controller_pod()
    container = default_release.container("controller")
    [volume] = [v for v in pod["volumes"] if v["name"] == "signing"]
    assert volume["secret"] == {"secretName": f"{FULLNAME}-signing", "defaultMode": 0o440}
    assert str(mount_path(container, "signing")) == parsed(container).signing_keys.as_posix()
    assert all(m["readOnly"] for m in container["volumeMounts"])
    assert pod["securityContext"]["fsGroup"] == 65532  # the key files are group-readable


def test_every_container_has_probes_on_a_port_it_declares(default_release: Release) -> None:
    """Init containers run to completion and cannot have probes; every other container can."""
    for pod in default_release.pods():
        for container in pod["containers"]:
            ports = {port["name"] for port in container.get("ports", ())}
            for probe in ("livenessProbe", "readinessProbe"):
                assert probe in container, f"{container['name']} has no {probe}"
                assert container[probe]["httpGet"]["port"] in ports, container["name"]


def test_the_certificate_loop_answers_its_probes(default_release: Release) -> None:
    args = parsed(default_release.container("certs"))
    assert args.probe_bind == "0.0.0.0:8081"
    assert parsed(default_release.container("certs-init")).probe_bind is None


def test_leader_election_timings_out_of_order_are_refused() -> None:
    with pytest.raises(HelmRenderError, match=r"retryPeriodSeconds .* < renewDeadlineSeconds"):
        render({"controller": {"leaderElection": {"renewDeadlineSeconds": 20}}})


def test_disabled_it_renders_nothing_of_its_own() -> None:
    release = render({"controller": {"enabled": False}})
    names = {item["metadata"]["name"] for item in release.objects}
    assert not {name for name in names if name.startswith(f"{FULLNAME}-controller")}
    assert "controller" not in {c["name"] for pod in release.pods() for c in containers(pod)}


def test_another_migrate_role_can_be_bound() -> None:
    release = render({"controller": {"migrateClusterRole": "my-migrator"}})
    binding = release.one("ClusterRoleBinding", f"{FULLNAME}-controller-migrate")
    assert binding["roleRef"]["name"] == "my-migrator"
