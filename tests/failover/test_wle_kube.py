"""kube.py's request(): classification, Retry-After, retries, pacing — with fakes and the sim."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from kubernetes_asyncio.client import ApiClient
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs
from wle_fixtures import make_estate, seed_baseline, settings, sim_fixture  # noqa: F401

from chaos.kubesim import Faults, KubeSim
from failover import RetrySettings
from failover.kube import (
    Conflict,
    Expired,
    KubeClient,
    NotFound,
    PermanentError,
    TemporaryError,
    error_of,
)
from failover.metrics import Metrics
from failover.rate_limit import TokenBucket


def status(code: int, reason: str, **details: object) -> bytes:
    body = {"kind": "Status", "code": code, "reason": reason, "message": f"m{code}"}
    if details:
        body["details"] = details
    return json.dumps(body).encode()


def test_errors_are_temporary_or_permanent() -> None:
    assert isinstance(error_of(500, "x", status(500, "InternalError"), {}), TemporaryError)
    assert isinstance(error_of(503, "x", None, {}), TemporaryError)
    assert isinstance(error_of(429, "x", status(429, "TooManyRequests"), {}), TemporaryError)
    assert isinstance(error_of(409, "x", status(409, "Conflict"), {}), Conflict)
    assert isinstance(error_of(404, "x", None, {}), NotFound)
    assert isinstance(error_of(410, "x", None, {}), Expired)
    bad = error_of(422, "x", status(422, "Invalid"), {})
    assert isinstance(bad, PermanentError) and bad.reason == "Invalid" and bad.message == "m422"


def test_retry_after_from_header_date_or_status_details() -> None:
    assert error_of(429, "", None, {"Retry-After": "7"}).retry_after == 7.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    after = error_of(503, "", None, {"Retry-After": later}).retry_after
    assert after is not None and 28 <= after <= 30
    assert error_of(429, "", status(429, "x", retryAfterSeconds=4), {}).retry_after == 4.0
    assert error_of(500, "", None, {}).retry_after is None


async def test_token_bucket_paces_to_qps_after_the_burst() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(10.0, 3, clock=lambda: now[0], sleep=sleep)
    for _ in range(8):
        await bucket.take()
    assert len(slept) == 5  # three from the burst, then one per 0.1 s
    assert now[0] == pytest.approx(0.5)


async def _client(sim: KubeSim, api: ApiClient, **kw: object) -> tuple[KubeClient, list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    metrics = Metrics.of(CollectorRegistry()).cluster("dc1")
    return KubeClient(settings(**kw), api, metrics, sleep=sleep), slept


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


async def test_a_request_that_hangs_times_out_and_is_retried(sim: KubeSim) -> None:
    seed_baseline(sim, make_estate(1))
    sim.faults.set(Faults(latency=5.0, verbs=("list",)))
    async with ApiClient(sim.configuration()) as api:
        kube, slept = await _client(
            sim, api, timeout=0.1, retry=RetrySettings(attempts=2, backoff=0.001)
        )
        with pytest.raises(TemporaryError, match="TimeoutError"):
            async with asyncio.timeout(3):
                await kube.list_entries()
    assert len(slept) == 1


async def test_list_pages_through_large_clusters(sim: KubeSim) -> None:
    seed_baseline(sim, make_estate(10))
    async with ApiClient(sim.configuration()) as api:
        kube, _ = await _client(sim, api, page_size=7)
        items, version = await kube.list_entries()
    assert len(items) == 31 and version
    assert sim.stats()["by_verb"]["list"] == 5
