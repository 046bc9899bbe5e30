"""The leader's loop: while this member holds the lease, one term after another.

A term opens the WorkloadEntry reconcilers of this region's clusters, pulls
every peer's intent at once (what the old leader had not merged yet) and runs
the controller's loop (`Controller.lead`) until the config is reloaded
(`restart`: the next term starts with fresh reconcilers) or the lease is
lost. A leader whose loop fails steps down, so the standby leads. Operators'
plans read the term's reconcilers through `mesh_plans`; a term's reconcilers
close only once the plans using them are done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack

import structlog
from prometheus_client import CollectorRegistry

from failover import MeshPlan, Progress, Reconciler
from gtm.config import Inventory
from gtm.ha import Elector, LeadershipLost
from gtm.service.backends import open_reconcilers
from gtm.service.controller import Controller
from policies import WeightTable

log = structlog.get_logger("gtm.leader")


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
    ) -> None:
        self._identity = identity
        self._region = region
        self._elector = elector
        self._controller = controller
        self._inventory = inventory
        self._registry = registry
        self._catch_up = catch_up
        self._reconcilers: list[Reconciler] = []
        self._restart = asyncio.Event()
        self._planning = asyncio.Lock()  # held by action plans and by a term's end

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
        self._reconcilers = await open_reconcilers(self._inventory(), self._region, self._registry)
        for r in self._reconcilers:
            await stack.enter_async_context(r)
            await stack.enter_async_context(r.running())
        lead = asyncio.create_task(self._controller.lead(self._reconcilers))
        restart = asyncio.create_task(self._restart.wait())
        try:
            await asyncio.wait({lead, restart}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (lead, restart):
                task.cancel()
            await asyncio.gather(lead, restart, return_exceptions=True)
        if lead.done() and not lead.cancelled() and lead.exception() is not None:
            raise lead.exception()  # type: ignore[misc]
