"""The one error type certs raises for bad settings: callers report it, no traceback."""


class CertificateSettingsError(ValueError):
    """Bad certificate settings: a host that is no DNS name, a lifetime shorter than the overlap."""
