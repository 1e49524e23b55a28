"""What a platform team tunes in the controller, with KubeVirt's own numbers as defaults."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_NAME = "hotplug-guard-controller"


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Timings and limits of the controller; every duration in seconds."""

    name: str = DEFAULT_NAME
    """Labels the migrations this controller creates (`hotplug-guard.io/controller`), so
    that it counts only its own against `max_parallel_migrations`."""
    grace_seconds: float = 15.0
    """How long a change that reached the VMI gets to complete in place (multus' dynamic
    networks controller) before a migration: KubeVirt's DynamicNetworkControllerGracePeriod."""
    max_parallel_migrations: int = 5
    """This controller's unfinished migrations, cluster-wide (KubeVirt's
    parallelMigrationsPerCluster defaults to 5 as well)."""
    max_attempts: int = 3
    """Migrations per request before it is reported Failed."""
    retry_backoff_seconds: float = 30.0
    """Wait after a failed migration, doubled after each further failure."""
    verify_seconds: float = 120.0
    """How long the VMI gets to report the change after a migration succeeded."""
    apply_seconds: float = 300.0
    """How long KubeVirt gets to apply the change to the VMI spec."""

    def __post_init__(self) -> None:
        for name in ("grace_seconds", "retry_backoff_seconds", "verify_seconds", "apply_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.max_parallel_migrations < 1 or self.max_attempts < 1:
            raise ValueError("max_parallel_migrations and max_attempts must be at least 1")
