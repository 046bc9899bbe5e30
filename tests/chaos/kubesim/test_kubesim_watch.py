"""Watches through `kubernetes_asyncio.watch.Watch().stream`."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from kubernetes_asyncio import watch
from kubernetes_asyncio.client import (
    CoordinationV1Api,
    CustomObjectsApi,
    V1Lease,
    V1LeaseSpec,
    V1ObjectMeta,
)
from kubernetes_asyncio.client.exceptions import ApiException
from kubesim_testing import GROUP, NS, WLE, WatchRecorder, wle

from chaos.kubesim import KubeSim

MERGE = "application/merge-patch+json"


async def test_added_modified_deleted(custom: CustomObjectsApi) -> None:
    listed = await custom.list_namespaced_custom_object(GROUP, "v1", NS, WLE)
    rv = listed["metadata"]["resourceVersion"]
    async with WatchRecorder(
        custom.list_namespaced_custom_object, GROUP, "v1", NS, WLE, resource_version=rv
    ) as recorder:
        await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, wle("a"))
        await custom.patch_namespaced_custom_object(
            GROUP, "v1", NS, WLE, "a", {"spec": {"weight": 1}}, _content_type=MERGE
        )
        await custom.patch_namespaced_custom_object_status(
            GROUP, "v1", NS, WLE, "a", {"status": {"conditions": []}}, _content_type=MERGE
        )
        await custom.delete_namespaced_custom_object(GROUP, "v1", NS, WLE, "a")
        events = [await recorder.next() for _ in range(4)]
    kinds = [e["type"] for e in events]
    assert kinds == ["ADDED", "MODIFIED", "MODIFIED", "DELETED"]
    rvs = [int(e["raw_object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and len(set(rvs)) == 4
    assert events[1]["raw_object"]["spec"]["weight"] == 1
    assert recorder.watch.resource_version == str(rvs[-1])


async def test_watch_without_resource_version_starts_with_current_state(
    custom: CustomObjectsApi,
) -> None:
    await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, wle("a"))
    await custom.create_namespaced_custom_object(GROUP, "v1", "other", WLE, wle("b"))
    async with WatchRecorder(
        custom.list_namespaced_custom_object, GROUP, "v1", NS, WLE
    ) as recorder:
        assert await recorder.take(1) == [("ADDED", "a")]
        assert await recorder.quiet(0.2)
    async with WatchRecorder(custom.list_cluster_custom_object, GROUP, "v1beta1", WLE) as recorder:
        first = await recorder.next()
        assert first["raw_object"]["apiVersion"] == f"{GROUP}/v1beta1"
        assert (await recorder.next())["raw_object"]["metadata"]["name"] == "b"


async def test_resume_replays_changes_after_the_resource_version(custom: CustomObjectsApi) -> None:
    created = await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, wle("a"))
    await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, wle("b"))
    await custom.delete_namespaced_custom_object(GROUP, "v1", NS, WLE, "a")
    async with WatchRecorder(
        custom.list_namespaced_custom_object,
        GROUP,
        "v1",
        NS,
        WLE,
        resource_version=created["metadata"]["resourceVersion"],
    ) as recorder:
        assert await recorder.take(2) == [("ADDED", "b"), ("DELETED", "a")]


async def test_label_selector_watch_sees_objects_leave_and_enter(custom: CustomObjectsApi) -> None:
    await custom.create_namespaced_custom_object(
        GROUP, "v1", NS, WLE, wle("a", labels={"region": "dc1"})
    )
    async with WatchRecorder(
        custom.list_namespaced_custom_object, GROUP, "v1", NS, WLE, label_selector="region=dc1"
    ) as recorder:
        assert await recorder.take(1) == [("ADDED", "a")]
        await custom.create_namespaced_custom_object(
            GROUP, "v1", NS, WLE, wle("b", labels={"region": "dc2"})
        )
        await custom.patch_namespaced_custom_object(
            GROUP,
            "v1",
            NS,
            WLE,
            "a",
            {"metadata": {"labels": {"region": "dc2"}}},
            _content_type=MERGE,
        )
        await custom.patch_namespaced_custom_object(
            GROUP,
            "v1",
            NS,
            WLE,
            "b",
            {"metadata": {"labels": {"region": "dc1"}}},
            _content_type=MERGE,
        )
        assert await recorder.take(2) == [("DELETED", "a"), ("ADDED", "b")]


async def test_too_old_resource_version_is_410_then_relist_and_rewatch(
    sim: KubeSim, custom: CustomObjectsApi
) -> None:
    first = await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, wle("a"))
    old_rv = first["metadata"]["resourceVersion"]
    for weight in range(60):  # history keeps 50 changes in this fixture
        await custom.patch_namespaced_custom_object(
            GROUP, "v1", NS, WLE, "a", {"spec": {"weight": weight}}, _content_type=MERGE
        )
    stream = watch.Watch()
    with pytest.raises(ApiException) as caught:
        async for _ in stream.stream(
            custom.list_namespaced_custom_object,
            GROUP,
            "v1",
            NS,
            WLE,
            resource_version=old_rv,
            timeout_seconds=5,
        ):
            pass
    await stream.close()
    assert caught.value.status == 410
    assert "Expired" in caught.value.reason
    # Without timeout_seconds the client retries a 410 once, then raises it too.
    stream = watch.Watch()
    with pytest.raises(ApiException) as caught:
        async for _ in stream.stream(
            custom.list_namespaced_custom_object, GROUP, "v1", NS, WLE, resource_version=old_rv
        ):
            pass
    await stream.close()
    assert caught.value.status == 410
    # The ERROR event is what travels on the wire.
    url = f"{sim.url}/apis/{GROUP}/v1/namespaces/{NS}/{WLE}?watch=1&resourceVersion={old_rv}"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        event = json.loads(await response.content.readline())
    assert event["type"] == "ERROR"
    assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
    # Re-list, then watch from the list's resourceVersion.
    listed = await custom.list_namespaced_custom_object(GROUP, "v1", NS, WLE)
    async with WatchRecorder(
        custom.list_namespaced_custom_object,
        GROUP,
        "v1",
        NS,
        WLE,
        resource_version=listed["metadata"]["resourceVersion"],
    ) as recorder:
        await custom.patch_namespaced_custom_object(
            GROUP, "v1", NS, WLE, "a", {"spec": {"weight": 7}}, _content_type=MERGE
        )
        event = await recorder.next()
        assert (event["type"], event["raw_object"]["spec"]["weight"]) == ("MODIFIED", 7)


async def test_bookmarks_only_when_allowed(sim: KubeSim, custom: CustomObjectsApi) -> None:
    created = await custom.create_namespaced_custom_object(GROUP, "v1", NS, WLE, wle("a"))
    rv = created["metadata"]["resourceVersion"]
    async with WatchRecorder(
        custom.list_namespaced_custom_object,
        GROUP,
        "v1",
        NS,
        WLE,
        resource_version=rv,
        allow_watch_bookmarks=True,
    ) as recorder:
        await custom.create_namespaced_custom_object(GROUP, "v1", "elsewhere", WLE, wle("b"))
        event = await recorder.next(within=2)
        assert event["type"] == "BOOKMARK"
        assert int(event["raw_object"]["metadata"]["resourceVersion"]) == sim.store.resource_version
        assert recorder.watch.resource_version == str(sim.store.resource_version)
    async with WatchRecorder(
        custom.list_namespaced_custom_object, GROUP, "v1", NS, WLE, resource_version=rv
    ) as recorder:
        assert await recorder.quiet(0.5)  # bookmark_interval is 0.2 s in this fixture


async def test_timeout_seconds_ends_the_stream(custom: CustomObjectsApi) -> None:
    events = []
    stream = watch.Watch()
    async with stream:
        async for event in stream.stream(
            custom.list_namespaced_custom_object, GROUP, "v1", NS, WLE, timeout_seconds=1
        ):
            events.append(event)
    assert events == []


async def test_bad_watch_parameters_are_400(sim: KubeSim) -> None:
    base = f"{sim.url}/apis/{GROUP}/v1/namespaces/{NS}/{WLE}"
    async with aiohttp.ClientSession() as session:
        for query in ("watch=maybe", "watch=1&resourceVersion=abc", "watch=1&timeoutSeconds=-1"):
            async with session.get(f"{base}?{query}") as response:
                assert response.status == 400, query


async def test_watch_typed_leases(coordination: CoordinationV1Api) -> None:
    async with WatchRecorder(coordination.list_namespaced_lease, NS) as recorder:
        await coordination.create_namespaced_lease(
            NS, V1Lease(metadata=V1ObjectMeta(name="l"), spec=V1LeaseSpec(holder_identity="x"))
        )
        event = await recorder.next()
    assert event["type"] == "ADDED"
    assert event["object"].spec.holder_identity == "x"  # deserialized into V1Lease


async def test_too_large_resource_version_is_an_error_event(sim: KubeSim) -> None:
    url = f"{sim.url}/apis/{GROUP}/v1/namespaces/{NS}/{WLE}?watch=1&resourceVersion=999"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        event = json.loads(await response.content.readline())
    assert event["type"] == "ERROR"
    assert (event["object"]["code"], event["object"]["reason"]) == (504, "Timeout")


async def test_shutdown_ends_open_watches_promptly() -> None:
    sim = KubeSim()
    await sim.start()
    url = f"{sim.url}/apis/{GROUP}/v1/namespaces/{NS}/{WLE}?watch=1"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        started = asyncio.get_running_loop().time()
        await sim.stop()
        assert asyncio.get_running_loop().time() - started < 2.0
        assert await response.read() == b""
    with pytest.raises(RuntimeError):
        _ = sim.url


async def test_watch_of_a_departed_client_is_released(sim: KubeSim) -> None:
    url = f"{sim.url}/apis/{GROUP}/v1/namespaces/{NS}/{WLE}?watch=1"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert sim.hub.open_watches == 1
    for _ in range(200):  # the server notices the disconnect on its own; poll its state
        if sim.hub.open_watches == 0:
            break
        await asyncio.sleep(0.01)
    assert sim.hub.open_watches == 0
