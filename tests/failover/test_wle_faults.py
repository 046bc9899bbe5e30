"""A concurrent writer, a flaky server, a throttling server: the reconciler still converges."""

from __future__ import annotations

import asyncio

from kubernetes_asyncio.client import ApiClient, CustomObjectsApi
from kubernetes_asyncio.client.exceptions import ApiException
from prometheus_client import CollectorRegistry
from wle_fixtures import (
    GROUP,
    NS,
    PLURAL,
    VERSION,
    converged,
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

from chaos.kubesim import Faults, KubeSim

THEIRS = {"type": "Audited", "status": "True", "reason": "Checked", "message": "by the auditor"}


async def their_write(api: CustomObjectsApi, name: str) -> None:
    """Another controller adds its own condition and a label (read-modify-write, RV-guarded)."""
    while True:
        obj = await api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name)
        rv = obj["metadata"]["resourceVersion"]
        conditions = [c for c in obj["status"]["conditions"] if c["type"] != "Audited"]
        try:
            await api.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                NS,
                PLURAL,
                name,
                {
                    "metadata": {"resourceVersion": rv},
                    "status": {"conditions": [*conditions, THEIRS]},
                },
                _content_type="application/merge-patch+json",
            )
            await api.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                NS,
                PLURAL,
                name,
                {"metadata": {"labels": {"audited": "yes"}}},
                _content_type="application/merge-patch+json",
            )
            return
        except ApiException as e:
            if e.status != 409:
                raise


async def test_a_concurrent_writer_gets_a_409_and_neither_change_is_lost(sim: KubeSim) -> None:
    estate = make_estate(3)
    seed_baseline(sim, estate)
    out = table(estate, exit_("dc2"))
    names = [wle_name(s.vips["dc2"][0]) for s in estate.services]
    async with ApiClient(sim.configuration()) as client, reconciler(sim, estate) as r:
        plan = await r.plan(out, epoch=1)  # computed from resourceVersions about to go stale
        other = CustomObjectsApi(client)
        for name in names:
            await their_write(other, name)
        result = await r.apply(plan, epoch=1, may_write=held)
    assert result.conflicts >= len(names) and result.ok
    assert sim.stats()["by_code"].get("409", 0) >= len(names)
    for name in names:
        obj = objects(sim)[name]
        types = {c["type"]: c for c in obj["status"]["conditions"]}
        assert types["Audited"] == THEIRS  # theirs kept
        assert types["Healthy"]["message"] == "Region Exit"  # ours written
        assert obj["metadata"]["labels"]["audited"] == "yes"


async def test_racing_writers_while_running_both_win(sim: KubeSim) -> None:
    estate = make_estate(6)
    seed_baseline(sim, estate)
    out = table(estate, exit_("dc2"))
    names = [wle_name(s.vips["dc2"][0]) for s in estate.services]
    async with ApiClient(sim.configuration()) as client, reconciler(sim, estate) as r:
        other = CustomObjectsApi(client)
        async with r.running():
            r.set_table(out, epoch=1, may_write=held)
            await asyncio.gather(*(their_write(other, n) for n in names))
            await converged(r, out.generation)
    for name in names:
        obj = objects(sim)[name]
        types = {c["type"]: c for c in obj["status"]["conditions"]}
        assert types["Audited"] == THEIRS and types["Healthy"]["status"] == "False"


async def test_half_the_requests_failing_with_500_still_converges(sim: KubeSim) -> None:
    estate = make_estate(8)
    seed_baseline(sim, estate)
    sim.faults.set(Faults(error_rate=0.5, seed=7))
    out = table(estate, exit_("dc2"))
    async with reconciler(sim, estate) as r, r.running():
        r.set_table(out, epoch=1, may_write=held)
        await converged(r, out.generation, within=30)
    assert sim.faults.injected.get("error", 0) > 5
    got = objects(sim)
    assert all(
        healthy_of(got[wle_name(s.vips["dc2"][0])])["message"] == "Region Exit"  # type: ignore[index]
        for s in estate.services
    )


async def test_429_retry_after_is_honoured(sim: KubeSim) -> None:
    """Every retry of a throttled patch waits at least Retry-After (an injected sleep counts)."""
    estate = make_estate(6)
    seed_baseline(sim, estate)
    sim.faults.set(Faults(throttle_rate=0.4, retry_after=3, verbs=("patch",), seed=11))
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(0)

    registry = CollectorRegistry()
    async with reconciler(sim, estate, sleep=sleep, registry=registry) as r:
        result = await r.apply(await r.plan(table(estate, exit_("dc2"))), epoch=1, may_write=held)
    throttled = sim.stats()["by_code"].get("429", 0)
    assert result.ok and throttled >= 2
    assert len(slept) == throttled  # one wait per 429, none for anything else
    assert min(slept) >= 3.0
    retries = registry.get_sample_value(
        "gtm_kube_retries_total", {"cluster": "dc1", "verb": "patch"}
    )
    assert retries == throttled
