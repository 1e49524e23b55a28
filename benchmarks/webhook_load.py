"""Load on `hotplug-guard serve` compared with a floor app under the same load.

The floor is the same gunicorn configuration (gthread workers, keep-alive, the
same TLS context) serving a trivial Flask handler that decodes the review and
returns it allowed: what any Python webhook on this stack costs before doing
anything. A third server, "stubbed", is hotplug-guard's own app with an engine
that allows everything: the webhook's cost without the policy. All run one
after the other on loopback, driven by `wrk` with a realistic body (a running
VM getting its 4th NIC, ~3 KB), for a bounded time each. The script prints
req/s, p50 and p99 of each, how the connections spread over the workers, and
the ratios against the targets (throughput >= 0.75x the floor, p99 <= 1.5x the
floor, with the compiled engine), taken within each round.

With `--baseline DIR`, `serve` from another source tree (an export of an earlier
commit, its `policy/` compiled the same way or not) runs as a fourth server in the
same rounds, and the script also prints `serve`'s per-round ratios to it.

Run: `python -m benchmarks.webhook_load [--duration 6] [--rounds 5] [--connections 16]
[--baseline DIR]`.
Installs `wrk` with apt-get when it is missing (as root). Not a test: numbers
depend on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, Response, request

from benchmarks import engine_build
from benchmarks.webhook_bodies import four_nic_update_bytes
from certs import ensure_local
from hotplug_guard.logs import configure, log_info
from policy import PolicyConfig, Verdict
from tests.webhook.service import (
    ESTABLISHED,
    child_pids,
    free_port,
    sockets_held,
    tcp_sockets,
)
from webhook.server import ServerOptions, serve
from webhook.tls import ServingContext

REPO = Path(__file__).resolve().parents[1]
TARGET_THROUGHPUT = 0.75
TARGET_P99 = 1.5
ALLOW_ALL = Verdict(allowed=True)
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    name: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    cpu_ms: float
    """Server CPU time (all its processes) per request: steadier than req/s on a busy host."""
    spread: tuple[int, ...] = ()
    """Established connections per worker, sampled half-way through the run."""


@dataclass(frozen=True, slots=True)
class Ratios:
    """Per-round ratios of one server to the floor: their median, shown with their range.

    Each ratio compares runs of the same round, so a machine whose speed drifts
    between rounds does not skew it the way a ratio of medians would.
    """

    values: tuple[float, ...]

    @classmethod
    def of(
        cls, floors: Sequence[Result], results: Sequence[Result], value: Callable[[Result], float]
    ) -> Ratios:
        return cls(tuple(value(r) / value(f) for f, r in zip(floors, results, strict=True)))

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def __str__(self) -> str:
        return f"{self.median:.2f}x (rounds {min(self.values):.2f}-{max(self.values):.2f})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=6, help="seconds per measured run")
    parser.add_argument("--rounds", type=int, default=5, help="measured runs of each, alternated")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of load before measuring")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections")
    parser.add_argument("--load-threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument(
        "--endpoint", choices=("mutate", "validate"), default="mutate", help="path under load"
    )
    parser.add_argument("--baseline", type=Path, help="another source tree's serve to compare")
    parser.add_argument("--floor-server", metavar="HOST:PORT", help=argparse.SUPPRESS)
    parser.add_argument("--stubbed-server", metavar="HOST:PORT", help=argparse.SUPPRESS)
    parser.add_argument("--cert-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.floor_server or args.stubbed_server:
        if args.stubbed_server:
            configure()  # the stubbed webhook writes its review lines as `serve` does
        return run_reference(
            args.floor_server or args.stubbed_server,
            args.cert_dir,
            factory=floor_app if args.floor_server else stubbed_webhook_app,
            workers=args.workers,
            threads=args.threads,
        )

    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="hotplug-guard-bench-") as scratch:
        tmp = Path(scratch)
        files = ensure_local(tmp / "certs")
        body = tmp / "review.json"
        body.write_bytes(four_nic_update_bytes())
        script = tmp / "post.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.body = io.open("{body}", "rb"):read("*a")\n',
            encoding="utf-8",
        )
        sizing = ("--workers", str(args.workers), "--threads", str(args.threads))
        reference = [sys.executable, "-m", "benchmarks.webhook_load", *sizing]
        serve = [
            sys.executable,
            "-m",
            "hotplug_guard",
            "serve",
            *sizing,
            "--offline",
            "--signing-keys",
            str(signing_keys(tmp)),
            "--bind",
        ]
        commands = {
            "floor": [*reference, "--floor-server"],
            "stubbed": [*reference, "--stubbed-server"],
            "serve": serve,
        }
        trees = dict.fromkeys(commands, REPO)
        if args.baseline is not None:
            commands["baseline"] = serve
            trees["baseline"] = args.baseline.resolve()
        ports = {name: free_port() for name in commands}
        with contextlib.ExitStack() as stack:
            processes = {
                name: stack.enter_context(
                    running(
                        [*command, f"127.0.0.1:{ports[name]}", "--cert-dir", str(tmp / "certs")],
                        tmp,
                        tree=trees[name],
                    )
                )
                for name, command in commands.items()
            }
            urls = {
                name: f"https://127.0.0.1:{port}/{args.endpoint}" for name, port in ports.items()
            }
            for name, url in urls.items():
                wait_ready(ports[name], files.ca)
                check_answer(ports[name], f"/{args.endpoint}", body.read_bytes(), files.ca)
                load(wrk, url, script, args, seconds=args.warmup)
            # alternate them under the same load, so a busy neighbour on the machine hurts all
            rounds: dict[str, list[Result]] = {name: [] for name in urls}
            for _ in range(args.rounds):
                for name, url in urls.items():
                    rounds[name].append(
                        measure(
                            name,
                            wrk,
                            url,
                            script,
                            args,
                            server=processes[name].pid,
                            port=ports[name],
                        )
                    )
    report(rounds, args)
    return 0


def ensure_wrk() -> str:
    """The path of `wrk`, installed from the distribution when missing."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("wrk is missing; install it (apt-get install wrk) or run as root")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=environment)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=environment)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is still missing after apt-get install")
    return found


