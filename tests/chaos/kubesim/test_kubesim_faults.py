"""Injected faults: latency, 500s, 429s with Retry-After, a rate limit, dropped watches."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio.client import CoreV1Api, CustomObjectsApi
from kubernetes_asyncio.client.exceptions import ApiException
from kubesim_testing import GROUP, NS, WLE, WatchRecorder, wle

from chaos.kubesim import Faults, KubeSim
from chaos.kubesim.faults import TokenBucket

MERGE = "application/merge-patch+json"


async def _codes(custom: CustomObjectsApi, count: int, name: str = "a") -> list[int]:
    codes = []
    for _ in range(count):
        try:
            await custom.get_namespaced_custom_object(GROUP, "v1", NS, WLE, name)
            codes.append(200)
        except ApiException as error:
            codes.append(error.status)
    return codes


async def test_error_rate_is_observed_and_seeded(sim: KubeSim, custom: CustomObjectsApi) -> None:
    sim.seed({**wle("a")})
    sim.faults.set(Faults(error_rate=0.3, seed=7))
    first = await _codes(custom, 300)
    share = first.count(500) / len(first)
    assert 0.22 <= share <= 0.38, share
    assert set(first) == {200, 500}
    sim.faults.set(Faults(error_rate=0.3, seed=7))  # same seed, same request sequence
    assert await _codes(custom, 300) == first
    sim.faults.set(Faults(error_rate=0.3, seed=8))
    other = await _codes(custom, 300)
    assert other != first
    assert sim.stats()["injected"]["error"] == 2 * first.count(500) + other.count(500)
    assert sim.stats()["by_code"]["500"] == 2 * first.count(500) + other.count(500)


async def test_injected_500_is_a_status(sim: KubeSim, custom: CustomObjectsApi) -> None:
    sim.seed({**wle("a")})
    sim.faults.set(Faults(error_rate=1.0))
    with pytest.raises(ApiException) as caught:
        await custom.get_namespaced_custom_object(GROUP, "v1", NS, WLE, "a")
    body = json.loads(caught.value.body)
    assert (caught.value.status, body["reason"], body["kind"]) == (500, "InternalError", "Status")
    sim.faults.clear()
    await custom.get_namespaced_custom_object(GROUP, "v1", NS, WLE, "a")


async def test_throttle_sends_retry_after(sim: KubeSim, custom: CustomObjectsApi) -> None:
    sim.faults.set(Faults(throttle_rate=1.0, retry_after=3))
    with pytest.raises(ApiException) as caught:
        await custom.list_namespaced_custom_object(GROUP, "v1", NS, WLE)
    assert caught.value.status == 429
    assert caught.value.headers["Retry-After"] == "3"
    body = json.loads(caught.value.body)
    assert body["reason"] == "TooManyRequests"
    assert body["details"]["retryAfterSeconds"] == 3


async def test_rate_limit_lets_through_burst_plus_rate(
    sim: KubeSim, custom: CustomObjectsApi
) -> None:
    sim.seed({**wle("a")})
    rate, burst, count = 20.0, 5, 60
    sim.faults.set(Faults(rate_limit=rate, burst=burst, verbs=("get",)))
    sim.reset_stats()
    started = time.monotonic()
    codes = await _codes(custom, count)
    elapsed = time.monotonic() - started
    allowed = codes.count(200)
    limited = sim.stats()["injected"]["rate_limit"]
    assert limited == codes.count(429) == count - allowed
    # The bucket allows at most `burst` at once plus `rate` per second since.
    assert burst <= allowed <= burst + rate * elapsed + 1, (allowed, elapsed)
    assert limited >= count - (burst + rate * elapsed + 1)
    assert sim.stats()["by_code"]["429"] == limited
    # Other verbs are not limited by this scope.
    await custom.list_namespaced_custom_object(GROUP, "v1", NS, WLE)


async def test_rate_limit_refills(sim: KubeSim, custom: CustomObjectsApi) -> None:
    sim.seed({**wle("a")})
    sim.faults.set(Faults(rate_limit=10, burst=1))
    assert await _codes(custom, 2) == [200, 429]
    await asyncio.sleep(0.15)  # one token is back after 0.1 s
    assert (await _codes(custom, 1)) == [200]


def test_token_bucket_counts() -> None:
    bucket = TokenBucket(rate=10, size=3, now=0.0)
    granted = sum(bucket.take(0.0) == 0 for _ in range(10))
    assert granted == 3
    assert bucket.take(0.0) == pytest.approx(0.1)
    assert bucket.take(0.1) == 0
    assert sum(bucket.take(10.0) == 0 for _ in range(10)) == 3  # never more than the size


async def test_latency_and_jitter(sim: KubeSim, custom: CustomObjectsApi) -> None:
    sim.faults.set(Faults(latency=0.15))
    started = time.monotonic()
    await custom.list_namespaced_custom_object(GROUP, "v1", NS, WLE)
    assert time.monotonic() - started >= 0.15
    sim.faults.set(Faults(jitter=0.05, seed=3))
    started = time.monotonic()
    for _ in range(5):
        await custom.list_namespaced_custom_object(GROUP, "v1", NS, WLE)
    assert time.monotonic() - started <= 5 * 0.05 + 1.0


async def test_scope_by_verb_and_resource(
    sim: KubeSim, custom: CustomObjectsApi, core: CoreV1Api
) -> None:
    sim.seed({**wle("a")})
    sim.seed({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}})
    sim.faults.set(Faults(error_rate=1.0, verbs=("patch",), resources=("workloadentries",)))
    await custom.get_namespaced_custom_object(GROUP, "v1", NS, WLE, "a")
    for call in (
        custom.patch_namespaced_custom_object(
            GROUP, "v1", NS, WLE, "a", {"spec": {"weight": 2}}, _content_type=MERGE
        ),
        custom.patch_namespaced_custom_object_status(
            GROUP, "v1", NS, WLE, "a", {"status": {}}, _content_type=MERGE
        ),
    ):
        with pytest.raises(ApiException) as caught:
            await call
        assert caught.value.status == 500
    await core.patch_namespaced_config_map("c", NS, {"data": {"k": "v"}})


async def test_drop_watches_now(sim: KubeSim, custom: CustomObjectsApi) -> None:
    """The client's Watch reconnects from its last resourceVersion and misses nothing."""
    created = await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, wle("a"))
    async with WatchRecorder(
        custom.list_namespaced_custom_object,
        GROUP,
        "v1",
        NS,
        WLE,
        resource_version=created["metadata"]["resourceVersion"],
    ) as recorder:
        await custom.patch_namespaced_custom_object(
            GROUP, "v1", NS, WLE, "a", {"spec": {"weight": 1}}, _content_type=MERGE
        )
        assert await recorder.take(1) == [("MODIFIED", "a")]
        sim.faults.set(Faults(drop_watches=True))
        await custom.patch_namespaced_custom_object(
            GROUP, "v1", NS, WLE, "a", {"spec": {"weight": 2}}, _content_type=MERGE
        )
        assert await recorder.take(1) == [("MODIFIED", "a")]
    stats = sim.stats()
    assert stats["watches_opened"] == 2
    assert stats["injected"]["dropped_watches"] == 1


