"""Shared pieces of the WorkloadEntry reconciler tests: an estate, its tables, WLEs, a cluster."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from chaos.kubesim import KubeSim
from failover import ClusterSettings, Reconciler
from kube import RetrySettings
from policies import (
    Estate,
    Guardrails,
    Health,
    Kind,
    Override,
    Policy,
    Service,
    Vip,
    WeightTable,
    evaluate,
)

T0 = 1_700_000_000.0
REGIONS = ("dc1", "dc2", "dc3")
LOCALITIES = {"dc1": "region01/az01", "dc2": "region02/az01", "dc3": "region03/az01"}
NS = "mesh"
GROUP, VERSION, PLURAL = "networking.istio.io", "v1", "workloadentries"
FAST_RETRY = RetrySettings(attempts=12, backoff=0.001, backoff_max=0.02, conflict_attempts=8)


def held() -> bool:
    """`may_write` of a leader whose lease is held."""
    return True


def make_estate(services: int = 4, *, two_vips: tuple[str, ...] = ("dc1",)) -> Estate:
    """`services` services, one VIP per region (two in the `two_vips` regions of svc0)."""
    policy = Policy.uniform(
        "default", REGIONS, guardrails=Guardrails(min_active_regions=1, max_concurrent_exits=2)
    )
    out = []
    for i in range(services):
        name = f"svc{i}"
        vips: dict[str, tuple[Vip, ...]] = {}
        for r, region in enumerate(REGIONS, start=1):
            count = 2 if i == 0 and region in two_vips else 1
            vips[region] = tuple(
                Vip(Vip.make_id(name, region, addr, 443), name, region, addr, 443)
                for addr in (f"10.{r}.{i // 250}.{(i % 250) * 2 + k + 1}" for k in range(count))
            )
        out.append(Service(name, f"{name}.example.com", policy, vips))
    return Estate(REGIONS, tuple(out))


def exit_(region: str, id: str = "x1", *, services: frozenset[str] | None = None) -> Override:
    return Override(id, Kind.EXIT, region, "alice", "maintenance", T0, services, "CHG-1")


def drain(region: str, *services: str, id: str = "d1") -> Override:
    return Override(id, Kind.DRAIN, region, "bob", "drain", T0, frozenset(services))


def table(
    estate: Estate,
    *overrides: Override,
    previous: WeightTable | None = None,
    health: Health | None = None,
    now: float = T0 + 10,
) -> WeightTable:
    return evaluate(estate, health or Health(), overrides, previous, now).table


def wle_name(vip: Vip) -> str:
    return f"{vip.service}-{vip.region}-{vip.address.replace('.', '-')}"


def wle(
    vip: Vip,
    *,
    weight: int | None,
    healthy: str | None = "True",
    message: str | None = None,
    annotate: bool = True,
    extra_conditions: tuple[dict[str, Any], ...] = (),
    annotations: dict[str, str] | None = None,
    since: str = "2023-01-01T00:00:00Z",
) -> dict[str, Any]:
    """A VIP's WLE as the seed's tooling creates it."""
    conditions: list[dict[str, Any]] = list(extra_conditions)
    if healthy is not None:
        c: dict[str, Any] = {
            "type": "Healthy",
            "status": healthy,
            "lastProbeTime": since,
            "lastTransitionTime": since,
        }
        if healthy == "False":
            c |= {"reason": "unhealthy", "message": message or "Region Exit"}
        conditions.append(c)
    notes = dict(annotations or {})
    if annotate:
        notes["proxy.istio.io/health-checks-enabled"] = "true"
    obj: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkloadEntry",
        "metadata": {
            "name": wle_name(vip),
            "namespace": NS,
            "labels": {"gtm.io/managed": "true", "gtm.io/service": vip.service},
            "annotations": notes,
        },
        "spec": {
            "address": vip.address,
            "locality": LOCALITIES[vip.region],
            "ports": {"https": vip.port},
            "labels": {"app": vip.service},
        },
    }
    if weight is not None:
        obj["spec"]["weight"] = weight
    if conditions:
        obj["status"] = {"conditions": conditions}
    return obj


def seed_baseline(
    sim: KubeSim, estate: Estate, *, local: int = 98, remote: int = 1, **kw: Any
) -> None:
    """Every VIP's WLE in the dc1 cluster: Healthy, annotated, the seed's 98/1/1."""
    for s in estate.services:
        for region, vips in s.vips.items():
            for v in vips:
                sim.seed(wle(v, weight=local if region == "dc1" else remote, **kw))


def settings(**kw: Any) -> ClusterSettings:
    base = ClusterSettings(
        name="dc1",
        region="dc1",
        namespace=NS,
        qps=2000.0,
        burst=200,
        concurrency=8,
        timeout=2.0,
        watch_timeout=30.0,
        resync=60.0,
        retry=FAST_RETRY,
    )
    return replace(base, **kw)


def objects(sim: KubeSim) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in sim.objects(GROUP, VERSION, PLURAL, NS)}


def healthy_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Healthy":
            return c
    return None


def patched(sim: KubeSim) -> int:
    """Patches the server accepted (a 409 or a 500 changed nothing)."""
    return sum(
        row["count"]
        for row in sim.stats()["requests"]
        if row["verb"] == "patch" and 200 <= row["code"] < 300
    )


class Clock:
    """Fixed wall time for condition stamps, moved by hand."""

    def __init__(self, start: datetime = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@asynccontextmanager
async def reconciler(
    sim: KubeSim,
    estate: Estate,
    *,
    registry: CollectorRegistry | None = None,
    now: Callable[[], datetime] | None = None,
    sleep: Callable[[float], Any] | None = None,
    **kw: Any,
) -> AsyncIterator[Reconciler]:
    extra: dict[str, Any] = {}
    if now is not None:
        extra["now"] = now
    if sleep is not None:
        extra["sleep"] = sleep
    r = Reconciler(
        settings(**kw),
        sim.configuration(),
        estate,
        LOCALITIES,
        registry=registry or CollectorRegistry(),
        **extra,
    )
    async with r:
        yield r


async def converged(r: Reconciler, generation: int | None = None, within: float = 15.0) -> None:
    try:
        async with asyncio.timeout(within):
            await r.until_converged(generation)
    except TimeoutError:
        pytest.fail(f"not converged within {within}s: {r.progress()}")


@pytest.fixture(name="sim")
async def sim_fixture() -> AsyncIterator[KubeSim]:
    """A simulated cluster (dc1's); test modules import `sim_fixture` to use `sim`."""
    async with KubeSim(host="127.0.0.1", port=0, seed=1) as s:
        yield s
