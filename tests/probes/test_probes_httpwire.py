"""The HTTP/1.1 response parser, on bytes: framing, split reads, reuse, and malformed input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probes.httpwire import HttpWireError, ResponseParser, build_request

LENGTH = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nContent-Type: text/plain\r\n\r\nhello world"
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n"
)


def feed_in_pieces(parser: ResponseParser, data: bytes, cuts: list[int]) -> bool:
    complete = False
    start = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        complete = parser.feed(data[start:cut])
        start = cut
    return complete


@given(cuts=st.lists(st.integers(0, len(LENGTH)), max_size=10))
def test_content_length_in_any_pieces(cuts: list[int]) -> None:
    parser = ResponseParser(need_body=True, need_end=True)
    assert feed_in_pieces(parser, LENGTH, cuts)
    assert (parser.status, bytes(parser.body), parser.reusable) == (200, b"hello world", True)


@given(cuts=st.lists(st.integers(0, len(CHUNKED)), max_size=10))
def test_chunked_in_any_pieces(cuts: list[int]) -> None:
    parser = ResponseParser(need_body=True, need_end=True)
    assert feed_in_pieces(parser, CHUNKED, cuts)
    assert (bytes(parser.body), parser.reusable) == (b"hello world", True)


def test_head_alone_is_enough_without_body_or_reuse() -> None:
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 1000\r\n\r\n")
    assert parser.status == 503


def test_close_delimited_body_ends_at_eof() -> None:
    parser = ResponseParser(need_body=True)
    assert not parser.feed(b"HTTP/1.0 200 OK\r\n\r\nsome ")
    assert not parser.feed(b"body")
    assert parser.feed_eof()
    assert bytes(parser.body) == b"some body" and not parser.reusable


def test_truncated_length_is_incomplete_at_eof() -> None:
    parser = ResponseParser(need_body=True)
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart")
    assert not parser.feed_eof()


@pytest.mark.parametrize(
    ("head", "head_only"),
    [
        (b"HTTP/1.1 204 No Content\r\n\r\n", False),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n", True),
    ],
)
def test_bodiless_responses(head: bytes, head_only: bool) -> None:
    parser = ResponseParser(head_only=head_only, need_end=True)
    assert parser.feed(head)
    assert parser.reusable


def test_interim_responses_are_skipped() -> None:
    parser = ResponseParser(need_end=True)
    assert parser.feed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert parser.status == 200


@pytest.mark.parametrize(
    ("headers", "reusable"),
    [
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", False),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nextra", False),
    ],
)
def test_reuse_follows_connection_semantics(headers: bytes, reusable: bool) -> None:
    parser = ResponseParser(need_end=True)
    assert parser.feed(headers)
    assert parser.reusable is reusable


def test_body_is_capped() -> None:
    parser = ResponseParser(need_body=True, need_end=True, max_body=4)
    assert parser.feed(LENGTH)
    assert bytes(parser.body) == b"hell"


@pytest.mark.parametrize(
    "data",
    [
        b"SSH-2.0-OpenSSH\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_malformed_responses(data: bytes) -> None:
    with pytest.raises(HttpWireError):
        ResponseParser(need_body=True, need_end=True).feed(data)


def test_head_too_large() -> None:
    parser = ResponseParser(max_head=100)
    with pytest.raises(HttpWireError, match="too large"):
        parser.feed(b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 200)


def test_request_bytes() -> None:
    assert build_request("GET", "/healthz", "foo.example.com", keepalive=False) == (
        b"GET /healthz HTTP/1.1\r\nHost: foo.example.com\r\nUser-Agent: gtm-probe/1\r\n"
        b"Accept: */*\r\nConnection: close\r\n\r\n"
    )
    assert b"Connection: keep-alive" in build_request("HEAD", "/", "h", keepalive=True)
