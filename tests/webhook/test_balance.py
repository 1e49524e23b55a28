"""Least connections over the workers: the shared table, and the real `serve` under it."""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import os
import signal
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.webhook import service
from tests.webhook.service import Service
from webhook.balance import VACANT, ConnectionTable

WORKERS = 2


def test_a_slot_is_vacant_until_its_worker_publishes() -> None:
    table = ConnectionTable(3)
    assert [table.count(slot) for slot in range(3)] == [VACANT] * 3
    assert table.assign([]) == 0
    assert table.count(0) == VACANT
    table.publish(0, 5)
    assert table.assign([0]) == 1
    table.vacate(0)
    assert table.count(0) == VACANT
    table.publish(2, 7)  # left by a worker that died without its exit being seen
    assert table.assign([1, 0]) == 2
    assert table.count(2) == VACANT
    assert table.assign([0, 1, 2]) is None


def test_a_table_needs_a_slot() -> None:
    with pytest.raises(ValueError, match="needs a slot"):
        ConnectionTable(0)


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ((0, 0, VACANT), {0: True, 1: True}),
        ((1, 0, VACANT), {0: False, 1: True}),
        ((2, 3, 2), {0: True, 1: False, 2: True}),
        ((4, VACANT, VACANT), {0: True}),
    ],
)
def test_a_worker_accepts_while_no_live_sibling_holds_fewer(
    counts: tuple[int, ...], expected: dict[int, bool]
) -> None:
    table = ConnectionTable(len(counts))
    for slot, count in enumerate(counts):
        table.publish(slot, count)
    assert {slot: table.least_loaded(slot) for slot in expected} == expected


def test_the_table_is_shared_with_forked_workers() -> None:
    table = ConnectionTable(2)
    mine, theirs = table.assign([]), table.assign([0])
    assert (mine, theirs) == (0, 1)
    table.publish(0, 0)
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        table.publish(1, 3)
        os._exit(0)
    os.waitpid(child, 0)
    assert table.count(1) == 3
    assert table.least_loaded(0)
    assert not table.least_loaded(1)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("balance")
    with service.serving(
        tmp, args=("--workers", str(WORKERS), "--threads", "4"), env={"TMPDIR": str(tmp)}
    ) as running:
        # the service answers once one worker is up; the tests need every worker accepting
        accepting = wait_until_accepting(running, count=WORKERS)
        assert sorted(entry["slot"] for entry in accepting) == list(range(WORKERS))
        yield running


def wait_until_accepting(running: Service, *, count: int) -> list[dict[str, Any]]:
    """The `accepting connections` lines, once `count` workers (in all) have logged one."""
    return running.wait_for_logs(
        lambda entry: entry["message"] == "accepting connections", count=count, timeout=30
    )


def connect(served: Service) -> http.client.HTTPSConnection:
    """A keep-alive connection that has been answered once (so a worker holds it)."""
    context = ssl.create_default_context(cafile=str(served.ca))
    connection = http.client.HTTPSConnection("127.0.0.1", served.port, context=context, timeout=10)
    connection.request("GET", "/healthz")
    answer = connection.getresponse()
    answer.read()
    assert answer.status == 200
    return connection


def open_one_by_one(
    served: Service, connections: list[http.client.HTTPSConnection], *, count: int
) -> None:
    """Open `count` connections one after another into `connections`; after each, the
    workers' shares differ by one at most.
    """
    for _ in range(count):
        connections.append(connect(served))
        counts = held(served)
        assert sum(counts.values()) == len(connections)
        assert max(counts.values()) - min(counts.values()) <= 1, counts


def held(served: Service) -> dict[int, int]:
    """Client connections each worker holds, by pid."""
    established = service.tcp_sockets(served.port, service.ESTABLISHED)
    return {pid: service.sockets_held(pid, established) for pid in served.worker_pids()}


@contextlib.contextmanager
def opened(connections: list[http.client.HTTPSConnection], served: Service) -> Iterator[None]:
    """Close `connections` afterwards and wait until the workers let go of them."""
    try:
        yield
    finally:
        for connection in connections:
            connection.close()
        deadline = time.monotonic() + 10
        while sum(held(served).values()) and time.monotonic() < deadline:
            time.sleep(0.02)


def test_the_workers_share_one_listening_socket(served: Service) -> None:
    listening = service.tcp_sockets(served.port, service.LISTEN)
    assert len(listening) == 1
    workers = served.worker_pids()
    assert len(workers) == WORKERS
    for worker in workers:
        assert service.sockets_held(worker, listening) == 1


def test_connections_opened_one_by_one_alternate_between_the_workers(served: Service) -> None:
    connections: list[http.client.HTTPSConnection] = []
    with opened(connections, served):
        open_one_by_one(served, connections, count=7)


def test_a_burst_of_connections_is_split_evenly(served: Service) -> None:
    connections: list[http.client.HTTPSConnection] = []
    with opened(connections, served), concurrent.futures.ThreadPoolExecutor(16) as pool:
        connections.extend(pool.map(lambda _: connect(served), range(16)))
        counts = held(served)
        assert sorted(counts.values()) == [8, 8], counts


def test_a_worker_that_cannot_accept_does_not_hold_up_new_connections(served: Service) -> None:
    """The least loaded worker stopped: its sibling steps aside, then takes the connection."""
    connections: list[http.client.HTTPSConnection] = []
    with opened(connections, served):
        connections.append(connect(served))
        busy = next(pid for pid, count in held(served).items() if count == 1)
        (stopped,) = served.worker_pids() - {busy}
        os.kill(stopped, signal.SIGSTOP)
        try:
            started = time.monotonic()
            connections.append(connect(served))
            waited = time.monotonic() - started
        finally:
            os.kill(stopped, signal.SIGCONT)
        assert held(served) == {busy: 2, stopped: 0}
        assert waited < 5


def test_connections_that_come_and_go_are_all_answered(served: Service) -> None:
    """Many short connections at once: none is left waiting on a worker that stepped aside."""

    def exchange(_: int) -> int:
        connection = connect(served)
        try:
            for _ in range(5):
                connection.request("GET", "/healthz")
                answer = connection.getresponse()
                answer.read()
                assert answer.status == 200
        finally:
            connection.close()
        return 6

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        assert sum(pool.map(exchange, range(48))) == 6 * 48


def test_a_worker_that_replaces_a_dead_one_takes_its_slot_and_its_share(tmp_path: Path) -> None:
    with service.serving(
        tmp_path, args=("--workers", str(WORKERS), "--threads", "2"), env={"TMPDIR": str(tmp_path)}
    ) as running:
        wait_until_accepting(running, count=WORKERS)
        (killed, *_) = sorted(running.worker_pids())
        os.kill(killed, signal.SIGKILL)
        accepting = wait_until_accepting(running, count=WORKERS + 1)
        assert len(accepting) == WORKERS + 1
        assert {entry["slot"] for entry in accepting} == set(range(WORKERS))
        assert killed not in running.worker_pids()
        connections: list[http.client.HTTPSConnection] = []
        with opened(connections, running):
            open_one_by_one(running, connections, count=4)
