"""The cluster's selected WorkloadEntries as last observed: a list, then a watch.

`EntryCache.run()` lists (in pages), then watches from the list's
resourceVersion; a watch the server ends is resumed from the last version
seen (bookmarks included); a 410 (too old) means a re-list, then a watch
from the new list; every `resync` seconds a full re-list is the backstop for
an event that was never delivered. Broken streams and failed lists back off
exponentially (`RetrySettings.pause`). Writes feed their answers in with
`observe()`, so the cache does not wait for the watch to see gtm's own
patches, and an older copy never replaces a newer one.

Every change is reported to `on_change(key, old, new)` (`new` None: gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import structlog

from failover.entries import EntryCalls
from failover.settings import ClusterSettings
from failover.workload import Key, WorkloadEntry, not_older
from kube import Expired, KubeError, Sleep

REFRESH_SLICE = 1000  # entries taken in between two turns of the loop

log = structlog.get_logger(__name__)

OnChange = Callable[[Key, WorkloadEntry | None, WorkloadEntry | None], None]


class EntryCache:
    def __init__(
        self,
        settings: ClusterSettings,
        kube: EntryCalls,
        on_change: OnChange,
        *,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._s = settings
        self._kube = kube
        self._on_change = on_change
        self._sleep = sleep
        self._clock = clock
        self._entries: dict[Key, WorkloadEntry] = {}
        self.synced = asyncio.Event()  # set once the first list is in
        self.watching = False
        self._failures = 0
        self._version: str | None = None
        self._log = log.bind(cluster=settings.name)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[WorkloadEntry]:
        return iter(list(self._entries.values()))

    def keys(self) -> Iterable[Key]:
        return list(self._entries)

    def get(self, key: Key) -> WorkloadEntry | None:
        return self._entries.get(key)

    def observe(self, obj: Mapping[str, Any]) -> WorkloadEntry:
        """Take in a copy of a WLE (a write's answer, a GET); the newer copy wins."""
        entry = WorkloadEntry.parse(obj)
        old = self._entries.get(entry.key)
        if old is not None and not entry.newer_than(old):
            return old
        self._entries[entry.key] = entry
        if old != entry:
            self._on_change(entry.key, old, entry)
        return entry

    def forget(self, key: Key) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._on_change(key, old, None)

    async def refresh(self) -> str:
        """List everything and replace the cache with it; the list's resourceVersion."""
        items, version = await self._kube.list_entries()
        seen: set[Key] = set()
        for n, obj in enumerate(items, 1):
            if n % REFRESH_SLICE == 0:
                await asyncio.sleep(0)  # tens of thousands of entries: the loop runs between
            seen.add(self.observe(obj).key)
        for key in [k for k in self._entries if k not in seen]:
            if not_older(version, self._entries[key].resource_version):  # else newer: keep
                self.forget(key)
        self.synced.set()
        return version

    async def run(self) -> None:
        """Keep the cache current until cancelled."""
        self._version = None
        resync_at = 0.0
        self._failures = 0
        while True:
            try:
                if self._version is None or self._clock() >= resync_at:
                    self._version = await self.refresh()
                    resync_at = self._clock() + self._s.resync
                    self._recovered()
                left = max(0.0, resync_at - self._clock())
                with contextlib.suppress(TimeoutError):  # the resync is due
                    async with asyncio.timeout(left):
                        await self._watch(self._version, left)
                    self._recovered()  # the server ended the watch: resume where it was
            except KubeError as e:
                if isinstance(e, Expired) and self._version is not None:  # watch too old: re-list
                    self._log.info("wle.watch.expired", resource_version=self._version)
                    self._version = None
                    continue
                self._failures += 1
                self.watching = False
                if self._failures == 1:
                    self._log.warning("wle.watch.lost", error=str(e))
                await self._sleep(self._s.retry.pause(self._failures))

    async def _watch(self, version: str, seconds: float) -> None:
        """Apply the watch's events to the cache, keeping the last resourceVersion seen."""
        async with contextlib.aclosing(self._kube.watch_entries(version, seconds)) as events:
            async for event in events:
                if self._failures:
                    self._recovered()
                self._version = event.resource_version or self._version
                if event.type == "DELETED":
                    self.forget(WorkloadEntry.parse(event.object).key)
                elif event.type in ("ADDED", "MODIFIED"):
                    self.observe(event.object)

    def _recovered(self) -> None:
        self.watching = True
        if self._failures:
            self._log.info("wle.watch.restored", after_failures=self._failures)
            self._failures = 0
