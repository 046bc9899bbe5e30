"""What gtm writes into a WorkloadEntry, and what it leaves alone."""

from __future__ import annotations

import json
from datetime import timedelta

from kubernetes_asyncio.client import ApiClient, CustomObjectsApi
from wle_fixtures import (
    GROUP,
    NS,
    PLURAL,
    VERSION,
    Clock,
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
    wle,
    wle_name,
)

from chaos.kubesim import KubeSim

OTHER = {
    "type": "Reconciled",
    "status": "True",
    "reason": "Applied",
    "message": "by someone else",
    "lastTransitionTime": "2024-05-05T05:05:05Z",
}


async def test_other_conditions_are_kept_in_place(sim: KubeSim) -> None:
    estate = make_estate(2)
    seed_baseline(sim, estate, extra_conditions=(OTHER,))
    async with reconciler(sim, estate) as r:
        await r.apply(await r.plan(table(estate, exit_("dc2"))), epoch=1, may_write=held)
    for s in estate.services:
        conditions = objects(sim)[wle_name(s.vips["dc2"][0])]["status"]["conditions"]
        assert conditions[0] == OTHER
        assert [c["type"] for c in conditions] == ["Reconciled", "Healthy", "gtm.io/Epoch"]
        assert conditions[1]["status"] == "False"


async def test_last_transition_time_moves_only_when_status_flips(sim: KubeSim) -> None:
    estate = make_estate(1)
    seed_baseline(sim, estate)
    clock = Clock()
    name = wle_name(estate.service("svc0").vips["dc2"][0])
    out = table(estate, exit_("dc2"))
    drained = table(estate, drain("dc2", "svc0"), previous=out)
    back = table(estate, previous=drained)
    async with reconciler(sim, estate, now=clock) as r, r.running():
        t1 = clock.now
        r.set_table(out, epoch=1, may_write=held)
        await converged(r, out.generation)
        c = healthy_of(objects(sim)[name])
        assert (
            c is not None
            and c["lastTransitionTime"] == c["lastProbeTime"] == "2026-01-01T10:00:00Z"
        )

        clock.now = t1 + timedelta(minutes=5)  # still out, for another reason: no flip
        r.set_table(drained, epoch=1, may_write=held)
        await converged(r, drained.generation)
        c = healthy_of(objects(sim)[name])
        assert c is not None and c["message"] == "Service Drain"
        assert c["lastTransitionTime"] == "2026-01-01T10:00:00Z"
        assert c["lastProbeTime"] == "2026-01-01T10:05:00Z"

        clock.now = t1 + timedelta(minutes=9)  # back in: a flip
        r.set_table(back, epoch=1, may_write=held)
        await converged(r, back.generation)
        c = healthy_of(objects(sim)[name])
        assert c is not None and c["status"] == "True"
        assert c["lastTransitionTime"] == c["lastProbeTime"] == "2026-01-01T10:09:00Z"


async def test_annotation_added_only_after_healthy_true_is_written(sim: KubeSim) -> None:
    estate = make_estate(1)
    vip = estate.service("svc0").vips["dc3"][0]
    sim.seed(wle(vip, weight=1, healthy=None, annotate=False))  # neither condition nor annotation
    seen: list[dict[str, object]] = []
    async with ApiClient(sim.configuration()) as api:
        watcher = CustomObjectsApi(api)
        start = sim.objects(GROUP, VERSION, PLURAL, NS)[0]["metadata"]["resourceVersion"]
        async with reconciler(sim, estate) as r:
            plan = await r.plan(table(estate), epoch=1)
            assert [(p.name, p.status) for p in plan.patches] == [
                (wle_name(vip), True),
                (wle_name(vip), False),
            ]
            await r.apply(plan, epoch=1, may_write=held)
        resp = await watcher.list_namespaced_custom_object(
            GROUP,
            VERSION,
            NS,
            PLURAL,
            watch=True,
            resource_version=start,
            timeout_seconds=1,
            _preload_content=False,
        )
        async for line in resp.content:
            if line.strip():
                seen.append(json.loads(line)["object"])
        resp.close()
    assert len(seen) == 2
    first, second = seen
    assert healthy_of(first)["status"] == "True"  # type: ignore[index]
    assert "proxy.istio.io/health-checks-enabled" not in first["metadata"].get("annotations", {})  # type: ignore[index,union-attr]
    assert second["metadata"]["annotations"]["proxy.istio.io/health-checks-enabled"] == "true"  # type: ignore[index]


async def test_missing_annotation_is_reported_when_not_ensured(sim: KubeSim) -> None:
    estate = make_estate(1, two_vips=())
    vip = estate.service("svc0").vips["dc3"][0]
    sim.seed(wle(vip, weight=1, annotate=False))
    async with reconciler(sim, estate, ensure_annotation=False) as r:
        plan = await r.plan(table(estate), epoch=1)
    assert plan.patches == ()
    assert plan.missing_annotation == (f"{NS}/{wle_name(vip)}",)


async def test_istiod_managed_entries_are_never_touched(sim: KubeSim) -> None:
    estate = make_estate(2)
    seed_baseline(sim, estate, annotations={"istio.io/workloadController": "istiod-1"})
    before = objects(sim)
    async with reconciler(sim, estate) as r:
        plan = await r.plan(table(estate, exit_("dc2")), epoch=1)
        assert plan.patches == () and plan.managed == 0
        assert {s.reason for s in plan.skipped} == {
            "istiod manages it (istio.io/workloadController)"
        }
        await r.apply(plan, epoch=1, may_write=held)
        async with r.running():
            r.set_table(table(estate, exit_("dc2")), epoch=1, may_write=held)
            await converged(r)
    assert objects(sim) == before
    assert sim.stats()["by_verb"].get("patch", 0) == 0
