"""kube.Client.request(): retries, Retry-After, permanent errors, conflicts, timeouts, pacing —
against the simulated API server through the real kubernetes-asyncio client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
from structlog.testing import capture_logs

from chaos.kubesim import Faults, KubeSim
from kube import (
    Client,
    Conflict,
    NotFound,
    PermanentError,
    RetrySettings,
    TemporaryError,
)

NS = "gtm"
FAST = RetrySettings(attempts=12, backoff=0.001, backoff_max=0.02, conflict_attempts=8)


class Counts:
    """A `RequestMetrics` that remembers what it was told."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, int]] = []
        self.retries: list[tuple[str, str]] = []
        self.waits: list[float] = []

    def request(self, verb: str, code: int) -> None:
        self.requests.append((verb, code))

    def retry(self, verb: str, cause: str) -> None:
        self.retries.append((verb, cause))

    def waited(self, seconds: float) -> None:
        self.waits.append(seconds)


@asynccontextmanager
async def client(sim: KubeSim, **kw: Any) -> AsyncIterator[tuple[Client, list[float], Counts]]:
    """A client on `sim` whose backoff sleeps are recorded, not slept."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    counts = Counts()
    kw.setdefault("retry", FAST)
    async with Client(sim.configuration(), metrics=counts, sleep=sleep, **kw) as c:
        yield c, slept, counts


def config_map(name: str, resource_version: str | None = None, value: str = "v") -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": NS}
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"k": value}}


def list_maps(c: Client) -> partial[Any]:
    return partial(c.core.list_namespaced_config_map, NS)


async def test_a_request_answers_the_servers_json(sim: KubeSim) -> None:
    async with client(sim) as (c, slept, counts):
        made = await c.request(
            "create", partial(c.core.create_namespaced_config_map, NS, config_map("a"))
        )
        read = await c.request("get", partial(c.core.read_namespaced_config_map, "a", NS))
    assert read["data"] == {"k": "v"} and read["metadata"]["resourceVersion"]
    assert made["metadata"]["uid"] == read["metadata"]["uid"]
    assert counts.requests == [("create", 201), ("get", 200)] and slept == []


async def test_temporary_errors_are_retried_with_attempt_logs(sim: KubeSim) -> None:
    sim.faults.set(Faults(error_rate=1.0, seed=1))
    async with client(sim, context={"cluster": "dc1"}) as (c, slept, counts):
        with capture_logs() as logs, pytest.raises(TemporaryError, match="500 InternalError"):
            await c.request("list", list_maps(c), what="configmaps")
    retries = [e for e in logs if e["event"] == "kube.retry"]
    assert [e["attempt"] for e in retries] == [f"#{n}/12" for n in range(1, 12)]
    assert all(e["cluster"] == "dc1" and e["what"] == "configmaps" for e in retries)
    assert len(slept) == 11 and sim.stats()["by_code"] == {"500": 12}
    assert counts.retries == [("list", "500")] * 11 and counts.requests == [("list", 500)] * 12


async def test_a_retried_request_succeeds_once_the_server_recovers(sim: KubeSim) -> None:
    sim.faults.set(Faults(error_rate=0.5, seed=3))
    async with client(sim) as (c, slept, _):
        for i in range(6):
            await c.request(
                "create", partial(c.core.create_namespaced_config_map, NS, config_map(f"m{i}"))
            )
    assert len(sim.objects("", "v1", "configmaps", NS)) == 6
    assert slept and sim.stats()["by_code"]["500"] == len(slept)


async def test_retry_after_is_honoured_and_capped(sim: KubeSim) -> None:
    sim.faults.set(Faults(throttle_rate=1.0, retry_after=3))
    async with client(sim, retry=RetrySettings(attempts=3, backoff=0.001)) as (c, slept, _):
        with pytest.raises(TemporaryError, match="429"):
            await c.request("list", list_maps(c))
    assert slept == [3.0, 3.0]  # as told, not the 1 ms backoff
    capped = RetrySettings(attempts=2, backoff=0.001, retry_after_max=0.5)
    async with client(sim, retry=capped) as (c, slept, counts):
        with pytest.raises(TemporaryError):
            await c.request("list", list_maps(c))
    assert slept == [0.5] and counts.retries == [("list", "429")]


async def test_throttling_waits_for_real_before_the_next_attempt(sim: KubeSim) -> None:
    sim.faults.set(Faults(throttle_rate=1.0, retry_after=1))
    async with Client(sim.configuration(), retry=RetrySettings(attempts=2, backoff=0.001)) as c:
        started = asyncio.get_running_loop().time()
        with pytest.raises(TemporaryError, match="429"):
            await c.request("list", list_maps(c))
        assert asyncio.get_running_loop().time() - started >= 1.0  # not the 1 ms backoff
    assert sim.stats()["by_code"] == {"429": 2}


async def test_permanent_errors_are_raised_at_once(sim: KubeSim) -> None:
    async with client(sim) as (c, slept, counts):
        with pytest.raises(NotFound):
            await c.request("get", partial(c.core.read_namespaced_config_map, "nope", NS))
        with pytest.raises(PermanentError) as bad:
            await c.request(
                "create", partial(c.core.create_namespaced_config_map, NS, config_map("Not_A_Name"))
            )
    assert bad.value.status == 422 and bad.value.reason == "Invalid"
    assert slept == [] and counts.retries == [] and sim.stats()["by_code"] == {"404": 1, "422": 1}


async def test_a_stale_resource_version_is_a_conflict_not_retried(sim: KubeSim) -> None:
    async with client(sim) as (c, slept, _):
        made = await c.request(
            "create", partial(c.core.create_namespaced_config_map, NS, config_map("a"))
        )
        version = made["metadata"]["resourceVersion"]
        await c.request(
            "replace",
            partial(c.core.replace_namespaced_config_map, "a", NS, config_map("a", version, "w")),
        )
        stale = partial(c.core.replace_namespaced_config_map, "a", NS, config_map("a", version))
        with pytest.raises(Conflict) as conflict:
            await c.request("replace", stale)
        with pytest.raises(Conflict):  # creating what exists: AlreadyExists, also a 409
            await c.request(
                "create", partial(c.core.create_namespaced_config_map, NS, config_map("a"))
            )
    assert conflict.value.status == 409 and slept == []


async def test_a_request_that_hangs_times_out_and_is_retried(sim: KubeSim) -> None:
    sim.faults.set(Faults(latency=5.0, verbs=("list",)))
    async with client(sim, timeout=0.1, retry=RetrySettings(attempts=2, backoff=0.001)) as (
        c,
        slept,
        counts,
    ):
        with pytest.raises(TemporaryError, match="TimeoutError"):
            async with asyncio.timeout(3):
                await c.request("list", list_maps(c))
    assert len(slept) == 1 and counts.retries == [("list", "timeout")]


async def test_requests_take_a_token_of_the_rate_limit(sim: KubeSim) -> None:
    async with client(sim, qps=50.0, burst=2, clock=lambda: 0.0) as (c, _, counts):
        await asyncio.gather(*(c.request("list", list_maps(c)) for _ in range(5)))
    # two from the burst, then one every 20 ms (the clock stands still: no refill)
    assert sorted(counts.waits) == pytest.approx([0.0, 0.0, 0.02, 0.04, 0.06])


async def test_concurrency_bounds_the_requests_in_flight(sim: KubeSim) -> None:
    sim.faults.set(Faults(latency=0.2, verbs=("list",)))
    async with client(sim, concurrency=2) as (c, _, _counts):
        started = asyncio.get_running_loop().time()
        await asyncio.gather(*(c.request("list", list_maps(c)) for _ in range(4)))
        took = asyncio.get_running_loop().time() - started
    assert 0.4 <= took < 0.8  # two rounds of two: not one round of four, nor four of one


async def test_a_derived_client_counts_and_logs_apart_on_the_same_connection(sim: KubeSim) -> None:
    sim.faults.set(Faults(error_rate=1.0, seed=1))
    async with client(sim, retry=RetrySettings(attempts=2, backoff=0.001)) as (c, _, counts):
        other = Counts()
        store = c.derive(metrics=other, context={"store": "configmap/intent"})
        with capture_logs() as logs, pytest.raises(TemporaryError):
            await store.request("get", partial(c.core.read_namespaced_config_map, "a", NS))
        assert store.api is c.api
    assert other.retries == [("get", "500")] and counts.retries == []
    assert [e["store"] for e in logs if e["event"] == "kube.retry"] == ["configmap/intent"]
