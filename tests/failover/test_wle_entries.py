"""failover.entries: the WorkloadEntry calls go through kube's request() with the cluster's
settings (retries, pacing), page through lists and patch with merge patches — on the sim.

The request() itself (classification, Retry-After, timeouts, pacing) is tested in tests/kube.
"""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs
from wle_fixtures import make_estate, seed_baseline, settings, sim_fixture  # noqa: F401

from chaos.kubesim import Faults, KubeSim
from failover.entries import EntryCalls
from failover.metrics import Metrics
from kube import ApiClient, NotFound, PermanentError, TemporaryError


async def _client(sim: KubeSim, api: ApiClient, **kw: object) -> tuple[EntryCalls, list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    metrics = Metrics.of(CollectorRegistry()).cluster("dc1")
    return EntryCalls(settings(**kw), api, metrics, sleep=sleep), slept


async def test_request_retries_temporary_errors_and_logs_attempts(sim: KubeSim) -> None:
    seed_baseline(sim, make_estate(1))
    sim.faults.set(Faults(error_rate=1.0, seed=1))
    async with ApiClient(sim.configuration()) as api:
        kube, slept = await _client(sim, api)
        with capture_logs() as logs, pytest.raises(TemporaryError, match="500 InternalError"):
            await kube.list_entries()
    attempts = [e["attempt"] for e in logs if e["event"] == "kube.retry"]
    assert attempts == [f"#{n}/12" for n in range(1, 12)]
    assert len(slept) == 11 and sim.stats()["by_code"] == {"500": 12}


async def test_permanent_errors_are_not_retried(sim: KubeSim) -> None:
    async with ApiClient(sim.configuration()) as api:
        kube, slept = await _client(sim, api)
        with pytest.raises(NotFound):
            await kube.get_entry("mesh", "nope")
        with pytest.raises(PermanentError) as bad:  # a merge patch of spec.weight: -1
            seed_baseline(sim, make_estate(1, two_vips=()))
            await kube.patch_entry(
                "mesh", "svc0-dc1-10-1-0-1", {"spec": {"weight": -1}}, status=False
            )
    assert bad.value.status == 422 and slept == []


async def test_list_pages_through_large_clusters(sim: KubeSim) -> None:
    seed_baseline(sim, make_estate(10))
    async with ApiClient(sim.configuration()) as api:
        kube, _ = await _client(sim, api, page_size=7)
        items, version = await kube.list_entries()
    assert len(items) == 31 and version
    assert sim.stats()["by_verb"]["list"] == 5
