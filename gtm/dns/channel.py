"""Frames between `DnsWorkers` and its answer processes: a 4-byte length, then a pickle.

Both ends are gtm processes of one installation (the parent starts the
child), so pickle is the codec: it carries the inventory and the table's
rows as they are, and decodes in C. A table goes in chunks of
`CHUNK_SERVICES` services, so neither end spends more than a few
milliseconds on one frame.

    parent -> worker   ("init", the pickled inventory, glue addresses)
                       ("rows", {service: {source: Row} | None})   (None: the service is gone)
                       ("commit", generation, computed_at)          build and serve the rows
                       ("stats",)   ("stop",)
    worker -> parent   ("ready", pid, port, generation)             first generation served
                       ("serving", generation)
                       ("stats", Snapshot, pushed)   ("stopped", index)
"""

from __future__ import annotations

import asyncio
import pickle
import struct
from typing import IO, Any

CHUNK_SERVICES = 50
FRAME_LIMIT = 1 << 30
_HEADER = struct.Struct("!I")


def encode(frame: tuple[Any, ...]) -> bytes:
    body = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader) -> tuple[Any, ...] | None:
    """The next frame, or None at the end of the stream (the other end is gone)."""
    try:
        header = await reader.readexactly(_HEADER.size)
        (size,) = _HEADER.unpack(header)
        if size > FRAME_LIMIT:
            raise ValueError(f"DNS worker frame of {size} bytes")
        body = await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        return None
    frame = pickle.loads(body)  # our own child process, over its own pipe
    if not isinstance(frame, tuple) or not frame:
        raise ValueError(f"not a DNS worker frame: {type(frame).__name__}")
    return frame


async def write_frame(writer: asyncio.StreamWriter, frame: tuple[Any, ...]) -> None:
    writer.write(encode(frame))
    await writer.drain()


class Frames:
    """The worker's side of its stdout, written without ever blocking the worker's loop.

    Frames go through an asyncio pipe transport: while the parent does not read
    (its loop is busy) they wait in the worker's memory, and answering goes on.
    A counters snapshot (`droppable`) is skipped while more than
    `BACKLOG_LIMIT` bytes wait: the next one carries the same totals.
    """

    BACKLOG_LIMIT = 1 << 20

    def __init__(self, transport: asyncio.WriteTransport, protocol: _Pipe) -> None:
        self._transport = transport
        self._protocol = protocol

    @classmethod
    async def pipe(cls, file: IO[bytes]) -> Frames:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.connect_write_pipe(_Pipe, file)
        return cls(transport, protocol)

    def send(self, frame: tuple[Any, ...], *, droppable: bool = False) -> bool:
        """Queue `frame`; False when a droppable one was skipped (or the pipe is closed)."""
        if self._transport.is_closing():
            return False
        if droppable and self._transport.get_write_buffer_size() > self.BACKLOG_LIMIT:
            return False
        self._transport.write(encode(frame))
        return True

    async def close(self) -> None:
        """Close once what waits is written (the parent reads it as the worker exits)."""
        self._transport.close()
        await self._protocol.closed


class _Pipe(asyncio.Protocol):
    def __init__(self) -> None:
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
