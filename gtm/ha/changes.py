"""What an elector tells the rest of the member: terms, holders and changes.

`LeaderTerm` is one stretch of leadership of this member, named by its
fencing epoch. `Holder` is who holds the lease as last read (followers send
writes to `address`). `LeaderChange` is pushed to every `ChangeFeed` when
this member starts or stops leading, or the holder it sees changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType


@dataclass(frozen=True)
class LeaderTerm:
    epoch: int  # the lease's transition count when this member took it
    identity: str
    address: str


@dataclass(frozen=True)
class Holder:
    identity: str
    address: str | None
    epoch: int  # the lease's transition count as read
    expires_at: datetime | None  # renew time + duration, as read (aware UTC)


@dataclass(frozen=True)
class LeaderChange:
    leading: bool  # this member leads now
    epoch: int | None  # the lease's transition count as last known
    holder: str | None  # who holds the lease (None: nobody, as far as this member knows)
    address: str | None  # where the holder takes writes


class ChangeFeed:
    """An async iterator of `LeaderChange`s from the moment it was created until `close()`.

    with elector.changes() as feed:
        async for change in feed:
            ...
    """

    def __init__(self, unsubscribe: Callable[[ChangeFeed], None]) -> None:
        self._queue: asyncio.Queue[LeaderChange | None] = asyncio.Queue()
        self._unsubscribe = unsubscribe
        self._closed = False

    def push(self, change: LeaderChange) -> None:
        if not self._closed:
            self._queue.put_nowait(change)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._unsubscribe(self)
            self._queue.put_nowait(None)

    def pending(self) -> list[LeaderChange]:
        """The changes received and not yet iterated, taken off the feed."""
        out: list[LeaderChange] = []
        while not self._queue.empty():
            change = self._queue.get_nowait()
            if change is not None:
                out.append(change)
        if self._closed:
            self._queue.put_nowait(None)
        return out

    def __aiter__(self) -> ChangeFeed:
        return self

    async def __anext__(self) -> LeaderChange:
        change = await self._queue.get()
        if change is None:
            self._queue.put_nowait(None)  # every later read ends too
            raise StopAsyncIteration
        return change

    def __enter__(self) -> ChangeFeed:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
