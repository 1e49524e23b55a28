"""Renders shared by the chart tests; rendering is pure, so one per session is enough."""

from __future__ import annotations

import pytest

from tests.chart.manifests import Release, render

CERT_MANAGER = {"certs": {"mode": "cert-manager"}}
SERVICE_CA = {"certs": {"mode": "openshift-service-ca"}, "openshift": True}


@pytest.fixture(scope="session")
def default_release() -> Release:
    return render()


@pytest.fixture(scope="session")
def cert_manager_release() -> Release:
    return render(CERT_MANAGER)


@pytest.fixture(scope="session")
def service_ca_release() -> Release:
    return render(SERVICE_CA)
