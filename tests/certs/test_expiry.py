"""The expiry gauge and warning, in one process and across gunicorn-style worker processes."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from certs import certificate_expiry, ensure_local, record_expiry
from tests.certs.chains import START, load_bundle

DAY = timedelta(days=1)
ROOT = Path(__file__).resolve().parents[2]


def test_certificate_expiry_is_the_not_after_of_the_first_certificate(tmp_path: Path) -> None:
    files = ensure_local(tmp_path, now=START)

    assert certificate_expiry(files.cert) == START + 90 * DAY
    assert certificate_expiry(files.ca) == load_bundle(files.ca)[0].not_valid_after_utc


def test_certificate_expiry_of_a_file_without_a_certificate_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.crt"
    path.write_text("no pem here\n", encoding="utf-8")

    with pytest.raises(ValueError, match="certificate"):
        certificate_expiry(path)


def test_gauge_holds_seconds_left_per_kind(tmp_path: Path) -> None:
    files = ensure_local(tmp_path, now=START)

    remaining = record_expiry(files, now=START + DAY)

    serving = REGISTRY.get_sample_value(
        "hotplug_guard_certificate_expiry_seconds", {"kind": "serving"}
    )
    authority = REGISTRY.get_sample_value(
        "hotplug_guard_certificate_expiry_seconds", {"kind": "ca"}
    )
    assert serving == remaining["serving"] == (89 * DAY).total_seconds()
    assert authority == remaining["ca"] == (3649 * DAY).total_seconds()


def test_a_warning_is_logged_when_expiry_is_near(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = ensure_local(tmp_path, now=START)

    with caplog.at_level(logging.WARNING, logger="hotplug_guard.certs.expiry"):
        record_expiry(files, now=START + 60 * DAY)
        assert caplog.records == []
        record_expiry(files, now=START + 80 * DAY)

    (record,) = caplog.records
    assert record.getMessage().startswith(f"serving certificate {files.cert} expires at")
    assert "PRIVATE KEY" not in caplog.text


_WORKER = textwrap.dedent(
    """
    import sys
    from datetime import datetime, timedelta
    from pathlib import Path
    from certs import ServingFiles, record_expiry
    files = ServingFiles.in_directory(Path(sys.argv[1]))
    record_expiry(files, now=datetime.fromisoformat(sys.argv[2]))
    """
)


def test_multiprocess_scrape_reports_the_smallest_value_of_live_workers(tmp_path: Path) -> None:
    """Two workers that loaded the files at different times: the scrape shows the worse one."""
    files = ensure_local(tmp_path / "certs", now=START)
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics), "PYTHONPATH": str(ROOT)}
    for day in (10, 30):
        subprocess.run(
            [sys.executable, "-c", _WORKER, str(files.ca.parent), (START + day * DAY).isoformat()],
            check=True,
            env=env,
        )
    scrape = textwrap.dedent(
        """
        import sys
        from prometheus_client import CollectorRegistry, generate_latest, multiprocess
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        sys.stdout.write(generate_latest(registry).decode())
        """
    )

    exposition = subprocess.run(
        [sys.executable, "-c", scrape], check=True, env=env, capture_output=True, text=True
    ).stdout

    serving = [
        line
        for line in exposition.splitlines()
        if line.startswith('hotplug_guard_certificate_expiry_seconds{kind="serving"')
    ]
    assert len(serving) == 1
    assert float(serving[0].split()[-1]) == (60 * DAY).total_seconds()
