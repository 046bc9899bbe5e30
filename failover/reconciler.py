"""The WorkloadEntry reconciler of one cluster: plan, apply, and keep the cluster in line.

Two ways to drive it, over one watch cache:

- one-shot (runbooks): `plan(table)` gives the exact patches without making
  them; `apply(plan, epoch, may_write)` makes them (refusing an unsafe plan
  unless forced);
- continuous (the leader): inside `running()`, a list + watch keeps the
  cache current; `set_table(table, epoch, may_write)` hands in each new
  table; every WLE that differs from its target — because the table moved,
  or because someone edited it (drift) — is patched by `concurrency`
  workers. `progress()` says how many WLEs hold their target, as observed,
  and which DestinationRules override the weights with a locality
  `distribute` (re-listed every `rules_resync` seconds; reported, never
  written: see `rule_scan`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from failover.apply import apply_plan
from failover.cache import EntryCache
from failover.desired import Desired, Target
from failover.entries import EntryCalls
from failover.fencing import WriteFence, WriteStopped
from failover.mesh_plan import SLICE, MeshPlan, healthy_condition_ok, in_sync, planning
from failover.metrics import Metrics
from failover.progress import ApplyResult, Progress
from failover.rule_scan import RuleScanner
from failover.settings import ClusterSettings
from failover.vip_index import VipIndex
from failover.workload import Key, WorkloadEntry
from failover.writer import EntryWriter
from kube import ApiClient, Configuration, KubeError, Sleep
from policies import Estate, Steps, UnsafePlan, WeightTable, stepped

log = structlog.get_logger(__name__)

ClientSource = Configuration | Callable[[], ApiClient]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class _Order:
    """A table to enforce, with the fence that enforces it."""

    table: WeightTable
    fence: WriteFence
    force: bool


class Reconciler:
    """Keeps one cluster's VIP WorkloadEntries in line with its region's table rows."""

    def __init__(
        self,
        settings: ClusterSettings,
        client: ClientSource,
        estate: Estate,
        localities: Mapping[str, str],
        *,
        registry: CollectorRegistry,
        now: Callable[[], datetime] = _utc_now,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if settings.region not in estate.regions:
            raise ValueError(
                f"cluster {settings.name}: region {settings.region!r} is not in the estate"
            )
        missing = [r for r in estate.regions if r not in localities]
        if missing and settings.region_label is None:
            raise ValueError(f"cluster {settings.name}: no locality for {', '.join(missing)}")
        self.settings = settings
        self._client_source = client
        self._services = {s.name: s.fqdn for s in estate.services}
        self._localities = dict(localities)
        self._index = VipIndex(
            estate,
            localities,
            service_label=settings.service_label,
            region_label=settings.region_label,
        )
        self._metrics = Metrics.of(registry).cluster(settings.name)
        self._now, self._sleep, self._clock = now, sleep, clock
        self._api: ApiClient | None = None
        self._kube: EntryCalls | None = None
        self._cache: EntryCache | None = None
        self._writer: EntryWriter | None = None
        self._rules: RuleScanner | None = None
        self._log = log.bind(cluster=settings.name)
        # continuous mode
        self._running = False
        self._pending: _Order | None = None
        self._order: _Order | None = None
        self._desired: Desired | None = None
        self._sync: dict[Key, bool] = {}  # managed WLE -> holds its target
        self._touched: set[Key] | None = None  # WLEs changed while a table is adopted
        self._synced_count = 0
        self._dirty: set[Key] = set()
        self._busy: set[Key] = set()
        self._queue: asyncio.PriorityQueue[tuple[int, int, Key]] = asyncio.PriorityQueue()
        self._seq = 0
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._later: set[asyncio.TimerHandle] = set()
        self._refused: UnsafePlan | None = None
        self._stopped: WriteStopped | None = None
        self._pass_started: float | None = None

    # -- lifetime ---------------------------------------------------------------------

    async def __aenter__(self) -> Reconciler:
        src = self._client_source
        self._api = ApiClient(configuration=src) if isinstance(src, Configuration) else src()
        self._kube = EntryCalls(
            self.settings, self._api, self._metrics, sleep=self._sleep, clock=self._clock
        )
        self._cache = EntryCache(
            self.settings, self._kube, self._on_change, sleep=self._sleep, clock=self._clock
        )
        self._writer = EntryWriter(self.settings, self._kube, self._cache, self._metrics, self._now)
        self._rules = RuleScanner(
            self.settings, self._kube, self._metrics, self._services, self._localities
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._api is not None:
            api, self._api = self._api, None
            await api.close()

    def _parts(self) -> tuple[EntryCache, EntryWriter]:
        if self._cache is None or self._writer is None:
            raise RuntimeError("use the Reconciler inside `async with`")
        return self._cache, self._writer

    def _scanner(self) -> RuleScanner:
        if self._rules is None:
            raise RuntimeError("use the Reconciler inside `async with`")
        return self._rules

    # -- one-shot: plan and apply -----------------------------------------------------

    async def plan(self, table: WeightTable, epoch: int | None = None) -> MeshPlan:
        """The patches that would bring the cluster to `table`, made by nobody.

        Inside `running()` it reads the watch cache; otherwise it lists the cluster.
        """
        cache, _ = self._parts()
        if not (self._running and cache.synced.is_set()):
            await cache.refresh()
        desired = Desired(table, self.settings.region, self._index)
        return await stepped(
            planning(
                self.settings.name,
                table.generation,
                cache,
                desired.target,
                epoch=epoch,
                now=self._now(),
                ensure_annotation=self.settings.ensure_annotation,
            )
        )

    async def apply(
        self,
        plan: MeshPlan,
        epoch: int,
        may_write: Callable[[], bool],
        *,
        force: bool = False,
    ) -> ApplyResult:
        """Make the plan's patches, each re-diffed against the WLE as it is at write time.

        Raises `UnsafePlan` (unless `force`) before writing anything, and
        `WriteStopped` as soon as the lease is lost or a newer epoch is met.
        """
        cache, writer = self._parts()
        return await apply_plan(
            self.settings, plan, cache, writer, WriteFence(epoch, may_write), force=force
        )

    # -- continuous: running, set_table, progress -------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Reconciler]:
        """List, watch and reconcile in the background while the block runs."""
        cache, _ = self._parts()
        rules = self._scanner()
        if self._running:
            raise RuntimeError("the reconciler is already running")
        self._running = True
        tasks: list[asyncio.Task[None]] = []
        try:
            async with asyncio.TaskGroup() as tg:
                tasks.append(tg.create_task(cache.run(), name=f"wle-cache-{self.settings.name}"))
                tasks.append(tg.create_task(self._dispatch(), name="wle-dispatch"))
                tasks.append(tg.create_task(rules.run(), name=f"dr-scan-{self.settings.name}"))
                for i in range(self.settings.concurrency):
                    tasks.append(tg.create_task(self._work(), name=f"wle-worker-{i}"))
                try:
                    yield self
                finally:
                    for t in tasks:
                        t.cancel()
        finally:
            self._running = False
            for handle in self._later:
                handle.cancel()
            self._later.clear()

    def set_table(
        self,
        table: WeightTable,
        epoch: int,
        may_write: Callable[[], bool],
        *,
        force: bool = False,
    ) -> None:
        """Enforce `table` from now on (once the blast-radius check passes, or `force`)."""
        self._pending = _Order(table, WriteFence(epoch, may_write), force)
        self._wake.set()

    def first_target(self, obj: Mapping[str, Any]) -> Target | None:
        """What the table this cluster follows gives a WLE about to be created, `obj`: its
        `Healthy` condition and weight; None when it says nothing of it (no table yet, a VIP
        or service the estate does not list)."""
        order = self._pending or self._order
        if order is None:
            return None
        desired = Desired(order.table, self.settings.region, self._index)
        target = desired.target(WorkloadEntry.parse(obj))
        return None if isinstance(target, str) else target

    def progress(self) -> Progress:
        cache = self._cache
        return Progress(
            cluster=self.settings.name,
            generation=None if self._order is None else self._order.table.generation,
            desired=len(self._sync),
            in_sync=self._synced_count,
            synced=cache is not None and cache.synced.is_set(),
            watching=cache is not None and cache.watching,
            refused=None if self._refused is None else str(self._refused),
            stopped=None if self._stopped is None else str(self._stopped),
            conflicts=() if self._rules is None else self._rules.conflicts,
        )

    async def until_converged(self, generation: int | None = None) -> Progress:
        """Wait until every managed WLE holds the table's target (of `generation`, if given).

        Bound it with `asyncio.timeout`; `progress()` tells how far it got.
        Raises `UnsafePlan` when the last table set was refused, and
        `WriteStopped` when writing stopped (fenced, lease lost).
        """
        while True:  # re-checked on every cache change
            if self._pending is None and self._refused is not None:
                raise self._refused
            if self._pending is None and self._stopped is not None:
                raise self._stopped
            p = self.progress()
            if p.converged and (generation is None or p.generation == generation):
                return p
            self._changed.clear()
            await self._changed.wait()

    # -- the loop -----------------------------------------------------------------------

    def _on_change(self, key: Key, old: WorkloadEntry | None, new: WorkloadEntry | None) -> None:
        if self._touched is not None:
            self._touched.add(key)
        was = self._sync.get(key)
        self._assess(key, new)
        if was is True and self._sync.get(key) is False:
            self._metrics.drift()
            self._log.info("wle.drift", entry=f"{key[0]}/{key[1]}")
            if self._pass_started is None:
                self._pass_started = self._clock()
        if self._sync.get(key) is False:
            self._dirty.add(key)
            self._wake.set()
        self._settled()

    def _assess(self, key: Key, entry: WorkloadEntry | None) -> None:
        was = self._sync.pop(key, None)
        if was:
            self._synced_count -= 1
        ok = self._holds(self._desired, entry)
        if ok is not None:
            self._sync[key] = ok
            self._synced_count += ok

    def _holds(self, desired: Desired | None, entry: WorkloadEntry | None) -> bool | None:
        """Whether `entry` holds what `desired` wants of it; None when gtm does not manage it."""
        target = None if entry is None or desired is None else desired.target(entry)
        if isinstance(target, Target) and entry is not None:
            return in_sync(entry, target, ensure_annotation=self.settings.ensure_annotation)
        return None

    def _assessing(self, desired: Desired) -> Steps[dict[Key, bool]]:
        """Every cached entry against `desired`, `SLICE` entries a step; the WLEs changed
        meanwhile (`_touched`) as they are at the end."""
        cache, _ = self._parts()
        sync: dict[Key, bool] = {}

        def assess(key: Key) -> None:
            ok = self._holds(desired, cache.get(key))
            if ok is None:
                sync.pop(key, None)
            else:
                sync[key] = ok

        for n, key in enumerate(cache.keys(), 1):
            if n % SLICE == 0:
                yield
            assess(key)
        for key in self._touched or ():
            assess(key)
        return sync

    def _settled(self) -> None:
        self._metrics.gauges(len(self._sync), self._synced_count)
        if self._pass_started is not None and self._synced_count == len(self._sync):
            seconds = self._clock() - self._pass_started
            self._pass_started = None
            self._metrics.reconciled(seconds)
            generation = self._order.table.generation if self._order else None
            self._log.info(
                "wle.converged", generation=generation, entries=len(self._sync), seconds=seconds
            )
        self._changed.set()

    async def _adopt(self, order: _Order) -> None:
        cache, _ = self._parts()
        desired = Desired(order.table, self.settings.region, self._index)
        mesh = await stepped(
            planning(
                self.settings.name,
                order.table.generation,
                cache,
                desired.target,
                epoch=order.fence.epoch,
                now=self._now(),
                ensure_annotation=self.settings.ensure_annotation,
            )
        )
        refusal = mesh.unsafe(self.settings.max_unhealthy_share)
        if refusal is not None and not order.force:
            self._refused = refusal
            self._log.warning(
                "wle.table.refused", generation=order.table.generation, why=str(refusal)
            )
            self._changed.set()
            return
        # assessed in steps, and swapped in whole: a count of part of the entries would
        # read as converged to anyone waiting on progress()
        self._touched = set()
        try:
            sync = await stepped(self._assessing(desired))
        finally:
            self._touched = None
        self._order, self._desired, self._refused, self._stopped = order, desired, None, None
        self._log.info(
            "wle.table.accepted",
            generation=order.table.generation,
            epoch=order.fence.epoch,
            patches=len(mesh.patches),
            managed=mesh.managed,
            unhealthy_after=mesh.unhealthy_after,
            forced=refusal is not None,
        )
        self._sync = sync
        self._synced_count = sum(sync.values())
        self._dirty = {k for k, ok in sync.items() if not ok}
        self._pass_started = self._clock() if self._dirty else None
        self._settled()

    async def _dispatch(self) -> None:
        cache, _ = self._parts()
        await cache.synced.wait()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._pending is not None:
                order, self._pending = self._pending, None
                await self._adopt(order)
            if self._order is None or self._stopped:
                self._dirty.clear()
                continue
            ready = [k for k in self._dirty if k not in self._busy]
            self._dirty.difference_update(ready)
            for key in ready:
                if self._sync.get(key) is False:
                    self._busy.add(key)
                    self._seq += 1
                    self._queue.put_nowait((self._urgency(key), self._seq, key))

    def _urgency(self, key: Key) -> int:
        """0 for a Healthy condition to write (what moves traffic), 1 for weights and annotations."""
        entry = self._cache.get(key) if self._cache else None
        target = None if entry is None or self._desired is None else self._desired.target(entry)
        if entry is None or not isinstance(target, Target):
            return 1
        return 1 if healthy_condition_ok(entry, target) else 0

    async def _work(self) -> None:
        cache, writer = self._parts()
        while True:
            _, _, key = await self._queue.get()
            try:
                order, entry = self._order, cache.get(key)
                target = (
                    None if entry is None or self._desired is None else self._desired.target(entry)
                )
                if (
                    order is None
                    or self._stopped
                    or entry is None
                    or not isinstance(target, Target)
                ):
                    continue
                try:
                    await writer.converge(entry, target, order.fence)
                except WriteStopped as e:
                    if self._order is order and not self._stopped:
                        self._stopped = e
                        self._log.warning("wle.write.stopped", why=str(e), epoch=order.fence.epoch)
                        self._changed.set()
                except KubeError as e:
                    self._log.warning("wle.patch.failed", entry=f"{key[0]}/{key[1]}", error=str(e))
                    self._retry_later(key)
            finally:
                self._busy.discard(key)
                if key in self._dirty:
                    self._wake.set()

    def _retry_later(self, key: Key) -> None:
        delay = self.settings.retry.backoff_max

        def fire() -> None:
            self._later.discard(handle)
            self._dirty.add(key)
            self._wake.set()

        handle = asyncio.get_running_loop().call_later(delay, fire)
        self._later.add(handle)
