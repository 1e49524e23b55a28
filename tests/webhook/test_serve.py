"""The real `hotplug-guard serve`: gunicorn workers over TLS, as kube-apiserver reaches them."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import shlex
import signal
import socket
import ssl
import subprocess
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from hotplug_guard.cli import main
from hotplug_guard.commands.serve import example_review
from tests.webhook import service
from tests.webhook.objects import hotplug_review, uid_of
from tests.webhook.service import Service

DEFAULT_PORT = 8443


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("serve")
    with service.serving(
        tmp, args=("--workers", "2", "--threads", "4"), env={"TMPDIR": str(tmp)}
    ) as running:
        yield running


def https_connection(served: Service) -> http.client.HTTPSConnection:
    context = ssl.create_default_context(cafile=str(served.ca))
    return http.client.HTTPSConnection("127.0.0.1", served.port, context=context, timeout=10)


def post(connection: http.client.HTTPSConnection, body: dict[str, object]) -> dict[str, object]:
    connection.request(
        "POST", "/validate", body=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    answer = connection.getresponse()
    payload = answer.read()
    assert answer.status == 200, payload
    assert answer.getheader("Connection", "").lower() != "close"
    document: dict[str, object] = json.loads(payload)
    return document


def test_serve_with_zero_arguments_creates_a_local_ca_and_prints_how_to_call_it(
    tmp_path: Path,
) -> None:
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", DEFAULT_PORT)) != 0, "port 8443 is taken"
    state = tmp_path / "state"
    ca = state / "hotplug-guard" / "certs" / "ca.crt"
    running = service.start(
        tmp_path, bare=True, port=DEFAULT_PORT, ca=ca, env={"XDG_STATE_HOME": str(state)}
    )
    try:
        body = hotplug_review(uid=uid_of("zero-args"))
        response = running.post_review(body)["response"]
        assert (response["uid"], response["allowed"]) == (uid_of("zero-args"), True)
        assert any(w.startswith("nad-exists: cannot verify") for w in response["warnings"])
        printed = running.stdout.read_text()
        assert f"CA certificate: {ca}" in printed
        [example] = [line for line in printed.splitlines() if line.startswith("try: curl ")]
        assert example.startswith(f"try: curl --cacert {ca} -H 'Content-Type: application/json' ")
        # copied as printed, it works: an AdmissionReview file that exists, answered with a patch
        tried = subprocess.run(
            shlex.split(example.removeprefix("try: ")),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert tried.returncode == 0, tried.stderr
        answer = json.loads(tried.stdout)["response"]
        assert answer["allowed"] is True
        assert answer["patchType"] == "JSONPatch"
        assert (ca.parent / "tls.crt").is_file()
        assert (ca.parent / "tls.key").stat().st_mode & 0o077 == 0
        signing_key = state / "hotplug-guard" / "signing" / "key"
        assert signing_key.stat().st_mode & 0o077 == 0
        assert len(signing_key.read_bytes()) >= 32
    finally:
        service.stop(running)
    assert running.process.returncode == 0


def test_the_certificate_chain_verifies_from_the_client_for_ip_and_localhost(
    served: Service,
) -> None:
    for host in ("127.0.0.1", "localhost"):
        url = served.url("/healthz").replace("127.0.0.1", host)
        assert requests.get(url, verify=str(served.ca), timeout=5).text == "ok\n"
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(served.url("/healthz"), timeout=5)


def test_tls_versions_below_1_2_are_refused(served: Service) -> None:
    modern = ssl.create_default_context(cafile=str(served.ca))
    with (
        socket.create_connection(("127.0.0.1", served.port), timeout=5) as raw,
        modern.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    legacy = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    legacy.load_verify_locations(str(served.ca))
    legacy.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():  # a legacy client on purpose
        warnings.simplefilter("ignore", DeprecationWarning)
        legacy.minimum_version = ssl.TLSVersion.TLSv1
        legacy.maximum_version = ssl.TLSVersion.TLSv1_1
    with (
        socket.create_connection(("127.0.0.1", served.port), timeout=5) as raw,
        pytest.raises(ssl.SSLError),
    ):
        legacy.wrap_socket(raw, server_hostname="127.0.0.1")


def test_reviews_reuse_one_keep_alive_connection(served: Service) -> None:
    connection = https_connection(served)
    try:
        post(connection, hotplug_review())
        first = connection.sock
        for index in range(20):
            document = post(connection, hotplug_review(uid=uid_of(f"keep-{index}")))
            assert document["response"]["uid"] == uid_of(f"keep-{index}")  # type: ignore[index]
        assert connection.sock is first
    finally:
        connection.close()


def test_metrics_add_up_over_all_worker_processes(served: Service) -> None:
    def scrape() -> float:
        text = requests.get(served.url("/metrics"), verify=str(served.ca), timeout=5).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("hotplug_guard_admission_requests_total{")
            and 'endpoint="validate"' in line
        )

    before = scrape()

    def burst(index: int) -> set[str]:
        connection = https_connection(served)
        try:
            for step in range(10):
                post(connection, hotplug_review(uid=uid_of(f"metrics-{index}-{step}")))
        finally:
            connection.close()
        return set()

    sent = {uid_of(f"metrics-{index}-{step}") for index in range(8) for step in range(10)}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(burst, range(8)))
    reviewed = served.wait_for_logs(
        lambda entry: entry.get("message") == "review" and entry.get("uid") in sent,
        count=len(sent),
    )
    assert len(reviewed) == len(sent)
    pids = {entry["pid"] for entry in reviewed}
    assert len(pids) == 2, "both workers should have answered"
    for _ in range(6):  # whichever worker answers the scrape sees every worker's samples
        assert scrape() - before == 80


def test_review_lines_still_in_memory_are_written_when_the_server_stops(
    tmp_path: Path,
) -> None:
    with service.serving(tmp_path) as running:
        sent = [uid_of(f"stopping-{index}") for index in range(20)]
        for uid in sent:
            running.post_review(hotplug_review(uid=uid))
    # stopped (SIGTERM) right after the last review: no line held back in memory is lost
    logged = {entry.get("uid") for entry in running.json_logs() if entry.get("message") == "review"}
    assert logged.issuperset(sent)


def test_each_review_is_one_json_log_line_without_the_object(served: Service) -> None:
    body = hotplug_review(uid=uid_of("logged"), username="ops@example.com")
    body["request"]["object"]["spec"]["template"]["spec"]["volumes"].append(
        {"name": "cloudinit", "cloudInitNoCloud": {"userData": "password: s3cret-value"}}
    )
    served.post_review(body)
    served.wait_for_logs(lambda entry: entry.get("uid") == uid_of("logged"))
    lines = [line for line in served.log_lines() if uid_of("logged") in line]
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["message"] == "review"
    assert entry["vm"] == "default/vm-fedora"
    assert entry["user"] == "ops@example.com"
    assert entry["operation"] == "UPDATE"
    assert entry["allowed"] is True
    assert isinstance(entry["duration_ms"], float)
    assert "s3cret-value" not in served.stderr.read_text()
    assert "PRIVATE KEY" not in served.stderr.read_text()


def test_the_metrics_directory_lives_in_a_private_temporary_directory(served: Service) -> None:
    tmp = served.stdout.parent
    (directory,) = tmp.glob("hotplug-guard-metrics-*")
    assert directory.stat().st_mode & 0o077 == 0
    assert list(directory.glob("*.db"))


def test_stopping_the_service_removes_its_metrics_directory(tmp_path: Path) -> None:
    running = service.start(tmp_path, env={"TMPDIR": str(tmp_path)})
    assert list(tmp_path.glob("hotplug-guard-metrics-*"))
    service.stop(running)
    assert running.process.returncode == 0
    assert list(tmp_path.glob("hotplug-guard-metrics-*")) == []


def test_a_worker_that_dies_is_replaced_and_its_live_gauges_are_dropped(tmp_path: Path) -> None:
    running = service.start(tmp_path, env={"TMPDIR": str(tmp_path)})
    try:
        (directory,) = tmp_path.glob("hotplug-guard-metrics-*")
        victim = min(running.worker_pids())
        gauge = directory / f"gauge_livemin_{victim}.db"
        deadline = time.monotonic() + 15
        while not gauge.exists():  # /healthz may have been answered by the other worker
            assert time.monotonic() < deadline, "the worker never wrote its gauge"
            time.sleep(0.05)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while len(running.worker_pids() - {victim}) < 2:
            assert time.monotonic() < deadline, "the worker was not replaced"
            time.sleep(0.05)
        assert not gauge.exists()
        assert running.post_review(hotplug_review(uid=uid_of("after")))["response"][
            "uid"
        ] == uid_of("after")
    finally:
        service.stop(running)


def test_a_bad_bind_address_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="exited with 2"):
        service.start(tmp_path, args=("--bind", "nowhere"), bare=True, port=1)


KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
"""


def test_cluster_context_without_the_shared_signing_key_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a key of each replica's own would make the validating call of a request, on another
    # replica than its mutating call, refuse it as forged
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    code = main(["serve", "--kubeconfig", str(kubeconfig), "--cert-dir", str(tmp_path / "c")])
    assert code == 2
    assert "--signing-keys is required with --kubeconfig or --in-cluster" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "key: no such file"),
        ({"key": b"short\n"}, "at least 32 bytes, got 5"),
        ({"key": b"k" * 32, "accepted": b"old-key\n"}, "at least 32 bytes, got 7"),
    ],
)
def test_unusable_signing_keys_are_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], files: dict[str, bytes], message: str
) -> None:
    keys = tmp_path / "signing"
    keys.mkdir()
    for name, content in files.items():
        (keys / name).write_bytes(content)
    code = main(["serve", "--signing-keys", str(keys), "--cert-dir", str(tmp_path / "c")])
    assert code == 2
    assert message in capsys.readouterr().err


def test_the_review_serve_offers_to_try_is_the_one_in_examples() -> None:
    shipped = example_review()
    assert shipped is not None
    root = Path(__file__).resolve().parents[2]
    assert shipped.read_bytes() == (root / "examples" / "admission-review.json").read_bytes()
