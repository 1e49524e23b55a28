"""The WSGI app: /mutate, /validate, /healthz, /readyz, /metrics.

Each review is: read a bounded body, parse, decide (`Admission.answer`),
render (`render_review`), then one log line and the metrics. Nothing a client
sends can make a handler raise out of Flask: bad input is a 400/413, anything
unexpected is an AdmissionReview with code 500.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from flask import Flask, Request, Response, request
from flask.sessions import NullSession, SessionInterface
from werkzeug.routing import MapAdapter
from werkzeug.wsgi import get_content_length, get_input_stream

from policy import Mode
from webhook.admission import Admission, check_patch
from webhook.metrics import CONTENT_TYPE, Metrics
from webhook.reviews import (
    INTERNAL_ERROR,
    PRODUCT,
    AdmissionRequest,
    AdmissionReviewWire,
    Answer,
    Disposition,
    RequestError,
    compact_json,
    parse_admission_request,
    parse_envelope,
    render_review,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

MAX_BODY_BYTES = 3 * 1024 * 1024 + 256 * 1024
"""Larger bodies get HTTP 413. kube-apiserver refuses write requests over 3 MiB and etcd
stores objects of up to 1.5 MiB, so every CREATE kube-apiserver accepts and every UPDATE
whose object and oldObject can be stored fits, with room for the envelope. The limit also
bounds memory: parsing takes up to about 17 times a body's size (see the serving worker)."""
DRAIN_BYTES = 64 * 1024
DEFAULT_TIMEOUT_SECONDS = 10.0
"""kube-apiserver's default `timeoutSeconds`, used when the request has no `?timeout=`."""
TIMEOUT_MARGIN_SECONDS = 0.5
"""Time kept back from the apiserver's budget for rendering the answer and the network."""
CONTEXT_WAIT_SECONDS = 2.0
"""Longest a review waits for caches still syncing before it goes on with unknown context."""
EVALUATION_SECONDS = 0.25
"""Kept for the evaluation after waiting for context (it takes milliseconds)."""

REVIEW_LOGGER = "hotplug_guard.webhook.reviews"
"""The logger of the one line per review (named for its lines, which operators filter on)."""
LOG = logging.getLogger(REVIEW_LOGGER)
STATUS_LOG = logging.getLogger(f"hotplug_guard.{__name__}")
MAX_DURATION_CHARS = 32
"""kube-apiserver sends `timeout=<N>s`; longer values are not durations it would send."""
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|us|µs|ns|m|s)")
_DURATIONS = re.compile(r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:h|ms|us|µs|ns|m|s))+")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


LogLine = Callable[[logging.Logger, str, dict[str, Any]], None]
"""Writes an info line: the logger, the message and the line's fields."""


def info_line(logger: logging.Logger, message: str, fields: dict[str, Any]) -> None:
    logger.info(message, extra=fields)


_BINDING_KEYS = (
    "HTTP_HOST",
    "SERVER_NAME",
    "SERVER_PORT",
    "wsgi.url_scheme",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "REQUEST_METHOD",
    "HTTP_CONNECTION",
    "HTTP_UPGRADE",
)
"""Every part of the WSGI environ Flask binds its URL map to (`Map.bind_to_environ`)."""
MAX_BOUND_ADAPTERS = 64
"""kube-apiserver calls the same two paths with the same few `?timeout=`; others go unkept."""


class _NoSessions(SessionInterface):
    """The webhook keeps no sessions: every request gets the one null session, which
    refuses any change, instead of Flask trying to load one and making a null one."""

    null = NullSession()

    def open_session(self, app: Flask, request: Request) -> NullSession:
        return self.null

    def save_session(self, app: Flask, session: Any, response: Response) -> None:
        pass


