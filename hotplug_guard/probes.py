"""`/healthz`, `/readyz` and `/metrics` over plain HTTP, for the kubelet and Prometheus.

For the processes that serve nothing else (the controller, the certificate loop): a
small threaded server whose answers come from callables that say what is wrong (a
reason) or nothing (None). It reads no request body and answers GET only; each
connection has a few seconds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from hotplug_guard.errors import UsageError

Check = Callable[[], str | None]
TIMEOUT_SECONDS = 5


def parse_bind(text: str, *, option: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 as [::1]:8080) into its parts; port 0 picks a free one."""
    host, separator, port_text = text.rpartition(":")
    if not separator or not host or not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise UsageError(f"{option} must be HOST:PORT, e.g. 0.0.0.0:8080; got {text!r}")
    return host.removeprefix("[").removesuffix("]"), int(port_text)


class ProbeServer:
    """Answers the probes from `health` (liveness), `readiness` and `metrics`."""

    def __init__(
        self,
        bind: tuple[str, int],
        *,
        health: Check,
        readiness: Check,
        metrics: Callable[[], tuple[bytes, str]] | None = None,
    ) -> None:
        routes: dict[str, Callable[[], tuple[int, bytes, str]]] = {
            "/healthz": lambda: _answer(health()),
            "/readyz": lambda: _answer(readiness()),
        }
        if metrics is not None:
            routes["/metrics"] = lambda: (200, *metrics())

        class Handler(BaseHTTPRequestHandler):
            timeout = TIMEOUT_SECONDS

            def do_GET(self) -> None:
                route = routes.get(self.path.split("?", 1)[0])
                status, body, content_type = (
                    route() if route else (404, b"not found\n", "text/plain")
                )
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Probes every few seconds are not worth a log line."""

        self._server = ThreadingHTTPServer(bind, Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="probes", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> ProbeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _answer(problem: str | None) -> tuple[int, bytes, str]:
    if problem is None:
        return 200, b"ok\n", "text/plain"
    return 503, f"{problem}\n".encode(), "text/plain"
