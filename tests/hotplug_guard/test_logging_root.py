"""One logging root: every logger of the product descends from `hotplug_guard`, and every
long-running command writes what each package logs as JSON lines."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from certs import ensure_local
from hotplug_guard.logs import ROOT
from tests.kube.controlplane import ALICE, ControlPlane
from tests.webhook import service

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("policy", "webhook", "certs", "controller", "kubecache", "hotplug_guard")
UNREACHABLE_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "https://127.0.0.1:{port}"}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: c, context: {{cluster: c, user: u, namespace: default}}}}]
current-context: c
"""


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            yield name, ast.parse(path.read_text(), filename=str(path))


def _logger_name(argument: ast.expr, *, module: str, constants: dict[str, str]) -> str:
    """The name a `getLogger` argument evaluates to, for the forms the product writes."""
    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
        return argument.value
    if isinstance(argument, ast.Name) and argument.id == "__name__":
        return module
    if isinstance(argument, ast.Name) and argument.id in constants:
        return constants[argument.id]
    if isinstance(argument, ast.JoinedStr):
        parts = []
        for value in argument.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            elif isinstance(value, ast.FormattedValue):
                parts.append(_logger_name(value.value, module=module, constants=constants))
        return "".join(parts)
    raise AssertionError(f"{module}: cannot tell the logger name of {ast.unparse(argument)}")


def _loggers() -> list[tuple[str, str]]:
    """(module, logger name) of every `getLogger` call in the product's packages."""
    found = []
    for module, tree in _modules():
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            for target in node.targets
            if isinstance(target, ast.Name) and isinstance(node.value.value, str)
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            called = node.func
            name = called.attr if isinstance(called, ast.Attribute) else getattr(called, "id", "")
            assert name != "basicConfig", f"{module} configures logging; hotplug_guard.logs does"
            if name == "getLogger":
                assert node.args, f"{module} logs to the root logger, outside {ROOT}"
                found.append(
                    (module, _logger_name(node.args[0], module=module, constants=constants))
                )
    return found


def test_every_logger_of_the_product_descends_from_one_root() -> None:
    loggers = _loggers()
    packages = {module.split(".")[0] for module, _ in loggers}
    assert packages == {"webhook", "certs", "controller", "kubecache", "hotplug_guard"}
    for module, name in loggers:
        if module == "hotplug_guard.logs":
            continue  # the root itself
        package = module.split(".")[0]
        expected = ROOT if package == ROOT else f"{ROOT}.{package}"
        assert name.startswith(f"{expected}."), f"{module} logs as {name!r}, not under {expected}"


def _json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of `text` from the product, each of which must be a JSON object.

    gunicorn's own start and stop lines (`[time] [pid] [INFO] ...`) are its, not ours.
    """
    entries = []
    for line in text.splitlines():
        if line.startswith("[") and "] [" in line:
            continue
        entry = json.loads(line)  # a plain-text line of the product fails here
        assert isinstance(entry, dict)
        entries.append(entry)
    return entries


def _wait_for(path: Path, loggers: set[str], *, seconds: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + seconds
    while True:
        entries = _json_lines(path.read_text())
        if loggers <= {entry["logger"] for entry in entries} or time.monotonic() > deadline:
            return entries
        time.sleep(0.1)


def _unreachable_kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(UNREACHABLE_KUBECONFIG.format(port=service.free_port()))
    return path


def test_serve_writes_what_every_package_logs_as_json(tmp_path: Path) -> None:
    # A mounted certificate 10 days from expiry (certs), an API server that does not
    # answer (kubecache), and the server's own start (webhook).
    cert_dir = tmp_path / "tls"
    ensure_local(cert_dir, now=datetime.now(UTC) - timedelta(days=80))
    (cert_dir / "ca.key").unlink()  # mounted as a Secret: used as it is, not renewed
    kubeconfig = _unreachable_kubeconfig(tmp_path)
    args = ("--cert-dir", str(cert_dir), "--kubeconfig", str(kubeconfig), "--workers", "1")
    with service.serving(tmp_path, args=args, ready_path="/healthz") as served:
        entries = _wait_for(
            served.stderr,
            {
                "hotplug_guard.certs.expiry",
                "hotplug_guard.kubecache.reflectors",
                "hotplug_guard.webhook.server",
            },
            seconds=20,
        )
    levels = {(entry["logger"], entry["level"]) for entry in entries}
    assert ("hotplug_guard.certs.expiry", "warning") in levels
    assert ("hotplug_guard.kubecache.reflectors", "warning") in levels
    assert ("hotplug_guard.webhook.server", "info") in levels


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    """This Python on `args`, in the source tree; stdout and stderr captured."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _run_until_logged(
    command: list[str], *, logger: str, tmp_path: Path, seconds: float = 30
) -> list[dict[str, Any]]:
    stderr = tmp_path / "stderr"
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "hotplug_guard", *command],
            cwd=REPO,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        return _wait_for(stderr, {logger}, seconds=seconds)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_controller_writes_its_warnings_as_json(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    # a user the API server knows but lets take no lease: leader election warns
    kubeconfig = control_plane.kubeconfig(ALICE)
    command = [
        "controller",
        "--kubeconfig",
        str(kubeconfig),
        "--signing-keys",
        str(service.signing_keys(tmp_path)),
        "--probe-bind",
        f"127.0.0.1:{service.free_port()}",
    ]
    entries = _run_until_logged(
        command, logger="hotplug_guard.controller.election", tmp_path=tmp_path
    )
    assert ("hotplug_guard.controller.election", "warning") in {
        (entry["logger"], entry["level"]) for entry in entries
    }


def test_certs_ensure_writes_its_errors_as_json(tmp_path: Path) -> None:
    kubeconfig = _unreachable_kubeconfig(tmp_path)
    command = ["certs", "ensure", "--once", "--service=guard", "--namespace=guard"]
    command += ["--secret-name=guard-tls", f"--kubeconfig={kubeconfig}"]
    command += ["--mutating-webhook-config=guard", "--validating-webhook-config=guard"]
    done = _python("-m", "hotplug_guard", *command)
    assert done.returncode == 1, done.stderr
    (entry,) = _json_lines(done.stderr)
    assert entry["logger"] == "hotplug_guard.commands.certificates"
    assert entry["level"] == "error"
    assert "cannot reach the API server" in entry["message"]


@pytest.mark.parametrize("package", ["certs", "controller", "kubecache", "webhook"])
def test_a_warning_of_each_package_under_the_root_is_a_json_line(package: str) -> None:
    """What `configure` sets up covers a logger named as each package names its own."""
    script = (
        "import logging; from hotplug_guard.logs import configure; configure(); "
        f"logging.getLogger('hotplug_guard.{package}.module').warning('careful')"
    )
    done = _python("-c", script)
    assert done.returncode == 0, done.stderr
    (entry,) = _json_lines(done.stderr)
    assert entry["logger"] == f"hotplug_guard.{package}.module"
    assert (entry["level"], entry["message"]) == ("warning", "careful")
