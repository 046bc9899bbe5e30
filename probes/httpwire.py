"""HTTP/1.1 on the wire for probes: the request bytes, and an incremental response parser.

Pure code over bytes, so framing (Content-Length, chunked, close-delimited,
bodiless responses) is tested without sockets. A probe keeps at most
`max_body` bytes of the body; it needs the status, the framing, and enough body
to match a pattern, not the whole document.
"""

from __future__ import annotations

_CRLF = b"\r\n"
_HEAD_END = b"\r\n\r\n"
USER_AGENT = "gtm-probe/1"


class HttpWireError(Exception):
    """The peer sent something that is not an HTTP/1.x response."""


def build_request(method: str, path: str, host: str, *, keepalive: bool) -> bytes:
    """The request bytes; `Connection: close` unless the connection is to be reused."""
    connection = "keep-alive" if keepalive else "close"
    return (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\n"
        f"Accept: */*\r\nConnection: {connection}\r\n\r\n"
    ).encode("latin-1")


class ResponseParser:
    """Feeds on received bytes until one response is complete.

    With `need_body=False` and no reuse wanted, the response counts as complete
    once its head is parsed; otherwise framing is followed to the end so the
    connection can be reused (`reusable`).
    """

    __slots__ = (
        "_buffer",
        "_chunk_left",
        "_content_left",
        "_framing",
        "_head_only",
        "_max_body",
        "_max_head",
        "_need_end",
        "body",
        "complete",
        "headers",
        "reusable",
        "status",
    )

    def __init__(
        self,
        *,
        head_only: bool = False,
        need_body: bool = False,
        need_end: bool = False,
        max_body: int = 65536,
        max_head: int = 65536,
    ) -> None:
        self._buffer = bytearray()
        self._head_only = head_only
        self._need_end = need_end or need_body
        self._max_body = max_body if need_body else 0
        self._max_head = max_head
        self._framing = "head"
        self._content_left = 0
        self._chunk_left = -1
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.complete = False
        self.reusable = False

    def feed(self, data: bytes) -> bool:
        """Takes more bytes; returns True once the response is complete."""
        if self.complete:
            return True
        self._buffer += data
        if self._framing == "head" and not self._parse_head():
            return False
        if self._framing == "length":
            self._take_length()
        elif self._framing in ("chunked", "trailers"):
            self._take_chunks()
        elif self._framing == "close":
            self._keep(self._buffer)
            self._buffer.clear()
        return self.complete

    def feed_eof(self) -> bool:
        """The peer closed its side; a close-delimited body ends here. Returns `complete`."""
        if self._framing == "close" or (self._framing != "head" and not self._need_end):
            self.complete = True
            self.reusable = False
        return self.complete

    def _parse_head(self) -> bool:
        while True:
            end = self._buffer.find(_HEAD_END)
            if end < 0:
                if len(self._buffer) > self._max_head:
                    raise HttpWireError("response head too large")
                if not b"HTTP/".startswith(bytes(self._buffer[:5])):
                    raise HttpWireError("not an HTTP response")
                return False
            head = bytes(self._buffer[:end]).decode("latin-1")
            del self._buffer[: end + 4]
            lines = head.split("\r\n")
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
                raise HttpWireError(f"bad status line {lines[0][:60]!r}")
            status = int(parts[1])
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if not sep:
                    raise HttpWireError(f"bad header line {line[:60]!r}")
                headers[name.strip().lower()] = value.strip()
            if 100 <= status < 200 and status != 101:
                continue  # an interim response; the real one follows
            self.status = status
            self.headers = headers
            self._choose_framing(parts[0])
            return True

    def _choose_framing(self, version: str) -> None:
        connection = self.headers.get("connection", "").lower()
        persistent = "close" not in connection and (
            version != "HTTP/1.0" or "keep-alive" in connection
        )
        if self._head_only or self.status in (204, 304):
            self._finish(persistent)
        elif "chunked" in self.headers.get("transfer-encoding", "").lower():
            self._framing = "chunked"
            self.reusable = persistent
        elif "content-length" in self.headers:
            try:
                self._content_left = int(self.headers["content-length"])
            except ValueError:
                raise HttpWireError("bad Content-Length") from None
            if self._content_left < 0:
                raise HttpWireError("bad Content-Length")
            self._framing = "length"
            self.reusable = persistent
        else:
            self._framing = "close"
        if not self._need_end:
            self.complete = True

    def _take_length(self) -> None:
        take = min(self._content_left, len(self._buffer))
        self._keep(self._buffer[:take])
        del self._buffer[:take]
        self._content_left -= take
        if self._content_left == 0:
            self._finish(self.reusable)

    def _take_chunks(self) -> None:
        buffer = self._buffer
        while not self.complete:
            if self._chunk_left < 0:  # at a size line
                end = buffer.find(_CRLF)
                if end < 0:
                    return
                size = bytes(buffer[:end]).split(b";", 1)[0].strip()
                try:
                    self._chunk_left = int(size, 16)
                except ValueError:
                    raise HttpWireError("bad chunk size") from None
                del buffer[: end + 2]
                if self._chunk_left == 0:
                    self._framing = "trailers"
            if self._framing == "trailers":
                end = buffer.find(_CRLF)
                if end < 0:
                    return
                del buffer[: end + 2]
                if end == 0:
                    self._finish(self.reusable)
                continue
            if len(buffer) < self._chunk_left + 2:
                return
            self._keep(buffer[: self._chunk_left])
            del buffer[: self._chunk_left + 2]
            self._chunk_left = -1

    def _keep(self, data: bytes | bytearray) -> None:
        room = self._max_body - len(self.body)
        if room > 0:
            self.body += data[:room]

    def _finish(self, reusable: bool) -> None:
        self._framing = "done"
        self.complete = True
        self.reusable = reusable and not self._buffer
