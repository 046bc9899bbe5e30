"""What this member's DNS serves: one weight table at a time, swapped in whole.

Both roles serve: the leader the tables it evaluates, the standby the ones the
leader stored. The answer processes (`gtm.dns.DnsWorkers`) build a table and
swap it in; until they serve it they keep answering the previous generation,
and `ready()` says whether they lag the member by more than `READY_BEHIND`.
Other parts add what readiness also needs (`check`: the intent store has not
gone back, …); `unready()` names every cause.

    serving = Serving()
    await serving.serve(first)              # before DNS runs: the table to start it with
    serving.attach(dns)                     # from now on each table goes to the workers
    serving.status(inventory)               # DnsRef for the member's status
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from gtm.config import Inventory
from gtm.dns import DnsWorkers
from gtm.status import DnsRef
from policies import WeightTable

READY_BEHIND = 5.0  # seconds DNS may lag the member's table before /readyz says not ready


class Serving:
    def __init__(self, *, settle: Callable[[], None] | None = None) -> None:
        """`settle`: called once each new table is swapped in (`gtm.service.heap`)."""
        self._settle = settle
        self._table: WeightTable | None = None
        self._at: float | None = None
        self._dns: DnsWorkers | None = None
        self._lock = asyncio.Lock()
        self._checks: list[Callable[[], str | None]] = []

    @property
    def table(self) -> WeightTable | None:
        """The table this member serves (the workers may still be swapping it in)."""
        return self._table

    def attach(self, dns: DnsWorkers) -> None:
        """The answer processes are running (started with `table`): hand them every next one."""
        self._dns = dns

    async def serve(self, table: WeightTable) -> None:
        """Serve `table`: returns once the answer processes serve it, or after their delivery
        bound (they keep serving the previous generation meanwhile, and `ready()` says so)."""
        async with self._lock:
            served = self._table
            if served is not None and table.generation == served.generation and table == served:
                return
            self._table = table
            self._at = time.time()
            if self._dns is not None:
                await self._dns.publish(table)
            if self._settle is not None:
                self._settle()

    def check(self, cause: Callable[[], str | None]) -> None:
        """Something else readiness needs: `cause()` says why not (None: all is well)."""
        self._checks.append(cause)

    def ready(self) -> bool:
        """DNS answers the table this member holds (or has been behind < READY_BEHIND),
        and every `check` passes."""
        return not self.unready()

    def unready(self) -> list[str]:
        """Why this member's DNS is not to be relied on, one cause a line ([] when it is)."""
        if self._table is None:
            return ["no table to serve yet"]
        if self._dns is None:
            return ["DNS not started yet"]
        causes = []
        behind = self._dns.behind()
        if behind >= READY_BEHIND:
            causes.append(f"DNS answers lag the member's table by {behind:.1f}s")
        for check in self._checks:
            cause = check()
            if cause is not None:
                causes.append(cause)
        return causes

    def status(self, inventory: Inventory) -> DnsRef:
        """The generation held and the one the answer processes serve, how far they lag."""
        config = inventory.config.dns
        dns = self._dns
        return DnsRef(
            listen=config.listen,
            generation=None if self._table is None else self._table.generation,
            served_at=self._at,
            ttl=config.ttl,
            zones=inventory.zones(),
            answering=None if dns is None else dns.generation,
            behind_seconds=0.0 if dns is None else round(dns.behind(), 3),
            workers=None if dns is None else len(dns.pids),
            restarts=0 if dns is None else dns.restarts,
        )
