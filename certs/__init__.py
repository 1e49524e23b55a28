"""Certificates for the webhook: a local CA, serving certificates, rotation, caBundle injection."""

from certs.directory import ServingFiles, ensure_local, generate_local
from certs.expiry import certificate_expiry, record_expiry

__all__ = [
    "ServingFiles",
    "certificate_expiry",
    "ensure_local",
    "generate_local",
    "record_expiry",
]
