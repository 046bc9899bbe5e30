"""The standby's loop: serve the table the leader stored, and read the pair's intent.

Every `FOLLOW_EVERY` seconds both roles read the stored intent; the standby
also serves a table the leader stored that it has not served yet, and has its
controller `observe` what both layers admit now, holding the mesh from when
the leader first saw each override (a takeover continues that hold). `start`
serves what the pair last stored, else a first table from the intent alone.
A store that went back (`intent.RegressedState`) is not read as the intent:
the member keeps the intent it last read (what its peers pull from it) and
its table; the store's guard reports it (`/readyz`, `/v1/status`, metrics).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from gtm.config import Inventory
from gtm.ha import Elector
from gtm.service.backends import Stores
from gtm.service.controller import Controller
from gtm.service.serving import Serving
from intent import IntentState, RegressedState
from policies import Health, evaluate

log = structlog.get_logger("gtm.standby")

FOLLOW_EVERY = 1.0  # the standby checks the stored table this often


class Standby:
    def __init__(
        self,
        *,
        stores: Stores,
        serving: Serving,
        inventory: Callable[[], Inventory],
        on_intent: Callable[[IntentState], None],  # the intent as the store holds it
    ) -> None:
        self._stores = stores
        self._serving = serving
        self._inventory = inventory
        self._on_intent = on_intent

    async def start(self) -> None:
        """Serve what the pair last stored, else a first table from the intent alone."""
        published = await self._stores.dns_table.load()
        if published is not None:
            await self._serving.serve(published.table)
            return
        try:
            intent = await self._stores.intent.load()
        except RegressedState as e:
            # nothing published to serve: a first table from what the store holds (every
            # override but the lost ones), while the member says it is not ready
            assert e.state is not None
            intent = e.state
        self._on_intent(intent)
        now = time.time()
        first = evaluate(self._inventory().estate, Health(), intent.active(now), None, now)
        await self._serving.serve(first.table)

    async def run(self, elector: Elector, controller: Controller) -> None:
        """Until cancelled: the intent on both roles; the stored table while not leading."""
        last = None
        while True:
            try:
                intent = await self._stores.intent.load()
                self._on_intent(intent)
                if not elector.is_leader():
                    head = await self._stores.dns_table.head()
                    if head is not None and (head.epoch, head.generation) != last:
                        published = await self._stores.dns_table.load()
                        if published is not None:
                            await self._serving.serve(published.table)
                            last = (published.head.epoch, published.head.generation)
                    # The leader's DNS served an override from when it saw it; this
                    # member's, once it read that table: up to FOLLOW_EVERY later.
                    leader_seen = (
                        {oid: at + FOLLOW_EVERY for oid, at in head.seen.items()}
                        if head is not None
                        else None
                    )
                    await controller.observe(intent, self._serving.table, leader_seen)
            except RegressedState:
                pass  # the store's guard logged and reports it; the leader restores it
            except Exception as e:  # a store that cannot be read now is read again next time
                log.warning("standby.read_failed", error=f"{type(e).__name__}: {e}")
            await asyncio.sleep(FOLLOW_EVERY)
