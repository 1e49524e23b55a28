"""How long the certificates have left: a Prometheus gauge and a warning before they run out.

Expired webhook certificates block every write the webhook guards, so expiry is
measured where the server reads its files, not only where they are renewed.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import Gauge

from certs.directory import ServingFiles
from certs.material import first_certificate

log = logging.getLogger(f"hotplug_guard.{__name__}")

WARN_WITHIN = timedelta(days=14)

# "livemin": in gunicorn's multiprocess mode the scrape shows the smallest value among
# live workers, so a worker that has not reloaded yet is not hidden and dead ones drop out
CERTIFICATE_EXPIRY_SECONDS = Gauge(
    "hotplug_guard_certificate_expiry_seconds",
    "Seconds until the certificate expires (kind: serving or ca).",
    ["kind"],
    multiprocess_mode="livemin",
)


def certificate_expiry(path: Path) -> datetime:
    """The notAfter (UTC) of the first certificate in the PEM file at `path`."""
    try:
        return first_certificate(path.read_bytes()).not_valid_after_utc
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def record_expiry(
    files: ServingFiles, *, now: datetime | None = None, warn_within: timedelta = WARN_WITHIN
) -> dict[str, float]:
    """Set the expiry gauge from the serving and CA files; warn when one is close to expiry.

    Returns the seconds left per kind. For the CA it is the first certificate of the
    bundle, the CA that signs new serving certificates.
    """
    moment = now or datetime.now(UTC)
    remaining: dict[str, float] = {}
    for kind, path in (("serving", files.cert), ("ca", files.ca)):
        expiry = certificate_expiry(path)
        seconds = (expiry - moment).total_seconds()
        CERTIFICATE_EXPIRY_SECONDS.labels(kind=kind).set(seconds)
        remaining[kind] = seconds
        if seconds < warn_within.total_seconds():
            log.warning(
                "%s certificate %s expires at %s (in %s); whatever issues it ('hotplug-guard "
                "certs ensure', cert-manager or OpenShift's service CA) should have renewed it "
                "long before: check its logs",
                kind,
                path,
                expiry.isoformat(),
                timedelta(seconds=max(int(seconds), 0)),
            )
    return remaining
