"""The leader's loop: while this member holds the lease, one term after another.

A term opens the WorkloadEntry reconcilers of this region's clusters (and,
when the estate names a home cluster for AccessPoints, renders them into
this region's clusters: `gtm.service.accesspoints`), pulls
every peer's intent at once (what the old leader had not merged yet) and runs
the controller's loop (`Controller.lead`) until the config is reloaded
(`restart`: the next term starts with fresh reconcilers) or the lease is
lost. A leader whose loop fails steps down, so the standby leads.

On a regressed intent store (`intent.RegressedState`: it holds a lower
version than this member has seen) the leader keeps the lease but does not
lead from it: no evaluation (DNS keeps serving the last table), no write of
less over it. It tries to merge back what it and its peers know
(`IntentMerge.restore`, also on each peer pull) until the store reaches the
mark, then leads again. Stepping down would not help: the partner shares the
store. Operators'
plans read the term's reconcilers through `mesh_plans`; a term's reconcilers
close only once the plans using them are done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

import structlog
from prometheus_client import CollectorRegistry

from failover import MeshPlan, Progress, Reconciler, WriteFence
from gtm.config import Inventory
from gtm.ha import Elector, LeadershipLost
from gtm.service.accesspoints import AccessPointMetrics, Onboarded, open_controller
from gtm.service.backends import open_reconcilers
from gtm.service.controller import Controller
from intent import RegressedState, Regression
from policies import WeightTable

log = structlog.get_logger("gtm.leader")

RESTORE_EVERY = 1.0  # seconds between attempts to merge lost intent back


class Leader:
    def __init__(
        self,
        *,
        identity: str,
        region: str,
        elector: Elector,
        controller: Controller,
        inventory: Callable[[], Inventory],
        registry: CollectorRegistry,
        catch_up: Callable[[], None],  # pull every peer's intent now
        regression: Callable[[], Regression | None] = lambda: None,  # the store went back
        restore: Callable[[], Awaitable[bool]] | None = None,  # merge back what is known
        onboarding: Onboarded = lambda key: None,  # an AP's service: answered, or why not
    ) -> None:
        self._identity = identity
        self._region = region
        self._elector = elector
        self._controller = controller
        self._inventory = inventory
        self._registry = registry
        self._catch_up = catch_up
        self._regression = regression
        self._restore = restore
        self._onboarding = onboarding
        self._reconcilers: list[Reconciler] = []
        self._restart = asyncio.Event()
        self._planning = asyncio.Lock()  # held by action plans and by a term's end
        self._accesspoint_metrics = AccessPointMetrics(registry)

    def progress(self) -> list[Progress]:
        """Each cluster's progress as the term's watch caches see it (none while not leading)."""
        return [r.progress() for r in self._reconcilers]

    async def mesh_plans(self, table: WeightTable) -> list[MeshPlan]:
        """Each cluster's plan for `table`; the term's reconcilers stay open meanwhile."""
        async with self._planning:
            return [await r.plan(table) for r in self._reconcilers]

    def restart(self) -> None:
        """The config was reloaded: end the term; the next one opens the clusters afresh."""
        self._restart.set()

    async def run(self) -> None:
        """Until cancelled: lead whenever elected, a term at a time."""
        elector = self._elector
        while True:
            await elector.wait_leading()
            self._restart.clear()
            try:
                async with elector.leading():
                    stack = AsyncExitStack()
                    try:
                        await self._term(stack)
                    finally:
                        # an operator's action may be planning with these reconcilers:
                        # they close once it is done, and the next plans see none
                        async with self._planning:
                            self._reconcilers = []
                            await stack.aclose()
                    log.info(
                        "leader.restarting_term", member=self._identity, reason="config reloaded"
                    )
            except LeadershipLost:
                log.warning("leader.term_ended", member=self._identity)
            except Exception:
                # A failing leader must not keep the lease: step down, let the standby lead.
                log.exception("leader.failed", member=self._identity)
                await elector.step_down("leader loop failed")
            finally:
                self._reconcilers = []

    async def _term(self, stack: AsyncExitStack) -> None:
        """One term: the reconcilers and the controller's loop, until the config is reloaded."""
        self._catch_up()  # intent the old leader had not merged yet
        inventory = self._inventory()
        self._reconcilers = await open_reconcilers(inventory, self._region, self._registry)
        for r in self._reconcilers:
            await stack.enter_async_context(r)
            await stack.enter_async_context(r.running())
        fence = WriteFence(self._elector.require_leader(), self._elector.is_leader)
        accesspoints = await open_controller(
            inventory,
            self._region,
            fence,
            self._reconcilers,
            stack,
            self._accesspoint_metrics,
            self._onboarding,
        )
        if accesspoints is not None:
            rendering = asyncio.create_task(accesspoints.run(inventory.config.accesspoints.resync))
            stack.push_async_callback(_cancelled, rendering)
        while True:
            if await self._refusing():
                return  # the config was reloaded meanwhile
            lead = asyncio.create_task(self._controller.lead(self._reconcilers))
            restart = asyncio.create_task(self._restart.wait())
            try:
                await asyncio.wait({lead, restart}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (lead, restart):
                    task.cancel()
                await asyncio.gather(lead, restart, return_exceptions=True)
            error = None if lead.cancelled() else lead.exception()
            if isinstance(error, RegressedState):
                continue  # the store went back: wait for it to be restored, then lead again
            if error is not None:
                raise error
            return

    async def _refusing(self) -> bool:
        """While the intent store is regressed: hold the lease, evaluate nothing, merge back
        what is known. True when the term ended meanwhile (a reload)."""
        regression = self._regression()
        if regression is None:
            return False
        log.error(
            "leader.refusing",
            member=self._identity,
            stored=regression.stored,
            seen=regression.seen,
            cause=regression.cause(),
        )
        while self._regression() is not None:
            if self._restart.is_set():
                return True
            if self._restore is not None:
                await self._restore()
            if self._regression() is not None:
                try:
                    async with asyncio.timeout(RESTORE_EVERY):
                        await self._restart.wait()
                except TimeoutError:
                    pass
        log.info("leader.restored", member=self._identity)
        return False


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
