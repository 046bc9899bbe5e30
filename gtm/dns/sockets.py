"""The DNS listening sockets: one UDP and one TCP socket on one address and port.

`bind()` makes the pair the server answers on. The UDP socket's receive
buffer is sized for bursts (`UDP_RECEIVE_BUFFER`, 8 MiB): a burst of queries
that arrives while the answering loop is busy waits in the kernel instead of
being dropped. Where the process may (root, CAP_NET_ADMIN) the size is forced
past `net.core.rmem_max`; elsewhere the kernel caps it there, and `bind()`
logs `dns.receive_buffer_capped` with what it got. `drops()` reads the
kernel's count of datagrams dropped on a full buffer (SO_MEMINFO), which the
member exports as `gtm_dns_udp_receive_drops_total`.

The sockets are made by the process that owns the port and may be handed to
others (`DnsWorkers` passes them to its answer processes): every process
then reads the same kernel queue, so replacing or restarting one loses no
queued query.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

import structlog

log = structlog.get_logger("gtm.dns")

UDP_RECEIVE_BUFFER = 8 << 20  # bytes asked for; the kernel counts overhead (~1 KB per query)
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux; not in Python's socket module
_SO_MEMINFO = getattr(socket, "SO_MEMINFO", 55)
_SK_MEMINFO_DROPS = 8  # index of the drop counter in SO_MEMINFO's u32 array
_SK_MEMINFO_VARS = 9
BACKLOG = 1024


@dataclass
class Listening:
    """A bound UDP and TCP socket on one port; close() releases both."""

    udp: socket.socket
    tcp: socket.socket

    @property
    def port(self) -> int:
        return int(self.udp.getsockname()[1])

    @property
    def receive_buffer(self) -> int:
        """The UDP receive buffer in bytes, as the kernel reports it (twice what was set)."""
        return int(self.udp.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))

    def drops(self) -> int:
        """Datagrams the kernel dropped on this UDP socket (a full receive buffer)."""
        return drops(self.udp)

    def fds(self) -> tuple[int, int]:
        return self.udp.fileno(), self.tcp.fileno()

    def close(self) -> None:
        self.udp.close()
        self.tcp.close()


def bind(
    host: str, port: int, *, receive_buffer: int = UDP_RECEIVE_BUFFER, reuse_port: bool = True
) -> Listening:
    """UDP and TCP sockets on `host:port`, non-blocking; port 0 picks one free for both.

    On "::" both take IPv4 too (v4-mapped). `reuse_port` lets a member that
    restarts bind while the answer processes of its predecessor still exit.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for attempt in range(1 if port else 20):
        udp = socket.socket(family, socket.SOCK_DGRAM)
        tcp = socket.socket(family, socket.SOCK_STREAM)
        try:
            for s in (udp, tcp):
                if reuse_port:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                s.setblocking(False)
            size_receive_buffer(udp, receive_buffer)
            udp.bind((host, port))
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((host, udp.getsockname()[1]))
            tcp.listen(BACKLOG)
        except OSError:
            udp.close()
            tcp.close()
            if port or attempt == 19:  # port 0: the kernel's UDP pick may be taken for TCP
                raise
            continue
        except BaseException:
            udp.close()
            tcp.close()
            raise
        return Listening(udp, tcp)
    raise AssertionError("unreachable")


def size_receive_buffer(udp: socket.socket, wanted: int) -> int:
    """Set the receive buffer to `wanted` bytes (forced where permitted); return what it is."""
    try:
        udp.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, wanted)
    except OSError:  # not permitted: the kernel caps SO_RCVBUF at net.core.rmem_max
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, wanted)
    got = int(udp.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
    if got < wanted:  # Linux reports twice the size set, so this is a real cap
        log.warning(
            "dns.receive_buffer_capped",
            wanted=wanted,
            got=got,
            hint="raise net.core.rmem_max, or run with CAP_NET_ADMIN",
        )
    return got


def drops(udp: socket.socket) -> int:
    """The kernel's drop counter of a UDP socket (SO_MEMINFO); 0 where it cannot be read."""
    try:
        raw = udp.getsockopt(socket.SOL_SOCKET, _SO_MEMINFO, 4 * _SK_MEMINFO_VARS)
    except OSError:
        return 0
    values = struct.unpack(f"{len(raw) // 4}I", raw[: len(raw) // 4 * 4])
    return int(values[_SK_MEMINFO_DROPS]) if len(values) > _SK_MEMINFO_DROPS else 0