def run_reference(
    bind: str, cert_dir: Path, *, factory: Callable[[], Flask], workers: int, threads: int
) -> int:
    """A reference app under the same gunicorn, TLS and keep-alive setup as `serve`."""
    files = ServingContext(cert=cert_dir / "tls.crt", key=cert_dir / "tls.key")
    options = ServerOptions(bind=bind, workers=workers, threads=threads, log_level="warning")
    return serve(options, tls=files, factory=factory)


def floor_app() -> Flask:
    app = Flask("floor")

    def allow() -> Response:
        review = json.loads(request.get_data())
        document = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": review["request"]["uid"], "allowed": True},
        }
        return Response(json.dumps(document), mimetype="application/json")

    app.add_url_rule("/mutate", "mutate", allow, methods=["POST"])
    app.add_url_rule("/validate", "validate", allow, methods=["POST"])
    app.add_url_rule("/healthz", "healthz", lambda: "ok\n")
    return app


def stubbed_webhook_app() -> Flask:
    """hotplug-guard's app, offline, with an engine that allows everything.

    Everything the webhook does around the engine (body checks, request parsing,
    rendering, the review log line, the metrics) and nothing of the engine itself.
    """
    from webhook.admission import Admission  # noqa: PLC0415 - after the metrics mode is set
    from webhook.app import create_app  # noqa: PLC0415
    from webhook.context import OfflineContext  # noqa: PLC0415
    from webhook.metrics import Metrics  # noqa: PLC0415

    def allow_all(*_: object, **__: object) -> Verdict:
        return ALLOW_ALL

    admission = Admission(evaluate=allow_all, config=PolicyConfig(), context=OfflineContext())
    return create_app(admission=admission, metrics=Metrics(), log_line=log_info)