class WebhookFlask(Flask):
    """Flask as the webhook uses it: routes by path and method only, and no sessions.

    Flask binds its URL map to each request's environ anew, which took about a tenth of
    a stock Flask app's time per request in one process (11-13 of 108-122 µs). The
    binding depends only on `_BINDING_KEYS`, and a bound adapter is only read when
    matching, so the adapter of each set of those values (kube-apiserver sends the same
    few) is kept and reused by every thread. Anything that changes how the binding is
    done (trusted hosts, a server name, host or subdomain matching) goes Flask's own way
    every time.
    """

    session_interface = _NoSessions()

    def __init__(self, import_name: str) -> None:
        super().__init__(import_name)
        self._adapters: dict[tuple[Any, ...], MapAdapter] = {}

    def create_url_adapter(self, request: Request | None) -> MapAdapter | None:
        if (
            request is None
            or self.config["TRUSTED_HOSTS"] is not None
            or self.config["SERVER_NAME"] is not None
            or self.url_map.host_matching
            or self.subdomain_matching
        ):
            return super().create_url_adapter(request)
        environ = request.environ
        key = tuple([environ.get(name) for name in _BINDING_KEYS])
        adapter = self._adapters.get(key)
        if adapter is None:
            adapter = super().create_url_adapter(request)  # raises on a bad Host: not kept
            if adapter is not None and len(self._adapters) < MAX_BOUND_ADAPTERS:
                self._adapters[key] = adapter
        return adapter


def create_app(*, admission: Admission, metrics: Metrics, log_line: LogLine = info_line) -> Flask:
    """The webhook's WSGI app around an `Admission` (engine, config, context source).

    `log_line` writes each review's line; `serve` passes one that skips the `LogRecord`
    when the line goes to its own handler alone (`hotplug_guard.logs.log_info`).
    """
    app = WebhookFlask("hotplug_guard.webhook")

    def review(endpoint: str, mode: Mode) -> Response:
        started = time.monotonic()
        try:
            environ = request.environ
            envelope, raw = parse_envelope(_read_body(environ))
            parsed = parse_admission_request(envelope, raw)
        except RequestError as error:
            metrics.invalid.labels(endpoint, str(error.status)).inc()
            LOG.info(
                "request refused",
                extra={"endpoint": endpoint, "status": error.status, "reason": error.message},
            )
            response = Response(
                f"{PRODUCT}: {error.message}\n", error.status, mimetype="text/plain"
            )
            if error.status == 413:
                # do not let the server drain an oversized body to keep the connection
                response.headers["Connection"] = "close"
            return response
        budget = _budget(_timeout_parameter(environ.get("QUERY_STRING", "")))
        try:
            answer = admission.answer(
                parsed,
                mode=mode,
                context_deadline=started
                + max(0.0, min(CONTEXT_WAIT_SECONDS, budget - EVALUATION_SECONDS)),
                deadline=started + budget,
            )
            document = render_review(envelope, answer, mode=mode)
            check_patch(parsed, answer, document)
        except Exception:
            LOG.exception("review failed", extra={"uid": envelope.uid, "endpoint": endpoint})
            metrics.failures.labels(endpoint).inc()
            answer = Answer(disposition=Disposition.FAILED, refusal=INTERNAL_ERROR)
            document = render_review(envelope, answer, mode=mode)
        try:
            _record(
                endpoint,
                parsed,
                answer,
                document,
                duration=time.monotonic() - started,
                metrics=metrics,
                log_line=log_line,
            )
        except Exception:  # bookkeeping must never cost the apiserver its answer
            LOG.exception("recording the review failed", extra={"uid": envelope.uid})
        return Response(compact_json(document), mimetype="application/json")

    @app.post("/mutate")
    def mutate() -> Response:
        return review("mutate", Mode.MUTATE)

    @app.post("/validate")
    def validate() -> Response:
        return review("validate", Mode.VALIDATE)

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok\n", mimetype="text/plain")

    reported: list[str | None] = [None]

    @app.get("/readyz")
    def readyz() -> Response:
        reason = admission.readiness()
        if reason != reported[0]:
            reported[0] = reason
            if reason is not None and admission.context.ready():
                STATUS_LOG.error("not ready: %s", reason)
        if reason is None:
            return Response("ready\n", mimetype="text/plain")
        return Response(f"{reason}\n", 503, mimetype="text/plain")

    @app.get("/metrics")
    def metrics_endpoint() -> Response:
        return Response(metrics.exposition(), content_type=CONTENT_TYPE)

    return app


