"""The watch: drift is corrected, a 410 re-lists, a restart mid-exit finishes the exit."""

from __future__ import annotations

import asyncio
import copy

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

from chaos.kubesim import Faults, KubeSim


def edit(sim: KubeSim, name: str, *, weight: int | None = None, healthy: str | None = None) -> None:
    """Someone else changes a WLE (straight into the store: watchers see a MODIFIED)."""
    obj = copy.deepcopy(objects(sim)[name])
    if weight is not None:
        obj["spec"]["weight"] = weight
    if healthy is not None:
        for c in obj["status"]["conditions"]:
            if c["type"] == "Healthy":
                c["status"] = healthy
                c.pop("reason", None)
                c.pop("message", None)
    sim.seed(obj)


async def test_drift_is_corrected_from_the_watch(sim: KubeSim) -> None:
    estate = make_estate(3)
    seed_baseline(sim, estate)
    out = table(estate, exit_("dc2"))
    registry = CollectorRegistry()
    remote = wle_name(estate.service("svc1").vips["dc2"][0])
    local = wle_name(estate.service("svc2").vips["dc1"][0])
    async with reconciler(sim, estate, registry=registry, resync=3600) as r, r.running():
        r.set_table(out, epoch=1, may_write=held)
        await converged(r, out.generation)
        lists = sim.stats()["by_verb"]["list"]

        edit(sim, remote, healthy="True")  # someone puts the exited target back
        edit(sim, local, weight=5)  # and someone else fiddles with a weight
        await asyncio.sleep(0.05)
        await converged(r, out.generation, within=5)
        assert sim.stats()["by_verb"]["list"] == lists  # seen by the watch, not a re-list
    got = objects(sim)
    assert healthy_of(got[remote])["message"] == "Region Exit"  # type: ignore[index]
    assert got[local]["spec"]["weight"] == 99
    assert registry.get_sample_value("gtm_wle_drifted_total", {"cluster": "dc1"}) == 2
    assert registry.get_sample_value("gtm_wle_in_sync", {"cluster": "dc1"}) == 10
    assert registry.get_sample_value("gtm_wle_desired", {"cluster": "dc1"}) == 10
    ok = registry.get_sample_value(
        "gtm_wle_patches_total", {"cluster": "dc1", "subresource": "status", "result": "ok"}
    )
    assert ok == 4  # 3 exits + 1 correction
    assert registry.get_sample_value("gtm_wle_reconcile_duration_seconds_count", {"cluster": "dc1"})


async def test_a_too_old_watch_relists_and_catches_up() -> None:
    estate = make_estate(6)
    async with KubeSim(host="127.0.0.1", port=0, history=2) as sim:
        seed_baseline(sim, estate)
        out = table(estate, exit_("dc2"))
        async with reconciler(sim, estate) as r, r.running():
            r.set_table(out, epoch=1, may_write=held)
            await converged(r, out.generation)
            lists = sim.stats()["by_verb"]["list"]
            sim.faults.set(Faults(drop_watches=True))  # the stream breaks ...
            for s in estate.services:  # ... and more changes than the history holds go by
                edit(sim, wle_name(s.vips["dc2"][0]), healthy="True")
            sim.faults.clear()
            await asyncio.sleep(0.05)
            await converged(r, out.generation, within=5)
            assert sim.stats()["by_verb"]["list"] > lists  # 410 -> re-list
            assert sim.stats()["watches_opened"] >= 2
        got = objects(sim)
        assert all(
            healthy_of(got[wle_name(s.vips["dc2"][0])])["status"] == "False"  # type: ignore[index]
            for s in estate.services
        )


async def test_periodic_resync_relists(sim: KubeSim) -> None:
    estate = make_estate(1)
    seed_baseline(sim, estate)
    async with reconciler(sim, estate, resync=0.2) as r, r.running():
        r.set_table(table(estate), epoch=1, may_write=held)
        await converged(r)
        await asyncio.sleep(0.7)
    assert sim.stats()["by_verb"]["list"] >= 3


async def test_progress_is_observed_not_written(sim: KubeSim) -> None:
    estate = make_estate(20, two_vips=())
    seed_baseline(sim, estate)
    sim.faults.set(Faults(latency=0.01))
    out = table(estate, exit_("dc2"))
    async with reconciler(sim, estate, qps=200, burst=1, concurrency=2) as r:
        assert r.progress().desired == 0 and not r.progress().synced
        async with r.running():
            r.set_table(out, epoch=1, may_write=held)
            seen = set()
            while not r.progress().converged:
                p = r.progress()
                seen.add(p.in_sync)
                assert p.desired in (0, 60) and p.in_sync <= p.desired
                await asyncio.sleep(0.005)
            assert len(seen) > 5  # it counted up as the watch saw the WLEs change
            assert str(r.progress()) == "dc1: 60/60 WorkloadEntries in sync (table 1)"


async def test_a_restart_in_the_middle_of_an_exit_finishes_it(sim: KubeSim) -> None:
    estate = make_estate(30, two_vips=())
    seed_baseline(sim, estate)
    out = table(estate, exit_("dc2"))
    sim.faults.set(Faults(latency=0.005))
    async with reconciler(sim, estate, qps=100, burst=1, concurrency=2) as first:
        async with first.running():
            first.set_table(out, epoch=3, may_write=held)
            for _ in range(2000):
                if patched(sim) >= 15:
                    break
                await asyncio.sleep(0.005)
        half = first.progress()  # the first member dies here
    assert 0 < half.in_sync < half.desired
    before = patched(sim)
    async with reconciler(sim, estate, qps=1000) as second, second.running():
        second.set_table(out, epoch=4, may_write=held)  # the next leader rolls the exit forward
        await converged(second, out.generation)
    left = half.desired - half.in_sync  # as observed; a write in flight at the crash may
    assert left - 2 <= patched(sim) - before <= left  # have landed unseen: nothing twice
    got = objects(sim)
    assert all(
        healthy_of(got[wle_name(s.vips["dc2"][0])])["message"] == "Region Exit"  # type: ignore[index]
        and got[wle_name(s.vips["dc1"][0])]["spec"]["weight"] == 99
        for s in estate.services
    )
