"""Where a review's time goes inside the app, without the network: floor, webhook, engine.

Calls three WSGI apps directly, in one process, with the load benchmark's 4-NIC
body (no gunicorn, no TLS, no threads):

- floor: the load benchmark's floor app (decode the review, allow it);
- webhook without engine: `hotplug-guard`'s app with the engine replaced by one
  that allows everything, i.e. what the webhook itself adds (body checks, request
  parsing, rendering, patch self-check, log line, metrics);
- webhook: the real app, offline, with a signing key, as `serve --offline` runs it.

Each round times all three, alternated; the script prints the median over rounds
of each, and the median over rounds of its ratio to that round's floor. Each is
timed twice: warm (request after request, everything in the CPU's caches) and
cold (each request right after `--evict` MiB of other memory was written, as
under load, where TLS, the other requests and the load generator pass through
the caches between two reviews; the cold ratios track `webhook_load`'s CPU per
review). Then it times the steps of the webhook's review on their own (parsing,
the engine, rendering, the patch check, the log line, the metrics), warm.
Times are the thread's CPU time, which other processes on the machine disturb less
than the clock. Run: `python -m benchmarks.webhook_app [--rounds 7] [--repeat 800]`;
pin to one core with `taskset -c 0` for steadier numbers. For counts that do not
depend on the machine at all, run one app under callgrind:
`valgrind --tool=callgrind python -m benchmarks.webhook_app --only webhook`
(docs/webhook.md, "Performance"; with `--cold`, each request after the eviction).
Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import functools
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
from hotplug_guard.logs import configure, log_info
from policy import Mode, PolicyConfig, evaluate
from policy.signing import SigningKeys
from webhook.metrics import enable_multiprocess

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
KEYS = SigningKeys(signing=b"benchmark-signing-key-of-32-bytes-or-more")
APPS = ("floor", "webhook without engine", "webhook")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=800, help="requests per app and round")
    parser.add_argument(
        "--evict", type=int, default=8, metavar="MIB", help="memory written before a cold request"
    )
    parser.add_argument(
        "--only", choices=APPS, help="only run --repeat requests of this app (for callgrind)"
    )
    parser.add_argument("--cold", action="store_true", help="with --only: evict before each")
    args = parser.parse_args()
    evict = functools.partial(write_through, bytearray(args.evict * 1024 * 1024))
    body = four_nic_update_bytes()
    with tempfile.TemporaryDirectory(prefix="hotplug-guard-bench-") as scratch:
        apps = build_apps(Path(scratch))
        for name, app in apps.items():
            status = call(app, body)
            if not status.startswith("200"):
                raise SystemExit(f"{name} answered {status}")
        if args.only:
            app = apps[args.only]
            for _ in range(100):
                call(app, body)
            # inside one C function, so `--toggle-collect=functools_reduce` counts just these
            if not args.cold:
                functools.reduce(lambda _, __: call(app, body), range(args.repeat), None)
                return
            for _ in range(args.repeat):
                evict()
                functools.reduce(lambda _, __: call(app, body), range(1), None)
            return
        timings: dict[str, list[float]] = {name: [] for name in apps}
        cold: dict[str, list[float]] = {name: [] for name in apps}
        for _ in range(args.rounds):
            for name, app in apps.items():
                request = functools.partial(call, app, body)
                timings[name].append(per_request_us(request, args.repeat))
                cold[name].append(cold_request_us(request, args.repeat // 4, evict))
        steps = review_steps(body)
        step_timings: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(args.rounds):
            for name, step in steps.items():
                step_timings[name].append(per_request_us(step, args.repeat))
    floors = timings["floor"]
    print(
        f"POST /mutate in-process, {len(body)} byte body, {args.rounds} rounds, "
        f"policy engine {engine_build()}, thread CPU time"
    )
    print(f"{'app':<26} {'µs/request':>11} {'vs floor':>9} {'cold µs':>9} {'vs floor':>9}")
    for name, values in timings.items():
        # the ratio of each round to that round's floor, then the median over rounds
        ratio = statistics.median(v / f for v, f in zip(values, floors, strict=True))
        cold_ratio = statistics.median(
            v / f for v, f in zip(cold[name], cold["floor"], strict=True)
        )
        print(
            f"{name:<26} {statistics.median(values):>11.1f} {ratio:>8.2f}x "
            f"{statistics.median(cold[name]):>9.1f} {cold_ratio:>8.2f}x"
        )
    print(f"{'step of the review':<26} {'µs':>11} {'vs floor':>9}")
    for name, values in step_timings.items():
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
    admission = Admission(
        evaluate=evaluate, config=PolicyConfig(), context=OfflineContext(), keys=KEYS
    )
    apps = {
        "floor": floor_app(),
        "webhook without engine": stubbed_webhook_app(),
        "webhook": create_app(admission=admission, metrics=Metrics(), log_line=log_info),
    }
    return {name: apps[name] for name in APPS}


def review_steps(body: bytes) -> dict[str, Callable[[], object]]:
    """Each step of the webhook's review of `body`, on its own (after `build_apps`)."""
    from webhook import app as webhook_app  # noqa: PLC0415 - after the metrics mode is set
    from webhook.admission import Admission, check_patch  # noqa: PLC0415
    from webhook.context import OfflineContext  # noqa: PLC0415
    from webhook.metrics import Metrics  # noqa: PLC0415
    from webhook.reviews import parse_admission_request, parse_envelope, render_review  # noqa: PLC0415

    admission = Admission(
        evaluate=evaluate, config=PolicyConfig(), context=OfflineContext(), keys=KEYS
    )
    metrics = Metrics()
    envelope, raw = parse_envelope(body)
    parsed = parse_admission_request(envelope, raw)

    def answer() -> Any:
        now = time.monotonic()
        return admission.answer(
            parsed, mode=Mode.MUTATE, context_deadline=now + 2, deadline=now + 9
        )

    answered = answer()
    document = render_review(envelope, answered, mode=Mode.MUTATE)

    def check() -> None:  # the patch only adds annotations: applying it again costs the same
        check_patch(parsed, answered, document)

    def record() -> None:
        webhook_app._record(  # the step on its own
            "mutate", parsed, answered, document, duration=0.001, metrics=metrics, log_line=log_info
        )

    return {
        "parse (json.loads too)": lambda: parse_admission_request(*parse_envelope(body)),
        "engine (Admission.answer)": answer,
        "render": lambda: render_review(envelope, answered, mode=Mode.MUTATE),
        "patch check": check,
        "log line and metrics": record,
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


def write_through(buffer: bytearray) -> None:
    """Write one byte of each cache line of `buffer`: what was cached before is evicted."""
    buffer[::64] = b"\1" * len(range(0, len(buffer), 64))


def cold_request_us(step: Callable[[], object], repeat: int, evict: Callable[[], None]) -> float:
    """Median thread CPU microseconds of `step` called right after `evict()`."""
    samples = []
    for _ in range(max(1, repeat)):
        evict()
        start = time.thread_time_ns()
        step()
        samples.append((time.thread_time_ns() - start) / 1000)
    return statistics.median(samples)


def per_request_us(step: Callable[[], object], repeat: int) -> float:
    """Median thread CPU microseconds per call of `step`, in batches, after a warm-up."""
    for _ in range(min(repeat, 100)):
        step()
    batch = 20
    samples = []
    for _ in range(max(1, repeat // batch)):
        start = time.thread_time_ns()
        for _ in range(batch):
            step()
        samples.append((time.thread_time_ns() - start) / 1000 / batch)
    return statistics.median(samples)


if __name__ == "__main__":
    main()
