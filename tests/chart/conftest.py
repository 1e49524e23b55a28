"""Renders shared by the chart tests; rendering is pure, so one per session is enough."""

from __future__ import annotations

import pytest

from tests.chart.manifests import Release, render

CERT_MANAGER = {"certs": {"mode": "cert-manager"}}


@pytest.fixture(scope="session")
def default_release() -> Release:
    return render()


@pytest.fixture(scope="session")
def cert_manager_release() -> Release:
    return render(CERT_MANAGER)
