"""Where an HTTP/1.1 request ends, found while its bytes arrive (no I/O here).

The serving worker (`webhook.worker`) reads requests in its event loop and hands
a request to a thread only once it is complete in memory, so that a client that
stalls costs a socket, never a thread. This module tells it how far a request
reaches: the head up to its blank line, then `Content-Length` bytes or the
chunked body up to its last chunk and trailers. It validates no more than that:
gunicorn's own parser, run on the complete bytes in the thread, answers
malformed requests as before.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

HEAD_END = b"\r\n\r\n"
_LINE_END = b"\r\n"
_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}")
MAX_CHUNK_LINE = 4096
"""A chunk-size line (with extensions) or a trailer line longer than this is malformed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Head:
    """What the worker needs to know of a request head."""

    size: int
    """Bytes of the head, its blank line included."""
    method: str
    path: str
    content_length: int | None
    """None without the header, -1 when it is not a single decimal number."""
    chunked: bool
    expect_continue: bool

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)


def head_end(buffer: bytes | bytearray, searched: int = 0) -> int:
    """The size of the head in `buffer` (through its blank line), or -1 when incomplete.

    `searched` is how much of `buffer` an earlier call already searched, so the scan
    over a growing buffer stays linear.
    """
    found = buffer.find(HEAD_END, max(0, searched - len(HEAD_END) + 1))
    return -1 if found < 0 else found + len(HEAD_END)


def parse_head(data: bytes) -> Head:
    """The framing facts of a complete head (`data` ends with the blank line)."""
    lines = data[: -len(HEAD_END)].split(_LINE_END)
    parts = lines[0].split(b" ")
    method = parts[0].decode("latin-1") if parts else ""
    target = parts[1].decode("latin-1") if len(parts) > 1 else ""
    lengths: set[bytes] = set()
    codings: list[bytes] = []
    expect_continue = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        key = name.strip().lower()
        value = value.strip()
        if key == b"content-length":
            lengths.add(value)
        elif key == b"transfer-encoding":
            codings.extend(c.strip().lower() for c in value.split(b","))
        elif key == b"expect":
            expect_continue = value.lower() == b"100-continue"
    content_length: int | None = None
    if lengths:
        only = lengths.pop() if len(lengths) == 1 else b""
        content_length = int(only) if only.isdigit() and len(only) <= 18 else -1
    return Head(
        size=len(data),
        method=method,
        path=target.partition("?")[0],
        content_length=content_length,
        chunked=bool(codings) and codings[-1] == b"chunked",
        expect_continue=expect_continue,
    )


class ChunkState(enum.Enum):
    SIZE = "size"
    DATA = "data"
    TRAILER = "trailer"
    DONE = "done"
    MALFORMED = "malformed"


class ChunkedBody:
    """Follows a chunked body in a growing buffer, from `start` (the end of the head).

    `feed(buffer)` advances over what has arrived; `state` then says whether the body
    is complete (`DONE`, ending at `end`), malformed, or needs more bytes. `declared`
    is the sum of the chunk sizes announced so far.
    """

    def __init__(self, start: int) -> None:
        self.state = ChunkState.SIZE
        self.end = start
        self.declared = 0
        self._remaining = 0

    def feed(self, buffer: bytes | bytearray) -> ChunkState:
        while self.state not in (ChunkState.DONE, ChunkState.MALFORMED):
            if self.state is ChunkState.DATA:
                # consume what arrived of the chunk, then its CRLF
                taken = min(len(buffer) - self.end, self._remaining)
                self.end += taken
                self._remaining -= taken
                if self._remaining or len(buffer) - self.end < len(_LINE_END):
                    return self.state
                if buffer[self.end : self.end + len(_LINE_END)] != _LINE_END:
                    self.state = ChunkState.MALFORMED
                    return self.state
                self.end += len(_LINE_END)
                self.state = ChunkState.SIZE
                continue
            line_end = buffer.find(_LINE_END, self.end)
            if line_end < 0:
                if len(buffer) - self.end > MAX_CHUNK_LINE:
                    self.state = ChunkState.MALFORMED
                return self.state
            line = bytes(buffer[self.end : line_end])
            self.end = line_end + len(_LINE_END)
            if self.state is ChunkState.TRAILER:
                if not line:
                    self.state = ChunkState.DONE
                continue
            size_text = line.split(b";", 1)[0].strip()
            if not _HEX.fullmatch(size_text):
                self.state = ChunkState.MALFORMED
                return self.state
            size = int(size_text, 16)
            self.declared += size
            if size == 0:
                self.state = ChunkState.TRAILER
            else:
                self._remaining = size
                self.state = ChunkState.DATA
        return self.state


def with_content_length(head: bytes, length: int) -> bytes:
    """`head` with its framing headers replaced by `Content-Length: length`.

    An oversized chunked body is handed on as this head alone: the app refuses a
    declared length over its limit (413) without reading, as it does for any
    request that announces one.
    """
    lines = head[: -len(HEAD_END)].split(_LINE_END)
    kept = [
        line
        for line in lines[1:]
        if line.partition(b":")[0].strip().lower() not in (b"content-length", b"transfer-encoding")
    ]
    return _LINE_END.join([lines[0], *kept, b"Content-Length: %d" % length]) + HEAD_END
