"""The embedded authoritative server: UDP and TCP on one address and port.

UDP is read straight from a non-blocking socket with `loop.add_reader`,
draining up to `UDP_BATCH` datagrams per wake-up, so the loop's per-event
cost is shared by a burst of queries (this works on the default loop and on
uvloop alike). TCP takes several queries per connection (RFC 7766), answers
them in order, closes connections idle for `tcp_idle` seconds and refuses
connections beyond `tcp_clients`. `swap()` replaces the reply function in
one assignment: a query is answered wholly from the generation that was
current when it was read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from types import TracebackType
from typing import cast

import structlog

from gtm.config import DnsConfig, split_listen
from gtm.dns.answers import Answers
from gtm.dns.metrics import DnsMetrics
from gtm.dns.sockets import Listening, bind
from gtm.dns.wire import Respond, responder, too_long

log = structlog.get_logger("gtm.dns")

UDP_BATCH = 64  # datagrams read per wake-up before yielding to the loop
# The UDP read size: queries are far shorter, and a small read is measurably
# cheaper. A datagram that fills it may have been cut: it gets a TC reply.
UDP_BUFFER = 512


class DnsServer:
    """Authoritative DNS for one generation of `Answers` at a time, on UDP and TCP.

    `listen` defaults to `config.listen`; port 0 picks a free port (the same
    for UDP and TCP), readable as `port` once started. `sockets` are bound
    sockets to answer on instead (an answer process of `DnsWorkers` gets its
    parent's); the server closes its copies when it stops. TCP: at most
    `tcp_clients` connections, each closed after `tcp_idle` seconds without
    a query; `stop()` waits up to `drain_timeout` for clients to finish the
    queries they started. Use as `async with DnsServer(...) as server:`.
    """

    def __init__(
        self,
        config: DnsConfig,
        answers: Answers,
        listen: tuple[str, int] | None = None,
        *,
        sockets: Listening | None = None,
        tcp_clients: int = 256,
        tcp_idle: float = 10.0,
        drain_timeout: float = 2.0,
        metrics: DnsMetrics | None = None,
    ) -> None:
        self.config = config
        self.listen = listen if listen is not None else split_listen(config.listen)
        self._sockets = sockets
        self.tcp_clients = tcp_clients
        self.tcp_idle = tcp_idle
        self.drain_timeout = drain_timeout
        self.metrics = metrics if metrics is not None else DnsMetrics()
        self._answers = answers
        self._respond: Respond = responder(answers)
        self.metrics.serve(answers.tally, answers.generation)
        self._udp: socket.socket | None = None
        self._tcp: asyncio.Server | None = None
        self._connections: set[_TcpConnection] = set()
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
        self._respond = responder(answers)
        self._answers = answers
        self.metrics.serve(answers.tally, answers.generation)
        log.info("dns.swap", generation=answers.generation, previous=old, port=self._port)

    def respond(self, data: bytes, client: str, udp: bool) -> bytes | None:
        """The reply to one query; a query that makes the answering code fail is dropped."""
        try:
            return self._respond(data, client, udp)
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
        self._port = sockets.port
        loop.add_reader(self._udp.fileno(), self._on_udp)
        self._reaper = asyncio.create_task(self._reap(), name=f"dns-tcp-reaper-{self._port}")
        log.info(
            "dns.start", host=host, port=self._port, generation=self.generation, pid=os.getpid()
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
    def _on_udp(self) -> None:
        sock = self._udp
        if sock is None:
            return
        recv, send, respond = sock.recvfrom, sock.sendto, self._respond
        for _ in range(UDP_BATCH):
            try:
                data, addr = recv(UDP_BUFFER)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. ICMP errors reported on the socket: skip them
                continue
            try:
                if len(data) < UDP_BUFFER:
                    reply = respond(data, addr[0], True)
                else:
                    reply = too_long(data)
            except Exception:
                self.metrics.errors += 1
                continue
            if reply is not None:
                try:
                    send(reply, addr)
                except OSError:  # full send buffer or unreachable client: UDP may drop
                    pass

    # -- TCP ---------------------------------------------------------------------
    def _accept(self, conn: _TcpConnection) -> bool:
        if len(self._connections) >= self.tcp_clients or self._tcp is None:
            return False
        self._connections.add(conn)
        return True

    def _forget(self, conn: _TcpConnection) -> None:
        self._connections.discard(conn)

    async def _reap(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, self.tcp_idle / 4))
            deadline = loop.time() - self.tcp_idle
            for conn in list(self._connections):
                if conn.last < deadline:
                    conn.abort()


class _TcpConnection(asyncio.Protocol):
    """One TCP client: 2-octet length-prefixed queries in, replies out in order."""

    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.client = ""
        self.last = 0.0
        self.draining = False
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        if not self.server._accept(self):
            self.transport.abort()
            return
        peer = transport.get_extra_info("peername")
        self.client = peer[0] if peer else ""
        self.last = asyncio.get_running_loop().time()

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.last = asyncio.get_running_loop().time()
        buf = self.buffer
        buf += data
        replies = []
        while len(buf) >= 2:
            size = (buf[0] << 8) | buf[1]
            if len(buf) < 2 + size:
                break
            query = bytes(buf[2 : 2 + size])
            del buf[: 2 + size]
            reply = self.server.respond(query, self.client, False)
            if reply is not None:
                replies.append(len(reply).to_bytes(2, "big") + reply)
        if replies:
            self.transport.write(b"".join(replies))
        if self.draining and not buf:
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
