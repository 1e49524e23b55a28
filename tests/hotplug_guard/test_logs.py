"""The JSON log line: one object per record, extras at the top level, UTC timestamps."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import io
import json
import logging
import multiprocessing
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from hotplug_guard.logs import (
    FLUSH_SECONDS,
    MAX_FIELD_CHARS,
    MAX_ITEMS,
    MAX_PENDING_LINES,
    BatchingStreamHandler,
    JsonFormatter,
    log_info,
)


@dataclasses.dataclass
class Cut:
    limit: int


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


@pytest.mark.parametrize("user", ["é", "-\ud800", "é-\ud800"])  # not ASCII; a lone surrogate
def test_lines_are_ascii_json_whatever_text_they_carry(user: str) -> None:
    line = JsonFormatter().format(record(0.0, user=user, vm="default/vm"))
    assert line.isascii()
    assert json.loads(line)["user"] == user
    assert json.loads(line)["vm"] == "default/vm"


@pytest.mark.parametrize("big", [None, 2**70])  # 2**70: beyond what orjson encodes
def test_times_and_dataclasses_are_rendered_as_their_text(big: int | None) -> None:
    at = datetime.datetime(2026, 12, 1, 18, 0, tzinfo=datetime.UTC)
    cut = Cut(limit=3)
    line = json.loads(JsonFormatter().format(record(0.0, at=at, cut=cut, big=big)))
    assert (line["at"], line["cut"], line["big"]) == (str(at), str(cut), big)


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


def batching_logger(stream: io.StringIO, name: str) -> tuple[logging.Logger, BatchingStreamHandler]:
    handler = BatchingStreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"hotplug_guard.test.{name}")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, handler


def test_info_lines_are_written_within_the_flush_interval_without_a_flush() -> None:
    stream = io.StringIO()
    logger, _ = batching_logger(stream, "interval")
    logger.info("review", extra={"uid": "u-1"})
    deadline = time.monotonic() + 20 * FLUSH_SECONDS
    while "u-1" not in stream.getvalue() and time.monotonic() < deadline:
        time.sleep(FLUSH_SECONDS / 5)
    assert json.loads(stream.getvalue())["uid"] == "u-1"


def test_a_warning_is_written_at_once_after_the_lines_logged_before_it() -> None:
    stream = io.StringIO()
    logger, _ = batching_logger(stream, "warning")
    logger.info("first")
    logger.error("broken")
    messages = [json.loads(line)["message"] for line in stream.getvalue().splitlines()]
    assert messages == ["first", "broken"]


def test_lines_of_many_threads_are_all_written_whole_and_flush_empties_the_buffer() -> None:
    stream = io.StringIO()
    logger, handler = batching_logger(stream, "threads")

    def log(index: int) -> None:
        for step in range(200):
            logger.info("review", extra={"uid": f"{index}-{step}"})

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(log, range(8)))
    handler.flush()
    uids = [json.loads(line)["uid"] for line in stream.getvalue().splitlines()]
    assert sorted(uids) == sorted(f"{i}-{s}" for i in range(8) for s in range(200))


def test_a_forked_child_writes_its_own_lines_not_its_parents_pending_ones(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with path.open("w", encoding="utf-8") as stream:
        logger, handler = batching_logger(stream, "fork")  # type: ignore[arg-type]
        logger.info("parent")  # pending when the child is forked
        child = multiprocessing.get_context("fork").Process(target=_log_in_child, args=(logger,))
        child.start()
        child.join(timeout=30)
        handler.flush()
    assert child.exitcode == 0
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted((line["message"], line["pid"]) for line in lines) == [
        ("child", child.pid),
        ("parent", os.getpid()),
    ]


def _log_in_child(logger: logging.Logger) -> None:
    logger.info("child")
    logging.shutdown()  # what a gunicorn worker's exit runs


class StalledStream(io.StringIO):
    """A stream whose writes wait until `release` is set, like a pipe nobody reads."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def write(self, text: str) -> int:
        self.release.wait(timeout=30)
        return super().write(text)


def test_a_stalled_stream_makes_the_logging_thread_wait_instead_of_growing_memory() -> None:
    stream = StalledStream()
    logger, handler = batching_logger(stream, "stalled")
    lines = 3 * MAX_PENDING_LINES

    def log() -> None:
        for _ in range(lines):
            logger.info("review", extra={"uid": "u" * 300})

    logging_thread = threading.Thread(target=log, daemon=True)
    logging_thread.start()
    logging_thread.join(timeout=20 * FLUSH_SECONDS)
    assert logging_thread.is_alive(), "the logging thread should wait for the stream"
    assert len(handler._pending) <= MAX_PENDING_LINES + 1
    stream.release.set()
    logging_thread.join(timeout=30)
    handler.flush()
    assert len(stream.getvalue().splitlines()) == lines


REVIEW_FIELDS = {
    "uid": "u-1",
    "user": "u" * (MAX_FIELD_CHARS + 10),
    "rules": [f"rule-{index}" for index in range(MAX_ITEMS + 3)],
    "allowed": True,
    "code": 200,
    "duration_ms": 0.25,
    "path": Path("/x"),
    "_private": "never written",
}


def lines_of(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def counted_records(
    logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> list[logging.LogRecord]:
    """The records `logger` makes from now on."""
    made: list[logging.LogRecord] = []
    making = logger.makeRecord

    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        made.append(making(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(logger, "makeRecord", make)
    return made


def test_log_info_writes_the_line_logger_info_writes_without_making_a_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = io.StringIO()
    logger, handler = batching_logger(stream, "direct")
    logger.info("review", extra=REVIEW_FIELDS)
    made = counted_records(logger, monkeypatch)
    log_info(logger, "review", REVIEW_FIELDS)
    handler.flush()
    assert made == []  # the line was written without a record
    by_record, direct = lines_of(stream)
    assert direct["time"] >= by_record["time"]  # type: ignore[operator]
    del by_record["time"], direct["time"]
    assert direct == by_record
    assert direct["pid"] == os.getpid()
    assert "_private" not in direct


def filtered(record: logging.LogRecord) -> bool:
    return "secret" not in record.getMessage()


@pytest.mark.parametrize(
    "arrange",
    [
        pytest.param(lambda logger, _: logger.addFilter(filtered), id="filter on the logger"),
        pytest.param(lambda _, handler: handler.addFilter(filtered), id="filter on the handler"),
        pytest.param(
            lambda logger, _: logger.addHandler(logging.NullHandler()), id="a second handler"
        ),
    ],
)
def test_log_info_goes_through_logging_when_more_than_the_handler_is_in_the_way(
    arrange: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = io.StringIO()
    logger, handler = batching_logger(stream, "indirect")
    logger.filters.clear()  # the logger is shared by the cases
    arrange(logger, handler)  # type: ignore[operator]
    made = counted_records(logger, monkeypatch)
    log_info(logger, "review", {"uid": "u-1"})
    log_info(logger, "secret review", {"uid": "u-2"})
    handler.flush()
    assert len(made) == 2
    uids = [line["uid"] for line in lines_of(stream)]
    assert uids == (["u-1"] if logger.filters or handler.filters else ["u-1", "u-2"])


def test_log_info_respects_the_level_and_refuses_fields_named_as_record_attributes() -> None:
    stream = io.StringIO()
    logger, handler = batching_logger(stream, "level")
    with pytest.raises(KeyError, match="overwrite"):  # as `logger.info(..., extra=)` does
        log_info(logger, "review", {"message": "forged"})
    logger.setLevel(logging.WARNING)
    log_info(logger, "review", {"uid": "u-1"})
    handler.flush()
    assert stream.getvalue() == ""
