"""Where a request ends, found as its bytes arrive in any pieces."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from webhook.framing import (
    ChunkedBody,
    ChunkState,
    head_end,
    parse_head,
    with_content_length,
)

HEAD = (
    b"POST /validate?timeout=3s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 12\r\nExpect: 100-continue\r\n\r\n"
)


def test_a_head_is_found_however_it_is_split() -> None:
    for cut in range(1, len(HEAD)):
        buffer = bytearray(HEAD[:cut])
        searched = len(buffer)
        assert head_end(buffer) == -1
        buffer += HEAD[cut:] + b'{"a":1}'
        assert head_end(buffer, searched) == len(HEAD)


def test_the_head_gives_method_path_and_framing() -> None:
    head = parse_head(HEAD)
    assert (head.method, head.path, head.content_length, head.chunked) == (
        "POST",
        "/validate",
        12,
        False,
    )
    assert head.expect_continue
    assert head.has_body


def test_conflicting_or_malformed_lengths_are_marked() -> None:
    two = b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
    assert parse_head(two).content_length == -1
    assert parse_head(b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n").content_length == -1
    same = b"POST / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n"
    assert parse_head(same).content_length == 3
    assert not parse_head(b"GET /healthz HTTP/1.1\r\n\r\n").has_body


def test_chunked_is_the_last_transfer_coding_only() -> None:
    assert parse_head(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").chunked
    assert not parse_head(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n").chunked


CHUNKED = b"5;ext=1\r\nhello\r\n1a\r\n" + b"x" * 26 + b"\r\n0\r\nTrailer: t\r\n\r\n"


@given(cuts=st.lists(st.integers(0, len(CHUNKED)), max_size=6))
def test_a_chunked_body_ends_where_it_ends_whatever_the_pieces(cuts: list[int]) -> None:
    body = ChunkedBody(0)
    buffer = bytearray()
    previous = 0
    for cut in sorted(cuts):
        buffer += CHUNKED[previous:cut]
        previous = cut
        assert body.feed(buffer) is not ChunkState.DONE or len(buffer) == len(CHUNKED)
    buffer += CHUNKED[previous:] + b"POST /next"
    assert body.feed(buffer) is ChunkState.DONE
    assert (body.end, body.declared) == (len(CHUNKED), 31)


def test_malformed_chunks_are_marked() -> None:
    assert ChunkedBody(0).feed(b"zz\r\n") is ChunkState.MALFORMED
    assert ChunkedBody(0).feed(b"2\r\nabX\r\n") is ChunkState.MALFORMED
    assert ChunkedBody(0).feed(b"1" * 5000) is ChunkState.MALFORMED
    assert ChunkedBody(0).feed(b"1" * 100) is ChunkState.SIZE


def test_the_declared_size_counts_before_the_data_arrives() -> None:
    body = ChunkedBody(0)
    assert body.feed(b"fffffff\r\nab") is ChunkState.DATA
    assert body.declared == 0xFFFFFFF


def test_an_oversized_chunked_head_is_handed_on_with_a_length_instead() -> None:
    head = b"POST /validate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    sized = parse_head(with_content_length(head, 10_000_000))
    assert (sized.content_length, sized.chunked, sized.path) == (10_000_000, False, "/validate")
