"""The JSON log line: one object per record, extras at the top level, UTC timestamps."""

from __future__ import annotations

import json
import logging
import sys
import time

from webhook.logs import JsonFormatter


def record(created: float, **extra: object) -> logging.LogRecord:
    entry = logging.makeLogRecord(
        {"name": "hotplug_guard.test", "msg": "review %s", "args": ("x",)}
    )
    entry.created = created
    entry.msecs = (created - int(created)) * 1000
    entry.__dict__.update(extra)
    return entry


def test_line_carries_message_extras_and_utc_time() -> None:
    formatter = JsonFormatter()
    line = json.loads(formatter.format(record(1_700_000_000.25, uid="u-1", allowed=True)))
    assert line["time"] == "2023-11-14T22:13:20.250Z"
    assert line["message"] == "review x"
    assert line["logger"] == "hotplug_guard.test"
    assert (line["uid"], line["allowed"]) == ("u-1", True)


def test_timestamp_follows_each_second() -> None:
    formatter = JsonFormatter()
    for created in (1_700_000_000.0, 1_700_000_000.6, 1_700_000_001.2, 1_700_000_002.4):
        stamp = json.loads(formatter.format(record(created)))["time"]
        assert stamp[:19] == time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(created)))


def test_values_json_cannot_encode_are_rendered_as_text() -> None:
    line = json.loads(JsonFormatter().format(record(0.0, path=object)))
    assert line["path"] == str(object)


def test_exceptions_carry_their_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        entry = record(0.0)
        entry.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(entry))
    assert "ValueError: boom" in line["traceback"]


def test_every_field_is_bounded_whatever_the_request_carried() -> None:
    huge = "n" * (3 * 1024 * 1024)
    line = JsonFormatter().format(
        record(0.0, uid=huge, vm=f"default/{huge}", rules=[huge] * 1000, user=huge)
    )
    assert len(line) < 40 * 1024
    entry = json.loads(line)
    assert "chars cut" in entry["vm"]
    assert entry["rules"][-1] == "... 968 more"


def test_a_traceback_is_bounded_too() -> None:
    entry = record(0.0)
    try:
        raise ValueError("v" * (3 * 1024 * 1024))
    except ValueError:
        entry.exc_info = sys.exc_info()
    assert len(JsonFormatter().format(entry)) < 24 * 1024
