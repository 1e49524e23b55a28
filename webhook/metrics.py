"""Prometheus metrics of the webhook, correct under several gunicorn worker processes.

In multiprocess mode every worker writes its samples to files in
`PROMETHEUS_MULTIPROC_DIR` and `/metrics` aggregates them, whichever worker
answers the scrape. Metrics are created per worker (after the fork), each in its
own registry, so tests can build as many apps as they like.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
DURATION_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


def enable_multiprocess(directory: Path) -> None:
    """Make metrics created from now on in this process and its children file-backed.

    prometheus_client picks its value class when it is first imported, from the
    environment; the CLI may have imported it before the directory existed, so the
    choice is made again here. Must run before any metric is created.
    """
    os.environ[MULTIPROC_ENV] = str(directory)
    values.ValueClass = values.MultiProcessValue(_process_id)  # type: ignore[no-untyped-call]


_pid = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _pid.__setitem__(0, os.getpid()))


def _process_id() -> int:
    """This process's pid, as `os.getpid()` but without a system call.

    prometheus_client asks for it on every increment, to notice a fork; a review
    makes three increments, and the system calls showed in the worker's profile. The
    pid is read again in each child as it is forked.
    """
    return _pid[0]


def multiprocess_directory() -> Path | None:
    """The directory of multiprocess mode, or None in a single process."""
    path = os.environ.get(MULTIPROC_ENV)
    return Path(path) if path else None


def forget_process(pid: int) -> None:
    """Drop the live gauges of a worker that exited (gunicorn `child_exit` hook)."""
    directory = multiprocess_directory()
    if directory is not None:
        multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]


class Metrics:
    """The webhook's metrics, registered in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "hotplug_guard_admission_requests",
            "AdmissionReviews answered, by endpoint, operation, outcome and dry run.",
            ("endpoint", "operation", "allowed", "dry_run"),
            registry=self.registry,
        )
        self.duration = Histogram(
            "hotplug_guard_admission_duration_seconds",
            "Time from receiving an AdmissionReview to having its response, by endpoint.",
            ("endpoint",),
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.rule_results = Counter(
            "hotplug_guard_rule_results",
            "Rule findings, by rule, configured action and what they did to the request.",
            ("rule", "action", "result"),
            registry=self.registry,
        )
        self.misrouted = Counter(
            "hotplug_guard_admission_misrouted_requests",
            "Requests for something other than a kubevirt.io VirtualMachine, allowed untouched; "
            "a sign the webhook registration matches too much.",
            ("endpoint",),
            registry=self.registry,
        )
        self.invalid = Counter(
            "hotplug_guard_admission_invalid_requests",
            "HTTP requests refused before review (400 malformed, 413 too large).",
            ("endpoint", "code"),
            registry=self.registry,
        )
        self.failures = Counter(
            "hotplug_guard_admission_internal_errors",
            "Reviews answered with an internal error (code 500) after an unexpected exception.",
            ("endpoint",),
            registry=self.registry,
        )
        self.timed_out = Counter(
            "hotplug_guard_admission_deadline_exceeded",
            "Reviews stopped at their deadline (kube-apiserver's timeout less a margin): "
            "refused on /validate, let through unpatched on /mutate.",
            ("endpoint",),
            registry=self.registry,
        )
        self.context_ready = Gauge(
            "hotplug_guard_context_ready",
            "1 when every cluster cache of every worker is synced, 0 while syncing or offline.",
            registry=self.registry,
            multiprocess_mode="livemin",
        )
        self._reviews: dict[tuple[str, str, bool, bool], tuple[Any, Any]] = {}

    def review(
        self, endpoint: str, operation: str, *, allowed: bool, dry_run: bool
    ) -> tuple[Any, Any]:
        """The request counter and the duration histogram of a review with these labels.

        Looked up once per label set (a few dozen exist) and kept: prometheus_client's
        `labels()` validates and locks on every call.
        """
        key = (endpoint, operation, allowed, dry_run)
        found = self._reviews.get(key)
        if found is None:
            found = (
                self.requests.labels(endpoint, operation, _flag(allowed), _flag(dry_run)),
                self.duration.labels(endpoint),
            )
            self._reviews[key] = found
        return found

    def exposition(self) -> bytes:
        """The text format of all metrics, aggregated over workers in multiprocess mode."""
        directory = multiprocess_directory()
        if directory is None:
            return bytes(generate_latest(self.registry))
        registry = CollectorRegistry()
        _StartedWorkers(registry, path=str(directory))  # type: ignore[no-untyped-call]
        return bytes(generate_latest(registry))


class _StartedWorkers(multiprocess.MultiProcessCollector):
    """The multiprocess collector without the files of workers still creating theirs.

    A worker's file exists empty for a moment before it is sized and mapped;
    prometheus_client fails the whole scrape on it (struct.error), so a scrape
    while a worker boots would answer 500. Such a worker has no samples yet.
    """

    def collect(self) -> Any:
        files = [path for path in Path(self._path).glob("*.db") if _size(path)]
        return self.merge([str(path) for path in files], accumulate=True)  # type: ignore[no-untyped-call]


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # a dead worker's file, removed meanwhile
        return 0


class ConnectionMetrics:
    """What the serving worker (`webhook.worker`) counts about client connections."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.closed = Counter(
            "hotplug_guard_connections_closed",
            "Client connections closed because a deadline passed, by phase: handshake, head, "
            "body, memory (the body waited too long for memory), write (the client did not "
            "take the response) or idle (keep-alive).",
            ("phase",),
            registry=self.registry,
        )
