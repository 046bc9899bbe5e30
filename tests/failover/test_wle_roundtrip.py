"""Region exit and re-entry through the simulated API server, from real tables."""

from __future__ import annotations

from wle_fixtures import (
    converged,
    drain,
    exit_,
    healthy_of,
    held,
    make_estate,
    objects,
    reconciler,
    seed_baseline,
    sim_fixture,  # noqa: F401
    table,
    wle_name,
)

from chaos.kubesim import KubeSim


async def test_exit_then_enter_round_trip(sim: KubeSim) -> None:
    estate = make_estate(4)
    seed_baseline(sim, estate)
    base = table(estate)
    out = table(estate, exit_("dc2"), previous=base)
    async with reconciler(sim, estate) as r, r.running():
        r.set_table(base, epoch=1, may_write=held)
        await converged(r, base.generation)
        assert r.progress().desired == 13  # 4 services x 3 regions, svc0 has two dc1 VIPs

        r.set_table(out, epoch=1, may_write=held)
        await converged(r, out.generation)
        got = objects(sim)
        for s in estate.services:
            for v in s.vips["dc2"]:
                c = healthy_of(got[wle_name(v)])
                assert c is not None
                assert (c["status"], c["reason"], c["message"]) == (
                    "False",
                    "unhealthy",
                    "Region Exit",
                )
            for v in s.vips["dc3"]:
                assert healthy_of(got[wle_name(v)])["status"] == "True"  # type: ignore[index]
        # dc2's weight went to dc1 (99/0/1): the remaining split is exact
        svc1 = estate.service("svc1")
        assert got[wle_name(svc1.vips["dc1"][0])]["spec"]["weight"] == 99
        assert got[wle_name(svc1.vips["dc3"][0])]["spec"]["weight"] == 1
        assert got[wle_name(svc1.vips["dc2"][0])]["spec"]["weight"] == 1  # kept, out by condition
        # two VIPs in dc1 for svc0: each gets half of dc1's share, the split stays 99:1
        svc0 = estate.service("svc0")
        w = [got[wle_name(v)]["spec"]["weight"] for v in svc0.vips["dc1"]]
        assert w == [99, 99] and got[wle_name(svc0.vips["dc3"][0])]["spec"]["weight"] == 2

        back = table(estate, previous=out)  # the exit is gone: dc2 comes back in
        r.set_table(back, epoch=1, may_write=held)
        await converged(r, back.generation)
        got = objects(sim)
        for s in estate.services:
            for v in s.vips["dc2"]:
                c = healthy_of(got[wle_name(v)])
                assert c is not None and c["status"] == "True"
                assert "reason" not in c and "message" not in c


async def test_drain_marks_only_the_drained_service(sim: KubeSim) -> None:
    estate = make_estate(3)
    seed_baseline(sim, estate)
    t = table(estate, drain("dc3", "svc2"))
    async with reconciler(sim, estate) as r:
        plan = await r.plan(t, epoch=1)
        assert [p.name for p in plan.patches if p.status] == [
            wle_name(estate.service("svc2").vips["dc3"][0])
        ]
        await r.apply(plan, epoch=1, may_write=held)
    c = healthy_of(objects(sim)[wle_name(estate.service("svc2").vips["dc3"][0])])
    assert c is not None and c["message"] == "Service Drain"
