"""/metrics aggregated over gunicorn workers (prometheus_client's multiprocess mode)."""

from __future__ import annotations

from pathlib import Path

import pytest

from webhook.metrics import MULTIPROC_ENV, Metrics


def test_a_worker_still_creating_its_metrics_file_does_not_fail_the_scrape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A booting worker's file exists empty for a moment; the scrape must still answer."""
    (tmp_path / "counter_4242.db").write_bytes(b"")
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))

    assert Metrics().exposition() == b""
