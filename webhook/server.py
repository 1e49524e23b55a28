"""Serving the app with gunicorn: threaded workers that no slow client can stall
(`webhook.worker`), keep-alive, TLS 1.2+ with hot reload.

The master process supervises; the workers share its listening socket and take
connections in turn, least connections first (`webhook.balance`), and each builds its
own app (metrics, cluster caches) after the fork through `factory`, so no thread or
connection pool crosses a fork.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from webhook.balance import ConnectionTable, Share
from webhook.metrics import enable_multiprocess, forget_process
from webhook.tls import ServingContext
from webhook.worker import GuardedThreadWorker

KEEPALIVE_SECONDS = 120
"""Longer than kube-apiserver's idle-connection timeout (90 s), so the client closes idle
connections first and never sends a review into a connection the server is closing."""
GRACEFUL_SECONDS = 10
LOG = logging.getLogger(f"hotplug_guard.{__name__}")

WSGIApp = Callable[..., Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerOptions:
    """How gunicorn serves: address, worker processes and threads per worker."""

    bind: str
    workers: int = 2
    threads: int = 4
    log_level: str = "info"


class WebhookServer(BaseApplication):  # type: ignore[misc]  # gunicorn ships no types
    """A gunicorn application whose workers build the app with `factory()`."""

    def __init__(
        self, options: ServerOptions, *, tls: ServingContext, factory: Callable[[], WSGIApp]
    ) -> None:
        self._options = options
        self._tls = tls
        self._factory = factory
        # a slot per worker, and as many again for those gunicorn starts before the ones
        # they replace have exited (a reload)
        self._connections = ConnectionTable(2 * options.workers)
        super().__init__()

    def load_config(self) -> None:
        tls = self._tls

        def ssl_context(config: Any, default_factory: Any) -> Any:
            return tls.current()

        connections = self._connections

        def pre_fork(server: Any, worker: Any) -> None:
            taken = (sibling.share.slot for sibling in server.WORKERS.values() if sibling.share)
            slot = connections.assign(taken)
            worker.share = None if slot is None else Share(connections, slot)

        def child_exit(server: Any, worker: Any) -> None:
            forget_process(worker.pid)
            if worker.share is not None:
                connections.vacate(worker.share.slot)

        settings: dict[str, Any] = {
            "bind": [self._options.bind],
            # one listening socket, shared: the workers balance it themselves (on sockets of
            # their own, SO_REUSEPORT, the kernel would spread connections by hash alone)
            "reuse_port": False,
            "workers": self._options.workers,
            "worker_class": GuardedThreadWorker,
            "threads": self._options.threads,
            "keepalive": KEEPALIVE_SECONDS,
            "graceful_timeout": GRACEFUL_SECONDS,
            "certfile": str(tls.cert),
            "keyfile": str(tls.key),
            "ssl_context": ssl_context,
            "pre_fork": pre_fork,
            "child_exit": child_exit,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": self._options.log_level,
            "proc_name": "hotplug-guard",
            "control_socket_disable": True,
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self) -> WSGIApp:
        return self._factory()


def serve(options: ServerOptions, *, tls: ServingContext, factory: Callable[[], WSGIApp]) -> int:
    """Run gunicorn in this process until it is stopped; its exit status.

    The metrics directory the workers share is created here and removed when the
    master stops. gunicorn's workers are forks that leave by `sys.exit`, which
    unwinds this very frame in the worker too: only the master may clean up.
    """
    master = os.getpid()
    directory = Path(tempfile.mkdtemp(prefix="hotplug-guard-metrics-"))
    enable_multiprocess(directory)
    LOG.info("serving", extra={"bind": options.bind, "workers": options.workers})
    try:
        WebhookServer(options, tls=tls, factory=factory).run()
    except SystemExit as stop:
        if os.getpid() != master:
            raise
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    finally:
        if os.getpid() == master:
            shutil.rmtree(directory, ignore_errors=True)
    return 0
