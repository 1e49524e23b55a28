"""`hotplug-guard certs generate|ensure` end to end, as an operator or init container runs them.

`ensure` runs against the real kube-apiserver; the fake API server only counts the
reads of a looping `ensure` and plays an API server that went away.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from hotplug_guard.cli import main
from tests.certs.chains import load_bundle, verify_chain
from tests.harness.fake_apiserver import FakeApiServer
from tests.kube.controlplane import ALICE
from tests.kube.seeding import Seeding
from tests.webhook.service import free_port

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotplug_guard", "certs", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generate_writes_a_verifiable_ca_and_serving_certificate(tmp_path: Path) -> None:
    out = tmp_path / "tls"

    done = _run(
        "generate",
        "--service=guard",
        "--namespace=guard-system",
        f"--out={out}",
        "--dns=guard.example.com",
        "--ip=10.96.0.10",
    )

    assert done.returncode == 0, done.stderr
    assert sorted(path.name for path in out.iterdir() if not path.name.startswith(".")) == [
        "ca.crt",
        "ca.key",
        "tls.crt",
        "tls.key",
    ]
    assert (_mode(out), _mode(out / "tls.key"), _mode(out / "ca.key")) == (0o700, 0o600, 0o600)
    (leaf,) = load_bundle(out / "tls.crt")
    now = datetime.now(UTC)
    for host in ("guard.guard-system.svc.cluster.local", "guard.example.com", "10.96.0.10"):
        assert verify_chain(leaf, load_bundle(out / "ca.crt"), host=host, at=now)
    assert "PRIVATE KEY" not in done.stdout + done.stderr


def test_generate_with_rsa_keys(tmp_path: Path) -> None:
    done = _run(
        "generate",
        "--service=guard",
        "--namespace=ns",
        f"--out={tmp_path / 'tls'}",
        "--key-type=rsa",
        "--rsa-bits=3072",
    )

    assert done.returncode == 0, done.stderr
    assert (
        (tmp_path / "tls" / "tls.key")
        .read_text(encoding="ascii")
        .startswith("-----BEGIN PRIVATE KEY-----")
    )


def test_generate_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["certs", "generate", "--service=guard", "--namespace=ns", f"--out={tmp_path}"]
    assert main(argv) == 0
    before = (tmp_path / "ca.crt").read_bytes()
    capsys.readouterr()

    refused = main(argv)
    message = capsys.readouterr().err
    forced = main([*argv, "--force"])

    assert refused == 2
    assert "already holds ca.crt, ca.key, tls.crt, tls.key; pass --force" in message
    assert forced == 0
    assert (tmp_path / "ca.crt").read_bytes() != before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--service=Guard", "--namespace=ns"], "--service 'Guard' is not a valid Kubernetes name"),
        (
            ["--service=guard", "--namespace=a_b"],
            "--namespace 'a_b' is not a valid Kubernetes name",
        ),
        (
            ["--service=guard", "--namespace=ns", "--ip=10.0.0.300"],
            "--ip '10.0.0.300' is not an IP",
        ),
        (["--service=guard", "--namespace=ns", "--dns=bad_name"], "'bad_name' is neither an IP"),
        (
            ["--service=guard", "--namespace=ns", "--key-type=rsa", "--rsa-bits=1024"],
            "RSA keys need at least 2048 bits, got 1024",
        ),
        (["--service=guard", "--namespace=ns", "--days=0"], "lifetimes must be positive"),
    ],
)
def test_generate_rejects_bad_input_with_exit_2_and_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code = main(["certs", "generate", *args, f"--out={tmp_path / 'tls'}"])

    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "tls").exists()


def test_bad_input_in_a_subprocess_is_one_line_without_traceback(tmp_path: Path) -> None:
    done = _run("generate", "--service=guard", "--namespace=ns", "--ip=x", f"--out={tmp_path}")

    assert done.returncode == 2
    assert done.stderr == "hotplug-guard certs: --ip 'x' is not an IP address\n"


def test_generate_into_a_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "file"
    file.write_text("x", encoding="utf-8")

    code = main(["certs", "generate", "--service=guard", "--namespace=ns", f"--out={file}"])

    assert code == 2
    assert "not a directory" in capsys.readouterr().err


def _install_webhooks(server: Seeding | FakeApiServer) -> None:
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        server.put(
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": kind,
                "metadata": {"name": "guard"},
                "webhooks": [
                    {
                        "name": "vms.hotplug-guard.io",
                        "admissionReviewVersions": ["v1"],
                        "sideEffects": "None",
                        "clientConfig": {"service": {"name": "guard", "namespace": "guard-system"}},
                    }
                ],
            }
        )


def _ensure_args(kubeconfig: Path, out: Path) -> list[str]:
    return [
        "ensure",
        "--once",
        "--service=guard",
        "--namespace=guard-system",
        "--secret-name=guard-tls",
        "--mutating-webhook-config=guard",
        "--validating-webhook-config=guard",
        f"--kubeconfig={kubeconfig}",
        f"--out={out}",
    ]


def test_ensure_once_keeps_the_secret_publishes_the_bundle_and_writes_server_files(
    apiserver: Seeding, tmp_path: Path
) -> None:
    apiserver.namespace("guard-system")
    _install_webhooks(apiserver)
    kubeconfig = apiserver.write_kubeconfig(tmp_path / "kubeconfig")
    out = tmp_path / "serving"

    done = _run(*_ensure_args(kubeconfig, out))

    assert done.returncode == 0, done.stderr
    secret = apiserver.get("v1", "secrets", "guard-system", "guard-tls")
    assert secret is not None
    assert sorted(path.name for path in out.iterdir()) == ["ca.crt", "tls.crt", "tls.key"]
    assert base64.b64decode(secret["data"]["tls.crt"]) == (out / "tls.crt").read_bytes()
    configuration = apiserver.get(
        "admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", None, "guard"
    )
    assert configuration is not None
    bundle = base64.b64decode(configuration["webhooks"][0]["clientConfig"]["caBundle"])
    assert bundle == (out / "ca.crt").read_bytes()
    assert "PRIVATE KEY" not in done.stdout + done.stderr
    assert "published the CA bundle to mutatingwebhookconfigurations/guard" in done.stderr


def test_a_second_ensure_changes_nothing(apiserver: Seeding, tmp_path: Path) -> None:
    apiserver.namespace("guard-system")
    _install_webhooks(apiserver)
    args = _ensure_args(apiserver.write_kubeconfig(tmp_path / "kubeconfig"), tmp_path / "out")
    assert _run(*args).returncode == 0
    before = _versions(apiserver)

    done = _run(*args)

    assert done.returncode == 0, done.stderr
    assert _versions(apiserver) == before  # every write changes a resourceVersion


def _versions(server: Seeding) -> list[str]:
    kinds = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
    found = [server.get("admissionregistration.k8s.io/v1", kind, None, "guard") for kind in kinds]
    found.append(server.get("v1", "Secret", "guard-system", "guard-tls"))
    return [obj["metadata"]["resourceVersion"] for obj in found if obj is not None]


def test_ensure_reports_an_api_failure_with_exit_1(apiserver: Seeding, tmp_path: Path) -> None:
    apiserver.namespace("guard-system")
    _install_webhooks(apiserver)
    kubeconfig = apiserver.plane.kubeconfig(ALICE)  # RBAC lets her edit VMs, not read Secrets

    done = _run(*_ensure_args(kubeconfig, tmp_path / "out"))

    assert done.returncode == 1
    (logged,) = (json.loads(line) for line in done.stderr.splitlines())
    assert "the API server answered 403 Forbidden" in logged["message"]
    assert 'User "alice" cannot get resource "secrets"' in logged["message"]
    assert "Traceback" not in done.stderr


def test_ensure_names_a_missing_webhook_configuration(apiserver: Seeding, tmp_path: Path) -> None:
    apiserver.namespace("guard-system")
    kubeconfig = apiserver.write_kubeconfig(tmp_path / "kubeconfig")

    done = _run(*_ensure_args(kubeconfig, tmp_path / "out"))

    assert done.returncode == 1
    assert "mutatingwebhookconfigurations 'guard' not found" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--interval=0"], "--interval must be positive and shorter than the overlap"),
        (["--interval=90000"], "--interval must be positive and shorter than the overlap"),
        (["--secret-name=Bad"], "--secret-name 'Bad' is not a valid Kubernetes name"),
        (["--overlap-hours=2000"], "must be shorter than the last third of the serving lifetime"),
        (["--kubeconfig=/nonexistent/kubeconfig"], "--kubeconfig /nonexistent/kubeconfig: no such"),
        (["--once", "--probe-bind=127.0.0.1:0"], "--probe-bind is for the loop"),
        (["--interval=60", "--probe-bind=localhost"], "--probe-bind must be HOST:PORT"),
    ],
)
def test_ensure_rejects_bad_input_with_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code = main(
        ["certs", "ensure", "--service=guard", "--namespace=ns", "--secret-name=tls", *args]
    )

    assert code == 2
    assert message in capsys.readouterr().err


def test_ensure_once_and_interval_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["certs", "ensure", "--service=g", "--namespace=n", "--secret-name=s", "--once"]

    with pytest.raises(SystemExit) as exited:
        main([*argv, "--interval=5"])

    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_ensure_without_once_keeps_running_every_interval(
    fake_apiserver: FakeApiServer, tmp_path: Path
) -> None:
    _install_webhooks(fake_apiserver)
    args = _ensure_args(fake_apiserver.write_kubeconfig(tmp_path / "kubeconfig"), tmp_path / "out")
    args[args.index("--once")] = "--interval=0.2"
    loop = subprocess.Popen(
        [sys.executable, "-m", "hotplug_guard", "certs", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while _secret_reads(fake_apiserver) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        still_running = loop.poll() is None
    finally:
        loop.terminate()
        loop.wait(timeout=10)

    assert still_running
    assert _secret_reads(fake_apiserver) >= 6  # two reads per run: at least three runs
    assert len(fake_apiserver.objects("v1", "secrets")) == 1


def test_the_loop_answers_its_probes(apiserver: Seeding, tmp_path: Path) -> None:
    """Ready once a run succeeded, alive while runs keep ending; both over HTTP."""
    apiserver.namespace("guard-system")
    _install_webhooks(apiserver)
    args = _ensure_args(apiserver.write_kubeconfig(tmp_path / "kubeconfig"), tmp_path / "out")
    port = free_port()
    args[args.index("--once")] = "--interval=60"
    loop = subprocess.Popen(
        [sys.executable, "-m", "hotplug_guard", "certs", *args, f"--probe-bind=127.0.0.1:{port}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        answers: dict[str, int] = {}
        while answers.get("/readyz") != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
            for path in ("/healthz", "/readyz"):
                try:
                    answers[path] = requests.get(
                        f"http://127.0.0.1:{port}{path}", timeout=2
                    ).status_code
                except requests.RequestException:
                    answers[path] = 0
    finally:
        loop.terminate()
        loop.wait(timeout=10)

    assert answers == {"/healthz": 200, "/readyz": 200}
    assert apiserver.get("v1", "secrets", "guard-system", "guard-tls") is not None


def _secret_reads(server: FakeApiServer) -> int:
    return sum(r.verb == "get" and r.resource == "secrets" for r in server.requests)


def test_ensure_reports_an_unreachable_api_server_with_exit_1(
    fake_apiserver: FakeApiServer, tmp_path: Path
) -> None:
    kubeconfig = fake_apiserver.write_kubeconfig(tmp_path / "kubeconfig")
    fake_apiserver.stop()  # nothing listens on its port any more

    done = _run(*_ensure_args(kubeconfig, tmp_path / "out"))

    assert done.returncode == 1
    assert "cannot reach the API server" in done.stderr
    assert not (tmp_path / "out").exists()
