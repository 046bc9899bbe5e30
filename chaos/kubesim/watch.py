"""The watch cache: a bounded history of changes and the watchers fed from it.

Every committed write becomes a `Change` with its resourceVersion. The hub
keeps the last `history` changes; a watch that starts from a resourceVersion
older than the oldest kept change cannot be served (410 Expired) — the
client must list again and watch from the list's resourceVersion. A change
that passed a watcher's selectors before but not after reaches it as
DELETED, one that starts to match as ADDED (as the apiserver's cacheWatcher
does).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any

from chaos.kubesim.errors import ApiError, expired
from chaos.kubesim.selectors import ObjectFilter

MAX_PENDING = 10_000  # a watcher further behind than this is closed, as a slow consumer


@dataclass(frozen=True)
class Change:
    """One committed write as the watch cache keeps it. Objects are never mutated."""

    type: str  # ADDED | MODIFIED | DELETED
    group_resource: str
    namespace: str
    resource_version: int
    object: dict[str, Any] | None  # the state after; None when DELETED
    previous: dict[str, Any] | None  # the state before; None when ADDED

    def seen_through(self, selection: ObjectFilter) -> tuple[str, dict[str, Any]] | None:
        """The event type and object a watcher with `selection` receives, if any."""
        now = self.object is not None and selection.matches(self.object)
        before = self.previous is not None and selection.matches(self.previous)
        if now and not before:
            return "ADDED", self.object  # type: ignore[return-value]
        if now and before:
            return "MODIFIED", self.object  # type: ignore[return-value]
        if before and self.previous is not None:
            gone = dict(self.previous)
            gone["metadata"] = {
                **self.previous["metadata"],
                "resourceVersion": str(self.resource_version),
            }
            return "DELETED", gone
        return None


@dataclass(frozen=True)
class Closed:
    """Put in a watcher's queue to end its stream."""

    reason: str


class Watcher:
    """One open watch: a queue of changes of one resource (and namespace)."""

    def __init__(self, group_resource: str, namespace: str | None) -> None:
        self.group_resource = group_resource
        self.namespace = namespace
        self._queue: asyncio.Queue[Change | Closed] = asyncio.Queue()
        self.closed: str | None = None

    def wants(self, change: Change) -> bool:
        return change.group_resource == self.group_resource and (
            self.namespace is None or change.namespace == self.namespace
        )

    def offer(self, change: Change) -> None:
        if self.closed:
            return
        if self._queue.qsize() >= MAX_PENDING:
            self.close("slow consumer")
            return
        self._queue.put_nowait(change)

    def close(self, reason: str) -> None:
        if not self.closed:
            self.closed = reason
            self._queue.put_nowait(Closed(reason))

    @property
    def idle(self) -> bool:
        """No change is waiting: every change committed so far has been taken."""
        return self._queue.empty()

    async def next(self) -> Change | Closed:
        return await self._queue.get()


class WatchHub:
    """Fan-out of committed changes, with the bounded history watches resume from."""

    def __init__(self, history: int = 1000) -> None:
        if history < 1:
            raise ValueError("history must keep at least one change")
        self._history: deque[Change] = deque()
        self._limit = history
        self._compacted = 0  # changes at or below this resourceVersion may be gone
        self._latest = 0  # the newest change published
        self._watchers: set[Watcher] = set()

    @property
    def open_watches(self) -> int:
        return len(self._watchers)

    @property
    def oldest_resumable(self) -> int:
        """The oldest resourceVersion a watch may start from."""
        return self._compacted

    def publish(self, change: Change) -> None:
        self._latest = change.resource_version
        self._history.append(change)
        while len(self._history) > self._limit:
            self._compacted = self._history.popleft().resource_version
        for watcher in self._watchers:
            if watcher.wants(change):
                watcher.offer(change)

    def subscribe(self, group_resource: str, namespace: str | None, since: int | None) -> Watcher:
        """A watcher fed with every change after `since` (None: only future changes).

        Runs synchronously with the store, so no change can slip between the
        backlog and the live feed.
        """
        if since is not None and since < self._compacted:
            raise expired(f"too old resource version: {since} ({self._compacted + 1})")
        if since is not None and since > self._latest:
            # The apiserver waits ~3 s for its cache to catch up, then gives up like this.
            raise ApiError(
                504,
                "Timeout",
                f"Timeout: Too large resource version: {since}, current: {self._latest}",
                {
                    "causes": [
                        {
                            "reason": "ResourceVersionTooLarge",
                            "message": "Too large resource version",
                        }
                    ],
                    "retryAfterSeconds": 1,
                },
            )
        watcher = Watcher(group_resource, namespace)
        if since is not None:
            for change in self._history:
                if change.resource_version > since and watcher.wants(change):
                    watcher.offer(change)
        self._watchers.add(watcher)
        return watcher

    def unsubscribe(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    def drop_all(self, reason: str, resources: tuple[str, ...] = ()) -> int:
        """Close the open watches (of these resource plurals; all if empty)."""
        chosen = [
            w
            for w in self._watchers
            if not resources or w.group_resource.partition(".")[0] in resources
        ]
        for watcher in chosen:
            watcher.close(reason)
        return len(chosen)

    def forget_history(self, resource_version: int) -> None:
        """Start over from a restored state: nothing before it can be resumed."""
        self._history.clear()
        self._compacted = resource_version
        self._latest = resource_version