def _read_body(environ: WSGIEnvironment) -> bytes:
    """The request body, refused early by Content-Length and bounded while read.

    Read from the WSGI environ with Werkzeug's own functions (the stream as
    `request.stream` gives it, the length as `request.content_length`), without the
    request object's properties: they cost as much again as the rest of the request.
    """
    mimetype = _mimetype(environ.get("CONTENT_TYPE", ""))
    if mimetype != "application/json":
        shown = mimetype or "none"
        raise RequestError(400, f"Content-Type must be application/json, got {shown!r}")
    length = get_content_length(environ)
    if length is not None and length > MAX_BODY_BYTES:
        raise RequestError(413, f"body of {length} bytes exceeds {MAX_BODY_BYTES}")
    stream = get_input_stream(environ)
    body = stream.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        # take in a little more, so a client that sent just over the limit reads the answer
        # instead of a connection reset from unread data
        stream.read(DRAIN_BYTES)
        raise RequestError(413, f"body exceeds {MAX_BODY_BYTES} bytes")
    return body


def _mimetype(content_type: str) -> str:
    """The media type of a Content-Type value, lower case: `request.mimetype` without
    parsing the parameters nobody reads.
    """
    return content_type.partition(";")[0].strip().lower()


@functools.lru_cache(maxsize=64)
def _timeout_parameter(query: str) -> str | None:
    """`timeout` from the raw query string (kube-apiserver sends the same few every time)."""
    if "timeout=" not in query:
        return None
    values = parse_qs(query).get("timeout")
    return values[0] if values else None


@functools.lru_cache(maxsize=64)
def _budget(timeout: str | None) -> float:
    """Seconds a review may take, from the apiserver's `?timeout=` less a margin."""
    seconds = parse_duration(timeout) if timeout else None
    total = DEFAULT_TIMEOUT_SECONDS if seconds is None else seconds
    return max(0.0, total - TIMEOUT_MARGIN_SECONDS)


def parse_duration(text: str) -> float | None:
    """A Go duration such as `10s` or `1m30s` in seconds; None if it is not one.

    Checked whole, anchored and length-capped before it is split, so no value costs more
    than a scan of `MAX_DURATION_CHARS` characters.
    """
    if not text or len(text) > MAX_DURATION_CHARS or not _DURATIONS.fullmatch(text):
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION.findall(text))


def _record(
    endpoint: str,
    parsed: AdmissionRequest,
    answer: Answer,
    document: AdmissionReviewWire,
    *,
    duration: float,
    metrics: Metrics,
    log_line: LogLine,
) -> None:
    """The review's log line and metrics."""
    response = document["response"]
    allowed = response["allowed"]
    patched = "patch" in response
    requests, durations = metrics.review(
        endpoint, parsed.operation, allowed=allowed, dry_run=parsed.dry_run
    )
    requests.inc()
    durations.observe(duration)
    if answer.disposition is Disposition.MISROUTED:
        metrics.misrouted.labels(endpoint).inc()
    elif answer.disposition is Disposition.TIMED_OUT:
        metrics.timed_out.labels(endpoint).inc()
    result = "denied" if not allowed else "mutated" if patched else "allowed"
    for finding in answer.verdict.findings:
        metrics.rule_results.labels(finding.cause.rule, finding.action.value, result).inc()
    log_line(
        LOG,
        "review",
        {
            "uid": response["uid"],
            "endpoint": endpoint,
            "vm": f"{parsed.namespace}/{parsed.name}",
            "operation": parsed.operation,
            "user": parsed.user.username,
            "dry_run": parsed.dry_run,
            "disposition": answer.disposition,
            "allowed": allowed,
            "code": response["status"]["code"] if "status" in response else 200,
            "rules": sorted({finding.cause.rule for finding in answer.verdict.findings}),
            "patched": patched,
            "warnings": len(response.get("warnings", ())),
            # microseconds rounded as an integer, then scaled: no float formatting on the way
            "duration_ms": round(duration * 1_000_000) / 1000,
        },
    )
