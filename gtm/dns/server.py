"""The embedded authoritative server: UDP and TCP on one address and port.

UDP is read straight from a non-blocking socket with `loop.add_reader`,
draining up to a batch of datagrams per wake-up, so the loop's per-event
cost is shared by a burst of queries (this works on the default loop and on
uvloop alike): by the compiled path (`gtm.dns.fast`: recvmmsg, the answer in
C, sendmmsg) where it is built, else by Python one datagram at a time. TCP
takes several queries per connection (RFC 7766), answers them in order,
closes connections idle for `tcp_idle` seconds and refuses connections
beyond `tcp_clients`. `swap()` replaces the answer path between two
wake-ups of the loop: a query is answered wholly from the generation that
was current when it was read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from random import random
from types import TracebackType
from typing import cast

import structlog

from gtm.config import DnsConfig, split_listen
from gtm.dns.answers import Answers
from gtm.dns.fast import UdpPath, udp_path
from gtm.dns.metrics import DnsMetrics
from gtm.dns.picks import Rand
from gtm.dns.sockets import Listening, bind
from gtm.dns.wire import CACHE_BYTES, Replies, replies

log = structlog.get_logger("gtm.dns")


class DnsServer:
    """Authoritative DNS for one generation of `Answers` at a time, on UDP and TCP.

    `listen` defaults to `config.listen`; port 0 picks a free port (the same
    for UDP and TCP), readable as `port` once started. `sockets` are bound
    sockets to answer on instead (an answer process of `DnsWorkers` gets its
    parent's); the server closes its copies when it stops.

    TCP, against clients that hold connections (as dnsdist and Knot do): a
    message must arrive whole within `tcp_message` seconds of its first
    octet (trickling bytes does not keep a connection), a connection is
    closed after `tcp_idle` seconds between messages, one client address
    holds at most `tcp_per_client` connections, and at `tcp_clients` a new
    connection takes the place of the one that has waited longest, so a
    newcomer always gets in. A message too short for a DNS header closes
    the connection at once. `stop()` waits up to `drain_timeout` for
    clients to finish the queries they started. The caches of the answer
    path hold at most `cache_bytes`. `fast` picks the UDP path (None: the
    compiled one if built, unless `GTM_DNS_FAST_PATH=0`); `rand` is the
    source of the weighted draws. Use as `async with DnsServer(...) as server:`.
    """

    def __init__(
        self,
        config: DnsConfig,
        answers: Answers,
        listen: tuple[str, int] | None = None,
        *,
        sockets: Listening | None = None,
        tcp_clients: int = 256,
        tcp_per_client: int = 32,
        tcp_idle: float = 10.0,
        tcp_message: float = 2.0,
        drain_timeout: float = 2.0,
        cache_bytes: int = CACHE_BYTES,
        metrics: DnsMetrics | None = None,
        fast: bool | None = None,
        rand: Rand = random,
    ) -> None:
        self.config = config
        self.listen = listen if listen is not None else split_listen(config.listen)
        self._sockets = sockets
        self.tcp_clients = tcp_clients
        self.tcp_per_client = tcp_per_client
        self.tcp_idle = tcp_idle
        self.tcp_message = tcp_message
        self.drain_timeout = drain_timeout
        self.cache_bytes = cache_bytes
        self.metrics = metrics if metrics is not None else DnsMetrics()
        self.fast = fast
        self.rand = rand
        self._answers = answers
        self._replies: Replies = replies(answers, cache_bytes, rand)
        self.metrics.serve(answers.tally, answers.generation)
        self._udp: socket.socket | None = None
        self._path: UdpPath | None = None
        self._tcp: asyncio.Server | None = None
        self._connections: set[_TcpConnection] = set()
        self._per_client: dict[str, int] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._port = 0

    # -- the table ---------------------------------------------------------------
    @property
    def answers(self) -> Answers:
        return self._answers

    @property
    def generation(self) -> int:
        return self._answers.generation

    def swap(self, answers: Answers) -> None:
        """Serve `answers` from the next query on; queries never see two generations."""
        old = self._answers.generation
        self._replies = replies(answers, self.cache_bytes, self.rand)
        if self._udp is not None:
            self._path = udp_path(self._udp, self._replies, fast=self.fast)
        self._answers = answers
        self.metrics.serve(answers.tally, answers.generation)
        log.info("dns.swap", generation=answers.generation, previous=old, port=self._port)

    def respond(self, data: bytes, client: str, udp: bool) -> bytes | None:
        """The reply to one query; a query that makes the answering code fail is dropped."""
        try:
            return self._replies.respond(data, client, udp)
        except Exception:  # a bug must not stop the server: count it, drop the query
            self.metrics.errors += 1
            return None

    # -- life cycle --------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._port

    async def start(self) -> None:
        host, port = self.listen
        sockets = self._sockets or bind(host, port, reuse_port=False)
        loop = asyncio.get_running_loop()
        try:
            self._tcp = await loop.create_server(
                lambda: _TcpConnection(self), sock=sockets.tcp, backlog=1024
            )
        except BaseException:
            sockets.close()
            raise
        self._udp = sockets.udp
        self._path = udp_path(self._udp, self._replies, fast=self.fast)
        self._port = sockets.port
        loop.add_reader(self._udp.fileno(), self._on_udp)
        self._reaper = asyncio.create_task(self._reap(), name=f"dns-tcp-reaper-{self._port}")
        log.info(
            "dns.start",
            host=host,
            port=self._port,
            generation=self.generation,
            pid=os.getpid(),
            udp_path=self._path.name,
        )

    async def stop(self) -> None:
        """Stop reading; let TCP clients get the replies to queries already sent; close."""
        if self._udp is None and self._tcp is None:
            return  # not started, or stopped already
        loop = asyncio.get_running_loop()
        if self._udp is not None:
            loop.remove_reader(self._udp.fileno())
            self._udp.close()
            self._udp = None
            self._path = None
        if self._tcp is not None:
            self._tcp.close()
        for conn in list(self._connections):
            conn.drain()
        if self._connections:
            waits = [c.closed for c in self._connections]
            await asyncio.wait(waits, timeout=self.drain_timeout)
            for conn in list(self._connections):
                conn.abort()
            await asyncio.gather(*waits, return_exceptions=True)
        if self._tcp is not None:
            await self._tcp.wait_closed()
            self._tcp = None
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        log.info("dns.stop", port=self._port, generation=self.generation, pid=os.getpid())

    async def __aenter__(self) -> DnsServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- UDP ---------------------------------------------------------------------
    @property
    def udp_path(self) -> str:
        """Which UDP path serves: "compiled" or "python" ("" before start)."""
        return "" if self._path is None else self._path.name

    def _on_udp(self) -> None:
        path = self._path
        if path is None:
            return
        try:
            _, errors = path.serve()
        except OSError:  # the socket is gone (closed under us): stop() removes the reader
            return
        if errors:
            self.metrics.errors += errors

    # -- TCP ---------------------------------------------------------------------
    def _accept(self, conn: _TcpConnection) -> bool:
        if self._tcp is None or self._per_client.get(conn.client, 0) >= self.tcp_per_client:
            return False
        if len(self._connections) >= self.tcp_clients:
            longest = min(self._connections, key=lambda c: c.since)
            self._forget(longest)
            longest.abort()
        self._connections.add(conn)
        self._per_client[conn.client] = self._per_client.get(conn.client, 0) + 1
        return True

    def _forget(self, conn: _TcpConnection) -> None:
        if conn in self._connections:
            self._connections.discard(conn)
            left = self._per_client[conn.client] - 1
            if left:
                self._per_client[conn.client] = left
            else:
                del self._per_client[conn.client]

    async def _reap(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, self.tcp_idle / 4, self.tcp_message / 4))
            now = loop.time()
            for conn in list(self._connections):
                if conn.overdue(now, self.tcp_idle, self.tcp_message):
                    conn.abort()


class _TcpConnection(asyncio.Protocol):
    """One TCP client: 2-octet length-prefixed queries in, replies out in order.

    `since` is when it began to wait: for its next message (idle), or for the
    rest of the message it has begun (`partial`).
    """

    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.client = ""
        self.since = 0.0
        self.partial = False
        self.draining = False
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self.client = peer[0] if peer else ""
        self.since = asyncio.get_running_loop().time()
        if not self.server._accept(self):
            self.transport.abort()

    def overdue(self, now: float, idle: float, message: float) -> bool:
        return now - self.since > (message if self.partial else idle)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        now = asyncio.get_running_loop().time()
        buf = self.buffer
        if not buf:
            self.since, self.partial = now, True  # a message begins: its deadline runs
        buf += data
        replies = []
        runt = False
        while len(buf) >= 2:
            size = (buf[0] << 8) | buf[1]
            if size < 12:  # not even a DNS header: nothing to answer, nothing more to read
                runt = True
                break
            if len(buf) < 2 + size:
                break
            query = bytes(buf[2 : 2 + size])
            del buf[: 2 + size]
            reply = self.server.respond(query, self.client, False)
            if reply is not None:
                replies.append(len(reply).to_bytes(2, "big") + reply)
            self.since = now  # the next message's wait starts
        self.partial = bool(buf)
        if replies:
            self.transport.write(b"".join(replies))
        if runt:
            self.transport.close()  # after the replies already written
        elif self.draining and not buf:
            self.transport.close()

    def drain(self) -> None:
        """Finish what the client has sent; close once no query is half-read."""
        self.draining = True
        if self.transport is not None and not self.buffer:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def pause_writing(self) -> None:  # the client does not read: stop reading its queries
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    def eof_received(self) -> bool | None:
        return None  # close our side too, after the replies already written

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._forget(self)
        if not self.closed.done():
            self.closed.set_result(None)
