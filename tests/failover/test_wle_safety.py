"""Guards on writes: plan mode writes nothing, the blast radius, fencing by epoch."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry
from wle_fixtures import (
    converged,
    exit_,
    healthy_of,
    held,
    make_estate,
    objects,
    patched,
    reconciler,
    seed_baseline,
    sim_fixture,  # noqa: F401
    table,
    wle_name,
)

from chaos.kubesim import KubeSim
from failover import Fenced, LeaseNotHeld, UnsafePlan


async def test_plan_mode_lists_the_patches_and_writes_nothing(sim: KubeSim) -> None:
    estate = make_estate(5, two_vips=())
    seed_baseline(sim, estate)
    before = objects(sim)
    async with reconciler(sim, estate) as r:
        plan = await r.plan(table(estate, exit_("dc2")), epoch=4)
    assert objects(sim) == before
    assert set(sim.stats()["by_verb"]) == {"list"}
    status = [p for p in plan.patches if p.status]
    assert sorted(p.name for p in status) == sorted(
        wle_name(s.vips["dc2"][0]) for s in estate.services
    )
    assert all("Healthy True -> False (Region Exit)" in p.changes for p in status)
    mains = [p for p in plan.patches if not p.status]  # the local WLEs: 98 -> 99
    assert {p.changes for p in mains} == {("weight 98 -> 99",)}
    assert mains[0].document()["spec"] == {"weight": 99}
    assert f"patch dc1 mesh/{status[0].name}/status" in str(plan)


async def test_a_plan_marking_too_much_unhealthy_is_refused_unless_forced(sim: KubeSim) -> None:
    estate = make_estate(4, two_vips=())
    seed_baseline(sim, estate)
    both = table(estate, exit_("dc2", "x1"), exit_("dc3", "x2"))  # 8 of 12 WLEs out
    async with reconciler(sim, estate, max_unhealthy_share=0.5) as r:
        plan = await r.plan(both, epoch=1)
        with pytest.raises(UnsafePlan) as refused:
            await r.apply(plan, epoch=1, may_write=held)
        assert (refused.value.changed, refused.value.total) == (8, 12)
        assert "8 of 12" in str(refused.value) and "66.7%" in str(refused.value)
        assert sim.stats()["by_verb"].get("patch", 0) == 0

        async with r.running():  # the loop refuses the table too, and keeps the WLEs as they are
            r.set_table(both, epoch=1, may_write=held)
            with pytest.raises(UnsafePlan, match="8 of 12"):
                async with asyncio.timeout(5):
                    await r.until_converged(both.generation)
            assert "8 of 12" in str(r.progress().refused)
            assert sim.stats()["by_verb"].get("patch", 0) == 0
            r.set_table(both, epoch=1, may_write=held, force=True)
            await converged(r, both.generation)
    got = objects(sim)
    assert sum(healthy_of(o)["status"] == "False" for o in got.values()) == 8  # type: ignore[index]


async def test_a_newer_epoch_on_a_wle_fences_a_stale_leader_off(sim: KubeSim) -> None:
    estate = make_estate(3)
    seed_baseline(sim, estate)
    out = table(estate, exit_("dc2"))
    counted = CollectorRegistry()
    async with reconciler(sim, estate) as new, reconciler(sim, estate, registry=counted) as stale:
        stale_plan = await stale.plan(out, epoch=5)  # made before the new leader took over
        await new.apply(await new.plan(out, epoch=6), epoch=6, may_write=held)
        written = patched(sim)
        assert {
            o["metadata"]["annotations"].get("gtm.io/epoch") for o in objects(sim).values()
        } >= {"6"}
        with pytest.raises(Fenced, match="epoch 6, newer than ours"):
            await stale.apply(stale_plan, epoch=5, may_write=held)
        replanned = await stale.plan(out, epoch=5)
        assert replanned.fenced and not replanned.patches
        with pytest.raises(Fenced):
            await stale.apply(replanned, epoch=5, may_write=held)
        async with stale.running():
            stale.set_table(
                table(estate), epoch=5, may_write=held
            )  # the stale leader would bring dc2 back
            with pytest.raises(Fenced):
                async with asyncio.timeout(5):
                    await stale.until_converged()
            assert "newer than ours" in (stale.progress().stopped or "")
    assert patched(sim) == written  # the stale leader changed nothing
    stopped = {"cluster": "dc1", "why": "fenced"}  # and it counted each refusal
    assert (counted.get_sample_value("gtm_wle_writes_stopped_total", stopped) or 0) >= 2
    got = objects(sim)
    assert all(
        healthy_of(got[wle_name(s.vips["dc2"][0])])["status"] == "False"  # type: ignore[index]
        for s in estate.services
    )


async def test_may_write_is_asked_before_every_write(sim: KubeSim) -> None:
    estate = make_estate(4)
    seed_baseline(sim, estate)
    allowed = iter([True, True, True])
    async with reconciler(sim, estate, concurrency=1) as r:
        plan = await r.plan(table(estate, exit_("dc2")), epoch=1)
        with pytest.raises(LeaseNotHeld):
            await r.apply(plan, epoch=1, may_write=lambda: next(allowed, False))
    assert patched(sim) == 3