async def test_drop_watches_after(sim: KubeSim) -> None:
    sim.faults.set(Faults(drop_watches_after=0.3, resources=("workloadentries",)))
    url = f"{sim.url}/apis/{GROUP}/v1/namespaces/{NS}/{WLE}?watch=true"
    started = time.monotonic()
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert await response.read() == b""  # the stream ends without an event
    assert 0.25 <= time.monotonic() - started < 3
    assert sim.stats()["injected"]["dropped_watches"] == 1


async def test_faults_over_http(sim: KubeSim) -> None:
    async with aiohttp.ClientSession(base_url=sim.url) as session:

        async def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
            async with session.request(method, path, json=body) as response:
                return response.status, await response.json()

        code, view = await call("POST", "/_sim/faults", {"throttle_rate": 1.0, "retry_after": 2})
        assert code == 200 and view["faults"]["throttle_rate"] == 1.0
        async with session.get(f"/api/v1/namespaces/{NS}/configmaps") as response:
            assert response.status == 429 and response.headers["Retry-After"] == "2"
        assert sim.faults.current.throttle_rate == 1.0
        code, view = await call("GET", "/_sim/faults")
        assert view["injected"] == {"throttle": 1}
        code, stats = await call("GET", "/_sim/stats")
        assert stats["requests"] == [
            {"verb": "list", "resource": "configmaps", "code": 429, "count": 1}
        ]
        for bad in ({"error_rate": 2}, {"nonsense": 1}, {"verbs": ["fly"]}, [1], {"latency": "x"}):
            code, body = await call("POST", "/_sim/faults", bad)
            assert (code, body["reason"]) == (400, "BadRequest"), bad
        code, _ = await call("DELETE", "/_sim/faults")
        assert sim.faults.current == Faults()
        code, seeded = await call("POST", "/_sim/objects", wle("x"))
        assert code == 201 and seeded["metadata"]["namespace"] == "default"
        code, _ = await call("POST", "/_sim/reset", {"objects": True})
        assert code == 200
        code, stats = await call("GET", "/_sim/stats")
        assert stats["total"] == 0
        code, dump = await call("GET", "/_sim/objects")
        assert dump["items"] == []
        code, body = await call("POST", "/_sim/reset", {"everything": True})
        assert code == 400


def test_faults_refuse_bad_values() -> None:
    for bad in (
        {"error_rate": -0.1},
        {"throttle_rate": 1.5},
        {"rate_limit": 0},
        {"burst": 0},
        {"latency": -1},
        {"drop_watches_after": 0},
        {"verbs": ("fly",)},
    ):
        with pytest.raises(ValueError):
            Faults(**bad)
    assert Faults(rate_limit=2.5).bucket_size == 3
    assert Faults(verbs=["get"]).verbs == ("get",)  # type: ignore[arg-type]
