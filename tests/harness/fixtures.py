"""Pytest fixtures for the test harness; a conftest imports the ones it needs by name."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.fake_apiserver import FakeApiServer


@pytest.fixture
def fake_apiserver() -> Iterator[FakeApiServer]:
    """A fresh fake API server with the default resource types, stopped after the test."""
    with FakeApiServer() as server:
        yield server
