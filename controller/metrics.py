"""Prometheus metrics of the controller, in a registry of its own (one per controller)."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

CONTENT_TYPE = CONTENT_TYPE_LATEST
REQUEST_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


class Metrics:
    """What the controller counts; `render` is the body of `/metrics`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "hotplug_guard_controller_requests",
            "Hot plug requests reported in a phase (a status written), by phase.",
            ["phase"],
            registry=self.registry,
        )
        self.refused = Counter(
            "hotplug_guard_controller_requests_refused",
            "Requests not acted on: the signature does not verify, or the request is older "
            "than the last one handled.",
            ["reason"],
            registry=self.registry,
        )
        self.migrations_created = Counter(
            "hotplug_guard_controller_migrations_created",
            "VirtualMachineInstanceMigrations this controller created.",
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "hotplug_guard_controller_request_duration_seconds",
            "Time from the first report on a request to Succeeded.",
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.api_requests = Counter(
            "hotplug_guard_controller_api_requests",
            "Calls to the API server (list and watch by the caches), by verb and resource.",
            ["verb", "resource"],
            registry=self.registry,
        )
        self.leader = Gauge(
            "hotplug_guard_controller_leader",
            "1 while this replica holds the Lease and acts.",
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "hotplug_guard_controller_migrations_in_flight",
            "This controller's unfinished migrations, cluster-wide.",
            registry=self.registry,
        )
        self.queued = Gauge(
            "hotplug_guard_controller_queue_depth",
            "VMs waiting to be looked at (now or later).",
            registry=self.registry,
        )

    def count_call(self, verb: str, resource: str) -> None:
        self.api_requests.labels(verb=verb, resource=resource).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
