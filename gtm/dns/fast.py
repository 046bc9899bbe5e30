"""The UDP answer loop: the compiled one (`gtm.dns._fast`) where it is built, else Python's.

    path = udp_path(sock, replies(answers))   # compiled unless switched off or not built
    read, errors = path.serve()               # one batch per wake-up of the loop

Both loops answer the same way from one generation's `Replies` (gtm/dns/wire.py):
the compiled one reads a batch with one `recvmmsg`, answers the queries its
`seen` cache knows in C — same row, same draws from `rand`, same bytes, same
tally slots — hands every other query to `respond` (and replies too big for
the client to `slow`), and sends the batch with one `sendmmsg`. The Python
loop reads, answers and sends one datagram at a time.

The compiled path is chosen unless `GTM_DNS_FAST_PATH` is `0` (or `false`,
`no`, `off`) in the environment — the answer processes inherit it — or the
caller passes `fast=False`; without the extension (a machine where
`pip install` could not compile it) the Python loop serves. TCP is always
answered by Python (`DnsServer`).
"""

from __future__ import annotations

import os
import socket
from typing import Protocol

from gtm.dns.wire import Replies

try:
    from gtm.dns import _fast  # type: ignore[attr-defined]
except ImportError:  # not built: the Python loop serves
    _fast = None

ENV = "GTM_DNS_FAST_PATH"
BATCH = 64  # datagrams read per wake-up before yielding to the loop
# The Python loop's read size: the largest datagram there is, so no query is read cut
# (a 512-octet read costs the same as this one: measured, 1.25 µs either way).
UDP_READ = 65535
_OFF = ("0", "false", "no", "off")


class UdpPath(Protocol):
    name: str

    def serve(self) -> tuple[int, int]:
        """Answer up to one batch of waiting queries: (datagrams read, queries dropped
        because answering raised). (0, 0) when nothing waited."""
        ...


def built() -> bool:
    """Whether the compiled path is importable here."""
    return _fast is not None


def wanted(fast: bool | None = None) -> bool:
    """Whether the compiled path serves: `fast`, else the environment's switch, and built."""
    if fast is None:
        fast = os.environ.get(ENV, "1").strip().lower() not in _OFF
    return fast and _fast is not None


def udp_path(sock: socket.socket, replies: Replies, *, fast: bool | None = None) -> UdpPath:
    if wanted(fast):
        return Compiled(sock, replies)
    return PythonUdp(sock, replies)


class Compiled:
    name = "compiled"

    def __init__(self, sock: socket.socket, replies: Replies, batch: int = BATCH) -> None:
        assert _fast is not None
        r = replies
        self._udp = _fast.Udp(
            sock.fileno(), r.respond, r.slow, r.seen, r.rows, r.row_for, r.hits, r.rand, batch
        )
        self.serve = self._udp.serve


class PythonUdp:
    name = "python"

    def __init__(self, sock: socket.socket, replies: Replies, batch: int = BATCH) -> None:
        self._sock = sock
        self._respond = replies.respond
        self._batch = batch

    def serve(self) -> tuple[int, int]:
        recv, send, respond = self._sock.recvfrom, self._sock.sendto, self._respond
        read = errors = 0
        for _ in range(self._batch):
            try:
                data, addr = recv(UDP_READ)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # e.g. ICMP errors reported on the socket: skip them
                continue
            read += 1
            try:
                reply = respond(data, addr[0], True)
            except Exception:
                errors += 1
                continue
            if reply is not None:
                try:
                    send(reply, addr)
                except OSError:  # full send buffer or unreachable client: UDP may drop
                    pass
        return read, errors
