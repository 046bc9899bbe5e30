"""Frames between `DnsWorkers` and its answer processes: a 4-byte length, then a pickle.

Both ends are gtm processes of one installation (the parent starts the
child), so pickle is the codec: it carries the inventory and the table's
rows as they are, and decodes in C. A table goes in chunks of
`CHUNK_SERVICES` services, so neither end spends more than a few
milliseconds on one frame.

    parent -> worker   ("init", inventory, glue addresses)
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
    """The worker's side of its stdout: small frames, written at once."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out

    def send(self, frame: tuple[Any, ...]) -> None:
        self._out.write(encode(frame))
        self._out.flush()
