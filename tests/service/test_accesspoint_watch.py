"""Watch-driven passes: with a resync far away (120 s), what the leaders do comes from the
watches alone — an AccessPoint applied is rendered, the VIPs its Services get become the
downstream's WorkloadEntries in every region, a deleted AP is swept — within seconds; and
once everything holds, nothing wakes them. Which changes wake a leader (not the leaders'
own writes of entries and conditions) is tested on the watch events themselves."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from accesspoint_testing import (
    ESTATE,
    KUBECTL,
    REGIONS,
    Leaders,
    estate_file,
    example_clusters,
    kubectl,
)
from prometheus_client import CollectorRegistry

from gtm.service.accesspoint_watch import AccessPointChanges, ServiceChanges, Wakeup
from gtm.service.accesspoints import AccessPointMetrics
from kube import WatchEvent

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="needs the real kubectl")
TWO_TIER = ESTATE.parent / "accesspoints" / "two-tier.yaml"


async def within(seconds: float, check: Callable[[], Awaitable[bool]], what: str) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    while loop.time() - start < seconds:
        if await check():
            return loop.time() - start
        await asyncio.sleep(0.25)
    raise AssertionError(f"not within {seconds}s: {what}")


async def test_the_watches_drive_the_passes_between_resyncs(tmp_path: Path) -> None:
    async with example_clusters(tmp_path, 33400, 34100) as kubeconfig, AsyncExitStack() as stack:
        await _run(kubeconfig, tmp_path, stack)


async def _run(kubeconfig: Path, tmp_path: Path, stack: AsyncExitStack) -> None:
    leaders = Leaders(estate_file(tmp_path, kubeconfig), stack)
    registries = {r: CollectorRegistry() for r in REGIONS}
    controllers = [
        await leaders.open(r, metrics=AccessPointMetrics(registries[r])) for r in REGIONS
    ]
    running = [asyncio.create_task(c.run(every=120, gap=0.5)) for c in controllers]
    try:
        await asyncio.sleep(1)  # the first passes (nothing to do) and the watches open

        async def wles() -> list[dict]:
            items = []
            for r in REGIONS:
                got = await kubectl(kubeconfig, r, "get", "workloadentries", "-n", "pay")
                items += got["items"]
            return items

        await kubectl(kubeconfig, "dc1", "apply", "-f", str(TWO_TIER), json_out=False)
        # each region's pay-gw: one WLE per pay-app VIP, the three regions' VIPs each
        took = await within(20, lambda: _count(wles, 9), "pay-gw's 9 WorkloadEntries")
        print(f"applied to 9 WorkloadEntries in 3 clusters: {took:.1f}s")

        def passes() -> float:
            return sum(
                registries[r].get_sample_value("gtm_accesspoint_syncs_total", {"result": "ok"})
                or 0.0
                for r in REGIONS
            )

        await asyncio.sleep(3)  # the last status writes settle
        before = passes()
        await asyncio.sleep(4)
        assert passes() - before <= 3, "settled leaders keep waking each other"

        await kubectl(kubeconfig, "dc1", "delete", "accesspoint", "pay-gw", "-n", "pay",
                      json_out=False)  # fmt: skip
        await within(15, lambda: _count(wles, 0), "pay-gw's WorkloadEntries swept")
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


async def _count(items: Callable[[], Awaitable[list[dict]]], n: int) -> bool:
    return len(await items()) == n


def test_a_service_wakes_only_when_its_vips_change() -> None:
    changes = ServiceChanges("dc1")
    svc = {"metadata": {"namespace": "pay", "name": "pay-app"}, "status": {}}
    assert changes(WatchEvent("ADDED", svc)) == "dc1: Service pay/pay-app VIPs none"
    assert changes(WatchEvent("MODIFIED", svc)) is None
    with_vip = {**svc, "status": {"loadBalancer": {"ingress": [{"ip": "127.1.1.1"}]}}}
    assert changes(WatchEvent("MODIFIED", with_vip)) == "dc1: Service pay/pay-app VIPs 127.1.1.1"
    assert changes(WatchEvent("DELETED", with_vip)) == "dc1: Service pay/pay-app deleted"


def test_an_accesspoint_wakes_on_spec_resume_and_rollout_not_on_other_status() -> None:
    changes = AccessPointChanges()
    ap = {"metadata": {"namespace": "pay", "name": "web", "generation": 1}, "status": {}}
    assert changes(WatchEvent("ADDED", ap)) is not None
    entries = {**ap, "status": {"clusters": [{"name": "dc1"}], "conditions": []}}
    assert changes(WatchEvent("MODIFIED", entries)) is None
    rolled = {**ap, "status": {"rollout": {"phase": "Paused", "cluster": "dc1"}}}
    assert changes(WatchEvent("MODIFIED", rolled)) is not None
    resumed = {
        **rolled,
        "metadata": {**ap["metadata"], "annotations": {"gtm.io/rollout-resume": "x"}},
    }
    assert changes(WatchEvent("MODIFIED", resumed)) is not None
    edited = {**resumed, "metadata": {**resumed["metadata"], "generation": 2}}
    assert changes(WatchEvent("MODIFIED", edited)) == "AccessPoint pay/web changed"


async def test_wake_ups_are_coalesced_and_a_quiet_wait_returns_nothing() -> None:
    wake = Wakeup()
    wake.set("a")
    wake.set("b")
    assert await wake.wait(5) == ["a", "b"]
    assert await wake.wait(0.05) == []
