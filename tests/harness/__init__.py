"""Test infrastructure shared by the test suites: a fake Kubernetes API server and fixtures."""
