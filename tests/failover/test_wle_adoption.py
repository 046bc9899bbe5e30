"""Adopting a table in steps: nobody reads a count of part of the entries as converged."""

from __future__ import annotations

import asyncio

from wle_fixtures import (
    converged,
    exit_,
    held,
    make_estate,
    objects,
    reconciler,
    seed_baseline,
    sim_fixture,  # noqa: F401
    table,
)

from chaos.kubesim import KubeSim
from failover.mesh_plan import SLICE
from failover.progress import Progress


async def test_a_table_is_adopted_whole_however_many_steps_it_takes(sim: KubeSim) -> None:
    estate = make_estate(SLICE // 3 * 2 + 10)  # over two slices of entries
    seed_baseline(sim, estate)
    managed = len(objects(sim))
    base = table(estate)
    out = table(estate, exit_("dc2"), previous=base)
    seen: list[Progress] = []
    async with reconciler(sim, estate, resync=3600) as r, r.running():
        r.set_table(base, epoch=1, may_write=held)
        await converged(r, base.generation)

        async def watch() -> None:
            while True:  # every turn of the loop while the exit's table is adopted
                seen.append(r.progress())
                await asyncio.sleep(0)

        watcher = asyncio.create_task(watch())
        r.set_table(out, epoch=1, may_write=held)
        await converged(r, out.generation)
        watcher.cancel()
    adopting = [p for p in seen if p.generation == base.generation]
    adopted = [p for p in seen if p.generation == out.generation]
    assert len(adopting) > 2, "the adoption took more than one step"
    assert all(p.desired == managed for p in adopting + adopted), {
        p.desired for p in adopting + adopted
    }
    assert not adopted[0].converged  # the exit's patches were still to make
    assert adopted[-1].converged
