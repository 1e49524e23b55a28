"""Where a review's time goes inside the app, without the network: floor, webhook, engine.

Calls three WSGI apps directly, in one process, with the load benchmark's 4-NIC
body (no gunicorn, no TLS, no threads):

- floor: the load benchmark's floor app (decode the review, allow it);
- webhook without engine: `hotplug-guard`'s app with the engine replaced by one
  that allows everything, i.e. what the webhook itself adds (body checks, request
  parsing, rendering, patch self-check, log line, metrics);
- webhook: the real app, offline, as `serve --offline` runs it.

Each round times all three, alternated; the script prints the median over rounds
of each, and the median over rounds of its ratio to that round's floor.
Run: `python -m benchmarks.webhook_app [--rounds 7] [--repeat 800]`; pin to one
core with `taskset -c 0` for steadier numbers. Not a test: numbers depend on the
machine.
"""

from __future__ import annotations

import argparse
import io
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from benchmarks import engine_build
from benchmarks.webhook_bodies import four_nic_update_bytes
from benchmarks.webhook_load import floor_app, stubbed_webhook_app
from policy import PolicyConfig, evaluate
from webhook.logs import configure
from webhook.metrics import enable_multiprocess

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=800, help="requests per app and round")
    args = parser.parse_args()
    body = four_nic_update_bytes()
    with tempfile.TemporaryDirectory(prefix="hotplug-guard-bench-") as scratch:
        apps = build_apps(Path(scratch))
        for name, app in apps.items():
            status = call(app, body)
            if not status.startswith("200"):
                raise SystemExit(f"{name} answered {status}")
        timings: dict[str, list[float]] = {name: [] for name in apps}
        for _ in range(args.rounds):
            for name, app in apps.items():
                timings[name].append(per_request_us(app, body, args.repeat))
    floors = timings["floor"]
    print(
        f"POST /mutate in-process, {len(body)} byte body, {args.rounds} rounds, "
        f"policy engine {engine_build()}"
    )
    print(f"{'app':<26} {'µs/request':>11} {'vs floor':>9}")
    for name, values in timings.items():
        # the ratio of each round to that round's floor, then the median over rounds
        ratio = statistics.median(v / f for v, f in zip(values, floors, strict=True))
        print(f"{name:<26} {statistics.median(values):>11.1f} {ratio:>8.2f}x")


def build_apps(scratch: Path) -> dict[str, WSGIApp]:
    """The floor and the webhook with and without its engine, set up as `serve` does."""
    enable_multiprocess(scratch)  # file-backed metrics, as under gunicorn
    from webhook.admission import Admission  # noqa: PLC0415 - after the metrics mode is set
    from webhook.app import create_app  # noqa: PLC0415
    from webhook.context import OfflineContext  # noqa: PLC0415
    from webhook.metrics import Metrics  # noqa: PLC0415

    configure()
    log = (scratch / "reviews.log").open("w", encoding="utf-8")  # a real file, like stderr
    for handler in logging.getLogger("hotplug_guard").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(log)
    admission = Admission(evaluate=evaluate, config=PolicyConfig(), context=OfflineContext())
    return {
        "floor": floor_app(),
        "webhook without engine": stubbed_webhook_app(),
        "webhook": create_app(admission=admission, metrics=Metrics()),
    }


def call(app: WSGIApp, body: bytes) -> str:
    """One request as gunicorn would pass it; the response status."""
    answer: list[str] = []

    def start_response(status: str, headers: object, exc_info: object = None) -> None:
        answer.append(status)

    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/mutate",
        "QUERY_STRING": "timeout=10s",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8443",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    result = app(environ, start_response)
    b"".join(result)
    close = getattr(result, "close", None)
    if close is not None:
        close()
    return answer[0]


def per_request_us(app: WSGIApp, body: bytes, repeat: int) -> float:
    """Median microseconds per request over `repeat` requests, after a warm-up."""
    for _ in range(min(repeat, 100)):
        call(app, body)
    samples = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        call(app, body)
        samples.append((time.perf_counter_ns() - start) / 1000)
    return statistics.median(samples)


if __name__ == "__main__":
    main()
