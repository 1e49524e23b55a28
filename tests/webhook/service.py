"""Running the real `hotplug-guard serve` (a gunicorn process tree) for a test."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[2]
READY_SECONDS = 30.0


SIGNING_KEY = b"test-signing-key-of-at-least-32-bytes"


def signing_keys(tmp: Path) -> Path:
    """A key directory as the chart mounts it (the Secret <release>-signing)."""
    directory = tmp / "signing"
    directory.mkdir(exist_ok=True)
    (directory / "key").write_bytes(SIGNING_KEY)
    return directory


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def child_pids(parent: int) -> frozenset[int]:
    """PIDs of the live child processes of `parent`."""
    children = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            # the command may contain spaces and parentheses: the ppid follows the last ')'
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[1]) == parent and fields[0] != "Z":
                children.add(int(entry.name))
    return frozenset(children)


LISTEN, ESTABLISHED = "0A", "01"  # TCP states as /proc/net/tcp writes them


def tcp_sockets(port: int, state: str) -> frozenset[str]:
    """The TCP sockets on local `port` in `state`, named as /proc/PID/fd links them."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                if fields[3] == state and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    found.add(f"socket:[{fields[9]}]")
    return frozenset(found)


def sockets_held(pid: int, sockets: frozenset[str]) -> int:
    """How many of `sockets` process `pid` has open (0 when it is gone)."""
    with contextlib.suppress(OSError):
        return sum(os.readlink(fd) in sockets for fd in Path(f"/proc/{pid}/fd").iterdir())
    return 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    """A started `hotplug-guard serve`, reachable at `base_url`, trusted through `ca`."""

    process: subprocess.Popen[bytes]
    base_url: str
    ca: Path
    stdout: Path
    stderr: Path

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def session(self) -> requests.Session:
        session = requests.Session()
        # REQUESTS_CA_BUNDLE in the environment would override session.verify
        session.trust_env = False
        session.verify = str(self.ca)
        return session

    def worker_pids(self) -> frozenset[int]:
        """PIDs of the gunicorn workers (the master's children)."""
        return child_pids(self.process.pid)

    def log_lines(self) -> list[str]:
        return self.stderr.read_text(encoding="utf-8", errors="replace").splitlines()

    def json_logs(self) -> list[dict[str, Any]]:
        """The structured (JSON) lines of the log; gunicorn's own lines are plain text. A
        last line still being written (no newline yet) is left for the next read.
        """
        text = self.stderr.read_text(encoding="utf-8", errors="replace")
        complete = text[: text.rfind("\n") + 1]
        entries = []
        for line in complete.splitlines():
            if line.startswith("{"):
                entries.append(json.loads(line))
        return entries

    def wait_for_logs(
        self, match: Callable[[dict[str, Any]], bool], *, count: int = 1, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """The structured lines `match` accepts, once there are `count` of them (or at the
        timeout), oldest first: each worker writes its info lines in batches
        (`hotplug_guard.logs.FLUSH_SECONDS`), so lines of two workers can be out of order in
        the file.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = [entry for entry in self.json_logs() if match(entry)]
            if len(found) >= count or time.monotonic() > deadline:
                return sorted(found, key=lambda entry: str(entry.get("time")))
            time.sleep(0.02)

    def post_review(self, body: dict[str, Any], path: str = "/validate") -> dict[str, Any]:
        """POST one AdmissionReview on a fresh connection; the response document."""
        answer = requests.post(self.url(path), json=body, verify=str(self.ca), timeout=10)
        answer.raise_for_status()
        document: dict[str, Any] = answer.json()
        return document


def start(
    tmp: Path,
    *,
    args: Sequence[str] = (),
    bare: bool = False,
    port: int | None = None,
    ca: Path | None = None,
    env: dict[str, str] | None = None,
    ready_path: str = "/readyz",
) -> Service:
    """Start `python -m hotplug_guard serve`; return once `ready_path` answers 200.

    Unless `bare`, a free port (`--bind`), a certificate directory and a signing key
    directory under `tmp` (`--cert-dir`, `--signing-keys`, unless `args` has them) are
    added; a bare command line is run as given and `port` and `ca` say where it will
    listen and which CA it will create.
    """
    port = port or free_port()
    command = [sys.executable, "-m", "hotplug_guard", "serve"]
    cert_dir = tmp / "certs"
    if "--cert-dir" in args:
        cert_dir = Path(args[list(args).index("--cert-dir") + 1])
    if not bare:
        command += ["--bind", f"127.0.0.1:{port}"]
        if "--cert-dir" not in args:
            command += ["--cert-dir", str(cert_dir)]
        if "--signing-keys" not in args:
            command += ["--signing-keys", str(signing_keys(tmp))]
    stdout, stderr = tmp / f"serve-{port}.out", tmp / f"serve-{port}.err"
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [*command, *args], cwd=REPO, env=environment, stdout=out, stderr=err
        )
    service = Service(
        process=process,
        base_url=f"https://127.0.0.1:{port}",
        ca=ca or cert_dir / "ca.crt",
        stdout=stdout,
        stderr=stderr,
    )
    workers = int(args[list(args).index("--workers") + 1]) if "--workers" in args else 2
    try:
        _wait_ready(service, ready_path, workers=workers)
    except BaseException:
        stop(service)
        raise
    return service


@contextlib.contextmanager
def serving(tmp: Path, **options: Any) -> Iterator[Service]:
    """`start` the service for a `with` block and always `stop` it afterwards."""
    running = start(tmp, **options)
    try:
        yield running
    finally:
        stop(running)


def stop(service: Service) -> None:
    """Terminate gracefully, then kill; never leave the process tree behind."""
    if service.process.poll() is None:
        service.process.send_signal(signal.SIGTERM)
        try:
            service.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            for pid in service.worker_pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            service.process.kill()
            service.process.wait(timeout=5)


def _wait_ready(service: Service, path: str, *, workers: int) -> None:
    """Until `path` answers 200 and every worker has started (one ready worker answers
    while the others may still be forking).
    """
    deadline = time.monotonic() + READY_SECONDS
    last = "not started"
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(
                f"serve exited with {service.process.returncode}:\n"
                + service.stderr.read_text(errors="replace")[-4000:]
            )
        if service.ca.is_file():
            try:
                # closed by the server: a pooled connection would stay open until garbage
                # collection, and tests count the connections each worker holds
                answer = requests.get(
                    service.url(path),
                    verify=str(service.ca),
                    timeout=2,
                    headers={"Connection": "close"},
                )
                if answer.status_code == 200 and len(service.worker_pids()) >= workers:
                    return
                last = f"HTTP {answer.status_code}, {len(service.worker_pids())} workers"
            except requests.RequestException as error:
                last = str(error)
        time.sleep(0.1)
    raise RuntimeError(f"serve not ready after {READY_SECONDS}s: {last}")
