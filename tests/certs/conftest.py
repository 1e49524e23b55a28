"""Fixtures for the certificate tests."""

from tests.harness.fixtures import fake_apiserver

__all__ = ["fake_apiserver"]
