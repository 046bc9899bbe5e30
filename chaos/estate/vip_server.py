"""One simulated gateway VIP: a small HTTP/1.1 server on the VIP's own address and port.

Raw asyncio rather than a web framework, because the faults act below HTTP:
`refuse` closes the listening socket and resets open connections, and
`blackhole` keeps reading a connection without ever writing to it. A
source fault (`chaos.estate.sources`) replaces the VIP's own fault for the
connections of the processes it names; `refuse` then resets them. Healthy,
it answers `GET`/`HEAD` of `/healthz` and `/` with `200 ok`, anything else
with 404, each with the header `X-Gtm-Vip: <vip id>`; keep-alive works as in
HTTP/1.1. Every connection's task is owned: `stop()` cancels and awaits them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import structlog

from chaos.estate.fault import OK, Fault
from chaos.estate.sources import SourceFaults
from policies import Vip

log = structlog.get_logger(__name__)

HEALTHY_PATHS = ("/healthz", "/")
MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    keep_alive: bool


class BadRequest(Exception):
    pass


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """The next request of a connection (its body read and dropped), or None at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        if error.partial.strip():
            raise BadRequest("connection closed inside a request") from None
        return None
    except asyncio.LimitOverrunError:
        raise BadRequest("request head too large") from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(f"not an HTTP/1.x request line: {lines[0][:80]!r}")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if not sep:
                raise BadRequest(f"bad header line {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise BadRequest("chunked request bodies are not supported")
    length = headers.get("content-length", "0")
    if not length.isdigit() or int(length) > MAX_BODY:
        raise BadRequest(f"bad content-length {length!r}")
    if int(length):
        await reader.readexactly(int(length))
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)
    return Request(method.upper(), target.split("?", 1)[0], keep_alive)


class _Client:
    """One connection's client: its endpoints and, while source faults exist, its owner."""

    __slots__ = ("group", "local", "peer", "version")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("", 0)
        local = writer.get_extra_info("sockname") or ("", 0)
        self.peer: tuple[str, int] = (str(peer[0]), int(peer[1]))
        self.local: tuple[str, int] = (str(local[0]), int(local[1]))
        self.group: int | None = None
        self.version = -1  # of the source faults it was looked up under


class VipServer:
    """Serves one VIP (on its address, or each of `hosts`) and applies its fault."""

    def __init__(
        self,
        vip: Vip,
        hosts: Sequence[str] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sources: SourceFaults | None = None,
    ) -> None:
        self.vip = vip
        self.hosts = tuple(hosts) if hosts else (vip.address,)
        self._clock = clock
        self._sources = sources
        self._fault = OK
        self._since = clock()
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self._running = False
        self.requests = 0

    @property
    def fault(self) -> Fault:
        return self._fault

    @property
    def listening(self) -> bool:
        return self._server is not None

    def state(self) -> dict[str, Any]:
        return {
            "id": self.vip.id,
            "service": self.vip.service,
            "region": self.vip.region,
            "address": self.vip.address,
            "port": self.vip.port,
            "fault": self._fault.to_dict(),
            "since": round(self._clock() - self._since, 3),
            "listening": self.listening,
            "connections": len(self._connections),
            "requests": self.requests,
        }

    async def start(self) -> None:
        self._running = True
        await self._apply()

    async def stop(self) -> None:
        self._running = False
        await self._close_listener()
        await self._drop_connections()

    async def set_fault(self, fault: Fault) -> None:
        changed = fault != self._fault
        self._fault = fault
        self._since = self._clock()
        if changed:
            log.info("vip.fault", vip=self.vip.id, **fault.to_dict())
        if self._running:
            await self._apply()

    async def _apply(self) -> None:
        if self._fault.mode == "refuse":
            await self._close_listener()
            await self._drop_connections()
        elif self._server is None:
            self._server = await asyncio.start_server(
                self._serve,
                host=list(self.hosts),
                port=self.vip.port,
                reuse_address=True,
                limit=MAX_HEAD,
            )

    async def _close_listener(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            # Not `wait_closed()`: on 3.12+ it waits for every connection to end.

    async def _drop_connections(self) -> None:
        tasks = list(self._connections)
        for task, writer in list(self._connections.items()):
            writer.transport.abort()  # a reset, as a VIP that went away
            task.cancel()
        # return_exceptions: their cancellations are results; a cancellation of ours still raises
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        try:
            await self._converse(reader, writer, _Client(writer))
        except (BadRequest, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._connections.pop(task, None)
            writer.close()

    def _fault_for(self, client: _Client) -> tuple[Fault, float]:
        """The fault this client gets and since when: a source fault naming it, else the VIP's."""
        sources = self._sources
        if sources is not None and sources.active:
            if client.version != sources.version:
                client.group = sources.owner(client.peer, client.local)
                client.version = sources.version
            entry = sources.fault_for(client.group)
            if entry is not None:
                return entry.fault, entry.since
        return self._fault, self._since

    async def _converse(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: _Client
    ) -> None:
        while True:
            if self._fault_for(client)[0].mode == "refuse":  # only a source fault gets here
                writer.transport.abort()
                return
            try:
                request = await read_request(reader)
            except BadRequest as error:
                await self._answer(writer, 400, f"bad request: {error}", keep_alive=False)
                return
            if request is None:
                return
            self.requests += 1
            fault, since = self._fault_for(client)
            if fault.mode == "refuse":
                writer.transport.abort()
                return
            if fault.mode == "blackhole":
                while await reader.read(65536):  # swallow everything until the client gives up
                    pass
                return
            if fault.mode == "slow":
                await asyncio.sleep(fault.latency)
            status, body = self._outcome(fault, since, request)
            await self._answer(
                writer,
                status,
                body,
                keep_alive=request.keep_alive,
                head=request.method == "HEAD",
                fault=fault,
            )
            if not request.keep_alive:
                return

    def _outcome(self, fault: Fault, since: float, request: Request) -> tuple[int, str]:
        failing = fault.mode == "error" or (
            fault.mode == "flap" and fault.failing_at(self._clock() - since)
        )
        if failing:
            return fault.status, f"injected fault: {fault.mode} {fault.status}"
        if request.path in HEALTHY_PATHS:
            return 200, "ok"
        return 404, "not found"

    async def _answer(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: str,
        *,
        keep_alive: bool,
        head: bool = False,
        fault: Fault | None = None,
    ) -> None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Status"
        payload = body.encode()
        lines = [
            f"HTTP/1.1 {status} {reason}",
            "Content-Type: text/plain; charset=utf-8",
            f"Content-Length: {len(payload)}",
            f"X-Gtm-Vip: {self.vip.id}",
            f"X-Gtm-Fault: {(fault or self._fault).mode}",
            f"Connection: {'keep-alive' if keep_alive else 'close'}",
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if not head:
            writer.write(payload)
        await writer.drain()
