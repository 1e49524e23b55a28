"""Tiny HTTPS admission webhooks for tests: another mutating webhook, or one that stalls."""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.kube.pki import Authority

Review = dict[str, Any]
Respond = Callable[[Review], Review]


class _Handler(BaseHTTPRequestHandler):
    respond: Respond

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        answer = json.dumps(self.respond(json.loads(body))).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test asserts on what the API server stored."""


@contextlib.contextmanager
def serving(directory: Path, respond: Respond) -> Iterator[tuple[str, bytes]]:
    """Serve `respond` over HTTPS on 127.0.0.1; yields (base URL, CA bundle)."""
    directory.mkdir(parents=True, exist_ok=True)
    authority = Authority(directory, "test-webhook-ca")
    pair = authority.serving("test-webhook", hosts=("127.0.0.1",))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pair.cert, pair.key)
    handler = type("Handler", (_Handler,), {"respond": staticmethod(respond)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", authority.pem
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def allowed(review: Review, *, patch: bytes | None = None) -> Review:
    """An AdmissionReview response allowing `review`, with an optional base64 JSON patch."""
    response: Review = {"uid": review["request"]["uid"], "allowed": True}
    if patch is not None:
        response.update(patch=patch.decode(), patchType="JSONPatch")
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
