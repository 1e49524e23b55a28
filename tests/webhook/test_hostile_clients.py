"""Hostile clients against the real `serve` (default: 2 workers x 4 threads), on loopback.

Bounded in count and time: 200 stalled connections and 100 measured reviews, 16
maximal bodies; every wait has a timeout, so a regression fails in seconds instead
of hanging.
"""

from __future__ import annotations

import concurrent.futures
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
import yaml

from tests.webhook import service
from tests.webhook.objects import hotplug_review
from tests.webhook.service import Service
from webhook.app import MAX_BODY_BYTES
from webhook.reviews import MAX_JSON_CONTAINERS
from webhook.worker import BODY_SECONDS, HANDSHAKE_SECONDS, HEAD_SECONDS, MAX_HEAD_BYTES

STALLS = 200
MEASURED = 100
P99_LIMIT_SECONDS = 1.0
CHART_VALUES = Path(__file__).resolve().parents[2] / "charts" / "hotplug-guard" / "values.yaml"
UNITS = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with service.serving(tmp_path_factory.mktemp("hostile")) as running:
        yield running


def client_context(served: Service) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(served.ca))


def tls_connection(served: Service) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", served.port), timeout=10)
    return client_context(served).wrap_socket(raw, server_hostname="127.0.0.1")


def half_a_client_hello() -> bytes:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    context = ssl.create_default_context()
    handshake = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        handshake.do_handshake()
    hello = outgoing.read()
    return hello[: len(hello) // 2]


def stall_in_handshake(served: Service) -> socket.socket:
    raw = socket.create_connection(("127.0.0.1", served.port), timeout=10)
    raw.sendall(half_a_client_hello())
    return raw


def stall_in_head(served: Service) -> socket.socket:
    connection = tls_connection(served)
    connection.sendall(b"POST /validate HTTP/1.1\r\n")
    return connection


def stall_in_body(served: Service) -> socket.socket:
    connection = tls_connection(served)
    connection.sendall(
        b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100000\r\n\r\n{"apiVersion":'
    )
    return connection


STALLERS: dict[str, Callable[[Service], socket.socket]] = {
    "handshake": stall_in_handshake,
    "head": stall_in_head,
    "body": stall_in_body,
}


def closed_by_server(connection: socket.socket, within: float) -> bool:
    connection.settimeout(within)
    try:
        return connection.recv(1024) == b""
    except (ConnectionResetError, ssl.SSLError):
        return True
    except TimeoutError:
        return False


def closed_total(served: Service, phase: str) -> float:
    text = requests.get(served.url("/metrics"), verify=str(served.ca), timeout=5).text
    found = re.search(
        rf'^hotplug_guard_connections_closed_total{{phase="{phase}"}} (\S+)$', text, re.M
    )
    return float(found.group(1)) if found else 0.0


def timed_review(send: Callable[[], requests.Response]) -> float:
    started = time.monotonic()
    answer = send()
    elapsed = time.monotonic() - started
    assert answer.status_code == 200
    assert answer.json()["response"]["allowed"] is True
    return elapsed


def test_stalled_connections_neither_stall_reviews_nor_probes_and_are_closed(
    served: Service,
) -> None:
    kinds = list(STALLERS)
    before = {kind: closed_total(served, kind) for kind in kinds}
    stalled = [(kinds[i % 3], STALLERS[kinds[i % 3]](served)) for i in range(STALLS)]
    opened = time.monotonic()
    try:
        latencies = []
        body = hotplug_review()
        with served.session() as session:
            for index in range(MEASURED):
                if index % 2:  # a kept-alive connection, like kube-apiserver's
                    send = lambda: session.post(served.url("/validate"), json=body, timeout=3)  # noqa: E731
                else:  # a new connection: accepted and shaken hands beside the stalled ones
                    send = lambda: requests.post(  # noqa: E731
                        served.url("/validate"), json=body, verify=str(served.ca), timeout=3
                    )
                latencies.append(timed_review(send))
                assert latencies[-1] < 3 * P99_LIMIT_SECONDS, "a review waited behind stalls"
            probe = session.get(served.url("/healthz"), timeout=3)
            assert probe.text == "ok\n"
        p99 = sorted(latencies)[int(0.99 * len(latencies)) - 1]
        assert p99 < P99_LIMIT_SECONDS, f"p99 {p99:.3f} s"

        # each stall is closed once its deadline passes (checked each second)
        longest = max(HANDSHAKE_SECONDS, HEAD_SECONDS, BODY_SECONDS) + 3
        for kind, connection in stalled:
            remaining = max(0.1, opened + longest - time.monotonic())
            assert closed_by_server(connection, remaining), f"a {kind} stall was kept open"
    finally:
        for _, connection in stalled:
            connection.close()
    for kind in kinds:
        assert closed_total(served, kind) - before[kind] >= STALLS // 3


def test_a_head_sent_a_byte_at_a_time_is_cut_off_at_its_deadline(served: Service) -> None:
    connection = tls_connection(served)
    head = b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" * 20
    started = time.monotonic()
    try:
        connection.settimeout(0.5)
        for byte in head:
            if time.monotonic() - started > HEAD_SECONDS + 5:
                pytest.fail("the server kept reading a trickling head past its deadline")
            try:
                connection.sendall(bytes([byte]))
                if connection.recv(1) == b"":
                    break
            except TimeoutError:
                continue
            except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
                break
        assert time.monotonic() - started < HEAD_SECONDS + 3
    finally:
        connection.close()


def test_a_head_over_its_limit_is_refused_with_431(served: Service) -> None:
    connection = tls_connection(served)
    try:
        connection.sendall(b"POST /validate HTTP/1.1\r\n" + b"X-Filler: " + b"x" * MAX_HEAD_BYTES)
        answer = connection.makefile("rb").read()
    finally:
        connection.close()
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert answer.endswith(b"hotplug-guard: request head exceeds 16384 bytes\n")


def chart_memory_limit() -> int:
    values = yaml.safe_load(CHART_VALUES.read_text())
    quantity = values["resources"]["limits"]["memory"]
    number, unit = re.fullmatch(r"(\d+)(Ki|Mi|Gi)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * UNITS[unit]


def peak_rss(served: Service) -> int:
    """The sum of the processes' peak resident sizes (VmHWM): master and workers.

    Pages the workers share with the master are counted in each, so this is an upper
    bound of what the pod's cgroup counts.
    """
    total = 0
    for pid in (served.process.pid, *served.worker_pids()):
        status = Path(f"/proc/{pid}/status").read_text()
        found = re.search(r"^VmHWM:\s+(\d+) kB$", status, re.M)
        assert found is not None
        total += int(found.group(1)) * 1024
    return total


def maximal_body() -> bytes:
    """A body of the largest size served whose JSON costs the most memory to parse: as many
    small objects as allowed, then short strings (about 17 times its size once parsed).
    """
    objects = b'{"":{}},' * ((MAX_JSON_CONTAINERS - 1) // 2)
    strings = b'"ab",' * ((MAX_BODY_BYTES - len(objects) - 3) // 5)
    return b"[" + objects + strings + b"0]"


def test_every_thread_busy_on_a_maximal_body_stays_within_the_chart_memory_limit(
    tmp_path: Path,
) -> None:
    limit = chart_memory_limit()
    body = maximal_body()
    assert len(body) <= MAX_BODY_BYTES
    assert body.count(b"{") + body.count(b"[") <= MAX_JSON_CONTAINERS
    threads = 2 * 4  # the default serve, and the chart's default serve.workers x serve.threads
    with service.serving(tmp_path) as running:

        def post(_: int) -> int:
            answer = requests.post(
                running.url("/validate"),
                data=body,
                headers={"Content-Type": "application/json"},
                verify=str(running.ca),
                timeout=30,
            )
            return answer.status_code

        probes: list[float] = []
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            for _ in range(2):
                answers = [pool.submit(post, index) for index in range(threads)]
                while not all(answer.done() for answer in answers):
                    started = time.monotonic()
                    requests.get(running.url("/readyz"), verify=str(running.ca), timeout=5)
                    probes.append(time.monotonic() - started)
                    time.sleep(0.1)
                assert [answer.result() for answer in answers] == [400] * threads
        peak = peak_rss(running)
    assert peak < limit, f"peak RSS {peak / 2**20:.0f} MiB over the limit {limit / 2**20:.0f} MiB"
    assert max(probes) < 2.0, "a readiness probe (timeoutSeconds: 2) would have failed"
