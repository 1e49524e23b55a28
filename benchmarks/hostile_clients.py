"""Hostile clients against `serve` from this tree and, alternated, from a baseline tree.

For each server, in each round, on loopback with the default 2 workers x 4 threads:

- reviews: p50 and p99 of well-behaved `/validate` reviews (a 4-NIC VM update,
  half on a kept-alive connection, half on new ones), first alone, then while
  `--stalls` connections stall mid handshake, mid head and mid body; a review
  that takes over 3 s counts as timed out, and after 5 of those the round stops;
- memory: the peak resident size (the sum of VmHWM of master and workers, an
  upper bound of what a pod's cgroup counts) after 8 concurrent bodies, twice,
  each of the largest size that server accepts and as costly to parse as it
  lets through, against the chart's memory limit.

Run: `python -m benchmarks.hostile_clients [--baseline DIR] [--rounds 2] [--stalls 200]`.
DIR is another source tree (e.g. `mkdir DIR && git archive main | tar -x -C DIR`),
run with its own code and limits. Not a test: numbers depend on the machine; the
ratios between the two servers of one round are the meaningful part.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import http.client
import os
import re
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import yaml

from benchmarks.webhook_bodies import four_nic_update_bytes
from benchmarks.webhook_load import running, signing_keys
from tests.webhook.service import free_port

REPO = Path(__file__).resolve().parents[1]
CHART_VALUES = REPO / "charts" / "hotplug-guard" / "values.yaml"
TIMEOUT_SECONDS = 3.0
GIVE_UP_AFTER = 5
PARALLEL_BODIES = 8


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="another source tree to compare with")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--stalls", type=int, default=200)
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args(argv)
    trees = {"this tree": REPO}
    if args.baseline is not None:
        trees["baseline"] = args.baseline.resolve()
    limit = chart_memory_limit()
    print(
        f"chart memory limit: {limit / 2**20:.0f} MiB; {args.stalls} stalls, "
        f"{args.requests} reviews per measurement"
    )
    for round_ in range(1, args.rounds + 1):
        print(f"\nround {round_}")
        for name, tree in trees.items():
            quiet = measure_reviews(tree, stalls=0, requests=args.requests)
            stalled = measure_reviews(tree, stalls=args.stalls, requests=args.requests)
            peak = measure_memory(tree)
            print(
                f"  {name:10}  reviews alone p50 {quiet.p50 * 1000:7.1f} ms  p99 "
                f"{quiet.p99 * 1000:7.1f} ms | with stalls p50 {stalled.p50 * 1000:7.1f} ms  p99 "
                f"{stalled.p99 * 1000:7.1f} ms ({stalled.p99 / quiet.p99:5.1f}x alone), "
                f"{stalled.timed_out} timed out of {stalled.sent}, {stalled.stalls} stalls "
                f"opened | peak RSS "
                f"{peak / 2**20:4.0f} MiB = {peak / limit:4.2f}x the limit"
            )
    return 0


class Latencies:
    def __init__(self, values: list[float], *, timed_out: int, sent: int, stalls: int) -> None:
        ordered = sorted(values) or [float("inf")]
        self.p50 = statistics.median(ordered)
        self.p99 = ordered[max(0, int(0.99 * len(ordered)) - 1)] if not timed_out else float("inf")
        self.timed_out = timed_out
        self.sent = sent
        self.stalls = stalls


def measure_reviews(tree: Path, *, stalls: int, requests: int) -> Latencies:
    body = four_nic_update_bytes()
    with serving(tree) as (port, ca, _):
        context = ssl.create_default_context(cafile=str(ca))
        held: list[socket.socket] = []
        for index in range(stalls):
            try:
                held.append(stall(port, context, index % 3))
            except OSError:  # the server takes no more handshakes: it is stalled already
                break
        try:
            latencies: list[float] = []
            timed_out = 0
            try:
                kept = connect(port, context)
            except OSError:
                return Latencies([], timed_out=1, sent=1, stalls=len(held))
            for index in range(requests):
                started = time.monotonic()
                try:
                    if index % 2:
                        post(kept, body)
                    else:
                        fresh = connect(port, context)
                        try:
                            post(fresh, body)
                        finally:
                            fresh.close()
                    latencies.append(time.monotonic() - started)
                except OSError:
                    timed_out += 1
                    kept.close()
                    if timed_out >= GIVE_UP_AFTER:
                        break
                    with contextlib.suppress(OSError):
                        kept = connect(port, context)
            kept.close()
            return Latencies(latencies, timed_out=timed_out, sent=index + 1, stalls=len(held))
        finally:
            for connection in held:
                connection.close()


def measure_memory(tree: Path) -> int:
    body = maximal_body(tree)

    def send(_: int) -> None:
        with contextlib.suppress(OSError):
            connection = connect(port, context, timeout=60)
            try:
                connection.request(
                    "POST", "/validate", body=body, headers={"Content-Type": "application/json"}
                )
                connection.getresponse().read()
            finally:
                connection.close()

    with serving(tree) as (port, ca, master), concurrent.futures.ThreadPoolExecutor(8) as pool:
        context = ssl.create_default_context(cafile=str(ca))
        for _ in range(2):
            list(pool.map(send, range(PARALLEL_BODIES)))
        return peak_rss(master)


def maximal_body(tree: Path) -> bytes:
    """As many small objects as the tree's server parses, then short strings, up to its limit."""
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "import webhook.app as a, webhook.reviews as r;"
            "print(a.MAX_BODY_BYTES, getattr(r, 'MAX_JSON_CONTAINERS', 0))",
        ],
        env={**os.environ, "PYTHONPATH": str(tree)},
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    limit, containers = int(found[0]), int(found[1]) or 10**9
    objects = b'{"":{}},' * min((containers - 1) // 2, (limit - 3) // 8)
    strings = b'"ab",' * ((limit - len(objects) - 3) // 5)
    return b"[" + objects + strings + b"0]"


def stall(port: int, context: ssl.SSLContext, kind: int) -> socket.socket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_SECONDS)
    if kind == 0:  # half a ClientHello
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        hello = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="x")
        with contextlib.suppress(ssl.SSLWantReadError):
            hello.do_handshake()
        data = outgoing.read()
        raw.sendall(data[: len(data) // 2])
        return raw
    tls = context.wrap_socket(raw, server_hostname="127.0.0.1")
    head = b"POST /validate HTTP/1.1\r\n"
    if kind == 2:
        head += b"Host: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
    tls.sendall(head)
    return tls


def connect(
    port: int, context: ssl.SSLContext, timeout: float = TIMEOUT_SECONDS
) -> http.client.HTTPSConnection:
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=timeout)
    connection.connect()
    return connection


def post(connection: http.client.HTTPSConnection, body: bytes) -> None:
    connection.request("POST", "/validate", body=body, headers={"Content-Type": "application/json"})
    answer = connection.getresponse()
    answer.read()
    if answer.status != 200:
        raise OSError(f"HTTP {answer.status}")


@contextlib.contextmanager
def serving(tree: Path) -> Iterator[tuple[int, Path, int]]:
    with tempfile.TemporaryDirectory(prefix="hotplug-guard-hostile-") as scratch:
        tmp = Path(scratch)
        port = free_port()
        command = [sys.executable, "-m", "hotplug_guard", "serve", "--bind", f"127.0.0.1:{port}"]
        command += ["--cert-dir", str(tmp / "certs")]
        if "--signing-keys" in (tree / "hotplug_guard" / "commands" / "serve.py").read_text():
            command += ["--signing-keys", str(signing_keys(tmp))]
        with running(command, tmp, tree=tree) as process:
            ca = tmp / "certs" / "ca.crt"
            wait_ready(port, ca, process)
            yield port, ca, process.pid


def wait_ready(port: int, ca: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if ca.is_file() and len(children(process.pid)) >= 2:
            with contextlib.suppress(OSError):
                connection = connect(port, ssl.create_default_context(cafile=str(ca)))
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    return
        time.sleep(0.1)
    raise SystemExit(f"server on port {port} did not become ready")


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def peak_rss(master: int) -> int:
    total = 0
    for pid in (master, *children(master)):
        status = Path(f"/proc/{pid}/status").read_text()
        found = re.search(r"^VmHWM:\s+(\d+) kB$", status, re.M)
        total += int(found.group(1)) * 1024 if found else 0
    return total


def chart_memory_limit() -> int:
    quantity = yaml.safe_load(CHART_VALUES.read_text())["resources"]["limits"]["memory"]
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * {"Mi": 2**20, "Gi": 2**30}[unit]


if __name__ == "__main__":
    sys.exit(main())
