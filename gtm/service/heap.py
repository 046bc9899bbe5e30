"""The member's heap and the cyclic garbage collector: `gtm_member_gc_pause_seconds`.

A full collection walks every object the collector tracks. At 4,000 services
that is the inventory, 12,000 probe targets and WorkloadEntries, and each
table (tens of thousands of rows and cells): one full collection held the
member's loop for 0.4 s (a py-spy timeline of `gtm bench dns-under-load`), and
the line that happened to allocate when it started took the blame.

So, in a process that is all the member (`gtm serve`), `settle()` after each
table served, after each reload and every `EVERY` seconds (`run`: the watch
cache's relists, the probes' records and the peers' views grow the heap
between tables): a collection of the young generations (cheap:
they are small by construction), then `gc.freeze()` moves all that lives into
the permanent generation, which no later collection walks. A full collection
there instead held the loop for as long as the one it replaces, right after a
reload (a freshly read inventory of 4,000 services is millions of objects).
What is frozen is still freed by reference counting when dropped (tables, rows,
entries and the inventory are acyclic); a cycle that was already garbage in the
oldest generation when it was frozen is not freed by the collections after. Once
every `WHOLE_EVERY` seconds (`run`) the heap is unfrozen and collected whole,
which frees them: once an hour, the long pause the rest of this module avoids
(on the member's loop only: DNS answers in processes of their own; its length
shows in `gtm_member_gc_pause_seconds{generation="2"}`), so nothing frozen
leaks for longer than that.

Every collection's pause is measured (`gc.callbacks`), by generation.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

from prometheus_client import CollectorRegistry, Histogram

EVERY = 2.0  # seconds between two settles, at most
WHOLE_EVERY = 3600.0  # seconds between two collections of the whole heap, frozen part included
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Heap:
    def __init__(self, registry: CollectorRegistry, *, own_process: bool) -> None:
        self.own_process = own_process
        self._pause = Histogram(
            "gtm_member_gc_pause_seconds",
            "How long each run of the cyclic garbage collector held the member's process",
            ["generation"],
            buckets=BUCKETS,
            registry=registry,
        )
        self._children = {g: self._pause.labels(str(g)) for g in range(3)}
        self._began = 0.0

    def __enter__(self) -> Heap:
        if self.own_process:
            gc.callbacks.append(self._timed)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timed in gc.callbacks:
            gc.callbacks.remove(self._timed)

    def settle(self) -> None:
        """Collect the young generations, then freeze what lives (only in a process of its
        own)."""
        if self.own_process:
            gc.collect(1)
            gc.freeze()

    def collect_whole(self) -> None:
        """Unfreeze, collect everything, freeze again (only in a process of its own)."""
        if self.own_process:
            gc.unfreeze()
            gc.collect()
            gc.freeze()

    async def run(self, every: float = EVERY, whole_every: float = WHOLE_EVERY) -> None:
        """Settle every `every` seconds, and collect the whole heap every `whole_every`,
        until cancelled."""
        loop = asyncio.get_running_loop()
        whole_at = loop.time() + whole_every
        while True:
            await asyncio.sleep(every)
            if loop.time() >= whole_at:
                self.collect_whole()
                whole_at = loop.time() + whole_every
            else:
                self.settle()

    def _timed(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            return
        child = self._children.get(info.get("generation", 2))
        if child is not None:
            child.observe(time.perf_counter() - self._began)
