"""The leader's controller: a change of health is pushed to it, and it evaluates only when
what the engine sees of health moved (at most every `HEALTH_SETTLE` seconds)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest_asyncio
from prometheus_client import CollectorRegistry

from gtm.config import Inventory, load
from gtm.ha import ElectionSettings, Elector, FileLease
from gtm.service.backends import open_stores
from gtm.service.controller import HEALTH_SETTLE, Controller
from policies import Health, State, TargetHealth, WeightTable

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_800_000_000.0


class Leading:
    """A controller leading on file stores, with health set by the test."""

    controller: Controller

    def __init__(self) -> None:
        self.health = Health()
        self.served: list[WeightTable] = []
        self.new_table = asyncio.Event()

    async def serve(self, table: WeightTable) -> None:
        self.served.append(table)
        self.new_table.set()

    async def next_table(self, within: float) -> WeightTable:
        async with asyncio.timeout(within):
            await self.new_table.wait()
        self.new_table.clear()
        return self.served[-1]


@pytest_asyncio.fixture
async def leading(tmp_path: Path) -> AsyncIterator[Leading]:
    inventory: Inventory = load(ROOT / "examples" / "estate.yaml")  # evaluate_every: 5 s
    async with AsyncExitStack() as stack:
        stores = await open_stores(inventory, "dc1", tmp_path, stack, CollectorRegistry())
        elector = Elector(FileLease(tmp_path / "lease"), ElectionSettings("dc1-a", ""))
        await elector.attempt()
        assert elector.is_leader()
        state = Leading()
        state.controller = Controller(
            inventory=lambda: inventory,
            health=lambda: state.health,
            stores=stores,
            elector=elector,
            serve=state.serve,
        )
        lead = asyncio.create_task(state.controller.lead([]))
        try:
            await state.next_table(within=5)  # the first evaluation
            yield state
        finally:
            lead.cancel()
            await asyncio.gather(lead, return_exceptions=True)


async def test_a_health_change_is_evaluated_at_once(leading: Leading) -> None:
    assert len(leading.served) == 1
    leading.health = Health(
        regions={("foo", "dc2"): TargetHealth(State.DOWN, T0, "0/1 VIPs up, 1 needed")}
    )
    leading.controller.health_changed()
    table = await leading.next_table(within=1)  # not evaluate_every (5 s) later
    foo = table.rows["foo"]
    assert all(row.cells["dc2"].weight == 0 for row in foo.values())


async def test_a_change_the_engine_does_not_see_is_not_evaluated(leading: Leading) -> None:
    first = leading.controller.status().layers
    leading.controller.health_changed()  # e.g. a VIP went from unknown to up: not `down`
    await asyncio.sleep(HEALTH_SETTLE)
    assert leading.controller.status().layers == first  # evaluated_at: not evaluated again


async def test_a_burst_of_changes_is_evaluated_once_it_settles(leading: Leading) -> None:
    leading.controller.health_changed()  # nothing the engine sees: looked at, then settling
    await asyncio.sleep(0.05)
    leading.health = Health(
        regions={("foo", "dc2"): TargetHealth(State.DOWN, T0, "0/1 VIPs up, 1 needed")}
    )
    leading.controller.health_changed()
    await asyncio.sleep(HEALTH_SETTLE / 2)
    assert len(leading.served) == 1  # still settling
    await leading.next_table(within=HEALTH_SETTLE + 0.5)
