"""A server TLS context that follows its certificate files, for rotation without restart.

gunicorn's gthread worker wraps every accepted connection by calling the
`ssl_context(config, factory)` server hook (gunicorn 27: `TConn.init` ->
`sock.ssl_wrap_socket` -> `sock.ssl_context`), so returning `current()` from
that hook puts a rotated certificate into every new connection, while
established and kept-alive connections finish on the context they started
with. `current()` costs two `stat` calls when nothing changed.

The certificate files are replaced by rename, key first and certificate last; a
pair caught half-way (new key, old certificate) does not load, so the previous
context stays in use until the certificate arrives.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

LOG = logging.getLogger(f"hotplug_guard.{__name__}")

Signature = tuple[tuple[int, int, int], ...]
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


class CertificateError(Exception):
    """The serving certificate or key cannot be loaded."""


class ServingContext:
    """The current `ssl.SSLContext` for a certificate/key pair on disk (TLS 1.2 or newer,
    ECDHE with AEAD ciphers).
    """

    def __init__(self, *, cert: Path, key: Path) -> None:
        self.cert = cert
        self.key = key
        self._lock = threading.Lock()
        self._observers: list[Callable[[], object]] = []
        signature = self._signature()
        if signature is None:
            raise CertificateError(f"cannot read {cert} and {key}")
        try:
            self._context = self._build()
        except (ssl.SSLError, OSError) as error:
            raise CertificateError(f"cannot load {cert} with {key}: {error}") from None
        self._loaded: Signature = signature
        self._failed: Signature | None = None

    def current(self) -> ssl.SSLContext:
        """The context for a new connection, reloaded first if the files changed."""
        signature = self._signature()
        if signature is None or signature in (self._loaded, self._failed):
            return self._context
        with self._lock:
            if signature not in (self._loaded, self._failed):
                self._reload(signature)
        return self._context

    def observe(self, observer: Callable[[], object]) -> None:
        """Call `observer` now, after every reload and on every `monitor` tick
        (e.g. to refresh a certificate-expiry gauge).
        """
        self._observers.append(observer)
        _notify(observer)

    def monitor(self, interval: float) -> threading.Event:
        """Check the files every `interval` seconds, also when no connection arrives, and
        tell the observers; set the returned event to stop.
        """
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(interval):
                self.current()
                for observer in self._observers:
                    _notify(observer)

        threading.Thread(target=loop, name="certificate-monitor", daemon=True).start()
        return stop

    def _reload(self, signature: Signature) -> None:
        try:
            context = self._build()
        except (ssl.SSLError, OSError) as error:
            self._failed = signature
            LOG.warning(
                "serving certificate not reloaded, keeping the current one until the files "
                "change again: %s",
                error,
            )
            return
        self._context, self._loaded, self._failed = context, signature, None
        LOG.info("serving certificate reloaded from %s", self.cert)
        for observer in self._observers:
            _notify(observer)

    def _build(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        # TLS 1.2 only with forward-secret key exchange and AEAD ciphers (TLS 1.3's suites
        # are all of that kind and are not affected by this list); no renegotiation
        context.set_ciphers(TLS12_CIPHERS)
        context.options |= ssl.OP_NO_RENEGOTIATION
        context.load_cert_chain(certfile=self.cert, keyfile=self.key)
        return context

    def _signature(self) -> Signature | None:
        try:
            return tuple(
                (stat.st_ino, stat.st_mtime_ns, stat.st_size)
                for stat in (os.stat(self.cert), os.stat(self.key))
            )
        except OSError:
            return None


def _notify(observer: Callable[[], object]) -> None:
    try:
        observer()
    except Exception:  # an observer (a gauge update) must never break serving
        LOG.exception("certificate observer failed")
