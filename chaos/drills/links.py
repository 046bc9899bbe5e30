"""The network between regions' members, for partitions: a TCP relay per link.

A member reaches each peer of another region through a relay of its own
(`PeerLinks.url(member, peer)`, handed to `SimulatedEstate(peer_url=...)`):
one listening port per (source region, peer member), forwarding to the
peer's API. `cut(a, b)` blackholes both directions between regions a and b:
open connections are dropped and new ones are accepted and never answered,
as a partition that loses packets — the peer exchange times out, the
members keep running. `heal` forwards again. Members of one region reach
each other directly (the same site). The relays run in the drill's own
process; closing aborts every relayed connection and waits for its task
(the server's task: it ends by the abort, it is never cancelled).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

import structlog

from chaos.estate import MemberConfig

log = structlog.get_logger(__name__)

HOST = "127.0.0.1"
CHUNK = 65536


@dataclass(frozen=True)
class Link:
    source: str  # the region of the members that use it
    peer: str  # the member it leads to
    peer_region: str
    port: int  # where it listens
    target: tuple[str, int]  # the peer's API


class PeerLinks:
    """Relays for every cross-region peer link of an estate's members."""

    def __init__(self, members: Sequence[MemberConfig], first_port: int) -> None:
        regions = sorted({m.region for m in members}, key=[m.region for m in members].index)
        self.links: dict[tuple[str, str], Link] = {}
        port = first_port
        for source in regions:
            for peer in members:
                if peer.region != source:
                    self.links[(source, peer.name)] = Link(
                        source, peer.name, peer.region, port, (HOST, peer.api_port)
                    )
                    port += 1
        self._cut: set[frozenset[str]] = set()
        self._servers: list[asyncio.Server] = []
        self._tasks: dict[asyncio.Task[None], tuple[Link, list[asyncio.StreamWriter]]] = {}

    @property
    def ports(self) -> range:
        ports = [link.port for link in self.links.values()]
        return range(min(ports), max(ports) + 1) if ports else range(0)

    def url(self, member: MemberConfig, peer: MemberConfig) -> str:
        """How `member` reaches `peer`: directly in its own region, else through a relay."""
        link = self.links.get((member.region, peer.name))
        return peer.api_url if link is None else f"http://{HOST}:{link.port}"

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        try:
            for link in self.links.values():
                server = await asyncio.start_server(
                    lambda r, w, link=link: self._relay(link, r, w),
                    HOST,
                    link.port,
                    reuse_address=True,
                )
                self._servers.append(server)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        self._servers.clear()
        for _, writers in list(self._tasks.values()):
            for w in writers:
                w.transport.abort()  # each relay then ends by itself
        tasks = list(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)

    async def __aenter__(self) -> PeerLinks:
        await self.start()
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- partitions --------------------------------------------------------------------

    def is_cut(self, link: Link) -> bool:
        return frozenset((link.source, link.peer_region)) in self._cut

    def cut(self, a: str, b: str) -> int:
        """Blackhole both directions between regions a and b; the connections dropped."""
        self._cut.add(frozenset((a, b)))
        dropped = 0
        for link, writers in list(self._tasks.values()):
            if self.is_cut(link):
                for w in writers:
                    w.transport.abort()  # its relay ends with a reset, both ways
                dropped += 1
        log.info("links.cut", regions=[a, b], dropped=dropped)
        return dropped

    def heal(self, a: str | None = None, b: str | None = None) -> None:
        """Restore the links between a and b (every link when neither is given)."""
        if a is None or b is None:
            self._cut.clear()
        else:
            self._cut.discard(frozenset((a, b)))
        log.info("links.healed", regions=[a, b] if a and b else "all")

    # -- relaying ----------------------------------------------------------------------

    async def _relay(
        self, link: Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        writers = [writer]
        self._tasks[task] = (link, writers)
        try:
            if self.is_cut(link):
                while await reader.read(CHUNK):  # accepted, never answered
                    pass
                return
            up_reader, up_writer = await asyncio.open_connection(*link.target)
            writers.append(up_writer)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError, RuntimeError):
            pass
        finally:
            self._tasks.pop(task, None)
            for w in writers:
                w.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()
