"""Certificates for the webhook: a local CA, serving certificates, rotation, caBundle injection."""