def signing_keys(tmp: Path) -> Path:
    """A key directory for `serve`, so that it does not make one in the user's state."""
    directory = tmp / "signing"
    directory.mkdir(exist_ok=True)
    (directory / "key").write_text("benchmark-signing-key-of-32-bytes-or-more")
    return directory


@contextlib.contextmanager
def running(
    command: list[str], tmp: Path, *, tree: Path = REPO
) -> Iterator[subprocess.Popen[bytes]]:
    """`command` run from source tree `tree`, stopped (SIGTERM, then kill) afterwards."""
    log = (tmp / "server.log").open("ab")
    process = subprocess.Popen(
        command,
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree), "TMPDIR": str(tmp)},
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def https_call(port: int, ca: Path, method: str, path: str, body: bytes | None = None) -> bytes:
    """One HTTPS request on a fresh connection, verified against `ca`; the body if 200."""
    context = ssl.create_default_context(cafile=str(ca))
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
        answer = connection.getresponse()
        payload = answer.read()
    finally:
        connection.close()
    if answer.status != 200:
        raise OSError(f"{method} {path}: HTTP {answer.status}")
    return payload


def wait_ready(port: int, ca: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            https_call(port, ca, "GET", "/healthz")
            return
        time.sleep(0.1)
    raise SystemExit(f"server on port {port} did not become ready")


def check_answer(port: int, path: str, body: bytes, ca: Path) -> None:
    """One request before the load: the body must be answered with an allowed review."""
    document: Any = json.loads(https_call(port, ca, "POST", path, body))
    if document["response"].get("allowed") is not True:
        raise SystemExit(f"{path} did not allow the benchmark body: {document['response']}")


def load(wrk: str, url: str, script: Path, args: argparse.Namespace, *, seconds: int) -> str:
    return subprocess.run(
        wrk_command(wrk, url, script, args, seconds=seconds),
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def wrk_command(
    wrk: str, url: str, script: Path, args: argparse.Namespace, *, seconds: int
) -> list[str]:
    return [
        wrk,
        f"-t{args.load_threads}",
        f"-c{args.connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]


def measure(
    name: str,
    wrk: str,
    url: str,
    script: Path,
    args: argparse.Namespace,
    *,
    server: int,
    port: int,
) -> Result:
    before = cpu_seconds(server)
    command = wrk_command(wrk, url, script, args, seconds=args.duration)
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as running_load:
        time.sleep(args.duration / 2)
        spread = connections_per_worker(server, port)
        output, _ = running_load.communicate()
    if running_load.returncode != 0:
        raise SystemExit(f"wrk failed:\n{output}")
    used = cpu_seconds(server) - before
    errors = sum(
        int(n)
        for n in re.findall(
            r"(?:Non-2xx or 3xx responses|timeout|read|write|connect) (\d+)", output
        )
    )
    requests = int(_field(r"(\d+) requests in", output))
    return Result(
        name=name,
        requests_per_second=float(_field(r"Requests/sec:\s+([\d.]+)", output)),
        p50_ms=_latency("50%", output),
        p99_ms=_latency("99%", output),
        requests=requests,
        errors=errors,
        cpu_ms=used * 1000 / max(requests, 1),
        spread=spread,
    )


def connections_per_worker(master: int, port: int) -> tuple[int, ...]:
    """Established connections to `port` held by each of the master's workers, most first."""
    established = tcp_sockets(port, ESTABLISHED)
    counts = (sockets_held(worker, established) for worker in child_pids(master))
    return tuple(sorted(counts, reverse=True))


def cpu_seconds(master: int) -> float:
    """CPU time (user + system) used so far by a gunicorn master and its workers."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(entry.name) == master or int(fields[1]) == master:
                total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _field(pattern: str, output: str) -> str:
    match = re.search(pattern, output)
    if match is None:
        raise SystemExit(f"unexpected wrk output:\n{output}")
    return match.group(1)


def _latency(percentile: str, output: str) -> float:
    match = re.search(rf"^\s+{percentile}\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    if match is None:
        raise SystemExit(f"no {percentile} latency in wrk output:\n{output}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def report(rounds: dict[str, list[Result]], args: argparse.Namespace) -> None:
    """Every run, the medians, then the per-round ratios judged against the targets."""
    print(
        f"POST /{args.endpoint}, {len(four_nic_update_bytes())} byte body, {args.connections} "
        f"keep-alive connections, {args.rounds} x {args.duration}s each alternated, gunicorn "
        f"{args.workers} workers x {args.threads} threads, TLS on loopback, "
        f"policy engine {engine_build()}"
    )
    print(
        f"{'':12}{'req/s':>8}{'p50 ms':>10}{'p99 ms':>10}{'requests':>10}{'errors':>8}"
        f"{'cpu ms/req':>12}  connections per worker"
    )
    for results in zip(*rounds.values(), strict=True):
        for result in results:
            _row(result)
    medians = {
        name: Result(
            name=f"{name} med",
            requests_per_second=statistics.median(r.requests_per_second for r in results),
            p50_ms=statistics.median(r.p50_ms for r in results),
            p99_ms=statistics.median(r.p99_ms for r in results),
            requests=sum(r.requests for r in results),
            errors=sum(r.errors for r in results),
            cpu_ms=statistics.median(r.cpu_ms for r in results),
        )
        for name, results in rounds.items()
    }
    for median in medians.values():
        _row(median)
    floors, served = rounds["floor"], rounds["serve"]
    throughput = Ratios.of(floors, served, lambda r: r.requests_per_second)
    tail = Ratios.of(floors, served, lambda r: r.p99_ms)
    cpu = Ratios.of(floors, served, lambda r: r.cpu_ms)
    extra = statistics.median(s.cpu_ms - f.cpu_ms for f, s in zip(floors, served, strict=True))
    print(
        f"throughput serve/floor {throughput} (target >= {TARGET_THROUGHPUT}x: "
        f"{_verdict(throughput.median >= TARGET_THROUGHPUT)}); "
        f"p99 serve/floor {tail} (target <= {TARGET_P99}x: "
        f"{_verdict(tail.median <= TARGET_P99)})"
    )
    print(f"server CPU per request serve/floor {cpu} ({extra:.3f} ms more per review)")
    for name, runs in rounds.items():
        rates = [r.requests_per_second for r in runs]
        print(
            f"{name}: slowest round {min(rates) / statistics.median(rates):.2f}x its median "
            f"(a round whose connections all land on one worker falls to about "
            f"1/{args.workers} of it)"
        )
    stubbed = rounds["stubbed"]
    print(
        f"the webhook around an engine that allows all: throughput stubbed/floor "
        f"{Ratios.of(floors, stubbed, lambda r: r.requests_per_second)}, server CPU per "
        f"request {Ratios.of(floors, stubbed, lambda r: r.cpu_ms)}"
    )
    baseline = rounds.get("baseline")
    if baseline is not None:
        print(
            f"baseline tree: throughput baseline/floor "
            f"{Ratios.of(floors, baseline, lambda r: r.requests_per_second)}, p99 "
            f"{Ratios.of(floors, baseline, lambda r: r.p99_ms)}, server CPU per request "
            f"{Ratios.of(floors, baseline, lambda r: r.cpu_ms)}; serve/baseline: throughput "
            f"{Ratios.of(baseline, served, lambda r: r.requests_per_second)}, p99 "
            f"{Ratios.of(baseline, served, lambda r: r.p99_ms)}, server CPU per request "
            f"{Ratios.of(baseline, served, lambda r: r.cpu_ms)}"
        )


def _verdict(met: bool) -> str:
    return "met" if met else "missed"


def _row(result: Result) -> None:
    print(
        f"{result.name:12}{result.requests_per_second:>8.1f}{result.p50_ms:>10.2f}"
        f"{result.p99_ms:>10.2f}{result.requests:>10}{result.errors:>8}{result.cpu_ms:>12.3f}"
        f"  {'+'.join(map(str, result.spread))}"
    )


if __name__ == "__main__":
    sys.exit(main())
