"""Structured logs: one JSON object per line, one line per review.

Review lines carry identifiers and outcomes only, never the objects (they can
hold secrets in cloud-init user data) and never key material. Every field is
bounded, since names and usernames come from the request: one request can never
write more than a few kilobytes and rotate earlier evidence out of the kubelet's
log files.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

REVIEW_LOGGER = "hotplug_guard.webhook.reviews"
MAX_FIELD_CHARS = 512
"""Longer than any Kubernetes name (253) or uid; a longer value is cut and marked."""
MAX_ITEMS = 32
MAX_TRACEBACK_CHARS = 16 * 1024
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON line; `extra=` fields become top-level keys.

    One line is written per review, so the encoder is built once and the
    timestamp's seconds part is formatted once per second.
    """

    _encode = json.JSONEncoder(default=str, separators=(",", ":")).encode

    def __init__(self) -> None:
        super().__init__()
        self._second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": f"{self._timestamp(int(record.created))}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": bounded(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = bounded(value)
        if record.exc_info:
            entry["traceback"] = _cut(self.formatException(record.exc_info), MAX_TRACEBACK_CHARS)
        return self._encode(entry)

    def _timestamp(self, seconds: int) -> str:
        cached, text = self._second  # one tuple, so threads never see a torn pair
        if cached != seconds:
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
            self._second = (seconds, text)
        return text


def bounded(value: Any) -> Any:
    """`value` with strings cut to `MAX_FIELD_CHARS` and lists to `MAX_ITEMS` items."""
    if isinstance(value, str):
        return _cut(value, MAX_FIELD_CHARS)
    if isinstance(value, list | tuple | set | frozenset):
        items = [bounded(item) for item in list(value)[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append(f"... {len(value) - MAX_ITEMS} more")
        return items
    return value


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[: limit // 2]}...[{len(text) - limit} chars cut]...{text[-(limit // 2) :]}"


def configure(level: int = logging.INFO) -> None:
    """Send the `hotplug_guard` loggers to stderr as JSON lines (the serving process's setup)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("hotplug_guard")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    # Record fields no line shows, skipped as the logging HOWTO's "Optimization" section
    # describes: the caller's file and line, thread and multiprocessing names. The pid
    # stays: every line carries it.
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
