"""Fixtures for the command tests: the certificate tests' API servers, real and fake."""

from tests.certs.conftest import apiserver
from tests.harness.fixtures import fake_apiserver

__all__ = ["apiserver", "fake_apiserver"]
