"""Structured logs: one JSON object per line, for every process of the product.

Every logger of the product sits under one root, `ROOT`: a module names its logger
`f"hotplug_guard.{__name__}"` (`__name__` in this package), so `configure`, called
once by each long-running command (`serve`, `controller`, `certs ensure`), reaches
the webhook, the controller, the certificates and the watch caches alike.

Review lines carry identifiers and outcomes only, never the objects (they can
hold secrets in cloud-init user data) and never key material. Every field is
bounded, since names and usernames come from the request: one request can never
write more than a few kilobytes and rotate earlier evidence out of the kubelet's
log files.

Info lines are written in batches, at most `FLUSH_SECONDS` after they were logged,
as nginx's `access_log ... buffer= flush=` does; warnings and errors at once. A
write lets go of the GIL, and a review thread that wrote its own line then waited
to get it back while the other threads ran: under load that cost more CPU time per
review than the line itself (docs/webhook.md, "Performance").
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
import weakref
from typing import IO, Any

import orjson

ROOT = "hotplug_guard"
"""The logger every other logger of the product descends from."""
MAX_FIELD_CHARS = 512
"""Longer than any Kubernetes name (253) or uid; a longer value is cut and marked."""
MAX_ITEMS = 32
MAX_TRACEBACK_CHARS = 16 * 1024
FLUSH_SECONDS = 0.05
"""Longest an info line waits in memory; a worker killed outright loses at most these."""
MAX_PENDING_LINES = 256
"""Lines kept in memory at most (each of bounded fields, a review's about 350 bytes): past
this, the thread that logs writes them itself and so waits for the stream, as it did
before batching (a log reader that stops reading must slow reviews down, not grow the
worker's memory). 50 ms of reviews are a few dozen lines."""
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_SCALARS = frozenset({bool, int, float, type(None)})
"""Types whose values are bounded as they are (kept apart: one line per review, ~15 fields)."""
_COLLECTIONS = (list, tuple, set, frozenset)
_MILLISECONDS = tuple(f".{n:03d}Z" for n in range(1000))
"""A timestamp's tail for each millisecond (0-999, as both `msecs` are), so a line formats none."""
_STANDARD_ENCODE = json.JSONEncoder(default=str, separators=(",", ":")).encode
_PASSTHROUGH = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
"""Values orjson would render its own way go to `str()`, as with the standard library."""


def encode_line(entry: dict[str, Any]) -> str:
    """`entry` as one line of compact, ASCII JSON, values JSON has no type for as `str()`.

    orjson encodes a review's line in an eighth of the time. A line it cannot encode (a
    lone surrogate, an integer beyond 64 bits) or that is not ASCII (orjson writes UTF-8,
    and a log stream's encoding may be narrower) is encoded by the standard library,
    which escapes what is not ASCII.
    """
    try:
        line = orjson.dumps(entry, default=str, option=_PASSTHROUGH)
    except TypeError:
        return _STANDARD_ENCODE(entry)
    return line.decode("ascii") if line.isascii() else _STANDARD_ENCODE(entry)


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON line; `extra=` fields become top-level keys.

    One line is written per review, so lines are encoded by orjson (`encode_line`) and
    the timestamp's seconds part is formatted once per second.
    """

    encode = staticmethod(encode_line)
    """The line of an entry from `entry`."""

    def __init__(self) -> None:
        super().__init__()
        self._second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        return self.encode(self.entry(record))

    def entry(self, record: logging.LogRecord) -> dict[str, Any]:
        """The fields of the line, each bounded (what `format` encodes)."""
        entry = self._head(
            record.created,
            msecs=int(record.msecs),
            level=record.levelname.lower(),
            logger=record.name,
            pid=record.process,
            message=record.getMessage(),
        )
        _add_fields(entry, record.__dict__, skip=_RESERVED)
        if record.exc_info:
            entry["traceback"] = _cut(self.formatException(record.exc_info), MAX_TRACEBACK_CHARS)
        return entry

    def info_entry(self, logger: str, message: str, fields: dict[str, Any]) -> dict[str, Any]:
        """The entry `entry` makes of an info record of `logger` with `fields` as extras,
        made without the record (`log_info`).
        """
        now = time.time()
        entry = self._head(
            now,
            msecs=int((now - int(now)) * 1000),
            level="info",
            logger=logger,
            pid=os.getpid(),
            message=message,
        )
        _add_fields(entry, fields)
        return entry

    def _head(
        self, created: float, *, msecs: int, level: str, logger: str, pid: int | None, message: str
    ) -> dict[str, Any]:
        return {
            "time": self._timestamp(int(created)) + _MILLISECONDS[msecs],
            "level": level,
            "logger": logger,
            "pid": pid,
            "message": bounded(message),
        }

    def _timestamp(self, seconds: int) -> str:
        cached, text = self._second  # one tuple, so threads never see a torn pair
        if cached != seconds:
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
            self._second = (seconds, text)
        return text


def _add_fields(
    entry: dict[str, Any], fields: dict[str, Any], *, skip: frozenset[str] = frozenset()
) -> None:
    """`fields` into `entry`, each bounded, but for private ones (`_`...) and those in `skip`."""
    for key, value in fields.items():
        if key[:1] != "_" and key not in skip:
            entry[key] = value if type(value) in _SCALARS else bounded(value)


def bounded(value: Any) -> Any:
    """`value` with strings cut to `MAX_FIELD_CHARS` and lists to `MAX_ITEMS` items."""
    if isinstance(value, str):
        return _cut(value, MAX_FIELD_CHARS)
    if isinstance(value, _COLLECTIONS):
        items = [bounded(item) for item in list(value)[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append(f"... {len(value) - MAX_ITEMS} more")
        return items
    return value


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[: limit // 2]}...[{len(text) - limit} chars cut]...{text[-(limit // 2) :]}"


class BatchingStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes info lines in batches and warnings at once.

    The thread that logs a record takes its bounded fields (`JsonFormatter.entry`) and
    keeps them in memory; a thread of the handler's own (started in each process that
    logs, gunicorn's workers being forks) encodes and writes what has gathered every
    `FLUSH_SECONDS`, one JSON encoding after another while that code is in the CPU's
    caches. A warning or an error is formatted and written at once, after the lines
    before it, and so are the lines once `MAX_PENDING_LINES` wait. `flush()` (also at
    exit, by `logging.shutdown`) writes whatever is pending.
    """

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(stream)
        self._reset()
        handler = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _after_fork(handler()))

    def _reset(self) -> None:
        self._pending: list[str | dict[str, Any]] = []
        """Formatted lines, or the entries of a `JsonFormatter` still to encode."""
        self._queue = threading.Lock()
        """Guards `_pending` only (logging's own `lock` may be held around `flush`)."""
        self._writing = threading.Lock()
        """Held across a write, so batches reach the stream in order; taken before `_queue`."""
        self._writer: threading.Thread | None = None

    def handle(self, record: logging.LogRecord) -> bool:
        """Like `logging.Handler.handle`, without holding `lock` while formatting."""
        if not self.filter(record):
            return False
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        urgent = record.levelno >= logging.WARNING
        pending: str | dict[str, Any]
        try:
            if not urgent and isinstance(self.formatter, JsonFormatter):
                pending = self.formatter.entry(record)
            else:
                pending = self.format(record) + self.terminator
        except Exception:  # logging's contract: report it, never raise
            self.handleError(record)
            return
        self._enqueue(pending, urgent=urgent)

    def submit(self, entry: dict[str, Any]) -> None:
        """Write an info line of `JsonFormatter.info_entry` as `emit` writes a record's."""
        self._enqueue(entry, urgent=False)

    def _enqueue(self, pending: str | dict[str, Any], *, urgent: bool) -> None:
        with self._queue:
            self._pending.append(pending)
            full = len(self._pending) >= MAX_PENDING_LINES
        if urgent or full:
            self.flush()
        elif self._writer is None:
            self._start_writer()

    def flush(self) -> None:
        with self._writing:
            with self._queue:
                pending, self._pending = self._pending, []
            if pending and self.stream is not None:
                self.stream.write("".join(map(self._line, pending)))
                if hasattr(self.stream, "flush"):
                    self.stream.flush()

    def _line(self, pending: str | dict[str, Any]) -> str:
        if isinstance(pending, str):
            return pending
        try:
            return JsonFormatter.encode(pending) + self.terminator
        except Exception:  # what a line cannot encode must not lose the others
            return JsonFormatter.encode({"message": "log line not encodable"}) + self.terminator

    def _start_writer(self) -> None:
        with self._queue:
            if self._writer is not None:
                return
            self._writer = threading.Thread(
                target=_write_every, args=(weakref.ref(self),), name="log-writer", daemon=True
            )
        self._writer.start()


def _write_every(handler: weakref.ReferenceType[BatchingStreamHandler]) -> None:
    while True:
        time.sleep(FLUSH_SECONDS)
        alive = handler()
        if alive is None:
            return
        with contextlib.suppress(Exception):  # a failing stream must not end the thread
            alive.flush()
        del alive


def _after_fork(handler: BatchingStreamHandler | None) -> None:
    """In a forked child the writer thread does not run and a lock may be held for ever;
    the parent writes the lines it had pending: start afresh.
    """
    if handler is not None:
        handler._reset()


def log_info(logger: logging.Logger, message: str, fields: dict[str, Any]) -> None:
    """`logger.info(message, extra=fields)`, the same line, without its `LogRecord` when
    the line goes to `configure`'s handler alone.

    For the line every review writes: making and dispatching the record cost more than
    half of the line's time in the worker. Anything else in the way (a filter, another
    handler, a field named as a record attribute) takes `logger.info` itself.
    """
    found = _only_handler(logger) if logger.isEnabledFor(logging.INFO) else None
    if found is None or not _RESERVED.isdisjoint(fields):
        logger.info(message, extra=fields)
        return
    handler, formatter = found
    handler.submit(formatter.info_entry(logger.name, message, fields))


def _only_handler(logger: logging.Logger) -> tuple[BatchingStreamHandler, JsonFormatter] | None:
    """The `BatchingStreamHandler` and its `JsonFormatter` that alone handle `logger`'s info
    records, with no filter on the way; None otherwise.
    """
    found: tuple[BatchingStreamHandler, JsonFormatter] | None = None
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        for handler in current.handlers:
            formatter = handler.formatter
            if (
                found is not None
                or type(handler) is not BatchingStreamHandler
                or type(formatter) is not JsonFormatter
                or handler.filters
                or handler.level > logging.INFO
            ):
                return None
            found = (handler, formatter)
        if not current.propagate:
            break
        current = current.parent
    return found


def configure(level: int = logging.INFO) -> None:
    """Send every logger of the product to stderr as JSON lines (a command's one log setup)."""
    handler = BatchingStreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(ROOT)
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    # Record fields no line shows, skipped as the logging HOWTO's "Optimization" section
    # describes: the caller's file and line, thread and multiprocessing names. The pid
    # stays: every line carries it.
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
